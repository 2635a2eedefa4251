//! consul-template's string, conversion, encoding, JSON and environment
//! helpers (`template/funcs.go`), with its argument order (the subject
//! last, so that `{{ .Name | toUpper }}` and `{{ $s | split "," }}` read
//! left to right) and its error texts.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::super::json::{parse_json, to_json};
use super::super::parse::quote;
use super::super::value::Value;
use super::{Param, Table};

const S: Param = Param::Str;

pub fn register(table: &mut Table) {
    table.add("toLower", &[S], None, |a| {
        Ok(Value::string(text(&a[0]).to_lowercase()))
    });
    table.add("toUpper", &[S], None, |a| {
        Ok(Value::string(text(&a[0]).to_uppercase()))
    });
    table.add("toTitle", &[S], None, |a| {
        Ok(Value::string(title(text(&a[0]))))
    });
    table.add("trimSpace", &[S], None, |a| {
        Ok(Value::string(go_trim_space(text(&a[0]))))
    });
    table.add("trim", &[S, S], None, trim);
    table.add("trimPrefix", &[S, S], None, trim_prefix);
    table.add("trimSuffix", &[S, S], None, trim_suffix);
    table.add("replaceAll", &[S, S, S], None, |a| {
        Ok(Value::string(replace_all(
            text(&a[2]),
            text(&a[0]),
            text(&a[1]),
        )))
    });
    table.add("regexMatch", &[S, S], None, |a| {
        Ok(Value::Bool(regex(text(&a[0]))?.is_match(text(&a[1]))))
    });
    table.add("regexReplaceAll", &[S, S, S], None, |a| {
        let re = regex(text(&a[0]))?;
        Ok(Value::string(
            re.replace_all(text(&a[2]), text(&a[1])).into_owned(),
        ))
    });
    table.add("join", &[S, Param::Strings], None, |a| {
        let items: Vec<String> = a[1]
            .elements()
            .unwrap_or_default()
            .iter()
            .map(|v| text(v).to_owned())
            .collect();
        Ok(Value::string(items.join(text(&a[0]))))
    });
    table.add("split", &[S, S], None, |a| {
        let s = go_trim_space(text(&a[1]));
        if s.is_empty() {
            return Ok(Value::list(Vec::new()));
        }
        Ok(Value::list(
            go_split(s, text(&a[0]))
                .into_iter()
                .map(Value::string)
                .collect(),
        ))
    });
    table.add("splitToMap", &[S, S, S], None, |a| {
        let s = go_trim_space(text(&a[2]));
        let mut map = BTreeMap::new();
        if !s.is_empty() {
            for part in go_split(s, text(&a[0])) {
                if let Some((k, v)) = part.split_once(text(&a[1])) {
                    map.insert(k.to_owned(), Value::string(v));
                }
            }
        }
        Ok(Value::map(false, map))
    });
    table.add("indent", &[Param::Int, S], None, |a| {
        let Value::Int(spaces) = a[0] else {
            unreachable!("checked as int")
        };
        if spaces < 0 {
            return Err("indent value must be a positive integer".to_owned());
        }
        Ok(Value::string(indent(spaces as usize, text(&a[1]))))
    });
    table.add("parseBool", &[S], None, |a| parse_bool(text(&a[0])));
    table.add("parseInt", &[S], None, |a| parse_int(text(&a[0])));
    table.add("parseUint", &[S], None, |a| parse_uint(text(&a[0])));
    table.add("parseFloat", &[S], None, |a| parse_float(text(&a[0])));
    table.add("parseJSON", &[S], None, |a| match text(&a[0]) {
        "" => Ok(Value::map(true, BTreeMap::new())),
        s => parse_json(s),
    });
    table.add("toJSON", &[Param::Any], None, |a| {
        json(&a[0], false, true, "toJSON")
    });
    table.add("toJSONPretty", &[Param::Any], None, |a| {
        json(&a[0], true, true, "toJSONPretty")
    });
    table.add("toUnescapedJSON", &[Param::Any], None, |a| {
        json(&a[0], false, false, "toUnescapedJSON")
    });
    table.add("toUnescapedJSONPretty", &[Param::Any], None, |a| {
        json(&a[0], true, false, "toUnescapedJSONPretty")
    });
    table.add("base64Encode", &[S], None, |a| {
        Ok(Value::string(STANDARD.encode(text(&a[0]))))
    });
    table.add("base64URLEncode", &[S], None, |a| {
        Ok(Value::string(URL_SAFE.encode(text(&a[0]))))
    });
    table.add("base64Decode", &[S], None, |a| {
        decode_base64(text(&a[0]), false).map_err(|e| format!("base64Decode: {e}"))
    });
    table.add("base64URLDecode", &[S], None, |a| {
        decode_base64(text(&a[0]), true).map_err(|e| format!("base64URLDecode: {e}"))
    });
    table.add("env", &[S], None, |a| {
        Ok(Value::string(
            std::env::var(text(&a[0])).unwrap_or_default(),
        ))
    });
    table.add("mustEnv", &[S], None, |a| {
        match std::env::var(text(&a[0])) {
            Ok(v) if !v.is_empty() => Ok(Value::string(v)),
            _ => Err(format!(
                "required environment variable {} is empty",
                text(&a[0])
            )),
        }
    });
    table.add("envOrDefault", &[S, S], None, |a| {
        match std::env::var(text(&a[0])) {
            Ok(v) => Ok(Value::string(v)),
            Err(_) => Ok(a[1].clone()),
        }
    });
}

