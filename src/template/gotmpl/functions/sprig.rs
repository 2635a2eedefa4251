//! The `sprig_*` functions: the deterministic ones of Masterminds/sprig
//! v3.3.0 (`HermeticTxtFuncMap`), which consul-template v0.41.1 registers
//! under a `sprig_` prefix. Each keeps sprig's argument order (mostly the
//! subject last), its quiet fallbacks (`atoi "x"` is 0, `b64dec` of bad
//! input prints the error) and, where sprig panics, the text text/template
//! reports for the panic (`runtime error: integer divide by zero`, `Cannot
//! find first on type string`).
//!
//! Numbers go through spf13/cast's `ToInt64` as sprig does: strings parse
//! with Go's base prefixes and a trailing `.0` is dropped, floats truncate,
//! anything unconvertible is 0. Functions that return `interface{}` hand
//! back no value for nil, which is what the template then prints.
//!
//! The checksums are in `digests`, the dicts in `dicts`. Left out: what
//! reads the clock, the environment, the network or a random source, and
//! `merge`/`mergeOverwrite` (mergo's rules), `deepEqual`, the float
//! functions and semver.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::super::fmt::{sprint, sprintf};
use super::super::json::{parse_json, to_json};
use super::super::parse::underscores_ok;
use super::super::value::{Elem, INTS, Obj, STRINGS, Value};
use super::strings::{
    decode_base64, go_split, go_trim_space, replace_all, text, trim, trim_prefix, trim_suffix,
};
use super::{Param, Table};

const S: Param = Param::Str;
const I: Param = Param::Int;
const A: Param = Param::Any;

/// The panic a nil `interface{}` causes where sprig asks for its kind.
const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";
const DIVIDE_BY_ZERO: &str = "runtime error: integer divide by zero";

pub fn register(table: &mut Table) {
    register_strings(table);
    register_numbers(table);
    register_defaults(table);
    register_types(table);
    register_json(table);
    register_lists(table);
    register_paths(table);
}

