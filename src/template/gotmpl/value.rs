//! The values a Go-dialect render works with, shaped like the Go values
//! consul-template hands to text/template: strings, the integer kinds,
//! `float64`, slices, maps (`map[string]interface{}`, whose missing keys
//! read as `<no value>`, and typed maps such as `map[string]string` or
//! `byKey`'s `map[string]*dependency.KeyPair`, whose missing keys read as
//! their element's zero value), typed nil pointers, and the structs of
//! consul-template's `dependency` package, read straight out of the
//! snapshot without copying.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use crate::consul::data::{
    CheckInfo, Instance, KvEntry, NodeDetail, NodeInfo, NodeService, ServiceSummary, SmallMap,
    TaggedAddress,
};
use crate::consul::model::Weights;

/// A string borrowed from the snapshot or made during the render.
#[derive(Clone)]
pub enum Str<'a> {
    Borrowed(&'a str),
    Shared(Rc<str>),
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Shared(s) => s,
        }
    }
}

/// Go's names of the slice types consul-template's functions return.
pub const INSTANCES: &str = "[]*dependency.HealthService";
pub const SERVICES: &str = "[]*dependency.CatalogSnippet";
pub const NODES: &str = "[]*dependency.Node";
pub const NODE_SERVICES: &str = "[]*dependency.CatalogNodeService";
pub const KEY_PAIRS: &str = "[]*dependency.KeyPair";
pub const CHECKS: &str = "api.HealthChecks";
pub const STRINGS: &str = "[]string";
pub const INTERFACES: &str = "[]interface {}";
/// consul-template's `type ServiceTags []string`.
pub const SERVICE_TAGS: &str = "dependency.ServiceTags";
pub const INTS: &str = "[]int";

