//! sprig's dictionaries (`map[string]interface {}`): `sprig_dict` makes
//! one, `sprig_set` and `sprig_unset` change it in place (every holder sees
//! the change, as with a Go map), and `get`, `hasKey`, `keys`, `values`,
//! `pluck`, `pick`, `omit`, `dig` and `deepCopy` read it. `parseJSON`
//! objects and `explode` results are such maps too. consul-template's
//! `mergeMap` and `mergeMapWithOverride` and sprig's `merge` and
//! `mergeOverwrite` merge one into another, as the mergo library both
//! call does.
//!
//! Go lists a map's keys and values in random order; here they come in key
//! order, one of the orders Go may give.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::super::value::{Elem, List, Map, STRINGS, Value};
use super::sprig::{interface, strval};
use super::{Param, Table};

const S: Param = Param::Str;
const A: Param = Param::Any;
const D: Param = Param::Dict;

/// The panic of a call through a nil function, as text/template reports it.
const NIL_DEREFERENCE: &str = "runtime error: invalid memory address or nil pointer dereference";

pub fn register(table: &mut Table) {
    table.add("sprig_dict", &[], Some(A), |a| {
        let mut entries = BTreeMap::new();
        for pair in a.chunks(2) {
            let value = pair.get(1).cloned().unwrap_or(Value::str(""));
            entries.insert(strval(&pair[0]), value);
        }
        Ok(Value::map(Elem::Any, entries))
    });
    table.add("sprig_get", &[D, S], None, |a| {
        Ok(interface(
            entry(&a[0], key(&a[1])).unwrap_or(Value::str("")),
        ))
    });
    table.add("sprig_hasKey", &[D, S], None, |a| {
        Ok(Value::Bool(entry(&a[0], key(&a[1])).is_some()))
    });
    table.add("sprig_set", &[D, S, A], None, |a| {
        let Value::Map(map) = &a[0] else {
            return Err("assignment to entry in nil map".to_owned());
        };
        if holds(&a[2], map) {
            return Err("a dict cannot be set to hold itself".to_owned());
        }
        map.entries
            .borrow_mut()
            .insert(key(&a[1]).to_owned(), a[2].clone());
        Ok(a[0].clone())
    });
    table.add("sprig_unset", &[D, S], None, |a| {
        let Value::Map(map) = &a[0] else {
            return Ok(Value::map(Elem::Any, BTreeMap::new()));
        };
        map.entries.borrow_mut().remove(key(&a[1]));
        Ok(a[0].clone())
    });
    table.add("sprig_keys", &[], Some(D), |a| {
        let keys = a
            .iter()
            .flat_map(|dict| pairs(dict).into_iter().map(|(k, _)| k));
        Ok(Value::typed_list(
            STRINGS,
            keys.map(Value::string).collect(),
        ))
    });
    table.add("sprig_values", &[D], None, |a| {
        Ok(Value::list(
            pairs(&a[0]).into_iter().map(|(_, v)| v).collect(),
        ))
    });
    table.add("sprig_pluck", &[S], Some(D), |a| {
        let wanted = key(&a[0]);
        Ok(Value::list(
            a[1..].iter().filter_map(|d| entry(d, wanted)).collect(),
        ))
    });
    table.add("sprig_pick", &[D], Some(S), |a| {
        Ok(filtered(&a[0], &a[1..], true))
    });
    table.add("sprig_omit", &[D], Some(S), |a| {
        Ok(filtered(&a[0], &a[1..], false))
    });
    table.add("sprig_dig", &[], Some(A), |a| {
        const TOO_FEW: &str = "dig needs at least three arguments";
        let [keys @ .., default, dict] = a.as_slice() else {
            return Err(TOO_FEW.to_owned());
        };
        // As sprig does: the dict and every key are asserted first.
        let mut dict = as_dict(dict)?;
        let keys = keys
            .iter()
            .map(|k| {
                k.as_str().ok_or_else(|| {
                    format!(
                        "interface conversion: interface {{}} is {}, not string",
                        go_type(k)
                    )
                })
            })
            .collect::<Result<Vec<&str>, String>>()?;
        let Some((last, path)) = keys.split_last() else {
            return Err(TOO_FEW.to_owned());
        };
        for k in path {
            let Some(step) = dict.entries.borrow().get(*k).cloned() else {
                return Ok(interface(default.clone()));
            };
            dict = as_dict(&step)?;
        }
        let found = dict.entries.borrow().get(*last).cloned();
        Ok(interface(found.unwrap_or_else(|| default.clone())))
    });
    table.add("mergeMap", &[D, D], Some(Param::MergeOption), |a| {
        if a.len() > 2 {
            // Only nil gets there, and mergo calls it.
            return Err(NIL_DEREFERENCE.to_owned());
        }
        merge_all("mergeMap", &a, false)
    });
    table.add("mergeMapWithOverride", &[D, D], None, |a| {
        merge_all("mergeMapWithOverride", &a, true)
    });
    // sprig's merges call the same mergo merge, once per source; what
    // would make a map hold itself fails here, in the must forms or not.
    table.add("sprig_merge", &[D], Some(D), |a| {
        merge_all("merge", &a, false)
    });
    table.add("sprig_mustMerge", &[D], Some(D), |a| {
        merge_all("mustMerge", &a, false)
    });
    table.add("sprig_mergeOverwrite", &[D], Some(D), |a| {
        merge_all("mergeOverwrite", &a, true)
    });
    table.add("sprig_mustMergeOverwrite", &[D], Some(D), |a| {
        merge_all("mustMergeOverwrite", &a, true)
    });
    table.add("sprig_deepCopy", &[A], None, |a| match &a[0] {
        // copystructure panics on a nil interface{}.
        Value::NoValue | Value::Nil => {
            Err("reflect: call of reflect.Value.Type on zero Value".to_owned())
        }
        other => Ok(deep_copy(other)),
    });
}

