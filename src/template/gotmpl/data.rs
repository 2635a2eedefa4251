//! consul-template's data functions (`service`, `key`, `ls`, …): each
//! parses its query string as consul-template does, records the
//! [`Dependency`] it reads, and returns the snapshot's data as Go values —
//! or, while the data has not arrived, the empty value consul-template
//! returns, with the dependency recorded as missing.

use std::sync::Arc;

use super::functions::Param;
use super::value::{INSTANCES, KEY_PAIRS, NODES, Obj, SERVICES, STRINGS, Value};
use crate::consul::data::Status;
use crate::consul::{Data, Dependency, HealthQuery};
use crate::template::Sandbox;
use crate::template::record::Record;
use crate::template::snapshot::Snapshot;

/// What a data function reads from and records into.
pub struct Lookup<'a, 'r> {
    pub snapshot: &'a Snapshot,
    pub record: &'r mut Record,
    /// Where `file` may read, if it is confined.
    pub sandbox: Option<&'r Sandbox>,
}

impl<'a> Lookup<'a, '_> {
    fn get(&mut self, dependency: Dependency) -> Option<&'a Arc<Data>> {
        self.record.lookup(self.snapshot, dependency)
    }
}

type Run = for<'a, 'r> fn(&mut Lookup<'a, 'r>, Vec<Value<'a>>) -> Result<Value<'a>, String>;

/// A data function and its Go signature.
pub struct DataFunc {
    pub params: &'static [Param],
    pub variadic: Option<Param>,
    pub run: Run,
}

const ONE_STRING: &[Param] = &[Param::Str];

/// The data function called `name`, if there is one.
pub fn get(name: &str) -> Option<DataFunc> {
    let (params, variadic, run): (&'static [Param], Option<Param>, Run) = match name {
        "service" => (&[], Some(Param::Str), service),
        "services" => (&[], Some(Param::Str), services),
        "node" => (&[], Some(Param::Str), node),
        "nodes" => (&[], Some(Param::Str), nodes),
        "datacenters" => (&[], Some(Param::Bool), datacenters),
        "key" => (ONE_STRING, None, key),
        "keyExists" => (ONE_STRING, None, key_exists),
        "keyOrDefault" => (&[Param::Str, Param::Str], None, key_or_default),
        "ls" => (ONE_STRING, None, ls),
        "safeLs" => (ONE_STRING, None, safe_ls),
        "tree" => (ONE_STRING, None, tree),
        "safeTree" => (ONE_STRING, None, safe_tree),
        "file" => (ONE_STRING, None, file),
        _ => return None,
    };
    Some(DataFunc {
        params,
        variadic,
        run,
    })
}

pub fn is_function(name: &str) -> bool {
    get(name).is_some()
}

fn strings<'v>(args: &'v [Value]) -> impl Iterator<Item = &'v str> {
    args.iter().filter_map(Value::as_str)
}

/// What a list function gives before its data arrives: an empty slice of
/// its Go type.
fn empty<'a>(type_name: &'static str) -> Value<'a> {
    Value::typed_list(type_name, Vec::new())
}

/// Characters of Go's `[[:word:]]` plus the extra ones a pattern allows.
fn word(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
}

/// `@dc` and `~near` suffixes, in that order, each optional.
fn split_dc_near(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (rest, near) = match s.split_once('~') {
        Some((rest, near)) if word(near, ".-") => (rest, Some(near)),
        Some(_) => return None,
        None => (s, None),
    };
    let (head, dc) = match rest.split_once('@') {
        Some((head, dc)) if word(dc, ".-") => (head, Some(dc)),
        Some(_) => return None,
        None => (rest, None),
    };
    Some((head, dc, near))
}

/// `service "tag.name@dc~near|filter"` (the arguments are joined by `|`).
fn service<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let parts: Vec<&str> = strings(&args).collect();
    if parts.first().is_none_or(|s| s.is_empty()) {
        return Ok(empty(INSTANCES));
    }
    let query = parts.join("|");
    let invalid = || {
        format!(
            "health.service: invalid format: {}",
            super::parse::quote(&query)
        )
    };
    let (main, filter) = match query.split_once('|') {
        Some((main, filter)) if word(filter, ",") => (main, Some(filter)),
        Some(_) => return Err(invalid()),
        None => (query.as_str(), None),
    };
    let (head, dc, near) = split_dc_near(main).ok_or_else(invalid)?;
    let (tag, name) = match head.rsplit_once('.') {
        Some((tag, name)) if word(tag, "=:.-") => (Some(tag), name),
        Some(_) => return Err(invalid()),
        None => (None, head),
    };
    if !word(name, "-") {
        return Err(invalid());
    }
    let mut wanted: Vec<&str> = Vec::new();
    match filter {
        None => wanted.push("passing"),
        Some(filter) => {
            for f in filter.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                if !matches!(
                    f,
                    "any" | "passing" | "warning" | "critical" | "maintenance"
                ) {
                    return Err(format!(
                        "health.service: invalid filter: {} in {}",
                        super::parse::quote(f),
                        super::parse::quote(&query)
                    ));
                }
                wanted.push(f);
            }
        }
    }
    wanted.sort_unstable();
    let passing_only = wanted == ["passing"];
    let tags: Vec<String> = tag.map(str::to_owned).into_iter().collect();
    let dependency = Dependency::Health(HealthQuery::new(name, &tags, dc, passing_only).near(near));
    let Some(data) = lookup.get(dependency) else {
        return Ok(empty(INSTANCES));
    };
    let Data::Instances(instances) = &**data else {
        return Ok(empty(INSTANCES));
    };
    let accept = |status: Status| wanted.iter().any(|w| *w == "any" || *w == status.as_str());
    Ok(Value::typed_list(
        INSTANCES,
        instances
            .iter()
            .filter(|i| accept(i.status))
            .map(|i| Value::Obj(Obj::Instance(i)))
            .collect(),
    ))
}

