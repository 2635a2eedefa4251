//! consul-template's collection helpers: grouping (`byTag`, `byKey`,
//! `byMeta`), membership (`contains`, `in`, `containsAll`, …), `explode`
//! and `explodeMap` for KV trees, and `loop`.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::super::value::{Elem, INSTANCES, INTERFACES, Obj, Value};
use super::{Param, Table};

const ANY2: &[Param] = &[Param::Any, Param::Any];
/// `containsAll` and kin take a `[]interface {}`, then anything.
const LIST_ANY: &[Param] = &[Param::List, Param::Any];

pub fn register(table: &mut Table) {
    table.add("byTag", &[Param::Any], None, |a| by_tag(&a[0]));
    table.add("byKey", &[Param::Any], None, |a| by_key(&a[0]));
    table.add("byPort", &[Param::Any], None, |a| by_port(&a[0]));
    table.add("byMeta", &[Param::Str, Param::Any], None, |a| {
        by_meta(&a[0], &a[1])
    });
    table.add("in", ANY2, None, |a| Ok(Value::Bool(is_in(&a[0], &a[1]))));
    table.add("contains", ANY2, None, |a| {
        Ok(Value::Bool(is_in(&a[1], &a[0])))
    });
    table.add("containsAll", LIST_ANY, None, |a| {
        contains_some(&a, true, true)
    });
    table.add("containsAny", LIST_ANY, None, |a| {
        contains_some(&a, false, false)
    });
    table.add("containsNone", LIST_ANY, None, |a| {
        contains_some(&a, true, false)
    });
    table.add("containsNotAll", LIST_ANY, None, |a| {
        contains_some(&a, false, true)
    });
    table.add("explode", &[Param::Any], None, |a| {
        let mut map = BTreeMap::new();
        for pair in pairs(&a[0], "explode")? {
            if let Obj::KeyPair { entry, key } = pair {
                explode_into(&mut map, key, Value::str(&entry.value), key)
                    .map_err(|e| format!("explode: {e}"))?;
            }
        }
        Ok(Value::map(Elem::Any, map))
    });
    table.add("explodeMap", &[Param::Any], None, |a| {
        let entries = match &a[0] {
            Value::Map(m) if m.elem == Elem::Any => m.entries.borrow().clone(),
            other => {
                return Err(format!(
                    "wrong type for value; expected map[string]interface {{}}; got {}",
                    other.type_name()
                ));
            }
        };
        let mut map = BTreeMap::new();
        for (key, value) in &entries {
            explode_into(&mut map, key, value.clone(), key)
                .map_err(|e| format!("explodeMap: {e}"))?;
        }
        Ok(Value::map(Elem::Any, map))
    });
    table.add("loop", &[], Some(Param::Any), |a| {
        let (start, stop) = match a.as_slice() {
            [stop] => (0, to_i64(stop)?),
            [start, stop] => (to_i64(start)?, to_i64(stop)?),
            _ => {
                return Err(format!(
                    "loop: wrong number of arguments, expected 1 or 2, but got {}",
                    a.len()
                ));
            }
        };
        Ok(Value::Chan(Rc::new(
            (start..stop).map(Value::Int).collect(),
        )))
    });
}

fn to_i64(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => Ok(*u as i64),
        Value::Str(s) if s.is_empty() => Ok(0),
        Value::Str(s) => s.parse().map_err(|_| {
            format!(
                "parseInt: strconv.ParseInt: parsing {}: invalid syntax",
                super::super::parse::quote(s)
            )
        }),
        other => Err(format!("loop: bad argument type: {}", type_of(other))),
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::NoValue | Value::Nil => "<nil>",
        v => v.type_name(),
    }
}

/// The structs of a slice of consul-template structs (`[]*dependency.X`).
fn objects<'a>(value: &Value<'a>) -> Option<Vec<Obj<'a>>> {
    value
        .elements()?
        .into_iter()
        .map(|v| match v {
            Value::Obj(o) => Some(o),
            _ => None,
        })
        .collect()
}

