//! What a template can ask for: one [`Dependency`] per distinct Consul
//! query, and local files (consul-template's `file`), which are read from
//! disk by [`local_file`](crate::local_file), never over HTTP.
//! A dependency knows its HTTP path and parameters and how to name itself in
//! logs; it knows nothing about how (or whether) it is being watched.

use std::fmt;

/// One distinct Consul query a template depends on. Two template calls that
/// ask the same question share one dependency, hence one watch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// `GET /v1/health/service/:name`: the instances of one service.
    Health(HealthQuery),
    /// `GET /v1/catalog/services`: every service name and its tags.
    CatalogServices { dc: Option<String> },
    /// `GET /v1/catalog/nodes`.
    CatalogNodes { dc: Option<String> },
    /// `GET /v1/catalog/node/:name`: one node and its services; without a
    /// name, the local agent's node (asked of `/v1/agent/self` first).
    CatalogNode {
        name: Option<String>,
        dc: Option<String>,
    },
    /// `GET /v1/catalog/datacenters` (not a blocking endpoint).
    Datacenters,
    /// `GET /v1/kv/:key`: one key's value (absent keys are data too).
    Key { path: String, dc: Option<String> },
    /// `GET /v1/kv/:prefix?keys`: the key names under a prefix.
    Keys { prefix: String, dc: Option<String> },
    /// `GET /v1/kv/:prefix?recurse`: every key and value under a prefix.
    Tree { prefix: String, dc: Option<String> },
    /// A local file's contents (not a Consul query).
    File { path: String },
}

/// The instances of one service, optionally narrowed by tags and datacenter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthQuery {
    pub service: String,
    /// All must match (Consul ANDs repeated `tag` parameters). Kept sorted
    /// and deduplicated so equal questions compare equal.
    pub tags: Vec<String>,
    pub dc: Option<String>,
    /// Ask Consul for passing instances only (`?passing`); otherwise every
    /// instance comes back and status filtering happens in the template layer.
    pub passing_only: bool,
    /// Sort by round-trip time from this node (`?near`; `_agent` is the
    /// local agent's node) instead of by node and id.
    pub near: Option<String>,
}

impl HealthQuery {
    pub fn new(service: &str, tags: &[String], dc: Option<&str>, passing_only: bool) -> Self {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        HealthQuery {
            service: service.to_owned(),
            tags,
            dc: dc.map(str::to_owned),
            passing_only,
            near: None,
        }
    }

    /// The same query, ordered by distance from `node`.
    pub fn near(mut self, node: Option<&str>) -> Self {
        self.near = node.map(str::to_owned);
        self
    }
}

impl Dependency {
    /// Whether Consul supports blocking queries on this endpoint.
    pub fn is_blocking(&self) -> bool {
        !matches!(self, Dependency::Datacenters | Dependency::File { .. })
    }

    /// Whether this is read from Consul (everything but a local file).
    pub fn is_consul(&self) -> bool {
        !matches!(self, Dependency::File { .. })
    }

    /// Whether the endpoint's index moves with every registration anywhere
    /// in the datacenter, though what it lists (service or node names)
    /// rarely changes: most of its wake-ups bring nothing new.
    pub fn wakes_on_any_registration(&self) -> bool {
        matches!(
            self,
            Dependency::CatalogServices { .. } | Dependency::CatalogNodes { .. }
        )
    }

    /// The ACL permission a token needs for Consul to show this read's
    /// results, for reads whose results Consul *hides* from a token that
    /// lacks it (answering 200 with nothing) instead of refusing them. Key
    /// reads are refused outright (403), so they have none.
    pub fn hidden_without(&self) -> Option<String> {
        match self {
            Dependency::Health(q) => Some(format!(
                "service:read on {:?} and node:read on the nodes it runs on",
                q.service
            )),
            Dependency::CatalogServices { .. } => Some("service:read".to_owned()),
            Dependency::CatalogNodes { .. } => Some("node:read".to_owned()),
            Dependency::CatalogNode { name, .. } => Some(match name {
                Some(name) => format!("node:read on {name:?}"),
                None => "node:read on the local agent's node".to_owned(),
            }),
            Dependency::Datacenters
            | Dependency::Key { .. }
            | Dependency::Keys { .. }
            | Dependency::Tree { .. }
            | Dependency::File { .. } => None,
        }
    }

    /// The request path and query string, without index, wait, consistency
    /// or namespace parameters (the transport adds those). A local file has
    /// none: it is never handed to the transport.
    pub fn path_and_query(&self) -> String {
        let mut query = Query::default();
        let path = match self {
            Dependency::Health(q) => {
                if q.passing_only {
                    query.flag("passing");
                }
                for tag in &q.tags {
                    query.pair("tag", tag);
                }
                query.dc(&q.dc);
                if let Some(near) = &q.near {
                    query.pair("near", near);
                }
                format!("/v1/health/service/{}", encode_component(&q.service))
            }
            Dependency::CatalogServices { dc } => {
                query.dc(dc);
                "/v1/catalog/services".to_owned()
            }
            Dependency::CatalogNodes { dc } => {
                query.dc(dc);
                "/v1/catalog/nodes".to_owned()
            }
            Dependency::CatalogNode { name, dc } => {
                query.dc(dc);
                // An unnamed node is resolved before it is read; the path
                // without a name is never sent.
                let name = name.as_deref().unwrap_or_default();
                format!("/v1/catalog/node/{}", encode_component(name))
            }
            Dependency::Datacenters => "/v1/catalog/datacenters".to_owned(),
            Dependency::Key { path, dc } => {
                query.dc(dc);
                format!("/v1/kv/{}", encode_key(path))
            }
            Dependency::Keys { prefix, dc } => {
                query.flag("keys");
                query.dc(dc);
                format!("/v1/kv/{}", encode_key(prefix))
            }
            Dependency::Tree { prefix, dc } => {
                query.flag("recurse");
                query.dc(dc);
                format!("/v1/kv/{}", encode_key(prefix))
            }
            Dependency::File { path } => {
                debug_assert!(false, "file({path}) has no Consul path");
                return String::new();
            }
        };
        query.append_to(path)
    }
}