/// `services "@dc"`: every service in the catalog.
fn services<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let query: String = strings(&args).collect();
    let dc = match query.strip_prefix('@') {
        None if query.is_empty() => None,
        Some(dc) if word(dc, ".-") => Some(dc.to_owned()),
        _ => {
            return Err(format!(
                "catalog.services: invalid format: {}",
                super::parse::quote(&query)
            ));
        }
    };
    let Some(data) = lookup.get(Dependency::CatalogServices { dc }) else {
        return Ok(empty(SERVICES));
    };
    let Data::Services(services) = &**data else {
        return Ok(empty(SERVICES));
    };
    Ok(Value::typed_list(
        SERVICES,
        services
            .iter()
            .map(|s| Value::Obj(Obj::Service(s)))
            .collect(),
    ))
}

/// `nodes "@dc"`: every node in the catalog, by name.
fn nodes<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let query: String = strings(&args).collect();
    let invalid = || {
        format!(
            "catalog.nodes: invalid format: {}",
            super::parse::quote(&query)
        )
    };
    let (head, dc, near) = split_dc_near(&query).ok_or_else(invalid)?;
    if !head.is_empty() || near.is_some() {
        return Err(invalid());
    }
    let dependency = Dependency::CatalogNodes {
        dc: dc.map(str::to_owned),
    };
    let Some(data) = lookup.get(dependency) else {
        return Ok(empty(NODES));
    };
    let Data::Nodes(nodes) = &**data else {
        return Ok(empty(NODES));
    };
    Ok(Value::typed_list(
        NODES,
        nodes.iter().map(|n| Value::Obj(Obj::Node(n))).collect(),
    ))
}

/// `node "name@dc"`: one node and its services; without a name, the local
/// agent's. Until the data arrives it is nil, as in consul-template.
fn node<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let query: String = strings(&args).collect();
    let invalid = || {
        format!(
            "catalog.node: invalid format: {}",
            super::parse::quote(&query)
        )
    };
    let (name, dc, near) = split_dc_near(&query).ok_or_else(invalid)?;
    // A datacenter needs a name before it, as consul-template's pattern says.
    let named = word(name, ".-");
    if near.is_some() || !(named || query.is_empty()) {
        return Err(invalid());
    }
    let dependency = Dependency::CatalogNode {
        name: (!name.is_empty()).then(|| name.to_owned()),
        dc: dc.map(str::to_owned),
    };
    let Some(data) = lookup.get(dependency) else {
        return Ok(Value::Nil);
    };
    let Data::Node(detail) = &**data else {
        return Ok(Value::Nil);
    };
    Ok(Value::Obj(Obj::NodeDetail(detail.as_deref())))
}

/// `datacenters` (the optional "ignore failing" flag changes nothing with
/// one reachable datacenter).
fn datacenters<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    if args.len() > 1 {
        return Err(format!(
            "datacenters: wrong number of arguments, expected 0 or 1, but got {}",
            args.len()
        ));
    }
    let Some(data) = lookup.get(Dependency::Datacenters) else {
        return Ok(empty(STRINGS));
    };
    let Data::Datacenters(names) = &**data else {
        return Ok(empty(STRINGS));
    };
    Ok(Value::Strings(STRINGS, names))
}

/// A `key@dc` path, as `kv.get` parses it.
fn key_dependency(path: &str) -> Result<Dependency, String> {
    let (key, dc) = match path.split_once('@') {
        Some((key, dc)) if word(dc, ".-") => (key, Some(dc.to_owned())),
        Some(_) => {
            return Err(format!(
                "kv.get: invalid format: {}",
                super::parse::quote(path)
            ));
        }
        None => (path, None),
    };
    let key = key.strip_prefix('/').unwrap_or(key);
    if key.is_empty() || key.contains('?') {
        return Err(format!(
            "kv.get: invalid format: {}",
            super::parse::quote(path)
        ));
    }
    Ok(Dependency::Key {
        path: key.to_owned(),
        dc,
    })
}