fn register_strings(table: &mut Table) {
    table.add("sprig_hello", &[], None, |_| Ok(Value::str("Hello!")));
    table.add("sprig_trim", &[S], None, |a| {
        Ok(Value::string(go_trim_space(text(&a[0]))))
    });
    table.add("sprig_upper", &[S], None, |a| {
        Ok(Value::string(map_chars(text(&a[0]), simple_upper)))
    });
    table.add("sprig_lower", &[S], None, |a| {
        Ok(Value::string(map_chars(text(&a[0]), simple_lower)))
    });
    table.add("sprig_title", &[S], None, |a| {
        Ok(Value::string(title(text(&a[0]))))
    });
    table.add("sprig_untitle", &[S], None, |a| {
        Ok(Value::string(untitle(text(&a[0]))))
    });
    table.add("sprig_repeat", &[I, S], None, |a| {
        repeat(text(&a[1]), int(&a[0])).map(Value::string)
    });
    table.add("sprig_trimall", &[S, S], None, trim);
    table.add("sprig_trimAll", &[S, S], None, trim);
    table.add("sprig_trimSuffix", &[S, S], None, trim_suffix);
    table.add("sprig_trimPrefix", &[S, S], None, trim_prefix);
    table.add("sprig_nospace", &[S], None, |a| {
        Ok(Value::string(delete_white_space(text(&a[0]))))
    });
    table.add("sprig_initials", &[S], None, |a| {
        Ok(Value::string(initials(text(&a[0]))))
    });
    table.add("sprig_contains", &[S, S], None, |a| {
        Ok(Value::Bool(text(&a[1]).contains(text(&a[0]))))
    });
    table.add("sprig_hasPrefix", &[S, S], None, |a| {
        Ok(Value::Bool(text(&a[1]).starts_with(text(&a[0]))))
    });
    table.add("sprig_hasSuffix", &[S, S], None, |a| {
        Ok(Value::Bool(text(&a[1]).ends_with(text(&a[0]))))
    });
    table.add("sprig_quote", &[], Some(A), |a| {
        let quoted: Vec<String> = non_nil(&a)
            .map(|v| sprintf("%q", &[Value::string(strval(v))]))
            .collect();
        Ok(Value::string(quoted.join(" ")))
    });
    table.add("sprig_squote", &[], Some(A), |a| {
        let quoted: Vec<String> = non_nil(&a)
            .map(|v| format!("'{}'", sprint_one(v)))
            .collect();
        Ok(Value::string(quoted.join(" ")))
    });
    table.add("sprig_cat", &[], Some(A), |a| {
        let parts: Vec<String> = non_nil(&a).map(sprint_one).collect();
        Ok(Value::string(parts.join(" ")))
    });
    table.add("sprig_indent", &[I, S], None, |a| {
        indent(int(&a[0]), text(&a[1])).map(Value::string)
    });
    table.add("sprig_nindent", &[I, S], None, |a| {
        indent(int(&a[0]), text(&a[1])).map(|s| Value::string(format!("\n{s}")))
    });
    table.add("sprig_replace", &[S, S, S], None, |a| {
        Ok(Value::string(replace_all(
            text(&a[2]),
            text(&a[0]),
            text(&a[1]),
        )))
    });
    table.add("sprig_plural", &[S, S, I], None, |a| {
        Ok(if int(&a[2]) == 1 {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });
    table.add("sprig_trunc", &[I, S], None, |a| {
        Ok(Value::string(trunc(int(&a[0]), text(&a[1]))))
    });
    table.add("sprig_substr", &[I, I, S], None, |a| {
        substring(int(&a[0]), int(&a[1]), text(&a[2])).map(Value::string)
    });
    table.add("sprig_toString", &[A], None, |a| {
        Ok(Value::string(strval(&a[0])))
    });
    table.add("sprig_splitList", &[S, S], None, |a| {
        Ok(strings(go_split(text(&a[1]), text(&a[0]))))
    });
    table.add("sprig_split", &[S, S], None, |a| {
        Ok(numbered(go_split(text(&a[1]), text(&a[0]))))
    });
    table.add("sprig_splitn", &[S, I, S], None, |a| {
        Ok(numbered(split_n(text(&a[2]), text(&a[0]), int(&a[1]))))
    });
    table.add("sprig_toStrings", &[A], None, |a| {
        Ok(strings(strslice(&a[0])))
    });
    table.add("sprig_join", &[S, A], None, |a| {
        Ok(Value::string(strslice(&a[1]).join(text(&a[0]))))
    });
    table.add("sprig_sortAlpha", &[A], None, |a| {
        let mut items = match &a[0] {
            Value::List(_) | Value::Strings(..) => strslice(&a[0]),
            other => vec![strval(other)],
        };
        items.sort_unstable();
        Ok(strings(items))
    });
    table.add("sprig_b64enc", &[S], None, |a| {
        Ok(Value::string(STANDARD.encode(text(&a[0]))))
    });
    // sprig hands back the decoder's error text in place of the data.
    table.add("sprig_b64dec", &[S], None, |a| {
        Ok(decode_base64(text(&a[0]), false).unwrap_or_else(Value::string))
    });
    table.add("sprig_regexQuoteMeta", &[S], None, |a| {
        Ok(Value::string(quote_meta(text(&a[0]))))
    });
}

fn register_numbers(table: &mut Table) {
    table.add("sprig_atoi", &[S], None, |a| {
        Ok(Value::Int(match parse_int(text(&a[0]), 10) {
            Ok(n) | Err(IntError::Range(n)) => n,
            Err(IntError::Syntax) => 0,
        }))
    });
    table.add("sprig_int64", &[A], None, |a| {
        Ok(Value::Int(to_int64(&a[0])))
    });
    table.add("sprig_int", &[A], None, |a| Ok(Value::Int(to_int64(&a[0]))));
    table.add("sprig_toDecimal", &[A], None, |a| {
        Ok(Value::Int(parse_int(&strval(&a[0]), 8).unwrap_or(0)))
    });
    table.add("sprig_add1", &[A], None, |a| {
        Ok(Value::Int(to_int64(&a[0]).wrapping_add(1)))
    });
    table.add("sprig_add", &[], Some(A), |a| {
        Ok(Value::Int(
            a.iter().fold(0i64, |sum, v| sum.wrapping_add(to_int64(v))),
        ))
    });
    table.add("sprig_sub", &[A, A], None, |a| {
        Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
    });
    table.add("sprig_mul", &[A], Some(A), |a| {
        Ok(Value::Int(
            a.iter().skip(1).fold(to_int64(&a[0]), |product, v| {
                product.wrapping_mul(to_int64(v))
            }),
        ))
    });
    table.add("sprig_div", &[A, A], None, |a| {
        match (to_int64(&a[0]), to_int64(&a[1])) {
            (_, 0) => Err(DIVIDE_BY_ZERO.to_owned()),
            (x, y) => Ok(Value::Int(x.wrapping_div(y))),
        }
    });
    table.add("sprig_mod", &[A, A], None, |a| {
        match (to_int64(&a[0]), to_int64(&a[1])) {
            (_, 0) => Err(DIVIDE_BY_ZERO.to_owned()),
            (x, y) => Ok(Value::Int(x.wrapping_rem(y))),
        }
    });
    table.add("sprig_max", &[A], Some(A), |a| {
        Ok(Value::Int(extreme(&a, i64::max)))
    });
    table.add("sprig_biggest", &[A], Some(A), |a| {
        Ok(Value::Int(extreme(&a, i64::max)))
    });
    table.add("sprig_min", &[A], Some(A), |a| {
        Ok(Value::Int(extreme(&a, i64::min)))
    });
    table.add("sprig_until", &[I], None, |a| {
        let count = int(&a[0]);
        Ok(ints(until_step(0, count, if count < 0 { -1 } else { 1 })))
    });
    table.add("sprig_untilStep", &[I, I, I], None, |a| {
        Ok(ints(until_step(int(&a[0]), int(&a[1]), int(&a[2]))))
    });
    table.add("sprig_seq", &[], Some(I), |a| {
        let params: Vec<i64> = a.iter().map(int).collect();
        let numbers = seq(&params);
        let words: Vec<String> = numbers.iter().map(i64::to_string).collect();
        Ok(Value::string(words.join(" ")))
    });
}

fn register_defaults(table: &mut Table) {
    table.add("sprig_default", &[A], Some(A), |a| {
        Ok(interface(match a.get(1) {
            Some(given) if !empty(given) => given.clone(),
            _ => a[0].clone(),
        }))
    });
    table.add("sprig_empty", &[A], None, |a| Ok(Value::Bool(empty(&a[0]))));
    table.add("sprig_coalesce", &[], Some(A), |a| {
        Ok(interface(
            a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil),
        ))
    });
    table.add("sprig_all", &[], Some(A), |a| {
        Ok(Value::Bool(a.iter().all(|v| !empty(v))))
    });
    table.add("sprig_any", &[], Some(A), |a| {
        Ok(Value::Bool(a.iter().any(|v| !empty(v))))
    });
    table.add("sprig_ternary", &[A, A, Param::Bool], None, |a| {
        Ok(interface(if a[2].is_true() {
            a[0].clone()
        } else {
            a[1].clone()
        }))
    });
}

/// sprig's JSON: `toJson` and its kin give "" where encoding fails and
/// `fromJson` no value where decoding does; the `must` forms fail instead.
fn register_json(table: &mut Table) {
    table.add("sprig_toJson", &[A], None, |a| {
        Ok(quiet(to_json(&a[0], false, true)))
    });
    table.add("sprig_toPrettyJson", &[A], None, |a| {
        Ok(quiet(to_json(&a[0], true, true)))
    });
    table.add("sprig_toRawJson", &[A], None, |a| {
        Ok(quiet(to_json(&a[0], false, false)))
    });
    table.add("sprig_mustToJson", &[A], None, |a| {
        to_json(&a[0], false, true).map(Value::string)
    });
    table.add("sprig_mustToPrettyJson", &[A], None, |a| {
        to_json(&a[0], true, true).map(Value::string)
    });
    table.add("sprig_mustToRawJson", &[A], None, |a| {
        to_json(&a[0], false, false).map(Value::string)
    });
    table.add("sprig_fromJson", &[S], None, |a| {
        Ok(parse_json(text(&a[0])).map_or(Value::NoValue, interface))
    });
    table.add("sprig_mustFromJson", &[S], None, |a| {
        parse_json(text(&a[0])).map(interface)
    });
}

/// An encoding's text, or "" where it failed.
fn quiet<'a>(encoded: Result<String, String>) -> Value<'a> {
    Value::string(encoded.unwrap_or_default())
}

/// sprig's reflection helpers: a value's `reflect.Kind` and Go type.
fn register_types(table: &mut Table) {
    table.add("sprig_kindOf", &[A], None, |a| Ok(Value::str(kind(&a[0]))));
    table.add("sprig_kindIs", &[S, A], None, |a| {
        Ok(Value::Bool(text(&a[0]) == kind(&a[1])))
    });
    table.add("sprig_typeOf", &[A], None, |a| {
        Ok(Value::string(type_of(&a[0])))
    });
    table.add("sprig_typeIs", &[S, A], None, |a| {
        Ok(Value::Bool(text(&a[0]) == type_of(&a[1])))
    });
    table.add("sprig_typeIsLike", &[S, A], None, |a| {
        let (target, actual) = (text(&a[0]), type_of(&a[1]));
        Ok(Value::Bool(
            actual == target || actual.strip_prefix('*') == Some(target),
        ))
    });
}

/// `fmt.Sprintf("%T", v)`, as sprig's `typeOf` is.
fn type_of(value: &Value) -> String {
    super::super::fmt::sprintf("%T", std::slice::from_ref(value))
}

fn register_lists(table: &mut Table) {
    table.add("sprig_list", &[], Some(A), |a| Ok(list(a)));
    table.add("sprig_tuple", &[], Some(A), |a| Ok(list(a)));
    for name in ["sprig_first", "sprig_mustFirst"] {
        table.add(name, &[A], None, |a| {
            let items = elements(&a[0], "find first on")?;
            Ok(interface(items.first().cloned().unwrap_or(Value::Nil)))
        });
    }
    for name in ["sprig_last", "sprig_mustLast"] {
        table.add(name, &[A], None, |a| {
            let items = elements(&a[0], "find last on")?;
            Ok(interface(items.last().cloned().unwrap_or(Value::Nil)))
        });
    }
    for name in ["sprig_rest", "sprig_mustRest"] {
        table.add(name, &[A], None, |a| {
            let items = elements(&a[0], "find rest on")?;
            Ok(Value::list(items.get(1..).unwrap_or_default().to_vec()))
        });
    }
    for name in ["sprig_initial", "sprig_mustInitial"] {
        table.add(name, &[A], None, |a| {
            let mut items = elements(&a[0], "find initial on")?;
            items.pop();
            Ok(Value::list(items))
        });
    }
    for name in ["sprig_reverse", "sprig_mustReverse"] {
        table.add(name, &[A], None, |a| {
            let mut items = elements(&a[0], "find reverse on")?;
            items.reverse();
            Ok(Value::list(items))
        });
    }
    for name in ["sprig_uniq", "sprig_mustUniq"] {
        table.add(name, &[A], None, |a| {
            let mut unique: Vec<Value> = Vec::new();
            for item in elements(&a[0], "find uniq on")? {
                if !unique.iter().any(|u| deep_equal(u, &item)) {
                    unique.push(item);
                }
            }
            Ok(Value::list(unique))
        });
    }
    for name in ["sprig_compact", "sprig_mustCompact"] {
        table.add(name, &[A], None, |a| {
            let mut items = elements(&a[0], "compact on")?;
            items.retain(|item| !empty(item));
            Ok(Value::list(items))
        });
    }
    for name in ["sprig_without", "sprig_mustWithout"] {
        table.add(name, &[A], Some(A), |a| {
            let mut items = elements(&a[0], "find without on")?;
            items.retain(|item| !a[1..].iter().any(|omit| deep_equal(omit, item)));
            Ok(Value::list(items))
        });
    }
    for name in ["sprig_has", "sprig_mustHas"] {
        table.add(name, &[A, A], None, |a| {
            if is_nil_interface(&a[1]) {
                return Ok(Value::Bool(false));
            }
            let items = elements(&a[1], "find has on")?;
            Ok(Value::Bool(
                items.iter().any(|item| deep_equal(&a[0], item)),
            ))
        });
    }
    for name in [
        "sprig_append",
        "sprig_push",
        "sprig_mustAppend",
        "sprig_mustPush",
    ] {
        table.add(name, &[A, A], None, |a| {
            let mut items = elements(&a[0], "push on")?;
            items.push(nil_arg(&a[1]));
            Ok(Value::list(items))
        });
    }
    for name in ["sprig_prepend", "sprig_mustPrepend"] {
        table.add(name, &[A, A], None, |a| {
            let mut items = elements(&a[0], "prepend on")?;
            items.insert(0, nil_arg(&a[1]));
            Ok(Value::list(items))
        });
    }
    table.add("sprig_concat", &[], Some(A), |a| {
        let mut all = Vec::new();
        for item in &a {
            match item {
                Value::List(_) | Value::Strings(..) => {
                    all.extend(item.elements().unwrap_or_default());
                }
                other if is_nil_interface(other) => return Err(NIL_DEREF.to_owned()),
                other => return Err(format!("Cannot concat type {} as list", kind(other))),
            }
        }
        Ok(Value::list(all))
    });
}

fn register_paths(table: &mut Table) {
    // On Linux, path/filepath's functions are path's.
    for name in ["sprig_base", "sprig_osBase"] {
        table.add(name, &[S], None, |a| {
            Ok(Value::string(path_base(text(&a[0]))))
        });
    }
    for name in ["sprig_dir", "sprig_osDir"] {
        table.add(name, &[S], None, |a| {
            Ok(Value::string(path_dir(text(&a[0]))))
        });
    }
    for name in ["sprig_clean", "sprig_osClean"] {
        table.add(name, &[S], None, |a| {
            Ok(Value::string(path_clean(text(&a[0]))))
        });
    }
    for name in ["sprig_ext", "sprig_osExt"] {
        table.add(name, &[S], None, |a| {
            Ok(Value::string(path_ext(text(&a[0]))))
        });
    }
    for name in ["sprig_isAbs", "sprig_osIsAbs"] {
        table.add(name, &[S], None, |a| {
            Ok(Value::Bool(text(&a[0]).starts_with('/')))
        });
    }
}

/// The integer of a `Param::Int` argument (checked before the call).
fn int(value: &Value) -> i64 {
    match value {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// A nil `interface{}`: what text/template passes for nil or no value.
fn is_nil_interface(value: &Value) -> bool {
    matches!(value, Value::NoValue | Value::Nil)
}

/// An argument kept in a list: no value becomes the nil Go stores.
fn nil_arg<'a>(value: &Value<'a>) -> Value<'a> {
    match value {
        Value::NoValue => Value::Nil,
        other => other.clone(),
    }
}

/// A returned `interface{}`: a nil one is no value to the template.
pub(super) fn interface(value: Value) -> Value {
    if is_nil_interface(&value) {
        Value::NoValue
    } else {
        value
    }
}

fn non_nil<'v, 'a>(args: &'v [Value<'a>]) -> impl Iterator<Item = &'v Value<'a>> {
    args.iter().filter(|v| !is_nil_interface(v))
}

