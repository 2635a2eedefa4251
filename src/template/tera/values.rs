//! Consul data as Tera values: the field names Tera templates use
//! (`address`, `node_meta`, …), and a cache that converts each version of
//! a dependency's data once, however many renders read it.
//!
//! Tera values are maps of maps, several times the size of the data they
//! come from, and the cache keeps them for as long as the data is current.
//! So what instances have in common (their node's meta, addresses and
//! checks, a service's tags, default weights) is converted once per render
//! and shared: a Tera map or list is reference-counted, a copy is a count.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use serde::Serialize;
use tera::value::Key;
use tera::{Map, Value};

use crate::consul::data::{
    CheckInfo, Instance, KvEntry, NodeDetail, NodeInfo, ServiceSummary, SmallMap,
};
use crate::consul::model;
use crate::consul::{Data, Dependency};

/// Converted values by dependency, each with the data it was converted
/// from: an entry is reused while the snapshot still holds that same data.
#[derive(Default)]
pub struct Values {
    entries: HashMap<Dependency, (Arc<Data>, Value)>,
    /// Parts converted during the current render, by content.
    shared: Shared,
}

impl Values {
    /// The Tera value of `data`, the snapshot's entry for `dependency`.
    pub fn get(&mut self, dependency: &Dependency, data: &Arc<Data>) -> Value {
        if let Some((from, value)) = self.entries.get(dependency)
            && Arc::ptr_eq(from, data)
        {
            return value.clone();
        }
        let value = to_value(data, &mut self.shared);
        self.entries
            .insert(dependency.clone(), (data.clone(), value.clone()));
        value
    }

    /// Drops conversions of dependencies the last render did not read, and
    /// the render's index of shared parts (the values keep the parts).
    pub fn retain(&mut self, mut keep: impl FnMut(&Dependency) -> bool) {
        self.entries.retain(|dependency, _| keep(dependency));
        self.shared = Shared::default();
    }
}

/// Parts of instances already converted in this render, by content. It
/// holds a copy of each distinct part only until the render ends; a part
/// that changes later is converted anew for the instances that have it.
#[derive(Default)]
struct Shared {
    maps: HashMap<SmallMap<String>, Value>,
    lists: HashMap<Vec<String>, Value>,
    node_checks: HashMap<CheckInfo, Value>,
    weights: HashMap<(u32, u32), Value>,
}

impl Shared {
    fn map(&mut self, map: &SmallMap<String>) -> Value {
        shared(&mut self.maps, map, Value::from_serializable)
    }

    fn list(&mut self, list: &[String]) -> Value {
        shared(&mut self.lists, list, Value::from_serializable)
    }

    /// A node check (no service id) is the same on every instance of the
    /// node; a service check belongs to one instance and is not indexed.
    fn check(&mut self, check: &CheckInfo) -> Value {
        let convert = |c: &CheckInfo| Value::from_serializable(&CheckView::from(c));
        if check.service_id.is_empty() {
            shared(&mut self.node_checks, check, convert)
        } else {
            convert(check)
        }
    }

    fn weights(&mut self, weights: model::Weights) -> Value {
        shared(
            &mut self.weights,
            &(weights.passing, weights.warning),
            |&(passing, warning)| Value::from_serializable(&Weights { passing, warning }),
        )
    }

    /// What templates see of an instance (see README "Instance fields"),
    /// fields in this order.
    fn instance(&mut self, i: &Instance) -> Value {
        let tagged_addresses: BTreeMap<&str, TaggedAddressView> = i
            .tagged_addresses
            .iter()
            .map(|(name, a)| {
                let view = TaggedAddressView {
                    address: &a.address,
                    port: a.port,
                };
                (name.as_str(), view)
            })
            .collect();
        let fields = [
            ("id", Value::from(i.id.as_str())),
            ("name", Value::from(i.name.as_str())),
            ("address", Value::from(i.address.as_str())),
            ("port", Value::from(i.port)),
            // `address:port`, IPv6 in brackets: what nginx's `server` wants.
            ("endpoint", Value::from(i.endpoint())),
            ("tags", self.list(&i.tags)),
            ("meta", self.map(&i.meta)),
            ("node", Value::from(i.node.as_str())),
            ("node_id", Value::from(i.node_id.as_str())),
            ("node_address", Value::from(i.node_address.as_str())),
            ("node_meta", self.map(&i.node_meta)),
            ("node_tagged_addresses", self.map(&i.node_tagged_addresses)),
            ("datacenter", Value::from(i.datacenter.as_str())),
            (
                "tagged_addresses",
                Value::from_serializable(&tagged_addresses),
            ),
            ("status", Value::from(i.status.as_str())),
            (
                "checks",
                Value::from(i.checks.iter().map(|c| self.check(c)).collect::<Vec<_>>()),
            ),
            ("weights", self.weights(i.weights)),
        ];
        let mut map = Map::with_capacity(fields.len());
        for (name, value) in fields {
            map.insert(Key::Str(name), value);
        }
        Value::from(map)
    }
}

/// The value `index` holds for `part`, converted by `convert` and added
/// if this is the first time the render meets it.
fn shared<P>(
    index: &mut HashMap<P::Owned, Value>,
    part: &P,
    convert: impl FnOnce(&P) -> Value,
) -> Value
where
    P: ToOwned + Hash + Eq + ?Sized,
    P::Owned: Hash + Eq + Borrow<P>,
{
    if let Some(value) = index.get(part) {
        return value.clone();
    }
    let value = convert(part);
    index.insert(part.to_owned(), value.clone());
    value
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

impl<'a> From<&'a CheckInfo> for CheckView<'a> {
    fn from(c: &'a CheckInfo) -> Self {
        CheckView {
            node: &c.node,
            check_id: &c.check_id,
            name: &c.name,
            status: &c.status,
            service_id: &c.service_id,
            service_name: &c.service_name,
            service_tags: &c.service_tags,
            r#type: &c.check_type,
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
    meta: &'a SmallMap<String>,
}

/// What `node()` gives: the node, its tagged addresses and its services.
#[derive(Serialize)]
struct NodeDetailView<'a> {
    #[serde(flatten)]
    node: NodeView<'a>,
    id: &'a str,
    tagged_addresses: &'a SmallMap<String>,
    services: Vec<NodeServiceView<'a>>,
}

#[derive(Serialize)]
struct NodeServiceView<'a> {
    id: &'a str,
    name: &'a str,
    tags: &'a [String],
    meta: &'a SmallMap<String>,
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

fn to_value(data: &Data, shared: &mut Shared) -> Value {
    match data {
        Data::Instances(list) => {
            Value::from(list.iter().map(|i| shared.instance(i)).collect::<Vec<_>>())
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
