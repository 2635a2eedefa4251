//! Catalog files: a snapshot of Consul's data in the JSON shapes its API
//! returns, so templates can be rendered (and `nginx -t`ed) in CI with no
//! Consul at all, and so a live catalog can be captured for that purpose.
//!
//! ```json
//! {
//!   "services": { "web": [ /* GET /v1/health/service/web */ ] },
//!   "kv":       [ /* GET /v1/kv/?recurse */ ],
//!   "nodes":    [ /* GET /v1/catalog/nodes (optional: derived from services) */ ],
//!   "datacenters": [ "dc1" ],
//!   "node_details": { "n1": { /* GET /v1/catalog/node/n1 (optional: derived) */ } },
//!   "agent_node": "n1"
//! }
//! ```
//! Every section is optional. Queries are answered the way Consul would:
//! `?passing`, tags and datacenter filter the health entries here, and the
//! answers go through the same validation as live data.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::data::{
    self, Data, Instance, NodeDetail, NodeInfo, NotBase64, Rejection, Rejections, Status,
};
use super::dependency::Dependency;
use super::model::{CatalogNode, Check, HealthEntry, KvPair, Node, Service, ServiceAddress};

/// A catalog snapshot.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogFile {
    pub services: BTreeMap<String, Vec<HealthEntry>>,
    pub kv: Vec<KvPair>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<String>,
    /// Nodes with their services, by name; a node not listed here is
    /// derived from `nodes` and the services' health entries.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_details: BTreeMap<String, CatalogNode>,
    /// The node of the agent a `node` query without a name asks about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_node: Option<String>,
}