fn list(args: Vec<Value>) -> Value {
    Value::list(args.iter().map(nil_arg).collect())
}

fn strings<'a>(items: Vec<impl Into<Rc<str>>>) -> Value<'a> {
    Value::typed_list(STRINGS, items.into_iter().map(Value::string).collect())
}

fn ints<'a>(items: Vec<i64>) -> Value<'a> {
    Value::typed_list(INTS, items.into_iter().map(Value::Int).collect())
}

/// sprig's `split`: a `map[string]string` keyed `_0`, `_1`, ….
fn numbered<'a>(parts: Vec<&str>) -> Value<'a> {
    Value::map(
        Elem::Str,
        parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| (format!("_{i}"), Value::string(part)))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// `fmt.Sprintf("%v", v)` of one value.
fn sprint_one(value: &Value) -> String {
    sprint(std::slice::from_ref(value))
}

/// sprig's `strval`: a string as it is, anything else as `%v` prints it.
pub(super) fn strval(value: &Value) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        other => sprint_one(other),
    }
}

/// sprig's `strslice`: a slice's non-nil elements as strings, nil as no
/// strings, anything else as its one string.
fn strslice(value: &Value) -> Vec<String> {
    match value.elements() {
        Some(items) => non_nil(&items).map(strval).collect(),
        None if is_nil_interface(value) => Vec::new(),
        None => vec![strval(value)],
    }
}