/// Names in consul-template's style, e.g. `health.service(web|passing)`.
impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |dc: &Option<String>| dc.as_ref().map(|d| format!("@{d}")).unwrap_or_default();
        match self {
            Dependency::Health(q) => {
                write!(f, "health.service(")?;
                for tag in &q.tags {
                    write!(f, "{tag}.")?;
                }
                let filter = if q.passing_only { "passing" } else { "any" };
                let near = q.near.as_ref().map(|n| format!("~{n}")).unwrap_or_default();
                write!(f, "{}{}{near}|{filter})", q.service, at(&q.dc))
            }
            Dependency::CatalogServices { dc } => write!(f, "catalog.services{}", at(dc)),
            Dependency::CatalogNodes { dc } => write!(f, "catalog.nodes{}", at(dc)),
            Dependency::CatalogNode { name: None, dc } => write!(f, "catalog.node{}", at(dc)),
            Dependency::CatalogNode {
                name: Some(name),
                dc,
            } => {
                write!(f, "catalog.node({name}{})", at(dc))
            }
            Dependency::Datacenters => write!(f, "catalog.datacenters"),
            Dependency::Key { path, dc } => write!(f, "kv.key({path}{})", at(dc)),
            Dependency::Keys { prefix, dc } => write!(f, "kv.keys({prefix}{})", at(dc)),
            Dependency::Tree { prefix, dc } => write!(f, "kv.tree({prefix}{})", at(dc)),
            Dependency::File { path } => write!(f, "file({path})"),
        }
    }
}

/// A query string under construction.
#[derive(Default)]
struct Query(Vec<String>);

impl Query {
    fn flag(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }

    fn pair(&mut self, name: &str, value: &str) {
        self.0.push(format!("{name}={}", encode_component(value)));
    }

    fn dc(&mut self, dc: &Option<String>) {
        if let Some(dc) = dc {
            self.pair("dc", dc);
        }
    }

    fn append_to(self, path: String) -> String {
        if self.0.is_empty() {
            path
        } else {
            format!("{path}?{}", self.0.join("&"))
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// hostile service name can never add a path segment or a parameter.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// KV keys are paths: their slashes stay, everything else is encoded.
fn encode_key(key: &str) -> String {
    let key = key.trim_start_matches('/');
    key.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(service: &str, tags: &[&str], dc: Option<&str>, passing: bool) -> Dependency {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        Dependency::Health(HealthQuery::new(service, &tags, dc, passing))
    }

    #[test]
    fn builds_paths_consul_understands() {
        let cases = [
            (
                health("web", &[], None, true),
                "/v1/health/service/web?passing",
            ),
            (health("web", &[], None, false), "/v1/health/service/web"),
            (
                health("web", &["b", "a", "a"], Some("east"), true),
                "/v1/health/service/web?passing&tag=a&tag=b&dc=east",
            ),
            (
                Dependency::CatalogServices { dc: None },
                "/v1/catalog/services",
            ),
            (
                Dependency::CatalogNodes {
                    dc: Some("west".into()),
                },
                "/v1/catalog/nodes?dc=west",
            ),
            (Dependency::Datacenters, "/v1/catalog/datacenters"),
            (
                Dependency::CatalogNode {
                    name: Some("n 1".into()),
                    dc: Some("east".into()),
                },
                "/v1/catalog/node/n%201?dc=east",
            ),
            (
                Dependency::Key {
                    path: "/app/config".into(),
                    dc: None,
                },
                "/v1/kv/app/config",
            ),
            (
                Dependency::Keys {
                    prefix: "app/".into(),
                    dc: None,
                },
                "/v1/kv/app/?keys",
            ),
            (
                Dependency::Tree {
                    prefix: "app".into(),
                    dc: None,
                },
                "/v1/kv/app?recurse",
            ),
        ];
        for (dep, want) in cases {
            assert_eq!(dep.path_and_query(), want, "{dep}");
        }
    }

    #[test]
    fn hostile_names_cannot_add_segments_or_parameters() {
        let dep = health("web/../x?passing=0&dc=evil#", &["a&b=c"], None, true);
        assert_eq!(
            dep.path_and_query(),
            "/v1/health/service/web%2F..%2Fx%3Fpassing%3D0%26dc%3Devil%23?passing&tag=a%26b%3Dc"
        );
        let key = Dependency::Key {
            path: "a b/c?d".into(),
            dc: None,
        };
        assert_eq!(key.path_and_query(), "/v1/kv/a%20b/c%3Fd");
    }

    #[test]
    fn equal_questions_are_one_dependency() {
        assert_eq!(
            health("web", &["x", "y"], None, true),
            health("web", &["y", "x", "y"], None, true)
        );
        assert_ne!(
            health("web", &[], None, true),
            health("web", &[], None, false)
        );
    }

    #[test]
    fn names_read_like_consul_templates() {
        assert_eq!(
            health("web", &["v1"], Some("dc2"), true).to_string(),
            "health.service(v1.web@dc2|passing)"
        );
        assert_eq!(
            Dependency::Key {
                path: "a/b".into(),
                dc: None
            }
            .to_string(),
            "kv.key(a/b)"
        );
    }
}
