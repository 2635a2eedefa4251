//! The data a render reads: the latest [`Data`] of every dependency, each
//! converted to a template value once, when it arrives, so that a render of
//! thousands of instances only clones reference-counted values.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tera::Value;

use crate::consul::data::{Instance, KvEntry, NodeInfo, ServiceSummary};
use crate::consul::{Data, Dependency};

/// Dependency → its latest data. Cheap to clone (entries are shared).
#[derive(Clone, Default)]
pub struct Snapshot {
    entries: HashMap<Dependency, Arc<Entry>>,
}

struct Entry {
    data: Data,
    value: Value,
}

impl Snapshot {
    /// Stores new data for `dependency`; returns whether it differs from
    /// what was there.
    pub fn insert(&mut self, dependency: Dependency, data: Data) -> bool {
        if self
            .entries
            .get(&dependency)
            .is_some_and(|e| e.data == data)
        {
            return false;
        }
        let value = to_value(&data);
        self.entries
            .insert(dependency, Arc::new(Entry { data, value }));
        true
    }

    pub fn data(&self, dependency: &Dependency) -> Option<&Data> {
        self.entries.get(dependency).map(|e| &e.data)
    }

    pub(super) fn value(&self, dependency: &Dependency) -> Option<&Value> {
        self.entries.get(dependency).map(|e| &e.value)
    }

    /// Forgets dependencies no template uses any more.
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
    meta: &'a std::collections::BTreeMap<String, String>,
    node: &'a str,
    node_address: &'a str,
    node_meta: &'a std::collections::BTreeMap<String, String>,
    datacenter: &'a str,
    status: &'static str,
    weights: Weights,
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
            node_address: &i.node_address,
            node_meta: &i.node_meta,
            datacenter: &i.datacenter,
            status: i.status.as_str(),
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
    meta: &'a std::collections::BTreeMap<String, String>,
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
        Data::Nodes(list) => Value::from_serializable(
            &list
                .iter()
                .map(
                    |NodeInfo {
                         name,
                         address,
                         datacenter,
                         meta,
                     }| NodeView {
                        name,
                        address,
                        datacenter,
                        meta,
                    },
                )
                .collect::<Vec<_>>(),
        ),
        Data::Datacenters(list) | Data::Keys(list) => Value::from_serializable(list),
        Data::Key(value) => value.as_deref().map_or_else(Value::none, Value::from),
        Data::Tree(list) => Value::from_serializable(
            &list
                .iter()
                .map(|KvEntry { key, value }| KvView { key, value })
                .collect::<Vec<_>>(),
        ),
    }
}