/// The `reflect.Kind` name sprig's errors print.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::NoValue | Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint64",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) | Value::Strings(..) => "slice",
        Value::StrMap(_) | Value::Map(_) => "map",
        Value::Obj(Obj::Weights(_) | Obj::Address(_)) => "struct",
        Value::Obj(_) | Value::NilPtr(_) | Value::Scratch(_) => "ptr",
        Value::Chan(_) => "chan",
    }
}

/// The elements of a slice, or the error sprig's list functions give:
/// `Cannot find first on type string`; a nil one panics in `reflect`.
fn elements<'a>(value: &Value<'a>, what: &str) -> Result<Vec<Value<'a>>, String> {
    match value {
        Value::List(_) | Value::Strings(..) => Ok(value.elements().unwrap_or_default()),
        v if is_nil_interface(v) => Err(NIL_DEREF.to_owned()),
        other => Err(format!("Cannot {what} type {}", kind(other))),
    }
}

/// sprig's `empty`: nil, false, zero, and empty strings, slices and maps.
fn empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil | Value::NilPtr(_) => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(_) | Value::List(_) | Value::Strings(..) | Value::StrMap(_) | Value::Map(_) => {
            value.len() == Some(0)
        }
        Value::Obj(_) | Value::Chan(_) | Value::Scratch(_) => false,
    }
}

