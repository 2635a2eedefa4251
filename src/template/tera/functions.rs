//! The functions Tera templates call, and the render scope they read through.
//!
//! Tera functions receive only their arguments, so the snapshot, the
//! [`Record`] of what the render read, and the converted values live in a
//! scope set up around each render on the rendering thread.

use std::cell::RefCell;
use std::sync::Arc;

use tera::{Kwargs, State, TeraResult, Value};

use super::values::{self, Values};
use crate::consul::data::Status;
use crate::consul::{Dependency, HealthQuery};
use crate::template::denylist::{DISABLED, Denylist};
use crate::template::record::Record;
use crate::template::snapshot::Snapshot;
use crate::template::{Options, Sandbox};

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

struct Scope {
    snapshot: Arc<Snapshot>,
    record: Record,
    values: Values,
}

/// Runs `render` with `snapshot` as the data source of every function it
/// calls, converting through `values`; returns its result with the record
/// of what it read, and `values` trimmed to what the render used.
pub fn with_scope<T>(
    snapshot: &Arc<Snapshot>,
    values: &mut Values,
    render: impl FnOnce() -> T,
) -> (T, Record) {
    SCOPE.with(|s| {
        *s.borrow_mut() = Some(Scope {
            snapshot: snapshot.clone(),
            record: Record::default(),
            values: std::mem::take(values),
        })
    });
    let result = render();
    let Some(scope) = SCOPE.with(|s| s.borrow_mut().take()) else {
        return (result, Record::default());
    };
    *values = scope.values;
    values.retain(|d| scope.record.used.contains(d));
    (result, scope.record)
}

/// Records `dependency` as used and returns its value, or `None` (recorded
/// as missing) when its data has not arrived.
fn lookup(dependency: Dependency) -> Option<Value> {
    SCOPE.with(|s| {
        let mut borrowed = s.borrow_mut();
        let Scope {
            snapshot,
            record,
            values,
        } = borrowed.as_mut()?;
        let data = record.lookup(snapshot, dependency.clone())?;
        Some(values.get(&dependency, data))
    })
}

/// Registers every function on `tera`; `file` reads only inside the
/// sandbox of `options`, if there is one. A function its denylist matches
/// is registered as one that fails, as consul-template's denied functions
/// do; Tera's own functions and filters stay, as Go's builtins do there.
pub fn register(tera: &mut tera::Tera, options: &Options) {
    let denylist = &options.denylist;
    add(tera, denylist, "service", service);
    add(tera, denylist, "services", services);
    add(tera, denylist, "key", key);
    add(tera, denylist, "key_or_default", key_or_default);
    add(tera, denylist, "keys", keys);
    add(tera, denylist, "tree", tree);
    add(tera, denylist, "nodes", nodes);
    add(tera, denylist, "node", node);
    let sandbox = options.sandbox.clone();
    add(tera, denylist, "file", move |kwargs: Kwargs, _: &State| {
        file(kwargs, sandbox.as_ref())
    });
    add(tera, denylist, "datacenters", datacenters);
    add(tera, denylist, "env", env);
}

/// Registers `function` as `name`, or, when `denylist` denies it, a
/// function that fails when called.
fn add<F, R>(tera: &mut tera::Tera, denylist: &Denylist, name: &'static str, function: F)
where
    F: tera::Function<R>,
    R: tera::FunctionResult,
{
    if denylist.denies(name) {
        tera.register_function(name, move |_: Kwargs, _: &State| -> TeraResult<Value> {
            Err(tera::Error::message(format!(
                "error calling {name}: {DISABLED}"
            )))
        });
    } else {
        tera.register_function(name, function);
    }
}

/// A string or a list of strings (`tag="a"` or `tag=["a", "b"]`).
fn strings(kwargs: &Kwargs, name: &str) -> TeraResult<Vec<String>> {
    let Some(value) = kwargs.get::<Value>(name)? else {
        return Ok(Vec::new());
    };
    if let Some(s) = value.as_str() {
        return Ok(vec![s.to_owned()]);
    }
    match value.as_array() {
        Some(items) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    tera::Error::message(format!(
                        "`{name}` must be a string or a list of strings, got {}",
                        v.name()
                    ))
                })
            })
            .collect(),
        None => Err(tera::Error::message(format!(
            "`{name}` must be a string or a list of strings, got {}",
            value.name()
        ))),
    }
}

fn dc(kwargs: &Kwargs) -> TeraResult<Option<String>> {
    Ok(kwargs.get::<&str>("dc")?.map(str::to_owned))
}

fn empty_list() -> Value {
    Value::from_serializable(&Vec::<Value>::new())
}

/// `service(name, tag?, dc?, status?)`: the instances of a service. By
/// default passing ones only; `status="any"` or a list such as
/// `["passing", "warning"]` widens that.
fn service(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let name = kwargs.must_get::<&str>("name")?;
    let tags = strings(&kwargs, "tag")?;
    let statuses = strings(&kwargs, "status")?;
    let wanted: Option<Vec<Status>> = match statuses.as_slice() {
        [] => Some(vec![Status::Passing]),
        [any] if any == "any" => None,
        list => Some(
            list.iter()
                .map(|s| {
                    Status::parse(s).ok_or_else(|| {
                        tera::Error::message(format!(
                            "unknown status {s:?}: use passing, warning, critical, maintenance or any"
                        ))
                    })
                })
                .collect::<TeraResult<_>>()?,
        ),
    };
    let passing_only = wanted.as_deref() == Some(&[Status::Passing]);
    let query = HealthQuery::new(name, &tags, dc(&kwargs)?.as_deref(), passing_only);
    let Some(instances) = lookup(Dependency::Health(query)) else {
        return Ok(empty_list());
    };
    match wanted {
        Some(wanted) if !passing_only => {
            let keep = |v: &&Value| {
                v.as_map()
                    .and_then(|m| m.get(&tera::value::Key::Str("status")))
                    .and_then(Value::as_str)
                    .and_then(Status::parse)
                    .is_some_and(|s| wanted.contains(&s))
            };
            let kept: Vec<Value> = instances
                .as_array()
                .unwrap_or_default()
                .iter()
                .filter(keep)
                .cloned()
                .collect();
            Ok(Value::from(kept.as_slice()))
        }
        _ => Ok(instances),
    }
}

