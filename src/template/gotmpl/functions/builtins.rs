//! text/template's builtin functions (Go's `text/template/funcs.go`),
//! except `and`, `or` and `call`, which the executor runs itself: `not`,
//! `len`, `index`, `slice`, `print`/`printf`/`println`, `html`, `js`,
//! `urlquery`, and the comparisons with Go's kind rules and error texts.

use std::cmp::Ordering;

use super::super::fmt;
use super::super::parse::is_print;
use super::super::value::{Elem, Obj, Value};
use super::{Param, Table};

/// Every text/template builtin, `and`, `or` and `call` included. They are
/// Go's, not in consul-template's function map, so no denylist reaches
/// them.
pub const NAMES: &[&str] = &[
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

pub fn register(table: &mut Table) {
    table.add("not", &[Param::Any], None, |a| {
        Ok(Value::Bool(!a[0].is_true()))
    });
    table.add("len", &[Param::Any], None, length);
    table.add("index", &[Param::Any], Some(Param::Any), index);
    table.add("slice", &[Param::Any], Some(Param::Any), slice);
    table.add("print", &[], Some(Param::Any), |a| {
        Ok(Value::string(fmt::sprint(&a)))
    });
    table.add("println", &[], Some(Param::Any), |a| {
        Ok(Value::string(fmt::sprintln(&a)))
    });
    table.add("printf", &[Param::Str], Some(Param::Any), |a| {
        let format = a[0].as_str().unwrap_or_default().to_owned();
        Ok(Value::string(fmt::sprintf(&format, &a[1..])))
    });
    table.add("html", &[], Some(Param::Any), |a| {
        Ok(Value::string(html(&eval_args(&a))))
    });
    table.add("js", &[], Some(Param::Any), |a| {
        Ok(Value::string(js(&eval_args(&a))))
    });
    table.add("urlquery", &[], Some(Param::Any), |a| {
        Ok(Value::string(query_escape(&eval_args(&a))))
    });
    table.add("eq", &[Param::Any], Some(Param::Any), |a| {
        eq(&a).map(Value::Bool)
    });
    table.add("ne", &[Param::Any, Param::Any], None, |a| {
        eq(&a).map(|t| Value::Bool(!t))
    });
    table.add("lt", &[Param::Any, Param::Any], None, |a| {
        less(&a[0], &a[1]).map(Value::Bool)
    });
    table.add("le", &[Param::Any, Param::Any], None, |a| {
        Ok(Value::Bool(less(&a[0], &a[1])? || eq(&a)?))
    });
    table.add("gt", &[Param::Any, Param::Any], None, |a| {
        Ok(Value::Bool(!(less(&a[0], &a[1])? || eq(&a)?)))
    });
    table.add("ge", &[Param::Any, Param::Any], None, |a| {
        less(&a[0], &a[1]).map(|t| Value::Bool(!t))
    });
}

/// `len`: bytes of a string, elements of a slice, map or channel.
fn length<'a>(args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    match &args[0] {
        Value::NoValue => Err("reflect: call of reflect.Value.Type on zero Value".to_owned()),
        Value::Nil | Value::NilPtr(_) => Err("len of nil pointer".to_owned()),
        v => v
            .len()
            .map(|n| Value::Int(n as i64))
            .ok_or_else(|| format!("len of type {}", v.type_name())),
    }
}