fn key<'v>(value: &'v Value) -> &'v str {
    value.as_str().unwrap_or_default()
}

/// The value under `key`, or `None` (a nil dict has no keys).
fn entry<'a>(dict: &Value<'a>, key: &str) -> Option<Value<'a>> {
    match dict {
        Value::Map(map) => map.entries.borrow().get(key).cloned(),
        _ => None,
    }
}

/// The entries of a dict, in key order.
fn pairs<'a>(dict: &Value<'a>) -> Vec<(String, Value<'a>)> {
    match dict {
        Value::Map(map) => map
            .entries
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A new dict with the entries whose key is (`keep`) or is not among `keys`.
fn filtered<'a>(dict: &Value<'a>, keys: &[Value<'a>], keep: bool) -> Value<'a> {
    let named = |k: &str| keys.iter().any(|n| n.as_str() == Some(k));
    let entries = pairs(dict)
        .into_iter()
        .filter(|(k, _)| named(k) == keep)
        .collect();
    Value::map(Elem::Any, entries)
}

/// mergo's merge of each of `a[1..]` into the map `a[0]`, in place, as
/// consul-template's `mergeMap` (`mergo.Map`) and sprig's `merge`
/// (`mergo.Merge`) call it; returns `a[0]`, or a new map when it is nil
/// and a source is not. `name` heads the error.
fn merge_all<'a>(name: &str, a: &[Value<'a>], overwrite: bool) -> Result<Value<'a>, String> {
    let mut dst = match &a[0] {
        Value::Map(map) if !map.nil => Some(map.clone()),
        _ => None,
    };
    for src in &a[1..] {
        let Value::Map(src) = src else { continue };
        if src.nil {
            continue;
        }
        let into = dst.get_or_insert_with(|| {
            Rc::new(Map {
                elem: Elem::Any,
                nil: false,
                entries: RefCell::default(),
            })
        });
        merge_into(into, src, overwrite).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(dst.map_or_else(|| Value::nil_map(Elem::Any), Value::Map))
}

/// mergo's merge of two `map[string]interface {}`: a key `dst` lacks, or
/// holds an empty value for (`""`, 0, false, nil, an empty list or map),
/// takes `src`'s; with `overwrite` every key does, except that a null in
/// `src` never fills a key without it. Maps under the same key are merged
/// into `dst`'s first, all the way down.
fn merge_into<'a>(dst: &Rc<Map<'a>>, src: &Rc<Map<'a>>, overwrite: bool) -> Result<(), String> {
    let incoming: Vec<(String, Value<'a>)> = pairs(&Value::Map(src.clone()));
    for (key, value) in incoming {
        if matches!(value, Value::Nil | Value::NoValue) {
            if overwrite {
                dst.entries.borrow_mut().insert(key, Value::Nil);
            }
            continue;
        }
        let present = dst.entries.borrow().get(&key).cloned();
        if let (Some(Value::Map(inner)), Value::Map(from)) = (&present, &value)
            && inner.elem == Elem::Any
            && from.elem == Elem::Any
        {
            merge_into(inner, from, overwrite)?;
        }
        // A map over a non-empty map is settled by that merge, before
        // mergo asks about overwriting.
        let is_map = |v: &Value| matches!(v, Value::Map(_) | Value::StrMap(_));
        let settled = present
            .as_ref()
            .is_some_and(|p| p.is_true() && is_map(p) && is_map(&value));
        let taken = overwrite || present.as_ref().is_none_or(|v| !v.is_true());
        if taken && !settled {
            if holds(&value, dst) {
                return Err("a map cannot be made to hold itself".to_owned());
            }
            dst.entries.borrow_mut().insert(key, value);
        }
    }
    Ok(())
}

/// Whether `value` is, or holds somewhere inside, `map` itself.
fn holds<'a>(value: &Value<'a>, map: &Rc<Map<'a>>) -> bool {
    match value {
        Value::Map(inner) => {
            Rc::ptr_eq(inner, map) || inner.entries.borrow().values().any(|v| holds(v, map))
        }
        Value::List(list) => list.iter().any(|v| holds(v, map)),
        _ => false,
    }
}