/// `reflect.DeepEqual`, as far as these values keep Go's types apart.
fn deep_equal<'a>(a: &Value<'a>, b: &Value<'a>) -> bool {
    match (a, b) {
        (x, y) if is_nil_interface(x) || is_nil_interface(y) => {
            is_nil_interface(x) && is_nil_interface(y)
        }
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Uint(x), Value::Uint(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => **x == **y,
        (Value::List(_) | Value::Strings(..), Value::List(_) | Value::Strings(..))
        | (Value::StrMap(_) | Value::Map(_), Value::StrMap(_) | Value::Map(_)) => {
            if a.type_name() != b.type_name() {
                return false;
            }
            if let (Some(x), Some(y)) = (a.elements(), b.elements()) {
                return x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| deep_equal(p, q));
            }
            let (x, y) = (
                a.entries().unwrap_or_default(),
                b.entries().unwrap_or_default(),
            );
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|((k1, v1), (k2, v2))| deep_equal(k1, k2) && deep_equal(v1, v2))
        }
        (Value::Obj(x), Value::Obj(y)) => {
            x.type_name() == y.type_name()
                && x.field_names().iter().all(|name| {
                    deep_equal(
                        &x.field(name).unwrap_or(Value::Nil),
                        &y.field(name).unwrap_or(Value::Nil),
                    )
                })
        }
        (Value::Chan(x), Value::Chan(y)) => Rc::ptr_eq(x, y),
        (Value::Scratch(x), Value::Scratch(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// Why Go's `strconv.ParseInt` failed; a range error keeps the clamped value.
#[derive(Debug, PartialEq)]
enum IntError {
    Syntax,
    Range(i64),
}

/// `strconv.ParseInt(s, base, 64)`. Base 0 reads Go's prefixes (`0x`,
/// `0o`, `0b`, a leading `0` for octal) and allows `_` between digits.
fn parse_int(s: &str, base: u32) -> Result<i64, IntError> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match parse_uint(body, base) {
        Ok(n) => n,
        Err(IntError::Range(_)) => u64::MAX,
        Err(e) => return Err(e),
    };
    const CUTOFF: u64 = 1 << 63;
    match (negative, magnitude) {
        (false, n) if n >= CUTOFF => Err(IntError::Range(i64::MAX)),
        (true, n) if n > CUTOFF => Err(IntError::Range(i64::MIN)),
        (false, n) => Ok(n as i64),
        (true, n) => Ok((n as i64).wrapping_neg()),
    }
}

/// `strconv.ParseUint(s, base, 64)`.
fn parse_uint(s: &str, base: u32) -> Result<u64, IntError> {
    if s.is_empty() {
        return Err(IntError::Syntax);
    }
    let any_base = base == 0;
    let bytes = s.as_bytes();
    let (base, digits) = match (base, bytes) {
        (0, [b'0', p, _, ..]) if p.eq_ignore_ascii_case(&b'b') => (2, &bytes[2..]),
        (0, [b'0', p, _, ..]) if p.eq_ignore_ascii_case(&b'o') => (8, &bytes[2..]),
        (0, [b'0', p, _, ..]) if p.eq_ignore_ascii_case(&b'x') => (16, &bytes[2..]),
        (0, [b'0', ..]) => (8, &bytes[1..]),
        (0, _) => (10, bytes),
        (b, _) => (b, bytes),
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let d = match c {
            b'_' if any_base => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u32::from(c - b'0'),
            c if c.is_ascii_alphabetic() => u32::from(c.to_ascii_lowercase() - b'a') + 10,
            _ => return Err(IntError::Syntax),
        };
        if d >= base {
            return Err(IntError::Syntax);
        }
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(IntError::Range(0))?;
    }
    if underscores && !underscores_ok(s) {
        return Err(IntError::Syntax);
    }
    Ok(n)
}

/// spf13/cast's `trimZeroDecimal`: `"10.00"` is `"10"`.
fn trim_zero_decimal(s: &str) -> &str {
    let mut found_zero = false;
    for (i, b) in s.bytes().enumerate().rev() {
        match b {
            b'.' if found_zero => return &s[..i],
            b'.' => {}
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// Go's `int64(f)` on amd64: out of range (and NaN) is the minimum.
fn float_to_int64(f: f64) -> i64 {
    // 2^63: the first float past the end of int64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// spf13/cast's `ToInt64`, errors ignored (0).
fn to_int64(value: &Value) -> i64 {
    match value {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Float(f) => float_to_int64(*f),
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_int(trim_zero_decimal(s), 0).unwrap_or(0),
        _ => 0,
    }
}

/// sprig's `max`/`min`: the extreme of every argument as an int64.
fn extreme(args: &[Value], pick: fn(i64, i64) -> i64) -> i64 {
    args.iter()
        .skip(1)
        .fold(to_int64(&args[0]), |best, v| pick(best, to_int64(v)))
}

/// sprig's `untilStep`: from `start` towards `stop`, by `step`.
fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let going_down = stop < start;
    if going_down && step >= 0 || !going_down && step <= 0 {
        return out;
    }
    let mut i = start;
    while if going_down { i > stop } else { i < stop } {
        out.push(i);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    out
}

/// sprig's `seq`: 1 to n, start to end, or start by step to end.
fn seq(params: &[i64]) -> Vec<i64> {
    match *params {
        [end] => {
            let increment = if end < 1 { -1 } else { 1 };
            until_step(1, end.wrapping_add(increment), increment)
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(start, end.wrapping_add(step), step)
        }
        [start, step, end] => {
            let increment = if end < start { -1 } else { 1 };
            if end < start && step > 0 {
                return Vec::new();
            }
            until_step(start, end.wrapping_add(increment), step)
        }
        _ => Vec::new(),
    }
}

/// `strings.Repeat`, with its panics.
fn repeat(s: &str, count: i64) -> Result<String, String> {
    match count {
        0 => return Ok(String::new()),
        1 => return Ok(s.to_owned()),
        c if c < 0 => return Err("strings: negative Repeat count".to_owned()),
        _ => {}
    }
    match (s.len() as u128).checked_mul(count as u128) {
        Some(n) if n <= i64::MAX as u128 => Ok(s.repeat(count as usize)),
        _ => Err("strings: Repeat output length overflow".to_owned()),
    }
}

/// sprig's `indent`: every line, blank ones too, after a pad.
fn indent(spaces: i64, s: &str) -> Result<String, String> {
    let pad = repeat(" ", spaces)?;
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// Bytes `s[from..to]`; a cut through a character cannot be kept as Go
/// keeps it, and becomes U+FFFD.
fn bytes_of(s: &str, from: usize, to: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()
}

/// sprig's `trunc`: the first `c` bytes, or the last `-c`.
fn trunc(c: i64, s: &str) -> String {
    let len = s.len() as i64;
    if c < 0 && len + c > 0 {
        return bytes_of(s, (len + c) as usize, s.len());
    }
    if c >= 0 && len > c {
        return bytes_of(s, 0, c as usize);
    }
    s.to_owned()
}

/// sprig's `substring`, with the runtime errors Go's slicing panics with.
fn substring(start: i64, end: i64, s: &str) -> Result<String, String> {
    let len = s.len() as i64;
    let out_of_range =
        |detail: String| format!("runtime error: slice bounds out of range {detail}");
    if start < 0 {
        if end < 0 {
            return Err(out_of_range(format!("[:{end}]")));
        }
        if end > len {
            return Err(out_of_range(format!("[:{end}] with length {len}")));
        }
        return Ok(bytes_of(s, 0, end as usize));
    }
    if end < 0 || end > len {
        if start > len {
            return Err(out_of_range(format!("[{start}:{len}]")));
        }
        return Ok(bytes_of(s, start as usize, s.len()));
    }
    if start > end {
        return Err(out_of_range(format!("[{start}:{end}]")));
    }
    Ok(bytes_of(s, start as usize, end as usize))
}

/// `strings.SplitN`: at most `n` pieces (all of them when `n < 0`).
fn split_n<'s>(s: &'s str, sep: &str, n: i64) -> Vec<&'s str> {
    if n < 0 {
        return go_split(s, sep);
    }
    let n = n as usize;
    if n == 0 {
        return Vec::new();
    }
    if !sep.is_empty() {
        return s.splitn(n, sep).collect();
    }
    let mut pieces = go_split(s, "");
    if pieces.len() > n {
        let (head, _) = s.split_at(pieces[..n - 1].iter().map(|p| p.len()).sum());
        pieces.truncate(n - 1);
        pieces.push(&s[head.len()..]);
    }
    pieces
}

fn map_chars(s: &str, f: fn(char) -> char) -> String {
    s.chars().map(f).collect()
}

/// The one-character result of a Unicode case mapping, if it has one.
fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    match (mapped.next(), mapped.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// `unicode.ToUpper`: the simple mapping, one character to one.
fn simple_upper(c: char) -> char {
    single(c.to_uppercase()).unwrap_or_else(|| match c as u32 {
        // Greek with ypogegrammeni: full mappings spell the iota out.
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
            char::from_u32(c as u32 + 8).unwrap_or(c)
        }
        0x1FB3 => '\u{1FBC}',
        0x1FC3 => '\u{1FCC}',
        0x1FF3 => '\u{1FFC}',
        _ => c,
    })
}

/// `unicode.ToLower`: the simple mapping (`İ` is `i`).
fn simple_lower(c: char) -> char {
    single(c.to_lowercase()).unwrap_or(if c == '\u{130}' { 'i' } else { c })
}

/// `unicode.ToTitle`: upper case, except the digraphs' title forms and
/// Georgian, whose letters have no title case.
fn simple_title(c: char) -> char {
    match c as u32 {
        0x1C4..=0x1C6 => '\u{1C5}',
        0x1C7..=0x1C9 => '\u{1C8}',
        0x1CA..=0x1CC => '\u{1CB}',
        0x1F1..=0x1F3 => '\u{1F2}',
        0x10D0..=0x10FA | 0x10FD..=0x10FF => c,
        _ => simple_upper(c),
    }
}

/// `strings.Title`: each letter after a separator in title case.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) { simple_title(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// goutils' `Uncapitalize`: each word's first character lower-cased.
fn untitle(s: &str) -> String {
    let mut next = true;
    s.chars()
        .map(|c| {
            if c.is_whitespace() {
                next = true;
                c
            } else if next {
                next = false;
                simple_lower(c)
            } else {
                c
            }
        })
        .collect()
}

/// goutils' `DeleteWhiteSpace`, which reads bytes as runes: without any
/// white space the string is kept, else each byte left is a Latin-1
/// character (U+0085 and U+00A0 bytes counting as space).
fn delete_white_space(s: &str) -> String {
    let kept: Vec<char> = s
        .bytes()
        .map(char::from)
        .filter(|c| !c.is_whitespace())
        .collect();
    if kept.len() == s.len() {
        return s.to_owned();
    }
    kept.into_iter().collect()
}

/// goutils' `Initials`: the first byte of each word, as a Latin-1 character.
fn initials(s: &str) -> String {
    let mut gap = true;
    let mut out = String::new();
    for c in s.bytes().map(char::from) {
        if c.is_whitespace() {
            gap = true;
        } else if gap {
            out.push(c);
            gap = false;
        }
    }
    out
}

/// `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `path.Clean`: the shortest equivalent path.
fn path_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let p = path.as_bytes();
    let rooted = p[0] == b'/';
    let n = p.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        (r, dotdot) = (1, 1);
    }
    while r < n {
        // An empty element or `.`.
        if p[r] == b'/' || p[r] == b'.' && (r + 1 == n || p[r + 1] == b'/') {
            r += 1;
        } else if p[r] == b'.' && p[r + 1] == b'.' && (r + 2 == n || p[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                // Back to the separator before the last element.
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if rooted && out.len() != 1 || !rooted && !out.is_empty() {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".to_owned();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `path.Base`: the last element.
fn path_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let trimmed = path.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    if last.is_empty() {
        "/".to_owned()
    } else {
        last.to_owned()
    }
}

/// `path.Dir`: all but the last element, cleaned.
fn path_dir(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "",
    };
    path_clean(dir)
}

/// `path.Ext`: the last element's suffix from its last dot.
fn path_ext(path: &str) -> String {
    for (i, b) in path.bytes().enumerate().rev() {
        match b {
            b'/' => break,
            b'.' => return path[i..].to_owned(),
            _ => {}
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::print;

    fn call(name: &str, args: Vec<Value<'static>>) -> Result<String, String> {
        let mut table = Table::default();
        register(&mut table);
        let f = table
            .get(name)
            .unwrap_or_else(|| panic!("{name} registered"));
        (f.run)(args).map(|v| print(&v))
    }

    fn s(text: &'static str) -> Value<'static> {
        Value::str(text)
    }

    fn strs(items: &[&'static str]) -> Value<'static> {
        Value::list(items.iter().map(|t| Value::str(t)).collect())
    }

    #[test]
    fn integers_convert_as_spf13_cast_does() {
        let cases = [
            (s("1.0"), 1),
            (s("10.00"), 10),
            (s("1.50"), 0),
            (s("1."), 0),
            (s(".0"), 0),
            (s("0x10"), 16),
            (s("0b11"), 3),
            (s("-0o7"), -7),
            (s("017"), 15),
            (s("08"), 0),
            (s("1_000"), 1000),
            (s("_1"), 0),
            (s("1__0"), 0),
            (s(" 5"), 0),
            (s("99999999999999999999"), 0),
            (Value::Float(1.9), 1),
            (Value::Float(-1.9), -1),
            (Value::Float(1e300), i64::MIN),
            (Value::Float(f64::NAN), i64::MIN),
            (Value::Bool(true), 1),
            (Value::Uint(u64::MAX), -1),
            (Value::Nil, 0),
            (Value::NoValue, 0),
            (strs(&["1"]), 0),
        ];
        for (value, want) in cases {
            let shown = print(&value);
            assert_eq!(to_int64(&value), want, "{shown}");
        }
    }

    #[test]
    fn atoi_clamps_on_overflow_and_is_zero_on_bad_syntax() {
        let atoi = |t: &'static str| call("sprig_atoi", vec![s(t)]);
        assert_eq!(atoi("+5"), Ok("5".into()));
        assert_eq!(atoi("-12"), Ok("-12".into()));
        assert_eq!(atoi("1_0"), Ok("0".into()));
        assert_eq!(atoi("0x10"), Ok("0".into()));
        assert_eq!(atoi(""), Ok("0".into()));
        assert_eq!(atoi("-"), Ok("0".into()));
        assert_eq!(atoi("99999999999999999999"), Ok(i64::MAX.to_string()));
        assert_eq!(atoi("-99999999999999999999"), Ok(i64::MIN.to_string()));
        // Go stops at the overflow before it sees the bad byte.
        assert_eq!(atoi("99999999999999999999x"), Ok(i64::MAX.to_string()));
        assert_eq!(atoi("9223372036854775807"), Ok(i64::MAX.to_string()));
        assert_eq!(atoi("-9223372036854775808"), Ok(i64::MIN.to_string()));
    }

    #[test]
    fn arithmetic_wraps_and_refuses_a_zero_divisor() {
        let two = |name, a, b| call(name, vec![a, b]);
        assert_eq!(two("sprig_sub", Value::Int(1), s("3")), Ok("-2".into()));
        assert_eq!(
            two("sprig_div", Value::Int(7), Value::Int(2)),
            Ok("3".into())
        );
        assert_eq!(
            two("sprig_div", Value::Int(-7), Value::Int(2)),
            Ok("-3".into())
        );
        assert_eq!(
            two("sprig_mod", Value::Int(-7), Value::Int(3)),
            Ok("-1".into())
        );
        assert_eq!(
            two("sprig_div", Value::Int(1), s("x")),
            Err(DIVIDE_BY_ZERO.into())
        );
        assert_eq!(
            two("sprig_mod", Value::Int(1), Value::Int(0)),
            Err(DIVIDE_BY_ZERO.into())
        );
        assert_eq!(
            two("sprig_div", Value::Int(i64::MIN), Value::Int(-1)),
            Ok(i64::MIN.to_string())
        );
        assert_eq!(
            call("sprig_add1", vec![Value::Int(i64::MAX)]),
            Ok(i64::MIN.to_string())
        );
        assert_eq!(call("sprig_add", vec![]), Ok("0".into()));
        assert_eq!(
            call("sprig_mul", vec![Value::Int(2), Value::Int(3), s("4")]),
            Ok("24".into())
        );
        assert_eq!(
            call(
                "sprig_max",
                vec![Value::Int(1), s("0x10"), Value::Float(2.5)]
            ),
            Ok("16".into())
        );
        assert_eq!(
            call("sprig_min", vec![Value::Int(5), s("3"), Value::Float(9.9)]),
            Ok("3".into())
        );
    }

    #[test]
    fn slicing_strings_panics_as_go_does() {
        let sub = |a, b, t| call("sprig_substr", vec![Value::Int(a), Value::Int(b), s(t)]);
        assert_eq!(sub(1, 2, "abc"), Ok("b".into()));
        assert_eq!(sub(1, 9, "abc"), Ok("bc".into()));
        assert_eq!(sub(-1, 2, "abc"), Ok("ab".into()));
        assert_eq!(
            sub(-1, 5, "abc"),
            Err("runtime error: slice bounds out of range [:5] with length 3".into())
        );
        assert_eq!(
            sub(-1, -1, "abc"),
            Err("runtime error: slice bounds out of range [:-1]".into())
        );
        assert_eq!(
            sub(5, -1, "abc"),
            Err("runtime error: slice bounds out of range [5:3]".into())
        );
        assert_eq!(
            sub(2, 1, "abc"),
            Err("runtime error: slice bounds out of range [2:1]".into())
        );
        let trunc = |c, t| call("sprig_trunc", vec![Value::Int(c), s(t)]);
        assert_eq!(trunc(2, "abc"), Ok("ab".into()));
        assert_eq!(trunc(-2, "abc"), Ok("bc".into()));
        assert_eq!(trunc(-5, "abc"), Ok("abc".into()));
        assert_eq!(trunc(5, "abc"), Ok("abc".into()));
        assert_eq!(
            call("sprig_repeat", vec![Value::Int(-1), s("a")]),
            Err("strings: negative Repeat count".into())
        );
        assert_eq!(
            call("sprig_repeat", vec![Value::Int(i64::MAX), s("ab")]),
            Err("strings: Repeat output length overflow".into())
        );
        assert_eq!(
            call("sprig_repeat", vec![Value::Int(i64::MAX), s("")]),
            Ok("".into())
        );
        assert_eq!(
            call("sprig_indent", vec![Value::Int(-1), s("a")]),
            Err("strings: negative Repeat count".into())
        );
    }

    #[test]
    fn strings_keep_sprigs_argument_order_and_oddities() {
        assert_eq!(
            call("sprig_trimAll", vec![s("-$"), s("$-a-$")]),
            Ok("a".into())
        );
        assert_eq!(
            call("sprig_hasPrefix", vec![s("ab"), s("abc")]),
            Ok("true".into())
        );
        assert_eq!(
            call("sprig_replace", vec![s(""), s("-"), s("ab")]),
            Ok("-a-b-".into())
        );
        assert_eq!(
            call("sprig_indent", vec![Value::Int(2), s("a\n\nb")]),
            Ok("  a\n  \n  b".into())
        );
        assert_eq!(
            call("sprig_nindent", vec![Value::Int(1), s("a")]),
            Ok("\n a".into())
        );
        // Bytes read as Latin-1: é's bytes survive as Ã and ©.
        assert_eq!(call("sprig_nospace", vec![s("a é b")]), Ok("aÃ©b".into()));
        assert_eq!(call("sprig_nospace", vec![s("aé")]), Ok("aé".into()));
        assert_eq!(call("sprig_nospace", vec![s("a\u{a0}b")]), Ok("aÂb".into()));
        assert_eq!(
            call("sprig_initials", vec![s("hello wörld  x")]),
            Ok("hwx".into())
        );
        assert_eq!(
            call("sprig_title", vec![s("hello wörld ǆx ßa a-b a_b")]),
            Ok("Hello Wörld ǅx ßa A-B A_b".into())
        );
        assert_eq!(
            call("sprig_upper", vec![s("straße ǆ ᾳ")]),
            Ok("STRAßE Ǆ ᾼ".into())
        );
        assert_eq!(call("sprig_lower", vec![s("İΣΑΣ")]), Ok("iσασ".into()));
        assert_eq!(
            call("sprig_untitle", vec![s("Hello WORLD")]),
            Ok("hello wORLD".into())
        );
        assert_eq!(
            call("sprig_quote", vec![Value::Nil, s("a\"b"), Value::Int(1)]),
            Ok("\"a\\\"b\" \"1\"".into())
        );
        assert_eq!(
            call(
                "sprig_squote",
                vec![Value::NoValue, s("a"), Value::Float(1.5)]
            ),
            Ok("'a' '1.5'".into())
        );
        assert_eq!(
            call(
                "sprig_cat",
                vec![Value::Int(1), Value::Nil, s("a"), strs(&["x"])]
            ),
            Ok("1 a [x]".into())
        );
        assert_eq!(call("sprig_toString", vec![Value::Nil]), Ok("<nil>".into()));
        assert_eq!(
            call("sprig_b64dec", vec![s("a!")]),
            Ok("illegal base64 data at input byte 1".into())
        );
        assert_eq!(
            call("sprig_regexQuoteMeta", vec![s("a.b*")]),
            Ok("a\\.b\\*".into())
        );
    }

    #[test]
    fn splitting_and_joining() {
        assert_eq!(
            call("sprig_splitList", vec![s(","), s("")]),
            Ok("[]".into())
        );
        assert_eq!(call("sprig_splitList", vec![s(""), s("")]), Ok("[]".into()));
        assert_eq!(
            call("sprig_split", vec![s(","), s("a,b")]),
            Ok("map[_0:a _1:b]".into())
        );
        let splitn = |sep, n, t| call("sprig_splitn", vec![s(sep), Value::Int(n), s(t)]);
        assert_eq!(splitn(",", 2, "a,b,c"), Ok("map[_0:a _1:b,c]".into()));
        assert_eq!(splitn("", 2, "abc"), Ok("map[_0:a _1:bc]".into()));
        assert_eq!(splitn("", 9, "ab"), Ok("map[_0:a _1:b]".into()));
        assert_eq!(splitn(",", 0, "a,b"), Ok("map[]".into()));
        assert_eq!(splitn(",", -1, "a,b"), Ok("map[_0:a _1:b]".into()));
        let mixed = Value::list(vec![s("b"), Value::Int(1), Value::Nil, s("a")]);
        assert_eq!(
            call("sprig_join", vec![s(","), mixed.clone()]),
            Ok("b,1,a".into())
        );
        assert_eq!(call("sprig_join", vec![s(","), Value::Nil]), Ok("".into()));
        assert_eq!(
            call("sprig_join", vec![s(","), Value::Int(5)]),
            Ok("5".into())
        );
        assert_eq!(call("sprig_sortAlpha", vec![mixed]), Ok("[1 a b]".into()));
        assert_eq!(
            call("sprig_sortAlpha", vec![Value::NoValue]),
            Ok("[<nil>]".into())
        );
        assert_eq!(call("sprig_sortAlpha", vec![s("x")]), Ok("[x]".into()));
    }

    #[test]
    fn defaults_treat_zero_values_as_unset() {
        assert_eq!(call("sprig_default", vec![s("d")]), Ok("d".into()));
        assert_eq!(
            call("sprig_default", vec![s("d"), Value::Int(0)]),
            Ok("d".into())
        );
        assert_eq!(call("sprig_default", vec![s("d"), s("x")]), Ok("x".into()));
        assert_eq!(
            call("sprig_default", vec![Value::Nil]),
            Ok("<no value>".into())
        );
        assert_eq!(
            call(
                "sprig_coalesce",
                vec![Value::Int(0), s(""), Value::Float(0.0)]
            ),
            Ok("<no value>".into())
        );
        assert_eq!(
            call("sprig_coalesce", vec![Value::NoValue, strs(&[]), s("x")]),
            Ok("x".into())
        );
        assert_eq!(call("sprig_empty", vec![Value::NoValue]), Ok("true".into()));
        assert_eq!(
            call("sprig_empty", vec![Value::Bool(false)]),
            Ok("true".into())
        );
        assert_eq!(
            call("sprig_empty", vec![Value::Float(-0.0)]),
            Ok("true".into())
        );
        assert_eq!(call("sprig_empty", vec![strs(&[""])]), Ok("false".into()));
        assert_eq!(
            call("sprig_ternary", vec![Value::Nil, s("b"), Value::Bool(true)]),
            Ok("<no value>".into())
        );
        assert_eq!(
            call("sprig_ternary", vec![s("a"), s("b"), Value::Bool(false)]),
            Ok("b".into())
        );
        assert_eq!(call("sprig_all", vec![]), Ok("true".into()));
        assert_eq!(call("sprig_any", vec![]), Ok("false".into()));
    }

    #[test]
    fn lists_error_on_non_lists_and_panic_on_nil() {
        assert_eq!(
            call("sprig_first", vec![s("x")]),
            Err("Cannot find first on type string".into())
        );
        assert_eq!(
            call("sprig_first", vec![Value::NoValue]),
            Err(NIL_DEREF.into())
        );
        assert_eq!(
            call("sprig_reverse", vec![s("abc")]),
            Err("Cannot find reverse on type string".into())
        );
        assert_eq!(
            call("sprig_compact", vec![Value::Int(1)]),
            Err("Cannot compact on type int".into())
        );
        assert_eq!(
            call("sprig_concat", vec![strs(&["a"]), s("b")]),
            Err("Cannot concat type string as list".into())
        );
        assert_eq!(
            call("sprig_first", vec![strs(&[])]),
            Ok("<no value>".into())
        );
        assert_eq!(call("sprig_rest", vec![strs(&[])]), Ok("[]".into()));
        assert_eq!(
            call("sprig_has", vec![s("a"), Value::Nil]),
            Ok("false".into())
        );
        assert_eq!(
            call("sprig_has", vec![s("a"), Value::Int(1)]),
            Err("Cannot find has on type int".into())
        );
        let list = Value::list(vec![
            Value::Int(1),
            s("1"),
            Value::Int(1),
            Value::Nil,
            s(""),
        ]);
        assert_eq!(
            call("sprig_uniq", vec![list.clone()]),
            Ok("[1 1 <nil> ]".into())
        );
        assert_eq!(
            call("sprig_compact", vec![list.clone()]),
            Ok("[1 1 1]".into())
        );
        assert_eq!(
            call(
                "sprig_without",
                vec![list.clone(), Value::Int(1), Value::Nil]
            ),
            Ok("[1 ]".into())
        );
        assert_eq!(
            call("sprig_has", vec![Value::NoValue, list.clone()]),
            Ok("true".into())
        );
        assert_eq!(call("sprig_last", vec![list.clone()]), Ok("".into()));
        assert_eq!(
            call("sprig_reverse", vec![strs(&["a", "b"])]),
            Ok("[b a]".into())
        );
        assert_eq!(
            call("sprig_append", vec![strs(&["a"]), Value::NoValue]),
            Ok("[a <nil>]".into())
        );
        assert_eq!(
            call("sprig_prepend", vec![strs(&["a"]), s("b")]),
            Ok("[b a]".into())
        );
        assert_eq!(
            call("sprig_concat", vec![strs(&["a"]), strs(&[]), strs(&["b"])]),
            Ok("[a b]".into())
        );
        let nested = |x| Value::list(vec![strs(&[x])]);
        assert_eq!(
            call(
                "sprig_uniq",
                vec![Value::list(vec![nested("a"), nested("a"), nested("b")])]
            ),
            Ok("[[[a]] [[b]]]".into())
        );
    }

    #[test]
    fn ranges_count_as_sprig_does() {
        let seq = |p: &[i64]| call("sprig_seq", p.iter().map(|i| Value::Int(*i)).collect());
        assert_eq!(seq(&[]), Ok("".into()));
        assert_eq!(seq(&[3]), Ok("1 2 3".into()));
        assert_eq!(seq(&[0]), Ok("1 0".into()));
        assert_eq!(seq(&[-1]), Ok("1 0 -1".into()));
        assert_eq!(seq(&[3, 1]), Ok("3 2 1".into()));
        assert_eq!(seq(&[1, 3, 10]), Ok("1 4 7 10".into()));
        assert_eq!(seq(&[5, 1, 1]), Ok("".into()));
        assert_eq!(seq(&[5, -2, 1]), Ok("5 3 1".into()));
        assert_eq!(seq(&[1, 2, 3, 4]), Ok("".into()));
        assert_eq!(
            call("sprig_until", vec![Value::Int(-3)]),
            Ok("[0 -1 -2]".into())
        );
        assert_eq!(
            call(
                "sprig_untilStep",
                vec![Value::Int(0), Value::Int(10), Value::Int(4)]
            ),
            Ok("[0 4 8]".into())
        );
        assert_eq!(
            call(
                "sprig_untilStep",
                vec![Value::Int(0), Value::Int(10), Value::Int(0)]
            ),
            Ok("[]".into())
        );
        assert_eq!(
            call(
                "sprig_untilStep",
                vec![
                    Value::Int(i64::MAX - 1),
                    Value::Int(i64::MAX),
                    Value::Int(5)
                ]
            ),
            Ok(format!("[{}]", i64::MAX - 1))
        );
        assert_eq!(call("sprig_toDecimal", vec![s("0777")]), Ok("511".into()));
        assert_eq!(call("sprig_toDecimal", vec![Value::Int(8)]), Ok("0".into()));
    }

    #[test]
    fn paths_clean_as_go_does() {
        let cases = [
            ("", "."),
            ("a/../..", ".."),
            ("/../a/./b//", "/a/b"),
            ("a/b/../../../c", "../c"),
            ("/a/b/..", "/a"),
            ("a/..", "."),
            ("../../x/..", "../.."),
            ("/", "/"),
            ("//a", "/a"),
            ("a/b/c/../d", "a/b/d"),
        ];
        for (path, want) in cases {
            assert_eq!(path_clean(path), want, "{path}");
        }
        assert_eq!(path_base("/a/b/"), "b");
        assert_eq!(path_base("///"), "/");
        assert_eq!(path_base(""), ".");
        assert_eq!(path_dir("/a/b"), "/a");
        assert_eq!(path_dir("b"), ".");
        assert_eq!(path_dir("/"), "/");
        assert_eq!(path_ext("a/b.tar.gz"), ".gz");
        assert_eq!(path_ext("a.b/c"), "");
    }
}
