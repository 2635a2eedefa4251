//! Go's `fmt` printing of template values: what an action prints
//! (`{{ x }}`), `print`/`println`, and `printf` with Go's verbs, flags,
//! width and precision, and its error forms (`%!d(string=x)`,
//! `%!d(MISSING)`, `%!(EXTRA …)`). Maps print with sorted keys
//! (`map[a:1 b:2]`), slices as `[a b]`, nil as `<nil>`, floats as Go's
//! shortest `%g` (`1e+06`).

use std::fmt::Write;

use super::parse::quote;
use super::value::{Obj, Value};

/// How an action prints a value: text/template's `printValue`.
pub fn print(value: &Value) -> String {
    match value {
        Value::NoValue => "<no value>".to_owned(),
        // An action prints the struct a pointer points to.
        Value::Obj(obj) if !matches!(obj, Obj::Weights(_) | Obj::Address(_)) => {
            struct_text(obj, 'v', &Spec::default())
        }
        _ => sprint(std::slice::from_ref(value)),
    }
}

/// `fmt.Sprint`: operands joined, a space between two when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&format_value(arg, 'v', &Spec::default(), 0));
    }
    out
}

/// `fmt.Sprintln`: operands always space-separated, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out: Vec<String> = args
        .iter()
        .map(|arg| format_value(arg, 'v', &Spec::default(), 0))
        .collect();
    let mut text = std::mem::take(&mut out).join(" ");
    text.push('\n');
    text
}

/// A verb's flags, width and precision.
#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%+v`: struct fields print with their names (the `+` is no sign).
    plus_v: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

type Chars<'f> = std::iter::Peekable<std::str::CharIndices<'f>>;

/// Go's `argNumber`: a bracketed one-based argument index at the front of
/// `chars`, consumed. `None` when there is none; otherwise whether it names
/// one of the `len` arguments (then `arg` is set to it). Without a closing
/// bracket only the `[` is consumed, as in Go.
fn arg_index(chars: &mut Chars, len: usize, arg: &mut usize) -> Option<bool> {
    if chars.peek().map(|&(_, c)| c) != Some('[') {
        return None;
    }
    let after_bracket = chars.clone().skip(1).map(|(_, c)| c);
    let Some(inner_len) = after_bracket.clone().position(|c| c == ']') else {
        chars.next();
        return Some(false);
    };
    let inner: String = after_bracket.take(inner_len).collect();
    // `[`, what is inside, `]`.
    for _ in 0..inner_len + 2 {
        chars.next();
    }
    let number = (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()))
        .then(|| inner.parse::<usize>().ok())
        .flatten();
    match number {
        Some(n) if (1..=len).contains(&n) => {
            *arg = n - 1;
            Some(true)
        }
        _ => Some(false),
    }
}