/// `services(tag?, dc?)`: every service in the catalog as `{name, tags}`.
fn services(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let tags = strings(&kwargs, "tag")?;
    let Some(all) = lookup(Dependency::CatalogServices { dc: dc(&kwargs)? }) else {
        return Ok(empty_list());
    };
    if tags.is_empty() {
        return Ok(all);
    }
    let has_tags = |v: &&Value| {
        let service_tags = v
            .as_map()
            .and_then(|m| m.get(&tera::value::Key::Str("tags")))
            .and_then(Value::as_array);
        tags.iter()
            .all(|t| service_tags.is_some_and(|st| st.iter().any(|s| s.as_str() == Some(t))))
    };
    let kept: Vec<Value> = all
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter(has_tags)
        .cloned()
        .collect();
    Ok(Value::from(kept.as_slice()))
}

/// `key(path, dc?)`: a KV value. Like consul-template, a key that does not
/// exist holds the render back until it does.
fn key(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let path = kwargs.must_get::<&str>("path")?;
    Ok(required(Dependency::Key {
        path: path.to_owned(),
        dc: dc(&kwargs)?,
    }))
}

/// `file(path)`: a local file's text. A file that cannot be read holds
/// the render back until it can; a path outside the sandbox fails the
/// render.
fn file(kwargs: Kwargs, sandbox: Option<&Sandbox>) -> TeraResult<Value> {
    let path = kwargs.must_get::<&str>("path")?.trim();
    if let Some(sandbox) = sandbox {
        sandbox
            .check(path)
            .map_err(|e| tera::Error::message(e.to_string()))?;
    }
    Ok(required(Dependency::File {
        path: path.to_owned(),
    }))
}

/// The value of `dependency`, which must exist: while it is none, the
/// render waits for it (and meanwhile reads an empty string).
fn required(dependency: Dependency) -> Value {
    match lookup(dependency.clone()) {
        Some(value) if !value.is_none() => value,
        Some(_) => {
            SCOPE.with(|s| {
                if let Some(scope) = s.borrow_mut().as_mut() {
                    scope.record.wait_for(dependency);
                }
            });
            Value::from("")
        }
        None => Value::from(""),
    }
}

/// `key_or_default(path, default, dc?)`: a KV value, or `default` when the
/// key does not exist.
fn key_or_default(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let path = kwargs.must_get::<&str>("path")?;
    let default = kwargs.must_get::<Value>("default")?;
    match lookup(Dependency::Key {
        path: path.to_owned(),
        dc: dc(&kwargs)?,
    }) {
        Some(value) if !value.is_none() => Ok(value),
        _ => Ok(default),
    }
}

/// `keys(prefix, dc?)`: the key names under a prefix.
fn keys(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let prefix = kwargs.must_get::<&str>("prefix")?;
    Ok(lookup(Dependency::Keys {
        prefix: prefix.to_owned(),
        dc: dc(&kwargs)?,
    })
    .unwrap_or_else(empty_list))
}

/// `tree(prefix, dc?)`: `{key, value}` for every key under a prefix, keys
/// relative to it.
fn tree(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let prefix = kwargs.must_get::<&str>("prefix")?;
    Ok(lookup(Dependency::Tree {
        prefix: prefix.to_owned(),
        dc: dc(&kwargs)?,
    })
    .unwrap_or_else(empty_list))
}

/// `nodes(dc?)`: catalog nodes as `{name, address, datacenter, meta}`.
fn nodes(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    Ok(lookup(Dependency::CatalogNodes { dc: dc(&kwargs)? }).unwrap_or_else(empty_list))
}

/// `node(name?, dc?)`: one node with its services (see README), the local
/// agent's without a name; none for a node the catalog does not have, and
/// an empty one while the data has not arrived.
fn node(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let name = kwargs.get::<&str>("name")?.map(str::to_owned);
    Ok(lookup(Dependency::CatalogNode {
        name,
        dc: dc(&kwargs)?,
    })
    .unwrap_or_else(values::empty_node))
}

/// `datacenters()`: the known datacenters.
fn datacenters(_: Kwargs, _: &State) -> TeraResult<Value> {
    Ok(lookup(Dependency::Datacenters).unwrap_or_else(empty_list))
}

/// `env(name, default?)`: an environment variable of this process; an
/// unset variable without a default is an error naming it.
fn env(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let name = kwargs.must_get::<&str>("name")?;
    match (std::env::var(name), kwargs.get::<Value>("default")?) {
        (Ok(value), _) => Ok(Value::from(value)),
        (Err(_), Some(default)) => Ok(default),
        (Err(_), None) => Err(tera::Error::message(format!(
            "environment variable {name} is not set (give env() a default to allow that)"
        ))),
    }
}