fn pairs<'a>(value: &Value<'a>, name: &str) -> Result<Vec<Obj<'a>>, String> {
    match objects(value) {
        Some(objs) if objs.iter().all(|o| matches!(o, Obj::KeyPair { .. })) => Ok(objs),
        _ => Err(format!(
            "wrong type for value; expected []*dependency.KeyPair; got {} (in {name})",
            value.type_name()
        )),
    }
}

/// `byTag`: services grouped by each of their tags.
fn by_tag<'a>(value: &Value<'a>) -> Result<Value<'a>, String> {
    let mut groups: BTreeMap<String, Vec<Value<'a>>> = BTreeMap::new();
    if matches!(value, Value::NoValue | Value::Nil) {
        return Ok(Value::map(Elem::AnyList, BTreeMap::new()));
    }
    let Some(objs) = objects(value) else {
        return Err(format!("byTag: wrong argument type {}", value.type_name()));
    };
    for obj in objs {
        let tags: &[String] = match obj {
            Obj::Instance(i) => &i.tags,
            Obj::Service(s) => &s.tags,
            _ => return Err(format!("byTag: wrong argument type {}", value.type_name())),
        };
        for tag in tags {
            groups
                .entry(tag.clone())
                .or_default()
                .push(Value::Obj(obj.clone()));
        }
    }
    Ok(grouped(Elem::AnyList, groups))
}

/// `byPort`: `service` instances grouped by port, as a
/// `map[int][]interface {}`; anything but `[]*dependency.HealthService`
/// (or nil) is refused, as consul-template refuses it.
fn by_port<'a>(value: &Value<'a>) -> Result<Value<'a>, String> {
    if matches!(value, Value::NoValue | Value::Nil) {
        return Ok(Value::map(Elem::PortGroups, BTreeMap::new()));
    }
    let wrong = || format!("byPort: wrong argument type {}", value.type_name());
    let objs = objects(value)
        .filter(|_| value.type_name() == INSTANCES)
        .ok_or_else(wrong)?;
    let mut groups: BTreeMap<String, Vec<Value<'a>>> = BTreeMap::new();
    for obj in objs {
        let Obj::Instance(instance) = obj else {
            return Err(wrong());
        };
        groups
            .entry(instance.port.to_string())
            .or_default()
            .push(Value::Obj(obj));
    }
    Ok(grouped(Elem::PortGroups, groups))
}

/// `byKey`: KV pairs grouped by their first path segment, keyed by the rest.
fn by_key<'a>(value: &Value<'a>) -> Result<Value<'a>, String> {
    let mut groups: BTreeMap<String, BTreeMap<String, Value<'a>>> = BTreeMap::new();
    for pair in pairs(value, "byKey")? {
        let Obj::KeyPair { entry, key } = pair else {
            continue;
        };
        let (top, rest) = key.split_once('/').unwrap_or((key, ""));
        if rest.is_empty() {
            continue;
        }
        groups.entry(top.to_owned()).or_default().insert(
            rest.to_owned(),
            Value::Obj(Obj::KeyPair { entry, key: rest }),
        );
    }
    Ok(Value::map(
        Elem::Map,
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::map(Elem::KeyPairs, v)))
            .collect(),
    ))
}

/// `byMeta "key,key2|int"`: instances grouped by meta values (`|int`
/// zero-pads numbers so the groups sort numerically).
fn by_meta<'a>(keys: &Value<'a>, services: &Value<'a>) -> Result<Value<'a>, String> {
    let keys = keys.as_str().unwrap_or_default();
    let Some(objs) = objects(services).filter(|o| o.iter().all(|o| matches!(o, Obj::Instance(_))))
    else {
        return Err(format!(
            "wrong type for value; expected []*dependency.HealthService; got {}",
            services.type_name()
        ));
    };
    let normalize = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut groups: BTreeMap<String, Vec<Value<'a>>> = BTreeMap::new();
    for obj in objs {
        let Obj::Instance(instance) = obj else {
            continue;
        };
        let mut parts = Vec::new();
        for meta in keys.split(',') {
            let real = meta.strip_suffix("|int").unwrap_or(meta);
            let value = match instance.meta.get(real).filter(|v| !v.is_empty()) {
                Some(v) => v.clone(),
                None if meta.ends_with("|int") => "0".to_owned(),
                None => format!("_no_{real}_"),
            };
            let value = if meta.ends_with("|int") {
                let n: i64 = value.parse().map_err(|_| {
                    format!(
                        "cannot parse {value} as number : strconv.Atoi: parsing {}: invalid syntax",
                        super::super::parse::quote(&value)
                    )
                })?;
                format!("{n:05}")
            } else {
                value
            };
            parts.push(normalize(&value));
        }
        groups
            .entry(parts.join("_"))
            .or_default()
            .push(Value::Obj(obj));
    }
    Ok(grouped(Elem::Instances, groups))
}