/// Go's `indexArg`: an integer index within `0..=cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match index {
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::NoValue | Value::Nil => return Err("cannot index slice/array with nil".to_owned()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

/// `index item i j …`: `item[i][j]…`; a map's missing key gives its zero value.
fn index<'a>(args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let mut item = args[0].clone();
    if matches!(item, Value::NoValue | Value::Nil) {
        return Err("index of untyped nil".to_owned());
    }
    for key in &args[1..] {
        item = match &item {
            Value::Str(s) => {
                let x = index_arg(key, s.len())?;
                let byte = s
                    .as_bytes()
                    .get(x)
                    .ok_or("reflect: string index out of range")?;
                Value::Uint(u64::from(*byte))
            }
            Value::List(_) | Value::Strings(..) => {
                let items = item.elements().unwrap_or_default();
                let x = index_arg(key, items.len())?;
                items
                    .get(x)
                    .cloned()
                    .ok_or("reflect: slice index out of range")?
            }
            Value::StrMap(_) | Value::Map(_) => {
                // byPort's groups are keyed by int, every other map by string.
                let int_keyed = matches!(&item, Value::Map(m) if m.elem == Elem::PortGroups);
                let key_type = if int_keyed { "int" } else { "string" };
                let key = match key {
                    Value::Int(port) if int_keyed => port.to_string(),
                    Value::Str(_) if !int_keyed => key.as_str().unwrap_or_default().to_owned(),
                    Value::NoValue | Value::Nil => {
                        return Err(format!("value is nil; should be of type {key_type}"));
                    }
                    other => {
                        return Err(format!(
                            "value has type {}; should be {key_type}",
                            other.type_name()
                        ));
                    }
                };
                match item.map_get(&key) {
                    Some(Some(value)) => value,
                    _ => item.map_zero(),
                }
            }
            Value::Nil | Value::NilPtr(_) => return Err("index of nil pointer".to_owned()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

/// `slice item i j k`: `item[i:j:k]` of a string or slice.
fn slice<'a>(args: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let item = &args[0];
    let indexes = &args[1..];
    if matches!(item, Value::NoValue | Value::Nil) {
        return Err("slice of untyped nil".to_owned());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_owned());
            }
            s.len()
        }
        Value::List(_) | Value::Strings(..) => item.len().unwrap_or_default(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => Value::string(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        Value::Strings(type_name, items) => Value::Strings(type_name, &items[idx[0]..idx[1]]),
        Value::List(list) => Value::typed_list(list.type_name, list[idx[0]..idx[1]].to_vec()),
        _ => unreachable!("only strings and slices got a length above"),
    })
}

/// Go's `evalArgs`: a lone string as it is, else `fmt.Sprint` of all,
/// with nil printed as `<no value>` (a string, so no space beside it).
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.to_string(),
        _ => {
            let printable: Vec<Value> = (args.iter())
                .map(|arg| match arg {
                    Value::NoValue | Value::Nil => Value::str("<no value>"),
                    other => other.clone(),
                })
                .collect();
            fmt::sprint(&printable)
        }
    }
}

