//! Consul data as Tera values: the field names Tera templates use
//! (`address`, `node_meta`, …), and a cache that converts each version of
//! a dependency's data once, however many renders read it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use tera::Value;

use crate::consul::data::{Instance, KvEntry, NodeDetail, NodeInfo, ServiceSummary};
use crate::consul::{Data, Dependency};

/// Converted values by dependency, each with the data it was converted
/// from: an entry is reused while the snapshot still holds that same data.
#[derive(Default)]
pub struct Values {
    entries: HashMap<Dependency, (Arc<Data>, Value)>,
}

impl Values {
    /// The Tera value of `data`, the snapshot's entry for `dependency`.
    pub fn get(&mut self, dependency: &Dependency, data: &Arc<Data>) -> Value {
        if let Some((from, value)) = self.entries.get(dependency)
            && Arc::ptr_eq(from, data)
        {
            return value.clone();
        }
        let value = to_value(data);
        self.entries
            .insert(dependency.clone(), (data.clone(), value.clone()));
        value
    }

    /// Drops conversions of dependencies the last render did not read.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dependency) -> bool) {
        self.entries.retain(|dependency, _| keep(dependency));
    }
}

/// What templates see of an instance (see README "Instance fields").
#[derive(Serialize)]
struct InstanceView<'a> {
    id: &'a str,
    name: &'a str,
    address: &'a str,
    port: u16,
    /// `address:port`, IPv6 in brackets: what nginx's `server` wants.
    endpoint: String,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    node: &'a str,
    node_id: &'a str,
    node_address: &'a str,
    node_meta: &'a BTreeMap<String, String>,
    node_tagged_addresses: &'a BTreeMap<String, String>,
    datacenter: &'a str,
    tagged_addresses: BTreeMap<&'a str, TaggedAddressView<'a>>,
    status: &'static str,
    checks: Vec<CheckView<'a>>,
    weights: Weights,
}

#[derive(Serialize)]
struct TaggedAddressView<'a> {
    address: &'a str,
    port: u16,
}

#[derive(Serialize)]
struct CheckView<'a> {
    node: &'a str,
    check_id: &'a str,
    name: &'a str,
    status: &'a str,
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    r#type: &'a str,
}

#[derive(Serialize)]
struct Weights {
    passing: u32,
    warning: u32,
}

impl<'a> From<&'a Instance> for InstanceView<'a> {
    fn from(i: &'a Instance) -> Self {
        InstanceView {
            id: &i.id,
            name: &i.name,
            address: &i.address,
            port: i.port,
            endpoint: i.endpoint(),
            tags: &i.tags,
            meta: &i.meta,
            node: &i.node,
            node_id: &i.node_id,
            node_address: &i.node_address,
            node_meta: &i.node_meta,
            node_tagged_addresses: &i.node_tagged_addresses,
            datacenter: &i.datacenter,
            tagged_addresses: i
                .tagged_addresses
                .iter()
                .map(|(name, a)| {
                    (
                        name.as_str(),
                        TaggedAddressView {
                            address: &a.address,
                            port: a.port,
                        },
                    )
                })
                .collect(),
            status: i.status.as_str(),
            checks: i
                .checks
                .iter()
                .map(|c| CheckView {
                    node: &c.node,
                    check_id: &c.check_id,
                    name: &c.name,
                    status: &c.status,
                    service_id: &c.service_id,
                    service_name: &c.service_name,
                    service_tags: &c.service_tags,
                    r#type: &c.check_type,
                })
                .collect(),
            weights: Weights {
                passing: i.weights.passing,
                warning: i.weights.warning,
            },
        }
    }
}

#[derive(Serialize)]
struct ServiceView<'a> {
    name: &'a str,
    tags: &'a [String],
}

#[derive(Serialize)]
struct NodeView<'a> {
    name: &'a str,
    address: &'a str,
    datacenter: &'a str,
    meta: &'a BTreeMap<String, String>,
}

/// What `node()` gives: the node, its tagged addresses and its services.
#[derive(Serialize)]
struct NodeDetailView<'a> {
    #[serde(flatten)]
    node: NodeView<'a>,
    id: &'a str,
    tagged_addresses: &'a BTreeMap<String, String>,
    services: Vec<NodeServiceView<'a>>,
}

#[derive(Serialize)]
struct NodeServiceView<'a> {
    id: &'a str,
    name: &'a str,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    port: u16,
    address: &'a str,
}

/// What `node()` reads as until its data arrives: a node with no name and
/// no services, so the first render does not fail on its fields.
pub fn empty_node() -> Value {
    Value::from_serializable(&NodeDetailView::from(&NodeDetail::default()))
}

impl<'a> From<&'a NodeInfo> for NodeView<'a> {
    fn from(node: &'a NodeInfo) -> Self {
        NodeView {
            name: &node.name,
            address: &node.address,
            datacenter: &node.datacenter,
            meta: &node.meta,
        }
    }
}

impl<'a> From<&'a NodeDetail> for NodeDetailView<'a> {
    fn from(detail: &'a NodeDetail) -> Self {
        NodeDetailView {
            node: NodeView::from(&detail.node),
            id: &detail.node.id,
            tagged_addresses: &detail.node.tagged_addresses,
            services: detail
                .services
                .iter()
                .map(|s| NodeServiceView {
                    id: &s.id,
                    name: &s.service,
                    tags: &s.tags,
                    meta: &s.meta,
                    port: s.port,
                    address: &s.address,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct KvView<'a> {
    key: &'a str,
    value: &'a str,
}

fn to_value(data: &Data) -> Value {
    match data {
        Data::Instances(list) => {
            Value::from_serializable(&list.iter().map(InstanceView::from).collect::<Vec<_>>())
        }
        Data::Services(list) => Value::from_serializable(
            &list
                .iter()
                .map(|ServiceSummary { name, tags }| ServiceView { name, tags })
                .collect::<Vec<_>>(),
        ),
        Data::Nodes(list) => {
            Value::from_serializable(&list.iter().map(NodeView::from).collect::<Vec<_>>())
        }
        Data::Node(detail) => detail.as_ref().map_or_else(Value::none, |detail| {
            Value::from_serializable(&NodeDetailView::from(&**detail))
        }),
        Data::Datacenters(list) | Data::Keys(list) => Value::from_serializable(list),
        Data::Key(value) | Data::File(value) => {
            value.as_deref().map_or_else(Value::none, Value::from)
        }
        Data::Tree(list) => Value::from_serializable(
            &list
                .iter()
                .map(|KvEntry { key, value, .. }| KvView { key, value })
                .collect::<Vec<_>>(),
        ),
    }
}