/// copystructure's deep copy: maps and slices made during the render are
/// copied all the way down; everything else is shared, as it is immutable.
fn deep_copy<'a>(value: &Value<'a>) -> Value<'a> {
    match value {
        Value::Map(map) => Value::map(
            map.elem,
            map.entries
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), deep_copy(v)))
                .collect(),
        ),
        Value::List(list) => Value::List(Rc::new(List {
            type_name: list.type_name,
            nil: list.nil,
            items: list.iter().map(deep_copy).collect(),
        })),
        other => other.clone(),
    }
}

/// `value.(map[string]interface{})`, failing as Go's assertion panics.
fn as_dict<'a>(value: &Value<'a>) -> Result<Rc<Map<'a>>, String> {
    match value {
        Value::Map(map) if map.elem == Elem::Any => Ok(map.clone()),
        other => Err(format!(
            "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
            go_type(other)
        )),
    }
}

/// The dynamic type a Go type assertion's panic names (`nil` for nil).
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::NoValue | Value::Nil => "nil",
        other => other.type_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::print;

    fn call<'a>(name: &str, args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
        let mut table = Table::default();
        register(&mut table);
        (table.get(name).unwrap().run)(args)
    }

    #[test]
    fn merge_map_changes_dst_in_place_and_refuses_a_cycle() {
        let s = Value::str;
        let dst = call("sprig_dict", vec![s("a"), s(""), s("b"), s("kept")]).unwrap();
        let src = call("sprig_dict", vec![s("a"), s("A"), s("b"), s("B")]).unwrap();
        call("mergeMap", vec![dst.clone(), src.clone()]).unwrap();
        assert_eq!(print(&dst), "map[a:A b:kept]");
        call("mergeMapWithOverride", vec![dst.clone(), src]).unwrap();
        assert_eq!(print(&dst), "map[a:A b:B]");
        // Go would print the cycle until its stack runs out.
        let holder = call("sprig_dict", vec![s("loop"), dst.clone()]).unwrap();
        assert_eq!(
            call("mergeMap", vec![dst, holder]).err(),
            Some("mergeMap: a map cannot be made to hold itself".to_owned())
        );
    }

    #[test]
    fn set_changes_the_dict_every_holder_sees_and_refuses_a_cycle() {
        let s = Value::str;
        let dict = call("sprig_dict", vec![s("b"), Value::Int(2), s("a")]).unwrap();
        assert_eq!(print(&dict), "map[a: b:2]");
        let holder = Value::list(vec![dict.clone()]);
        call("sprig_set", vec![dict.clone(), s("c"), s("x")]).unwrap();
        call("sprig_unset", vec![dict.clone(), s("a")]).unwrap();
        assert_eq!(print(&holder), "[map[b:2 c:x]]");
        let outer = Value::map(Elem::Any, [("inner".to_owned(), holder)].into());
        assert_eq!(
            call("sprig_set", vec![dict.clone(), s("loop"), outer]).err(),
            Some("a dict cannot be set to hold itself".to_owned())
        );
        let copy = call("sprig_deepCopy", vec![dict.clone()]).unwrap();
        call("sprig_set", vec![dict, s("d"), s("y")]).unwrap();
        assert_eq!(print(&copy), "map[b:2 c:x]");
        assert_eq!(
            call("sprig_set", vec![Value::Nil, s("k"), s("v")]).err(),
            Some("assignment to entry in nil map".to_owned())
        );
    }
}