/// `template.HTMLEscapeString`.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\x7f' => out.push(c),
            c if !is_print(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Go's `basicKind` classes, for comparisons.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    String,
    Other,
    Invalid,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::String,
        Value::NoValue | Value::Nil => Kind::Invalid,
        _ => Kind::Other,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_TYPE: &str = "invalid type for comparison";

/// Go's error for comparing values of two kinds, naming both types.
fn bad_comparison(a: &Value, b: &Value) -> String {
    format!("{BAD_COMPARISON}: {} and {}", a.type_name(), b.type_name())
}

/// `eq a b c …`: whether `a` equals any of the others.
fn eq(args: &[Value]) -> Result<bool, String> {
    let first = &args[0];
    if args.len() < 2 {
        return Err("missing argument for comparison".to_owned());
    }
    let k1 = kind(first);
    for arg in &args[1..] {
        let k2 = kind(arg);
        let truth = if k1 != k2 {
            match (first, arg) {
                (Value::Int(i), Value::Uint(u)) | (Value::Uint(u), Value::Int(i)) => {
                    *i >= 0 && *i as u64 == *u
                }
                _ if k1 != Kind::Invalid && k2 != Kind::Invalid => {
                    return Err(bad_comparison(first, arg));
                }
                // Nil against a pointer, slice or map: Go's `isNil` on both.
                _ => first.is_nil() == arg.is_nil(),
            }
        } else {
            match (first, arg) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::Uint(a), Value::Uint(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                (Value::Str(a), Value::Str(b)) => **a == **b,
                _ if k1 == Kind::Invalid => true,
                _ if first.is_nil() || arg.is_nil() => first.is_nil() && arg.is_nil(),
                (Value::Obj(a), Value::Obj(b)) => same_object(a, b),
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        fmt::sprintf("%s", std::slice::from_ref(arg)),
                        arg.type_name()
                    ));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Pointers compare by identity, as Go's `==` on them does.
fn same_object(a: &Obj, b: &Obj) -> bool {
    match (a, b) {
        (Obj::Instance(x), Obj::Instance(y)) => std::ptr::eq(*x, *y),
        (Obj::Check(x), Obj::Check(y)) => std::ptr::eq(*x, *y),
        (Obj::Service(x), Obj::Service(y)) => std::ptr::eq(*x, *y),
        (Obj::Node(x), Obj::Node(y)) => std::ptr::eq(*x, *y),
        (Obj::NodeService(x), Obj::NodeService(y)) => std::ptr::eq(*x, *y),
        (Obj::NodeDetail(x), Obj::NodeDetail(y)) => match (x, y) {
            (Some(x), Some(y)) => std::ptr::eq(*x, *y),
            _ => false,
        },
        (Obj::KeyPair { entry: x, .. }, Obj::KeyPair { entry: y, .. }) => std::ptr::eq(*x, *y),
        (Obj::Weights(x), Obj::Weights(y)) => x == y,
        (Obj::Address(x), Obj::Address(y)) => x == y,
        _ => false,
    }
}

/// `lt a b`, with Go's rules: basic kinds only, ints and uints mix.
fn less(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (kind(a), kind(b));
    if matches!(k1, Kind::Other | Kind::Invalid) || matches!(k2, Kind::Other | Kind::Invalid) {
        return Err(BAD_TYPE.to_owned());
    }
    Ok(match (a, b) {
        (Value::Int(i), Value::Uint(u)) => *i < 0 || (*i as u64) < *u,
        (Value::Uint(u), Value::Int(i)) => *i >= 0 && *u < *i as u64,
        _ if k1 != k2 => return Err(bad_comparison(a, b)),
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Uint(x), Value::Uint(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y) == Some(Ordering::Less),
        (Value::Str(x), Value::Str(y)) => **x < **y,
        _ => return Err(BAD_TYPE.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Value<'static>>) -> Result<String, String> {
        let mut table = Table::default();
        register(&mut table);
        let f = table.get(name).expect("registered");
        (f.run)(args).map(|v| fmt::print(&v))
    }

    fn s(text: &'static str) -> Value<'static> {
        Value::str(text)
    }

    #[test]
    fn names_every_builtin_it_registers_and_the_three_the_executor_runs() {
        let mut table = Table::default();
        register(&mut table);
        let mut registered: Vec<&str> = table.names().collect();
        registered.extend(["and", "or", "call"]);
        registered.sort_unstable();
        assert_eq!(registered, NAMES);
    }

    #[test]
    fn comparisons_follow_go_kinds() {
        assert_eq!(
            call("eq", vec![Value::Int(1), Value::Int(2), Value::Int(1)]),
            Ok("true".into())
        );
        assert_eq!(
            call("eq", vec![Value::Int(1), Value::Uint(1)]),
            Ok("true".into())
        );
        assert_eq!(
            call("eq", vec![Value::Int(1), s("1")]),
            Err(format!("{BAD_COMPARISON}: int and string"))
        );
        assert_eq!(
            call("eq", vec![Value::Int(1), Value::Float(1.0)]),
            Err(format!("{BAD_COMPARISON}: int and float64"))
        );
        assert_eq!(call("eq", vec![s("a"), Value::NoValue]), Ok("false".into()));
        assert_eq!(call("lt", vec![s("a"), s("b")]), Ok("true".into()));
        assert_eq!(
            call("lt", vec![Value::Int(-1), Value::Uint(0)]),
            Ok("true".into())
        );
        assert_eq!(
            call("lt", vec![Value::Bool(true), Value::Bool(false)]),
            Err(BAD_TYPE.into())
        );
        assert_eq!(
            call("ge", vec![Value::Int(2), Value::Int(2)]),
            Ok("true".into())
        );
        assert_eq!(
            call("gt", vec![Value::Float(2.5), Value::Float(2.0)]),
            Ok("true".into())
        );
        assert_eq!(call("ne", vec![s("a"), s("a")]), Ok("false".into()));
    }

    #[test]
    fn index_len_and_slice() {
        let list = Value::list(vec![s("a"), s("b"), s("c")]);
        assert_eq!(
            call("index", vec![list.clone(), Value::Int(1)]),
            Ok("b".into())
        );
        assert_eq!(
            call("index", vec![list.clone(), Value::Int(4)]),
            Err("index out of range: 4".into())
        );
        assert_eq!(
            call("index", vec![Value::NoValue, Value::Int(1)]),
            Err("index of untyped nil".into())
        );
        assert_eq!(
            call("index", vec![s("abc"), Value::Int(1)]),
            Ok("98".into())
        );
        assert_eq!(
            call("index", vec![Value::Int(3), Value::Int(1)]),
            Err("can't index item of type int".into())
        );
        assert_eq!(call("len", vec![s("héllo")]), Ok("6".into()));
        assert_eq!(
            call("len", vec![Value::Int(3)]),
            Err("len of type int".into())
        );
        assert_eq!(
            call("slice", vec![s("hello"), Value::Int(1), Value::Int(3)]),
            Ok("el".into())
        );
        assert_eq!(
            call("slice", vec![list.clone(), Value::Int(1)]),
            Ok("[b c]".into())
        );
        assert_eq!(
            call("slice", vec![list, Value::Int(2), Value::Int(1)]),
            Err("invalid slice index: 2 > 1".into())
        );
    }

    #[test]
    fn escapers_match_go() {
        assert_eq!(
            call("html", vec![s("<a href=\"x\">'&'</a>")]),
            Ok("&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;".into())
        );
        assert_eq!(
            call("js", vec![s("it's <b>=\"\\\"")]),
            Ok("it\\'s \\u003Cb\\u003E\\u003D\\\"\\\\\\\"".into())
        );
        assert_eq!(
            call("urlquery", vec![s("a b&c=d/é")]),
            Ok("a+b%26c%3Dd%2F%C3%A9".into())
        );
        assert_eq!(
            call("urlquery", vec![s("a"), Value::Int(1)]),
            Ok("a1".into())
        );
    }
}