/// The string of a `Param::Str` argument (checked before the call).
/// `trim CUTSET S` (sprig's `trimAll` too): the cutset's characters off
/// both ends.
pub(super) fn trim<'a>(a: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let cutset: Vec<char> = text(&a[0]).chars().collect();
    Ok(Value::string(text(&a[1]).trim_matches(cutset.as_slice())))
}

/// `trimPrefix PREFIX S` (sprig's too).
pub(super) fn trim_prefix<'a>(a: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let s = text(&a[1]);
    Ok(Value::string(s.strip_prefix(text(&a[0])).unwrap_or(s)))
}

/// `trimSuffix SUFFIX S` (sprig's too).
pub(super) fn trim_suffix<'a>(a: Vec<Value<'a>>) -> Result<Value<'a>, String> {
    let s = text(&a[1]);
    Ok(Value::string(s.strip_suffix(text(&a[0])).unwrap_or(s)))
}

pub(super) fn text<'v>(value: &'v Value) -> &'v str {
    value.as_str().unwrap_or_default()
}

/// `strings.TrimSpace`: Unicode white space at both ends.
pub(super) fn go_trim_space(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

/// `strings.Split`: an empty separator splits into characters.
pub(super) fn go_split<'s>(s: &'s str, sep: &str) -> Vec<&'s str> {
    if sep.is_empty() {
        return s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
    }
    s.split(sep).collect()
}

/// `strings.ReplaceAll`: an empty `from` inserts `to` around every character.
pub(super) fn replace_all(s: &str, from: &str, to: &str) -> String {
    if !from.is_empty() {
        return s.replace(from, to);
    }
    let mut out = String::from(to);
    for c in s.chars() {
        out.push(c);
        out.push_str(to);
    }
    out
}

/// Go's `regexp.Compile` (RE2 syntax, which the regex crate shares).
fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| {
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or_default().trim().to_owned();
        format!(
            "error parsing regexp: {}: `{pattern}`",
            last.trim_start_matches("error: ")
        )
    })
}

/// `cases.Title(language.Und, cases.NoLower)`: the first letter of each
/// word upper-cased, the rest left as it is.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        let word_char = c.is_alphanumeric() || c == '_' || (in_word && c == '\'');
        if word_char && !in_word {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        in_word = word_char;
    }
    out
}

fn indent(spaces: usize, s: &str) -> String {
    let prefix = " ".repeat(spaces);
    let mut out = String::with_capacity(s.len());
    let mut at_line_start = true;
    for c in s.chars() {
        if at_line_start && c != '\n' {
            out.push_str(&prefix);
        }
        out.push(c);
        at_line_start = c == '\n';
    }
    out
}

fn json<'a>(
    value: &Value<'a>,
    pretty: bool,
    escape: bool,
    name: &str,
) -> Result<Value<'a>, String> {
    to_json(value, pretty, escape)
        .map(Value::string)
        .map_err(|e| format!("{name}: {e}"))
}

pub(super) fn decode_base64<'a>(s: &str, url: bool) -> Result<Value<'a>, String> {
    let engine = if url { &URL_SAFE } else { &STANDARD };
    let bytes = engine.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, _)
        | base64::DecodeError::InvalidLastSymbol { offset: at, .. } => {
            format!("illegal base64 data at input byte {at}")
        }
        _ => format!("illegal base64 data at input byte {}", s.len()),
    })?;
    Ok(Value::string(String::from_utf8_lossy(&bytes)))
}

fn syntax_error(func: &str, parse: &str, s: &str, range: bool) -> String {
    let reason = if range {
        "value out of range"
    } else {
        "invalid syntax"
    };
    format!("{func}: strconv.{parse}: parsing {}: {reason}", quote(s))
}

/// `strconv.ParseBool`.
fn parse_bool<'a>(s: &str) -> Result<Value<'a>, String> {
    match s {
        "" => Ok(Value::Bool(false)),
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
        _ => Err(syntax_error("parseBool", "ParseBool", s, false)),
    }
}

/// Digits with an optional sign, as `strconv.ParseInt(s, 10, 64)` accepts.
fn decimal_digits(s: &str, signed: bool) -> bool {
    let body = if signed {
        s.strip_prefix(['+', '-']).unwrap_or(s)
    } else {
        s
    };
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())
}