/// The value of a key: `Ok(None)` missing data, `Ok(Some(None))` no such key.
fn key_value<'a>(
    lookup: &mut Lookup<'a, '_>,
    path: &str,
) -> Result<Option<Option<&'a str>>, String> {
    let dependency = key_dependency(path)?;
    Ok(match lookup.get(dependency).map(|d| &**d) {
        None => None,
        Some(Data::Key(value)) => Some(value.as_deref()),
        Some(_) => Some(None),
    })
}

fn first_str<'v>(args: &'v [Value]) -> &'v str {
    args.first().and_then(Value::as_str).unwrap_or_default()
}

/// `key "path"`: a key that does not exist yet holds the render back.
fn key<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let path = first_str(&args);
    if path.is_empty() {
        return Ok(Value::str(""));
    }
    match key_value(lookup, path)? {
        Some(Some(value)) => Ok(Value::str(value)),
        Some(None) => {
            lookup.record.wait_for(key_dependency(path)?);
            Ok(Value::str(""))
        }
        None => Ok(Value::str("")),
    }
}

/// `keyExists "path"`.
fn key_exists<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let path = first_str(&args);
    if path.is_empty() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(matches!(
        key_value(lookup, path)?,
        Some(Some(_))
    )))
}

/// `keyOrDefault "path" "default"`: the default also for an empty value.
fn key_or_default<'a>(
    lookup: &mut Lookup<'a, '_>,
    args: Vec<Value<'a>>,
) -> Result<Value<'a>, String> {
    let path = first_str(&args);
    let default = args.get(1).cloned().unwrap_or(Value::str(""));
    if path.is_empty() {
        return Ok(default);
    }
    Ok(match key_value(lookup, path)? {
        Some(Some(value)) if !value.is_empty() => Value::str(value),
        _ => default,
    })
}

/// `file "path"`: a local file's text. A file that cannot be read holds
/// the render back (consul-template fails the read and retries); a path
/// outside the template's sandbox fails the render.
fn file<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let path = first_str(&args);
    if path.is_empty() {
        return Ok(Value::str(""));
    }
    let path = path.trim();
    if let Some(sandbox) = lookup.sandbox {
        sandbox.check(path).map_err(|e| e.to_string())?;
    }
    let dependency = Dependency::File {
        path: path.to_owned(),
    };
    match lookup.get(dependency.clone()).map(|d| &**d) {
        Some(Data::File(Some(text))) => Ok(Value::str(text)),
        Some(_) => {
            lookup.record.wait_for(dependency);
            Ok(Value::str(""))
        }
        None => Ok(Value::str("")),
    }
}

/// A `prefix@dc` path, as `kv.list` parses it.
fn tree_dependency(path: &str) -> Result<Dependency, String> {
    let (prefix, dc) = match path.split_once('@') {
        Some((prefix, dc)) if word(dc, ".-") => (prefix, Some(dc.to_owned())),
        Some(_) => {
            return Err(format!(
                "kv.list: invalid format: {}",
                super::parse::quote(path)
            ));
        }
        None => (path, None),
    };
    let prefix = prefix.strip_prefix('/').unwrap_or(prefix);
    if prefix.is_empty() || prefix.contains('?') {
        return Err(format!(
            "kv.list: invalid format: {}",
            super::parse::quote(path)
        ));
    }
    Ok(Dependency::Tree {
        prefix: prefix.to_owned(),
        dc,
    })
}

/// `ls`/`tree` and their safe forms: the pairs under a prefix that `keep`
/// accepts; the safe forms hold the render back while there are none.
fn pairs<'a>(
    lookup: &mut Lookup<'a, '_>,
    args: &[Value<'a>],
    keep: fn(&str) -> bool,
    empty_is_safe: bool,
) -> Result<Value<'a>, String> {
    let path = first_str(args);
    if path.is_empty() {
        return Ok(empty(KEY_PAIRS));
    }
    let dependency = tree_dependency(path)?;
    let Some(data) = lookup.get(dependency.clone()) else {
        return Ok(empty(KEY_PAIRS));
    };
    let Data::Tree(entries) = &**data else {
        return Ok(empty(KEY_PAIRS));
    };
    let kept: Vec<Value<'a>> = entries
        .iter()
        .filter(|e| keep(&e.key))
        .map(|e| {
            Value::Obj(Obj::KeyPair {
                entry: e,
                key: &e.key,
            })
        })
        .collect();
    if kept.is_empty() && !empty_is_safe {
        lookup.record.wait_for(dependency);
    }
    Ok(Value::typed_list(KEY_PAIRS, kept))
}

/// `ls` keeps the keys directly under the prefix.
fn direct_child(key: &str) -> bool {
    !key.is_empty() && !key.contains('/')
}

/// `tree` keeps every key that is not a folder.
fn not_folder(key: &str) -> bool {
    !key.rsplit('/').next().unwrap_or_default().is_empty()
}

fn ls<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    pairs(lookup, &args, direct_child, true)
}

fn safe_ls<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    pairs(lookup, &args, direct_child, false)
}

fn tree<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    pairs(lookup, &args, not_folder, true)
}

fn safe_tree<'a>(lookup: &mut Lookup<'a, '_>, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    pairs(lookup, &args, not_folder, false)
}