/// consul-template's `in(l, v)`: `v` is an element of the slice `l`
/// (ints, floats and strings compared by kind), or a substring of `l`.
fn is_in(list: &Value, value: &Value) -> bool {
    if let Value::Str(haystack) = list {
        return matches!(value, Value::Str(needle) if haystack.contains(&**needle));
    }
    let Some(items) = list.elements() else {
        return false;
    };
    items.iter().any(|item| match (item, value) {
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Str(a), Value::Str(b)) => **a == **b,
        _ => false,
    })
}

/// `containsAll`/`Any`/`None`/`NotAll` of the values in `args[0]` within `args[1]`.
fn contains_some<'a>(
    args: &[Value<'a>],
    ret_true: bool,
    invert: bool,
) -> Result<Value<'a>, String> {
    // Checked as a []interface {} already; nil is an empty one.
    for value in &args[0].elements().unwrap_or_default() {
        if is_in(&args[1], value) != invert {
            return Ok(Value::Bool(!ret_true));
        }
    }
    Ok(Value::Bool(ret_true))
}

/// consul-template's `explodeHelper`: `a/b/c = v` becomes nested maps.
fn explode_into<'a>(
    map: &mut BTreeMap<String, Value<'a>>,
    key: &str,
    value: Value<'a>,
    path: &str,
) -> Result<(), String> {
    let Some((top, rest)) = key.split_once('/') else {
        if !key.is_empty() {
            map.insert(key.to_owned(), value);
        }
        return Ok(());
    };
    let mut nested = match map.get(top) {
        None => BTreeMap::new(),
        Some(Value::Map(m)) if m.elem == Elem::Any => m.entries.borrow().clone(),
        Some(other) => {
            return Err(format!(
                "not a map: {}: {} already has value {}",
                super::super::parse::quote(path),
                super::super::parse::quote(top),
                super::super::fmt::sprintf("%q", std::slice::from_ref(other))
            ));
        }
    };
    explode_into(&mut nested, rest, value, key)?;
    map.insert(top.to_owned(), Value::map(Elem::Any, nested));
    Ok(())
}