fn parse_int<'a>(s: &str) -> Result<Value<'a>, String> {
    if s.is_empty() {
        return Ok(Value::Int(0));
    }
    if !decimal_digits(s, true) {
        return Err(syntax_error("parseInt", "ParseInt", s, false));
    }
    s.parse::<i64>()
        .map(Value::Int)
        .map_err(|_| syntax_error("parseInt", "ParseInt", s, true))
}

fn parse_uint<'a>(s: &str) -> Result<Value<'a>, String> {
    if s.is_empty() {
        return Ok(Value::Uint(0));
    }
    if !decimal_digits(s, false) {
        return Err(syntax_error("parseUint", "ParseUint", s, false));
    }
    s.parse::<u64>()
        .map(Value::Uint)
        .map_err(|_| syntax_error("parseUint", "ParseUint", s, true))
}

fn parse_float<'a>(s: &str) -> Result<Value<'a>, String> {
    if s.is_empty() {
        return Ok(Value::Float(0.0));
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let special = matches!(body, "inf" | "infinity" | "nan");
    let plain = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    if !(special || plain) {
        return Err(syntax_error("parseFloat", "ParseFloat", s, false));
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_infinite() && !special => {
            Err(syntax_error("parseFloat", "ParseFloat", s, true))
        }
        Ok(f) => Ok(Value::Float(f)),
        Err(_) => Err(syntax_error("parseFloat", "ParseFloat", s, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::print;

    fn call(name: &str, args: &[&'static str]) -> Result<String, String> {
        let mut table = Table::default();
        register(&mut table);
        let f = table.get(name).expect("registered");
        (f.run)(args.iter().map(|s| Value::str(s)).collect()).map(|v| print(&v))
    }

    #[test]
    fn strings_take_the_subject_last() {
        assert_eq!(call("trimPrefix", &["ab", "abc"]), Ok("c".into()));
        assert_eq!(call("trim", &["-", "--a-"]), Ok("a".into()));
        assert_eq!(
            call("replaceAll", &["a", "b", "banana"]),
            Ok("bbnbnb".into())
        );
        assert_eq!(call("split", &[",", " a,b "]), Ok("[a b]".into()));
        assert_eq!(call("split", &[",", "  "]), Ok("[]".into()));
        assert_eq!(
            call("splitToMap", &[",", "=", "a=1,b=2,c"]),
            Ok("map[a:1 b:2]".into())
        );
        assert_eq!(
            call("toTitle", &["hello wORLD foo_bar it's"]),
            Ok("Hello WORLD Foo_bar It's".into())
        );
        assert_eq!(
            call("regexReplaceAll", &["(\\w+)@(\\w+)", "$2/$1", "me@host"]),
            Ok("host/me".into())
        );
        assert_eq!(call("regexMatch", &["^a.c$", "abc"]), Ok("true".into()));
        assert!(
            call("regexMatch", &["(", "x"])
                .unwrap_err()
                .starts_with("error parsing regexp")
        );
    }

    #[test]
    fn conversions_and_their_errors() {
        assert_eq!(call("parseInt", &["-42"]), Ok("-42".into()));
        assert_eq!(call("parseInt", &[""]), Ok("0".into()));
        assert_eq!(
            call("parseInt", &["4x"]),
            Err("parseInt: strconv.ParseInt: parsing \"4x\": invalid syntax".into())
        );
        assert_eq!(
            call("parseInt", &["99999999999999999999"]),
            Err(
                "parseInt: strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
                    .into()
            )
        );
        assert_eq!(call("parseBool", &["True"]), Ok("true".into()));
        assert!(call("parseBool", &["yes"]).is_err());
        assert_eq!(call("parseFloat", &["1.5e3"]), Ok("1500".into()));
        assert_eq!(call("parseUint", &["7"]), Ok("7".into()));
        assert_eq!(call("base64Encode", &["hi?"]), Ok("aGk/".into()));
        assert_eq!(call("base64URLEncode", &["hi?"]), Ok("aGk_".into()));
        assert_eq!(call("base64Decode", &["aGk/"]), Ok("hi?".into()));
        assert_eq!(
            call("base64Decode", &["a!"]),
            Err("base64Decode: illegal base64 data at input byte 1".into())
        );
        assert_eq!(call("parseJSON", &[""]), Ok("map[]".into()));
        assert_eq!(call("toJSON", &["<a>"]), Ok("\"\\u003ca\\u003e\"".into()));
        assert_eq!(call("toUnescapedJSON", &["<a>"]), Ok("\"<a>\"".into()));
    }

    #[test]
    fn indent_prefixes_every_non_empty_line() {
        let mut table = Table::default();
        register(&mut table);
        let f = table.get("indent").unwrap();
        let out = (f.run)(vec![Value::Int(2), Value::str("a\n\nb")]).unwrap();
        assert_eq!(print(&out), "  a\n\n  b");
        assert!((f.run)(vec![Value::Int(-1), Value::str("a")]).is_err());
    }
}