/// A catalog file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    #[error("could not read catalog file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("could not write catalog file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl CatalogFile {
    pub fn load(path: &Path) -> Result<CatalogFile, CatalogFileError> {
        let text = std::fs::read(path).map_err(|source| CatalogFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| CatalogFileError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), CatalogFileError> {
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|source| CatalogFileError::Write {
                path: path.display().to_string(),
                source: source.into(),
            })?;
        text.push(b'\n');
        std::fs::write(path, text).map_err(|source| CatalogFileError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Answers `dependency` as Consul would from this snapshot.
    pub fn answer(&self, dependency: &Dependency) -> Result<(Data, Vec<Rejection>), NotBase64> {
        let mut rejections = Rejections::default();
        let in_dc = |entry: &HealthEntry, dc: &Option<String>| {
            dc.as_ref().is_none_or(|dc| &entry.node.datacenter == dc)
        };
        let data = match dependency {
            Dependency::Health(q) => {
                let entries = self
                    .services
                    .get(&q.service)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let matching = entries
                    .iter()
                    .filter(|e| in_dc(e, &q.dc))
                    .filter(|e| q.tags.iter().all(|t| e.service.tags.contains(t)))
                    .cloned()
                    .collect();
                let mut instances = data::instances(matching, false, &mut rejections);
                if q.passing_only {
                    instances.retain(|i| i.status == Status::Passing);
                }
                Data::Instances(instances)
            }
            Dependency::CatalogServices { dc } => {
                let catalog = self
                    .services
                    .iter()
                    .filter(|(_, entries)| entries.iter().any(|e| in_dc(e, dc)))
                    .map(|(name, entries)| {
                        let tags = entries
                            .iter()
                            .filter(|e| in_dc(e, dc))
                            .flat_map(|e| e.service.tags.clone());
                        // Consul lists each tag of a service once.
                        let unique: std::collections::BTreeSet<String> = tags.collect();
                        (name.clone(), Some(unique.into_iter().collect()))
                    })
                    .collect();
                Data::Services(data::services(catalog, &mut rejections))
            }
            Dependency::CatalogNodes { dc } => {
                let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
                let listed = self.nodes.iter().cloned();
                let derived = self.services.values().flatten().map(|e| e.node.clone());
                for node in listed.chain(derived) {
                    if dc.as_ref().is_none_or(|dc| &node.datacenter == dc) {
                        nodes.entry(node.node.clone()).or_insert(node);
                    }
                }
                Data::Nodes(data::nodes(nodes.into_values().collect(), &mut rejections))
            }
            Dependency::CatalogNode { name, dc } => {
                let name = name.as_ref().or(self.agent_node.as_ref());
                let raw = name.and_then(|name| self.node_detail(name, dc));
                Data::Node(data::node(raw, &mut rejections))
            }
            Dependency::Datacenters => {
                let mut dcs = self.datacenters.clone();
                if dcs.is_empty() {
                    dcs = self
                        .services
                        .values()
                        .flatten()
                        .map(|e| e.node.datacenter.clone())
                        .collect();
                    dcs.sort();
                    dcs.dedup();
                }
                Data::Datacenters(data::datacenters(dcs, &mut rejections))
            }
            Dependency::Key { path, .. } => Data::Key(data::key_value(self.kv.clone(), path)?),
            Dependency::Keys { prefix, .. } => {
                let prefix = prefix.trim_start_matches('/');
                Data::Keys(
                    self.kv
                        .iter()
                        .filter(|p| p.key.starts_with(prefix))
                        .map(|p| p.key.clone())
                        .collect(),
                )
            }
            Dependency::Tree { prefix, .. } => {
                let under = prefix.trim_start_matches('/');
                let pairs = self
                    .kv
                    .iter()
                    .filter(|p| p.key.starts_with(under))
                    .cloned()
                    .collect();
                Data::Tree(data::tree(pairs, prefix)?)
            }
            // Not part of the catalog: read where the render runs.
            Dependency::File { path } => crate::local_file::read(path),
        };
        Ok((data, rejections.0))
    }

    /// Adds what `dependency` returned, in Consul's shapes, so that
    /// [`CatalogFile::answer`] gives it back.
    pub fn record(&mut self, dependency: &Dependency, data: &Data) {
        match (dependency, data) {
            (Dependency::Health(q), Data::Instances(instances)) => {
                let entries = self.services.entry(q.service.clone()).or_default();
                for instance in instances {
                    if !entries
                        .iter()
                        .any(|e| e.service.id == instance.id && e.node.node == instance.node)
                    {
                        entries.push(health_entry(instance));
                    }
                }
            }
            (Dependency::Key { path, .. }, Data::Key(Some(value))) => {
                self.add_kv(path.trim_start_matches('/'), value);
            }
            (Dependency::Tree { prefix, .. }, Data::Tree(entries)) => {
                let prefix = prefix.trim_start_matches('/').trim_end_matches('/');
                for entry in entries {
                    let key = if prefix.is_empty() {
                        entry.key.clone()
                    } else {
                        format!("{prefix}/{}", entry.key)
                    };
                    self.add_kv(&key, &entry.value);
                }
            }
            (Dependency::Keys { .. }, Data::Keys(keys)) => {
                for key in keys {
                    if !self.kv.iter().any(|p| &p.key == key) {
                        self.kv.push(KvPair {
                            key: key.clone(),
                            ..KvPair::default()
                        });
                    }
                }
            }
            (Dependency::Datacenters, Data::Datacenters(dcs)) => self.datacenters = dcs.clone(),
            (Dependency::CatalogNodes { .. }, Data::Nodes(nodes)) => {
                for node in nodes {
                    if !self.nodes.iter().any(|n| n.node == node.name) {
                        self.nodes.push(node_shape(node));
                    }
                }
            }
            (Dependency::CatalogNode { name, .. }, Data::Node(Some(detail))) => {
                if name.is_none() {
                    self.agent_node = Some(detail.node.name.clone());
                }
                self.node_details
                    .insert(detail.node.name.clone(), catalog_node(detail));
            }
            // The service list is derived from the recorded services, and a
            // missing key is recorded by its absence.
            _ => {}
        }
    }

    /// The node called `name`, as `/v1/catalog/node/:name` would list it:
    /// from `node_details`, or put together from the node lists and the
    /// health entries of the services on it.
    fn node_detail(&self, name: &str, dc: &Option<String>) -> Option<CatalogNode> {
        let in_dc = |node: &Node| dc.as_ref().is_none_or(|dc| &node.datacenter == dc);
        if let Some(detail) = self.node_details.get(name) {
            return in_dc(&detail.node).then(|| detail.clone());
        }
        let entries: Vec<&HealthEntry> = self
            .services
            .values()
            .flatten()
            .filter(|e| e.node.node == name)
            .collect();
        let node = self
            .nodes
            .iter()
            .find(|n| n.node == name)
            .or(entries.first().map(|e| &e.node))
            .filter(|n| in_dc(n))?
            .clone();
        let services = entries
            .into_iter()
            .map(|e| (e.service.id.clone(), e.service.clone()))
            .collect();
        Some(CatalogNode { node, services })
    }

    fn add_kv(&mut self, key: &str, value: &str) {
        self.kv.retain(|p| p.key != key);
        self.kv.push(KvPair {
            key: key.to_owned(),
            value: Some(STANDARD.encode(value)),
            ..KvPair::default()
        });
        self.kv.sort_by(|a, b| a.key.cmp(&b.key));
    }
}

/// A node and its services back in the catalog's shape.
fn catalog_node(detail: &NodeDetail) -> CatalogNode {
    let services = detail
        .services
        .iter()
        .map(|s| {
            let service = Service {
                id: s.id.clone(),
                service: s.service.clone(),
                tags: s.tags.clone(),
                address: s.address.clone(),
                port: i64::from(s.port),
                meta: s.meta.to_wire(),
                enable_tag_override: s.enable_tag_override,
                ..Service::default()
            };
            (s.id.clone(), service)
        })
        .collect();
    CatalogNode {
        node: node_shape(&detail.node),
        services,
    }
}

/// A validated node back in Consul's shape.
fn node_shape(node: &NodeInfo) -> Node {
    Node {
        id: node.id.clone(),
        node: node.name.clone(),
        address: node.address.clone(),
        datacenter: node.datacenter.clone(),
        tagged_addresses: node.tagged_addresses.to_wire(),
        meta: node.meta.to_wire(),
    }
}

/// An instance back in Consul's health-entry shape, with its checks (or,
/// when those no longer add up to its status, one check carrying it).
fn health_entry(instance: &Instance) -> HealthEntry {
    let mut checks: Vec<Check> = instance
        .checks
        .iter()
        .map(|c| Check {
            node: c.node.clone(),
            check_id: c.check_id.clone(),
            name: c.name.clone(),
            status: c.status.clone(),
            service_id: c.service_id.clone(),
            service_name: c.service_name.clone(),
            service_tags: c.service_tags.clone(),
            r#type: c.check_type.clone(),
        })
        .collect();
    if Status::of_checks(&checks) != instance.status {
        let check_id = match instance.status {
            Status::Maintenance => format!("_service_maintenance:{}", instance.id),
            _ => format!("service:{}", instance.id),
        };
        let status = match instance.status {
            Status::Maintenance => Status::Critical,
            other => other,
        };
        checks = vec![Check {
            check_id,
            status: status.as_str().to_owned(),
            service_id: instance.id.clone(),
            ..Check::default()
        }];
    }
    HealthEntry {
        node: Node {
            id: instance.node_id.clone(),
            node: instance.node.clone(),
            address: instance.node_address.clone(),
            datacenter: instance.datacenter.clone(),
            tagged_addresses: instance.node_tagged_addresses.to_wire(),
            meta: instance.node_meta.to_wire(),
        },
        service: Service {
            id: instance.id.clone(),
            service: instance.name.clone(),
            tags: instance.tags.clone(),
            address: instance.address.clone(),
            port: i64::from(instance.port),
            meta: instance.meta.to_wire(),
            tagged_addresses: (!instance.tagged_addresses.is_nil()).then(|| {
                instance
                    .tagged_addresses
                    .iter()
                    .map(|(name, a)| {
                        (
                            name.clone(),
                            ServiceAddress {
                                address: a.address.clone(),
                                port: i64::from(a.port),
                            },
                        )
                    })
                    .collect()
            }),
            weights: Some(instance.weights),
            enable_tag_override: false,
        },
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::HealthQuery;

    const SAMPLE: &str = r#"{
      "services": {
        "web": [
          {"Node": {"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1"},
           "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 8080},
           "Checks": [{"CheckID": "c1", "Status": "passing", "ServiceID": "web-1"}]},
          {"Node": {"Node": "n2", "Address": "10.0.0.2", "Datacenter": "dc1"},
           "Service": {"ID": "web-2", "Service": "web", "Tags": ["v2"], "Address": "10.0.1.2", "Port": 8080},
           "Checks": [{"CheckID": "c2", "Status": "critical", "ServiceID": "web-2"}]},
          {"Node": {"Node": "n3", "Address": "10.0.0.3", "Datacenter": "dc2"},
           "Service": {"ID": "web-3", "Service": "web", "Tags": ["v1"], "Port": 8080}, "Checks": []}
        ]
      },
      "kv": [{"Key": "app/config/a", "Value": "MQ=="}, {"Key": "app/config/", "Value": null}]
    }"#;

    fn sample() -> CatalogFile {
        serde_json::from_str(SAMPLE).unwrap()
    }

    fn ids(data: Data) -> Vec<String> {
        match data {
            Data::Instances(list) => list.into_iter().map(|i| i.id).collect(),
            other => panic!("not instances: {other:?}"),
        }
    }

    #[test]
    fn answers_health_queries_with_consuls_filters() {
        let file = sample();
        let ask = |tags: &[&str], dc: Option<&str>, passing: bool| {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            ids(file
                .answer(&Dependency::Health(HealthQuery::new(
                    "web", &tags, dc, passing,
                )))
                .unwrap()
                .0)
        };
        assert_eq!(ask(&[], None, true), ["web-1", "web-3"]);
        assert_eq!(ask(&[], None, false), ["web-1", "web-2", "web-3"]);
        assert_eq!(ask(&["v1"], Some("dc1"), true), ["web-1"]);
        assert_eq!(ask(&["v2"], None, true), Vec::<String>::new());
        let unknown = Dependency::Health(HealthQuery::new("nope", &[], None, true));
        assert_eq!(ids(file.answer(&unknown).unwrap().0), Vec::<String>::new());
    }

    #[test]
    fn answers_catalog_and_kv_queries() {
        let file = sample();
        let (services, _) = file
            .answer(&Dependency::CatalogServices { dc: None })
            .unwrap();
        assert_eq!(
            services,
            Data::Services(vec![data::ServiceSummary {
                name: "web".into(),
                tags: vec!["v1".into(), "v2".into()]
            }])
        );
        let (dcs, _) = file.answer(&Dependency::Datacenters).unwrap();
        assert_eq!(dcs, Data::Datacenters(vec!["dc1".into(), "dc2".into()]));
        let (key, _) = file
            .answer(&Dependency::Key {
                path: "app/config/a".into(),
                dc: None,
            })
            .unwrap();
        assert_eq!(key, Data::Key(Some("1".into())));
        let (missing, _) = file
            .answer(&Dependency::Key {
                path: "app/none".into(),
                dc: None,
            })
            .unwrap();
        assert_eq!(missing, Data::Key(None));
        let (tree, _) = file
            .answer(&Dependency::Tree {
                prefix: "app/config".into(),
                dc: None,
            })
            .unwrap();
        assert_eq!(
            tree,
            Data::Tree(vec![data::KvEntry {
                key: "a".into(),
                value: "1".into(),
                path: "app/config/a".into(),
                ..data::KvEntry::default()
            }])
        );
    }

    #[test]
    fn answers_node_queries_from_the_services_on_the_node() {
        let mut file = sample();
        let node = |name: Option<&str>, dc: Option<&str>| Dependency::CatalogNode {
            name: name.map(str::to_owned),
            dc: dc.map(str::to_owned),
        };
        let Data::Node(Some(n2)) = file.answer(&node(Some("n2"), None)).unwrap().0 else {
            panic!("n2 is derived from web-2's health entry");
        };
        assert_eq!(n2.node.address, "10.0.0.2");
        assert_eq!(n2.services.len(), 1);
        assert_eq!(n2.services[0].address, "10.0.1.2");
        assert_eq!(
            file.answer(&node(Some("n3"), Some("dc1"))).unwrap().0,
            Data::Node(None),
            "n3 is in dc2"
        );
        assert_eq!(
            file.answer(&node(None, None)).unwrap().0,
            Data::Node(None),
            "no agent node named"
        );
        file.agent_node = Some("n1".into());
        let Data::Node(Some(local)) = file.answer(&node(None, None)).unwrap().0 else {
            panic!("the agent's node is n1");
        };
        assert_eq!(local.services[0].id, "web-1");
    }

    #[test]
    fn recorded_data_is_answered_back_unchanged() {
        let source = sample();
        let mut captured = CatalogFile::default();
        let deps = [
            Dependency::Health(HealthQuery::new("web", &[], None, false)),
            Dependency::Key {
                path: "app/config/a".into(),
                dc: None,
            },
            Dependency::Tree {
                prefix: "app/config".into(),
                dc: None,
            },
            Dependency::CatalogNode {
                name: Some("n2".into()),
                dc: None,
            },
        ];
        for dep in &deps {
            captured.record(dep, &source.answer(dep).unwrap().0);
        }
        let reloaded: CatalogFile =
            serde_json::from_slice(&serde_json::to_vec(&captured).unwrap()).unwrap();
        for dep in &deps {
            assert_eq!(
                reloaded.answer(dep).unwrap().0,
                source.answer(dep).unwrap().0,
                "{dep}"
            );
        }
        let passing = Dependency::Health(HealthQuery::new("web", &[], None, true));
        assert_eq!(
            reloaded.answer(&passing).unwrap().0,
            source.answer(&passing).unwrap().0
        );
    }

    #[test]
    fn unknown_sections_are_rejected_with_their_name() {
        let err = serde_json::from_str::<CatalogFile>(r#"{"service": {}}"#).unwrap_err();
        assert!(err.to_string().contains("service"), "{err}");
    }
}