/// One Go value. Cheap to clone: compound values are shared.
#[derive(Clone)]
#[expect(
    clippy::enum_variant_names,
    reason = "NoValue is Go's own name for what it prints"
)]
pub enum Value<'a> {
    /// Go's invalid `reflect.Value`: what a missing `interface{}` map key or
    /// the render's data (`.`) is. Prints `<no value>`.
    NoValue,
    /// A nil pointer, slice, map or interface. Prints `<nil>`.
    Nil,
    /// A nil pointer of a named type (`*dependency.KeyPair`, a missing
    /// `byKey` entry): prints `<nil>` but keeps its type for `%T`, `%#v`
    /// and the error reading one of its fields gives.
    NilPtr(&'static str),
    Bool(bool),
    /// Every signed integer kind (`int`, `int64`, runes).
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Str<'a>),
    /// `[]interface{}` and the typed slices functions return.
    List(Rc<List<'a>>),
    /// A slice of strings read from the snapshot, with its Go type
    /// (`dependency.ServiceTags` for tags, `[]string` otherwise).
    Strings(&'static str, &'a [String]),
    /// A `map[string]string` read from the snapshot (meta).
    StrMap(&'a SmallMap<String>),
    /// A map made during the render; keys are kept sorted as Go prints them.
    Map(Rc<Map<'a>>),
    /// A struct of consul-template's `dependency` package.
    Obj(Obj<'a>),
    /// The channel `loop` returns: ranged over, it yields its integers.
    Chan(Rc<Vec<Value<'a>>>),
    /// The render's `scratch` store.
    Scratch(Rc<RefCell<Scratch<'a>>>),
}

/// A slice made during the render, with its Go type: `%T`, `%#v` and
/// what a function taking `[]string` accepts depend on it, not on the
/// elements (`split` gives `[]string{}` even when empty, `sprig_list "a"`
/// is `[]interface {}`).
pub struct List<'a> {
    /// Go's name for the slice type, e.g. `[]*dependency.HealthService`.
    pub type_name: &'static str,
    /// A nil slice (a typed map's missing key): `%#v` says `(nil)` and
    /// `toJSON` says `null`; otherwise it is an empty slice.
    pub nil: bool,
    pub items: Vec<Value<'a>>,
}

impl<'a> Deref for List<'a> {
    type Target = [Value<'a>];
    fn deref(&self) -> &[Value<'a>] {
        &self.items
    }
}

/// A map made during the render.
pub struct Map<'a> {
    /// Its value type: `interface{}` (missing keys are `<no value>`) or a
    /// concrete one (missing keys are that type's zero value).
    pub elem: Elem,
    /// A nil map (a missing `byKey` group): `%#v` says `(nil)` and
    /// `toJSON` says `null`; otherwise it reads as an empty map.
    pub nil: bool,
    /// Shared, as a Go map is: sprig's `set` and `unset` change it where
    /// every holder sees it.
    pub entries: RefCell<BTreeMap<String, Value<'a>>>,
}

/// The value type of a map, as Go's map types name it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `map[string]interface {}`, as `parseJSON` and `explode` make.
    Any,
    /// `map[string]string`: meta, tagged node addresses.
    Str,
    /// `map[string]api.ServiceAddress`: an instance's tagged addresses.
    Address,
    /// `map[string][]*dependency.HealthService`: `byMeta` groups.
    Instances,
    /// `map[string][]interface {}`: `byTag` groups.
    AnyList,
    /// `map[string]map[string]*dependency.KeyPair`: `byKey` groups.
    Map,
    /// `map[string]*dependency.KeyPair`: one `byKey` group.
    KeyPairs,
    /// `map[int][]interface {}`: `byPort` groups. The keys are ports,
    /// stored as their decimal text and read back as integers, in
    /// numeric order.
    PortGroups,
}

/// A missing tagged address: Go's zero `api.ServiceAddress`.
static ZERO_ADDRESS: TaggedAddress = TaggedAddress {
    address: String::new(),
    port: 0,
};

/// consul-template's `Scratch`: a key → value store plus named maps.
#[derive(Default)]
pub struct Scratch<'a> {
    pub values: BTreeMap<String, Value<'a>>,
}

/// A struct from consul-template's `dependency` (or Consul's `api`) package.
#[derive(Clone)]
pub enum Obj<'a> {
    /// `*dependency.HealthService`.
    Instance(&'a Instance),
    /// `*api.HealthCheck`.
    Check(&'a CheckInfo),
    /// `api.AgentWeights`.
    Weights(&'a Weights),
    /// `api.ServiceAddress`.
    Address(&'a TaggedAddress),
    /// `*dependency.CatalogSnippet`.
    Service(&'a ServiceSummary),
    /// `*dependency.Node`.
    Node(&'a NodeInfo),
    /// `*dependency.CatalogNode`: `None` is the empty one consul-template
    /// returns for a node the catalog does not have (nil `Node`, no
    /// `Services`).
    NodeDetail(Option<&'a NodeDetail>),
    /// `*dependency.CatalogNodeService`.
    NodeService(&'a NodeService),
    /// `*dependency.KeyPair`; `key` is the name the listing gives it.
    KeyPair { entry: &'a KvEntry, key: &'a str },
}

impl<'a> Value<'a> {
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Str::Borrowed(s))
    }

    pub fn string(s: impl Into<Rc<str>>) -> Value<'a> {
        Value::Str(Str::Shared(s.into()))
    }

    /// A `[]interface{}`.
    pub fn list(items: Vec<Value<'a>>) -> Value<'a> {
        Value::typed_list(INTERFACES, items)
    }

    /// A slice of the Go type `type_name`.
    pub fn typed_list(type_name: &'static str, items: Vec<Value<'a>>) -> Value<'a> {
        Value::List(Rc::new(List {
            type_name,
            nil: false,
            items,
        }))
    }

    /// A nil slice of the Go type `type_name`.
    pub fn nil_list(type_name: &'static str) -> Value<'a> {
        Value::List(Rc::new(List {
            type_name,
            nil: true,
            items: Vec::new(),
        }))
    }

    pub fn map(elem: Elem, entries: BTreeMap<String, Value<'a>>) -> Value<'a> {
        Value::Map(Rc::new(Map {
            elem,
            nil: false,
            entries: RefCell::new(entries),
        }))
    }

    /// A nil map of value type `elem`.
    pub fn nil_map(elem: Elem) -> Value<'a> {
        Value::Map(Rc::new(Map {
            elem,
            nil: true,
            entries: RefCell::default(),
        }))
    }

    /// reflect's `IsNil` where it applies (text/template's `isNil`): no
    /// value, nil, and nil pointers, slices and maps.
    pub fn is_nil(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil | Value::NilPtr(_) => true,
            Value::List(list) => list.nil,
            Value::Map(map) => map.nil,
            Value::StrMap(map) => map.is_nil(),
            _ => false,
        }
    }

    /// Go's truth: false, 0, nil, an empty string, slice or map are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil | Value::NilPtr(_) => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Strings(_, l) => !l.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::Map(m) => !m.entries.borrow().is_empty(),
            Value::Obj(_) | Value::Chan(_) | Value::Scratch(_) => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of a slice, or `None` for anything else.
    pub fn elements(&self) -> Option<Vec<Value<'a>>> {
        match self {
            Value::List(l) => Some(l.to_vec()),
            Value::Strings(_, l) => Some(l.iter().map(|s| Value::str(s)).collect()),
            _ => None,
        }
    }

    /// The entries of a map in key order, or `None` for anything else.
    pub fn entries(&self) -> Option<Vec<(Value<'a>, Value<'a>)>> {
        match self {
            Value::StrMap(m) => Some(
                m.iter()
                    .map(|(k, v)| (Value::str(k), Value::str(v)))
                    .collect(),
            ),
            Value::Map(m) if m.elem == Elem::PortGroups => {
                let mut entries: Vec<(i64, Value<'a>)> = m
                    .entries
                    .borrow()
                    .iter()
                    .map(|(k, v)| (k.parse().unwrap_or_default(), v.clone()))
                    .collect();
                entries.sort_by_key(|(k, _)| *k);
                Some(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::Int(k), v))
                        .collect(),
                )
            }
            Value::Map(m) => Some(
                m.entries
                    .borrow()
                    .iter()
                    .map(|(k, v)| (Value::string(k.as_str()), v.clone()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// `len`: bytes of a string, elements of a slice, map or channel.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::List(l) => Some(l.len()),
            Value::Chan(l) => Some(l.len()),
            Value::Strings(_, l) => Some(l.len()),
            Value::StrMap(m) => Some(m.len()),
            Value::Map(m) => Some(m.entries.borrow().len()),
            _ => None,
        }
    }

    /// The value under `key` in a map: `Some(None)` when the map lacks it
    /// (the caller decides between the zero value and `<no value>`).
    pub fn map_get(&self, key: &str) -> Option<Option<Value<'a>>> {
        match self {
            Value::StrMap(m) => Some(m.get(key).map(|v| Value::str(v))),
            Value::Map(m) => Some(m.entries.borrow().get(key).cloned()),
            _ => None,
        }
    }

    /// What a missing key of this map reads as under `missingkey=zero`.
    pub fn map_zero(&self) -> Value<'a> {
        match self {
            Value::Map(m) => match m.elem {
                Elem::Any => Value::NoValue,
                Elem::Str => Value::str(""),
                Elem::Address => Value::Obj(Obj::Address(&ZERO_ADDRESS)),
                Elem::Instances => Value::nil_list(INSTANCES),
                Elem::AnyList | Elem::PortGroups => Value::nil_list(INTERFACES),
                Elem::Map => Value::nil_map(Elem::KeyPairs),
                Elem::KeyPairs => Value::NilPtr("*dependency.KeyPair"),
            },
            _ => Value::str(""),
        }
    }

    /// The Go type's name, as Go's error messages and `%T` print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::NoValue => "<no value>",
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(l) => l.type_name,
            Value::Strings(type_name, _) => type_name,
            Value::StrMap(_) => "map[string]string",
            Value::Map(m) => match m.elem {
                Elem::Any => "map[string]interface {}",
                Elem::Str => "map[string]string",
                Elem::Address => "map[string]api.ServiceAddress",
                Elem::Instances => "map[string][]*dependency.HealthService",
                Elem::AnyList => "map[string][]interface {}",
                Elem::Map => "map[string]map[string]*dependency.KeyPair",
                Elem::KeyPairs => "map[string]*dependency.KeyPair",
                Elem::PortGroups => "map[int][]interface {}",
            },
            Value::NilPtr(type_name) => type_name,
            Value::Obj(o) => o.type_name(),
            Value::Chan(_) => "<-chan int64",
            Value::Scratch(_) => "*template.Scratch",
        }
    }
}

impl<'a> Obj<'a> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Obj::Instance(_) => "*dependency.HealthService",
            Obj::Check(_) => "*api.HealthCheck",
            Obj::Weights(_) => "api.AgentWeights",
            Obj::Address(_) => "api.ServiceAddress",
            Obj::Service(_) => "*dependency.CatalogSnippet",
            Obj::Node(_) => "*dependency.Node",
            Obj::NodeDetail(_) => "*dependency.CatalogNode",
            Obj::NodeService(_) => "*dependency.CatalogNodeService",
            Obj::KeyPair { .. } => "*dependency.KeyPair",
        }
    }

    /// The exported fields of consul-template's structs, in declaration order.
    pub fn field_names(&self) -> &'static [&'static str] {
        match self {
            Obj::Instance(_) => &[
                "Node",
                "NodeID",
                "NodeAddress",
                "NodeTaggedAddresses",
                "NodeMeta",
                "ServiceMeta",
                "Address",
                "ServiceTaggedAddresses",
                "ID",
                "Name",
                "Tags",
                "Checks",
                "Status",
                "Port",
                "Weights",
            ],
            Obj::Check(_) => &[
                "Node",
                "CheckID",
                "Name",
                "Status",
                "Notes",
                "Output",
                "ServiceID",
                "ServiceName",
                "ServiceTags",
                "Type",
            ],
            Obj::Weights(_) => &["Passing", "Warning"],
            Obj::Address(_) => &["Address", "Port"],
            Obj::Service(_) => &["Name", "Tags"],
            Obj::Node(_) => &[
                "ID",
                "Node",
                "Address",
                "Datacenter",
                "TaggedAddresses",
                "Meta",
            ],
            Obj::NodeDetail(_) => &["Node", "Services"],
            Obj::NodeService(_) => &[
                "ID",
                "Service",
                "Tags",
                "Meta",
                "Port",
                "Address",
                "EnableTagOverride",
            ],
            Obj::KeyPair { .. } => &[
                "Path",
                "Key",
                "Value",
                "Exists",
                "CreateIndex",
                "ModifyIndex",
                "LockIndex",
                "Flags",
                "Session",
            ],
        }
    }

    /// A field by its Go name, or `None` when the struct has no such field.
    pub fn field(&self, name: &str) -> Option<Value<'a>> {
        let s = |s: &'a str| Some(Value::str(s));
        match *self {
            Obj::Instance(i) => match name {
                "ID" => s(&i.id),
                "Name" => s(&i.name),
                "Node" => s(&i.node),
                "NodeID" => s(&i.node_id),
                "NodeAddress" => s(&i.node_address),
                "NodeMeta" => Some(Value::StrMap(&i.node_meta)),
                "NodeTaggedAddresses" => Some(Value::StrMap(&i.node_tagged_addresses)),
                "Address" => s(&i.address),
                "Port" => Some(Value::Int(i.port.into())),
                "Tags" => Some(Value::Strings(SERVICE_TAGS, &i.tags)),
                "ServiceMeta" => Some(Value::StrMap(&i.meta)),
                "Status" => s(i.status.as_str()),
                "Weights" => Some(Value::Obj(Obj::Weights(&i.weights))),
                "Checks" => Some(Value::typed_list(
                    CHECKS,
                    i.checks.iter().map(|c| Value::Obj(Obj::Check(c))).collect(),
                )),
                "ServiceTaggedAddresses" if i.tagged_addresses.is_nil() => {
                    Some(Value::nil_map(Elem::Address))
                }
                "ServiceTaggedAddresses" => Some(Value::map(
                    Elem::Address,
                    i.tagged_addresses
                        .iter()
                        .map(|(k, a)| (k.clone(), Value::Obj(Obj::Address(a))))
                        .collect(),
                )),
                _ => None,
            },
            Obj::Check(c) => match name {
                "Node" => s(&c.node),
                "CheckID" => s(&c.check_id),
                "Name" => s(&c.name),
                "Status" => s(&c.status),
                "ServiceID" => s(&c.service_id),
                "ServiceName" => s(&c.service_name),
                "ServiceTags" => Some(Value::Strings(STRINGS, &c.service_tags)),
                "Type" => s(&c.check_type),
                "Notes" | "Output" | "Namespace" | "Partition" => s(""),
                _ => None,
            },
            Obj::Weights(w) => match name {
                "Passing" => Some(Value::Int(w.passing.into())),
                "Warning" => Some(Value::Int(w.warning.into())),
                _ => None,
            },
            Obj::Address(a) => match name {
                "Address" => s(&a.address),
                "Port" => Some(Value::Int(a.port.into())),
                _ => None,
            },
            Obj::Service(svc) => match name {
                "Name" => s(&svc.name),
                "Tags" => Some(Value::Strings(SERVICE_TAGS, &svc.tags)),
                _ => None,
            },
            Obj::Node(n) => match name {
                "Node" => s(&n.name),
                "Address" => s(&n.address),
                "Datacenter" => s(&n.datacenter),
                "Meta" => Some(Value::StrMap(&n.meta)),
                "ID" => s(&n.id),
                "TaggedAddresses" => Some(Value::StrMap(&n.tagged_addresses)),
                _ => None,
            },
            Obj::NodeDetail(detail) => match name {
                "Node" => Some(detail.map_or(Value::Nil, |d| Value::Obj(Obj::Node(&d.node)))),
                "Services" => Some(Value::typed_list(
                    NODE_SERVICES,
                    detail.map_or_else(Vec::new, |d| {
                        d.services
                            .iter()
                            .map(|s| Value::Obj(Obj::NodeService(s)))
                            .collect()
                    }),
                )),
                _ => None,
            },
            Obj::NodeService(svc) => match name {
                "ID" => s(&svc.id),
                "Service" => s(&svc.service),
                "Tags" => Some(Value::Strings(SERVICE_TAGS, &svc.tags)),
                "Meta" => Some(Value::StrMap(&svc.meta)),
                "Port" => Some(Value::Int(svc.port.into())),
                "Address" => s(&svc.address),
                "EnableTagOverride" => Some(Value::Bool(svc.enable_tag_override)),
                _ => None,
            },
            Obj::KeyPair { entry, key } => match name {
                "Path" => s(&entry.path),
                "Key" => s(key),
                "Value" => s(&entry.value),
                "Flags" => Some(Value::Uint(entry.flags)),
                "CreateIndex" => Some(Value::Uint(entry.create_index)),
                "ModifyIndex" => Some(Value::Uint(entry.modify_index)),
                "LockIndex" => Some(Value::Uint(entry.lock_index)),
                "Session" => s(&entry.session),
                "Exists" => Some(Value::Bool(true)),
                _ => None,
            },
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::fmt::print(self))
    }
}