/// `map[string][]T` of groups, as `byTag` (`[]interface {}`) and `byMeta`
/// (`[]*dependency.HealthService`) return them.
fn grouped<'a>(elem: Elem, groups: BTreeMap<String, Vec<Value<'a>>>) -> Value<'a> {
    let slice_type = match elem {
        Elem::Instances => INSTANCES,
        _ => INTERFACES,
    };
    Value::map(
        elem,
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::typed_list(slice_type, v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::data::{Instance, KvEntry};
    use crate::template::gotmpl::fmt::{print, sprintf};

    fn call<'a>(name: &str, args: Vec<Value<'a>>) -> Result<String, String> {
        let mut table = Table::default();
        register(&mut table);
        (table.get(name).unwrap().run)(args).map(|v| print(&v))
    }

    fn strs(items: &[&'static str]) -> Value<'static> {
        Value::list(items.iter().map(|s| Value::str(s)).collect())
    }

    #[test]
    fn membership_follows_consul_template_argument_order() {
        assert_eq!(
            call("in", vec![strs(&["a", "b"]), Value::str("b")]),
            Ok("true".into())
        );
        assert_eq!(
            call("contains", vec![Value::str("b"), strs(&["a", "b"])]),
            Ok("true".into())
        );
        assert_eq!(
            call("in", vec![Value::str("abc"), Value::str("bc")]),
            Ok("true".into())
        );
        assert_eq!(
            call("in", vec![strs(&["1"]), Value::Int(1)]),
            Ok("false".into())
        );
        let have = strs(&["a", "b", "c"]);
        assert_eq!(
            call("containsAll", vec![strs(&["a", "b"]), have.clone()]),
            Ok("true".into())
        );
        assert_eq!(
            call("containsAll", vec![strs(&["a", "x"]), have.clone()]),
            Ok("false".into())
        );
        assert_eq!(
            call("containsAny", vec![strs(&["x", "c"]), have.clone()]),
            Ok("true".into())
        );
        assert_eq!(
            call("containsNone", vec![strs(&["x"]), have.clone()]),
            Ok("true".into())
        );
        assert_eq!(
            call("containsNotAll", vec![strs(&["a", "x"]), have]),
            Ok("true".into())
        );
    }

    #[test]
    fn groups_kv_pairs_and_instances() {
        let entries: Vec<KvEntry> = ["a/x", "a/y", "b/z", "top"]
            .iter()
            .map(|k| KvEntry {
                key: (*k).into(),
                value: format!("v-{k}"),
                path: format!("p/{k}"),
                ..KvEntry::default()
            })
            .collect();
        let list = Value::list(
            entries
                .iter()
                .map(|e| {
                    Value::Obj(Obj::KeyPair {
                        entry: e,
                        key: &e.key,
                    })
                })
                .collect(),
        );
        let grouped = by_key(&list).unwrap();
        let a = grouped.map_get("a").unwrap().unwrap();
        assert_eq!(a.len(), Some(2));
        assert!(grouped.map_get("top").unwrap().is_none());
        let missing_pair = a.map_zero();
        assert_eq!(
            sprintf(
                "%T %v %#v",
                &[missing_pair.clone(), missing_pair.clone(), missing_pair]
            ),
            "*dependency.KeyPair <nil> (*dependency.KeyPair)(nil)"
        );
        assert_eq!(
            sprintf("%T", &[grouped.map_zero()]),
            "map[string]*dependency.KeyPair"
        );
        assert_eq!(
            print(&(table_run("explode", vec![list]))),
            "map[a:map[x:v-a/x y:v-a/y] b:map[z:v-b/z] top:v-top]"
        );
        let instances = [
            Instance {
                id: "1".into(),
                tags: vec!["blue".into(), "v1".into()],
                meta: [("weight".to_owned(), "7".to_owned())].into(),
                ..Instance::default()
            },
            Instance {
                id: "2".into(),
                tags: vec!["v1".into()],
                ..Instance::default()
            },
        ];
        let list = Value::list(
            instances
                .iter()
                .map(|i| Value::Obj(Obj::Instance(i)))
                .collect(),
        );
        let tags = by_tag(&list).unwrap();
        assert_eq!(tags.map_get("v1").unwrap().unwrap().len(), Some(2));
        let meta = by_meta(&Value::str("weight|int,zone"), &list).unwrap();
        let keys: Vec<String> = meta
            .entries()
            .unwrap()
            .iter()
            .map(|(k, _)| print(k))
            .collect();
        assert_eq!(keys, ["00000__no_zone_", "00007__no_zone_"]);
    }

    fn table_run<'a>(name: &str, args: Vec<Value<'a>>) -> Value<'a> {
        let mut table = Table::default();
        register(&mut table);
        (table.get(name).unwrap().run)(args).unwrap()
    }

    #[test]
    fn loop_counts_and_checks_its_arguments() {
        assert_eq!(
            print(&Value::list(
                match table_run("loop", vec![Value::Int(2), Value::Int(5)]) {
                    Value::Chan(items) => items.to_vec(),
                    _ => panic!("a channel"),
                }
            )),
            "[2 3 4]"
        );
        assert_eq!(
            call("loop", vec![Value::Float(1.0)]),
            Err("loop: bad argument type: float64".into())
        );
    }
}
