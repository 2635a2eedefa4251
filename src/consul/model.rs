//! Consul's JSON as it arrives: serde shapes for the endpoints we read, and
//! nothing more. Every field is optional or defaulted and unknown fields are
//! ignored, because agents of different versions (and hostile registrants)
//! send all sorts. Turning these into data templates may see is `data`'s job.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// One entry of `GET /v1/health/service/:name`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthEntry {
    #[serde(deserialize_with = "null_as_default")]
    pub node: Node,
    #[serde(deserialize_with = "null_as_default")]
    pub service: Service,
    #[serde(deserialize_with = "null_as_default")]
    pub checks: Vec<Check>,
}

/// A node, as nested in health entries and listed by `/v1/catalog/nodes`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    /// `None` when Consul sent `null` or nothing (Go's nil map).
    pub tagged_addresses: Option<BTreeMap<String, String>>,
    pub meta: Option<BTreeMap<String, String>>,
}

/// A service instance as nested in a health entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    pub address: String,
    /// Kept wide so an out-of-range port is rejected by validation with a
    /// clear message rather than failing the whole response's decoding.
    pub port: i64,
    /// `None` when Consul sent `null` (an instance registered without
    /// meta) or nothing: Go's nil map, which consul-template shows apart
    /// from an empty one.
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tagged_addresses: Option<BTreeMap<String, ServiceAddress>>,
    pub weights: Option<Weights>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_tag_override: bool,
}

/// `GET /v1/catalog/node/:name`: a node and its services by id (`null`
/// when there is no such node).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogNode {
    #[serde(deserialize_with = "null_as_default")]
    pub node: Node,
    #[serde(deserialize_with = "null_as_default")]
    pub services: BTreeMap<String, Service>,
}

/// One of a service's tagged addresses (`lan_ipv4`, `wan`, …). Some of
/// Consul's own samples spell the keys in lowercase.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceAddress {
    #[serde(alias = "address")]
    pub address: String,
    #[serde(alias = "port")]
    pub port: i64,
}

/// DNS SRV weights Consul keeps per instance.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

/// One health check in a health entry. Its free text (`Notes`, `Output`)
/// is not read: nothing a template renders should come from it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Check {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub status: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r#type: String,
}

/// One entry of `GET /v1/health/state/any`: a check, with the service it
/// belongs to (empty for node checks) and the index it last changed at.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct StateCheck {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub service_name: String,
    pub status: String,
    pub modify_index: u64,
}

/// One entry of `GET /v1/kv/:prefix?recurse` (and of a single-key read).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct KvPair {
    pub key: String,
    /// Base64, or null for a key created without a value.
    pub value: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub create_index: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub modify_index: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub lock_index: u64,
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub session: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Treats JSON `null` like a missing field: Consul sends `"Tags": null`
/// for instances registered without them. Maps keep `null` as `None`
/// instead, because Go templates print a nil map apart from an empty one.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_health_entry_as_consul_1_16_sends_it() {
        let body = r#"[{"Node":{"ID":"a1","Node":"n1","Address":"10.0.0.1","Datacenter":"dc1",
            "TaggedAddresses":{"lan":"10.0.0.1"},"Meta":{"rack":"r1"},"CreateIndex":5,"ModifyIndex":5},
            "Service":{"ID":"web-1","Service":"web","Tags":null,"Address":"","Port":8080,"Meta":null,
            "Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"Proxy":{"Expose":{}},"Connect":{}},
            "Checks":[{"Node":"n1","CheckID":"serfHealth","Status":"passing","ServiceID":""},
                      {"Node":"n1","CheckID":"service:web-1","Status":"warning","ServiceID":"web-1"}]}]"#;
        let entries: Vec<HealthEntry> = serde_json::from_str(body).unwrap();
        let e = &entries[0];
        assert_eq!(e.node.node, "n1");
        assert_eq!(e.node.meta.as_ref().unwrap()["rack"], "r1");
        assert_eq!(e.service.tags, Vec::<String>::new());
        assert_eq!(e.service.meta, None);
        assert_eq!(e.service.port, 8080);
        assert_eq!(
            e.service.weights,
            Some(Weights {
                passing: 1,
                warning: 1
            })
        );
        assert_eq!(e.checks.len(), 2);
        assert_eq!(e.checks[1].status, "warning");
    }

    #[test]
    fn missing_and_null_fields_decode_to_defaults() {
        let entries: Vec<HealthEntry> =
            serde_json::from_str(r#"[{"Node":null,"Service":{"Service":"x"},"Checks":null}, {}]"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].service.service, "x");
        assert!(entries[0].checks.is_empty());
    }
}