/// `fmt.Sprintf` with Go's verbs and flags.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut arg = 0;
    let mut reordered = false;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // Explicit argument indexes (`%[2]d`, `%[1]*d`, `%.[2]f`), as Go's
        // doPrintf takes them: a bad one spoils the verb.
        let mut good = true;
        let mut take_index = |chars: &mut Chars, arg: &mut usize, good: &mut bool| {
            let found = arg_index(chars, args.len(), arg);
            if let Some(ok) = found {
                reordered = true;
                *good &= ok;
            }
            found.is_some()
        };
        let mut after_index = take_index(&mut chars, &mut arg, &mut good);
        if chars.peek().map(|&(_, c)| c) == Some('*') {
            chars.next();
            match args.get(arg) {
                Some(Value::Int(n)) => {
                    if *n < 0 {
                        spec.minus = true;
                    }
                    spec.width = Some(n.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            arg = (arg + 1).min(args.len());
            after_index = false;
        } else {
            spec.width = digits(&mut chars);
            if after_index && spec.width.is_some() {
                good = false;
            }
        }
        if chars.peek().map(|&(_, c)| c) == Some('.') {
            chars.next();
            if after_index {
                good = false;
            }
            after_index = take_index(&mut chars, &mut arg, &mut good);
            if chars.peek().map(|&(_, c)| c) == Some('*') {
                chars.next();
                match args.get(arg) {
                    Some(Value::Int(n)) if *n >= 0 => spec.precision = Some(*n as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg = (arg + 1).min(args.len());
                after_index = false;
            } else {
                spec.precision = Some(digits(&mut chars).unwrap_or(0));
            }
        }
        if !after_index {
            take_index(&mut chars, &mut arg, &mut good);
        }
        if spec.minus {
            spec.zero = false;
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if !good {
            let _ = write!(out, "%!{verb}(BADINDEX)");
            continue;
        }
        let Some(value) = args.get(arg) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        arg += 1;
        if verb == 'v' {
            // As Go's fmt: `#` and `+` change what `%v` means, not the digits.
            if std::mem::take(&mut spec.sharp) {
                out.push_str(&pad(go_syntax(value, 0), &spec, false));
                continue;
            }
            spec.plus_v = std::mem::take(&mut spec.plus);
        }
        out.push_str(&format_value(value, verb, &spec, 0));
    }
    if !reordered && arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[arg..]
            .iter()
            .map(|v| {
                format!(
                    "{}={}",
                    type_of(v),
                    format_value(v, 'v', &Spec::default(), 0)
                )
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn digits(chars: &mut std::iter::Peekable<std::str::CharIndices>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(&(_, d)) = chars.peek() {
        let Some(v) = d.to_digit(10) else { break };
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(v as usize));
        chars.next();
    }
    n
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::NoValue | Value::Nil => "<nil>",
        other => other.type_name(),
    }
}

/// `%!verb(type=value)`: a verb that does not apply to the value.
fn bad_verb(value: &Value, verb: char) -> String {
    match value {
        Value::NoValue | Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!(
            "%!{verb}({}={})",
            type_of(value),
            format_value(value, 'v', &Spec::default(), 0)
        ),
    }
}

/// Pads `text` to the spec's width (zeros go after a sign, for numbers).
fn pad(text: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else {
        return text;
    };
    let len = text.chars().count();
    if len >= width {
        return text;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{text}{}", " ".repeat(fill));
    }
    if spec.zero {
        if numeric && text.starts_with(['+', '-', ' ']) {
            let (sign, rest) = text.split_at(1);
            return format!("{sign}{}{rest}", "0".repeat(fill));
        }
        return format!("{}{text}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}

fn format_value(value: &Value, verb: char, spec: &Spec, depth: usize) -> String {
    if verb == 'T' {
        return pad(type_of(value).to_owned(), spec, false);
    }
    match value {
        Value::NoValue | Value::Nil => match verb {
            'v' => pad("<nil>".to_owned(), spec, false),
            _ => bad_verb(value, verb),
        },
        // Go formats a pointer's `%p` and integer verbs as its address, 0.
        Value::NilPtr(_) => match verb {
            'v' => pad("<nil>".to_owned(), spec, false),
            'p' => pad("0x0".to_owned(), spec, false),
            'b' | 'o' | 'd' | 'x' | 'X' => {
                format_int(0, verb, spec).unwrap_or_else(|| bad_verb(value, verb))
            }
            _ => bad_verb(value, verb),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(b.to_string(), spec, false),
            _ => bad_verb(value, verb),
        },
        Value::Int(i) => {
            format_int(i128::from(*i), verb, spec).unwrap_or_else(|| bad_verb(value, verb))
        }
        Value::Uint(u) => {
            format_int(i128::from(*u), verb, spec).unwrap_or_else(|| bad_verb(value, verb))
        }
        Value::Float(f) => format_float(*f, verb, spec).unwrap_or_else(|| bad_verb(value, verb)),
        Value::Str(s) => format_str(s, verb, spec).unwrap_or_else(|| bad_verb(value, verb)),
        Value::List(_) | Value::Strings(..) | Value::Chan(_) => {
            if matches!(value, Value::Chan(_)) {
                return pad("0xc000000000".to_owned(), spec, false);
            }
            let items = value.elements().unwrap_or_default();
            if (verb == 'x' || verb == 'X')
                && let Some(text) = hex_of_strings(&items, verb, spec)
            {
                return text;
            }
            let inner: Vec<String> = items
                .iter()
                .map(|item| format_value(item, verb, spec, depth + 1))
                .collect();
            format!("[{}]", inner.join(" "))
        }
        Value::StrMap(_) | Value::Map(_) => {
            let inner: Vec<String> = value
                .entries()
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        format_value(k, verb, spec, depth + 1),
                        format_value(v, verb, spec, depth + 1)
                    )
                })
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Obj(obj) => match obj {
            Obj::Weights(_) | Obj::Address(_) => struct_text(obj, verb, spec),
            // A pointer: Go prints `&{…}` at the top, an address inside.
            _ if depth == 0 => format!("&{}", struct_text(obj, verb, spec)),
            _ => pad("0xc000000000".to_owned(), spec, false),
        },
        Value::Scratch(_) => match depth {
            0 => "&{{0 0} {{} {} 0 0 {{} {0 0}} {{} {0 0}}} map[]}".to_owned(),
            _ => pad("0xc000000000".to_owned(), spec, false),
        },
    }
}

/// `%#v`: the value in Go syntax, as `[]string{"a", "b"}` or
/// `map[string]interface {}{"a":1}`. Inside a value Go prints a pointer's
/// address, which is no stable text; a fixed one stands for it.
fn go_syntax(value: &Value, depth: usize) -> String {
    let joined = |parts: Vec<String>| parts.join(", ");
    match value {
        Value::NoValue | Value::Nil if depth == 0 => "<nil>".to_owned(),
        Value::NoValue | Value::Nil => "interface {}(nil)".to_owned(),
        Value::NilPtr(type_name) => format!("({type_name})(nil)"),
        Value::List(list) if list.nil => format!("{}(nil)", list.type_name),
        Value::Map(map) if map.nil => format!("{}(nil)", value.type_name()),
        Value::StrMap(map) if map.is_nil() => format!("{}(nil)", value.type_name()),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => format!("{u:#x}"),
        Value::Float(f) => format_float(*f, 'v', &Spec::default()).unwrap_or_default(),
        Value::Str(s) => quote(s),
        Value::List(_) | Value::Strings(..) => {
            let items = value.elements().unwrap_or_default();
            let inner = items.iter().map(|i| go_syntax(i, depth + 1)).collect();
            format!("{}{{{}}}", value.type_name(), joined(inner))
        }
        Value::StrMap(_) | Value::Map(_) => {
            let inner = (value.entries().unwrap_or_default().iter())
                .map(|(k, v)| format!("{}:{}", go_syntax(k, depth + 1), go_syntax(v, depth + 1)))
                .collect();
            format!("{}{{{}}}", value.type_name(), joined(inner))
        }
        Value::Obj(obj) if depth == 0 || matches!(obj, Obj::Weights(_) | Obj::Address(_)) => {
            let inner = (obj.field_names().iter())
                .map(|name| {
                    let field = obj.field(name).unwrap_or(Value::Nil);
                    format!("{name}:{}", go_syntax(&field, depth + 1))
                })
                .collect();
            let name = obj.type_name();
            match name.strip_prefix('*') {
                Some(pointee) => format!("&{pointee}{{{}}}", joined(inner)),
                None => format!("{name}{{{}}}", joined(inner)),
            }
        }
        Value::Obj(_) | Value::Chan(_) | Value::Scratch(_) => {
            format!("({})(0xc000000000)", value.type_name())
        }
    }
}

/// Hex of a `[]string` with `%x`: each element, space-separated by Go.
fn hex_of_strings(items: &[Value], verb: char, spec: &Spec) -> Option<String> {
    if !items.iter().all(|i| matches!(i, Value::Str(_))) {
        return None;
    }
    let inner: Vec<String> = items
        .iter()
        .filter_map(|i| format_str(i.as_str()?, verb, spec))
        .collect();
    Some(format!("[{}]", inner.join(" ")))
}

/// A struct's fields in Go's declaration order, `{a b c}`.
fn struct_text(obj: &Obj, verb: char, spec: &Spec) -> String {
    let fields = obj.field_names();
    let parts: Vec<String> = fields
        .iter()
        .map(|name| {
            let value = obj.field(name).unwrap_or(Value::NoValue);
            let text = format_value(&value, verb, spec, 1);
            if spec.plus_v {
                format!("{name}:{text}")
            } else {
                text
            }
        })
        .collect();
    format!("{{{}}}", parts.join(" "))
}

fn format_int(n: i128, verb: char, spec: &Spec) -> Option<String> {
    let negative = n < 0;
    let magnitude = n.unsigned_abs();
    let mut body = match verb {
        'v' | 'd' => magnitude.to_string(),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'o' | 'O' => format!("{magnitude:o}"),
        'b' => format!("{magnitude:b}"),
        'c' => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return Some(pad(c.to_string(), spec, false));
        }
        'q' => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let quoted = match c {
                '\'' => "'\\''".to_owned(),
                '"' => "'\"'".to_owned(),
                c => {
                    let q = quote(&c.to_string());
                    format!("'{}'", &q[1..q.len() - 1])
                }
            };
            return Some(pad(quoted, spec, false));
        }
        'U' => {
            let mut text = format!("U+{magnitude:04X}");
            if spec.sharp
                && let Some(c) = u32::try_from(n).ok().and_then(char::from_u32)
            {
                text.push_str(&format!(" '{c}'"));
            }
            return Some(pad(text, spec, false));
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 's' | 't' => return None,
        _ => return None,
    };
    if let Some(precision) = spec.precision {
        if precision == 0 && magnitude == 0 {
            body.clear();
        }
        while body.len() < precision {
            body.insert(0, '0');
        }
    }
    if spec.sharp {
        match verb {
            'x' => body.insert_str(0, "0x"),
            'X' => body.insert_str(0, "0X"),
            'o' if !body.starts_with('0') => body.insert(0, '0'),
            'b' => body.insert_str(0, "0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        body.insert_str(0, "0o");
    }
    let sign = if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let text = format!("{sign}{body}");
    // A precision turns zero padding off for integers, as in Go.
    let mut spec = spec.clone();
    if spec.precision.is_some() {
        spec.zero = false;
    }
    if spec.zero
        && spec.width.is_some()
        && !spec.minus
        && (spec.sharp && matches!(verb, 'x' | 'X' | 'b'))
    {
        // Go pads after the sign only; the 0x prefix counts in the width.
        return Some(pad(text, &spec, true));
    }
    Some(pad(text, &spec, true))
}

/// The shortest digits and decimal exponent of `f` (`f = 0.d1d2… × 10^exp`).
fn shortest_digits(f: f64) -> (String, i32) {
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// `%e` text with `precision` digits after the point, Go's exponent form.
fn exp_form(f: f64, precision: Option<usize>, upper: bool) -> String {
    let text = match precision {
        Some(p) => format!("{:.*e}", p, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exp.unsigned_abs())
}

/// strconv's `%g`: the shortest digits (or `precision` significant ones,
/// trailing zeros dropped), in exponent form when the exponent is below -4
/// or at least the precision (6 for the shortest form).
fn general_form(f: f64, precision: Option<usize>, upper: bool) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    let (digits, point) = match precision {
        None => shortest_digits(f),
        Some(p) => {
            let p = p.max(1);
            let text = format!("{:.*e}", p - 1, f.abs());
            let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
            let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            while digits.len() > 1 && digits.ends_with('0') {
                digits.pop();
            }
            (digits, exp.parse::<i32>().unwrap_or(0) + 1)
        }
    };
    let count = digits.len() as i32;
    let eprec = match precision {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > count && count >= point {
                count
            } else {
                p
            }
        }
    };
    let exp = point - 1;
    if exp < -4 || exp >= eprec {
        let mut mantissa = digits[..1].to_owned();
        if digits.len() > 1 {
            mantissa.push('.');
            mantissa.push_str(&digits[1..]);
        }
        let e = if upper { 'E' } else { 'e' };
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}{e}{sign}{:02}", exp.unsigned_abs());
    }
    if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    }
}

fn format_float(f: f64, verb: char, spec: &Spec) -> Option<String> {
    let body = if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        "Inf".to_owned()
    } else {
        match verb {
            'v' | 'g' | 'G' => general_form(f, spec.precision, verb == 'G'),
            'e' | 'E' => exp_form(f, Some(spec.precision.unwrap_or(6)), verb == 'E'),
            'f' | 'F' => format!("{:.*}", spec.precision.unwrap_or(6), f.abs()),
            _ => return None,
        }
    };
    let negative = f.is_sign_negative() && !f.is_nan();
    let sign = if negative {
        "-"
    } else if f.is_infinite() && !spec.space {
        // Go keeps +Inf's sign: fmt.Sprint(math.Inf(1)) is "+Inf".
        "+"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let mut spec = spec.clone();
    if !f.is_finite() {
        spec.zero = false;
    }
    Some(pad(format!("{sign}{body}"), &spec, true))
}

fn format_str(s: &str, verb: char, spec: &Spec) -> Option<String> {
    let truncated = |s: &str| match spec.precision {
        Some(p) => s.chars().take(p).collect::<String>(),
        None => s.to_owned(),
    };
    let text = match verb {
        'v' | 's' => truncated(s),
        'q' => {
            let s = truncated(s);
            if spec.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || !c.is_control()) {
                format!("`{s}`")
            } else if spec.plus {
                ascii_quote(&s)
            } else {
                quote(&s)
            }
        }
        'x' | 'X' => {
            let bytes = match spec.precision {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut out = String::new();
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    out.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    out.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(out, "{b:02x}");
                } else {
                    let _ = write!(out, "{b:02X}");
                }
            }
            out
        }
        _ => return None,
    };
    Some(pad(text, spec, false))
}

/// `strconv.QuoteToASCII`.
fn ascii_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c.is_ascii() {
            let q = quote(&c.to_string());
            out.push_str(&q[1..q.len() - 1]);
        } else if (c as u32) < 0x10000 {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::value::{Elem, STRINGS};
    use std::collections::BTreeMap;

    fn s(text: &'static str) -> Value<'static> {
        Value::str(text)
    }

    #[test]
    fn print_follows_go() {
        assert_eq!(print(&Value::NoValue), "<no value>");
        assert_eq!(print(&Value::Nil), "<nil>");
        assert_eq!(print(&Value::Float(1e6)), "1e+06");
        assert_eq!(print(&Value::Float(123456.0)), "123456");
        assert_eq!(print(&Value::Float(3.5)), "3.5");
        assert_eq!(print(&Value::Float(0.00001)), "1e-05");
        assert_eq!(print(&Value::Float(1e20)), "1e+20");
        assert_eq!(print(&Value::Float(0.0001)), "0.0001");
        assert_eq!(print(&Value::Float(-2.5)), "-2.5");
        assert_eq!(print(&Value::Float(12345678.0)), "1.2345678e+07");
        assert_eq!(print(&Value::list(vec![s("a"), Value::Int(1)])), "[a 1]");
        let map = Value::map(
            Elem::Any,
            BTreeMap::from([("b".to_owned(), Value::Int(2)), ("a".to_owned(), s("x"))]),
        );
        assert_eq!(print(&map), "map[a:x b:2]");
    }

    #[test]
    fn sprint_spaces_only_between_non_strings() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(1), s("b")]), "a1b");
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }

    #[test]
    fn printf_verbs_flags_and_errors() {
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "%d|%5d|%-5d|%05d",
                vec![
                    Value::Int(42),
                    Value::Int(42),
                    Value::Int(42),
                    Value::Int(-42),
                ],
                "42|   42|42   |-0042",
            ),
            (
                "%x %X %o %b %#x",
                vec![
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5),
                    Value::Int(255),
                ],
                "ff FF 10 101 0xff",
            ),
            (
                "%s|%10s|%-4s|%.2s",
                vec![s("abc"), s("abc"), s("ab"), s("abc")],
                "abc|       abc|ab  |ab",
            ),
            (
                "%q %v %t",
                vec![s("a\"b"), Value::Bool(true), Value::Bool(false)],
                "\"a\\\"b\" true false",
            ),
            (
                "%5.2f %e %g %.3g",
                vec![
                    Value::Float(2.45678),
                    Value::Float(1234.5678),
                    Value::Float(0.000012),
                    Value::Float(1234.5678),
                ],
                " 2.46 1.234568e+03 1.2e-05 1.23e+03",
            ),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%d %d", vec![Value::Int(1)], "1 %!d(MISSING)"),
            ("%d", vec![Value::Int(1), s("x")], "1%!(EXTRA string=x)"),
            ("%z", vec![Value::Int(3)], "%!z(int=3)"),
            ("100%%", vec![], "100%"),
            ("%s", vec![Value::NoValue], "%!s(<nil>)"),
            ("%v", vec![Value::Nil], "<nil>"),
            ("%T %T", vec![Value::Int(1), s("a")], "int string"),
            ("%c%U", vec![Value::Int(65), Value::Int(65)], "AU+0041"),
            ("%x", vec![s("hi")], "6869"),
            ("%s", vec![Value::list(vec![s("a"), s("b")])], "[a b]"),
            (
                "%q",
                vec![Value::list(vec![s("a"), s("b")])],
                "[\"a\" \"b\"]",
            ),
            (
                "%+d %+.1f",
                vec![Value::Int(3), Value::Float(2.0)],
                "+3 +2.0",
            ),
            ("%*d", vec![Value::Int(4), Value::Int(7)], "   7"),
            ("%+v|%#v", vec![Value::Int(3), Value::Int(3)], "3|3"),
            (
                "%#v|%#v|%#v|%#v",
                vec![
                    s("a\"b"),
                    Value::Float(1.0),
                    Value::Uint(7),
                    Value::typed_list(STRINGS, vec![s("a"), s("b")]),
                ],
                "\"a\\\"b\"|1|0x7|[]string{\"a\", \"b\"}",
            ),
            (
                "%#v|%v|%T|%#v",
                vec![
                    Value::nil_list(STRINGS),
                    Value::nil_list(STRINGS),
                    Value::typed_list(STRINGS, vec![]),
                    Value::typed_list(STRINGS, vec![]),
                ],
                "[]string(nil)|[]|[]string|[]string{}",
            ),
            (
                "%#v",
                vec![Value::list(vec![Value::Int(1), Value::Nil])],
                "[]interface {}{1, interface {}(nil)}",
            ),
            ("%", vec![], "%!(NOVERB)"),
            (
                "%[3]d|%[0]d|%[x]d|%[1]5d|%[1d|%[2]d %d",
                vec![Value::Int(1), Value::Int(2)],
                "%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX)|%!d(BADINDEX) 1",
            ),
            (
                "%[1d %d",
                vec![Value::Int(1), Value::Int(2)],
                "%!d(BADINDEX) 1",
            ),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }
}
