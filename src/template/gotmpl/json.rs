//! JSON in and out, as Go's `encoding/json` does it: `toJSON` marshals
//! maps with sorted keys, structs with their Go field names in declaration
//! order, floats in Go's shortest form and (unless asked not to) `<>&`
//! escaped; `parseJSON` reads into `interface{}`, so every number is a
//! `float64` and every object a `map[string]interface{}`, with Go's error
//! texts.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::value::{Elem, Value};

/// `json.Marshal` (or `MarshalIndent(v, "", "  ")` when `pretty`).
pub fn to_json(value: &Value, pretty: bool, escape_html: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut encoder = Encoder {
        out: &mut out,
        pretty,
        escape_html,
        depth: 0,
    };
    encoder.value(value)?;
    Ok(out)
}

struct Encoder<'o> {
    out: &'o mut String,
    pretty: bool,
    escape_html: bool,
    depth: usize,
}

impl Encoder<'_> {
    fn newline(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    fn value(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::NoValue | Value::Nil | Value::NilPtr(_) => self.out.push_str("null"),
            Value::List(list) if list.nil => self.out.push_str("null"),
            Value::Map(map) if map.nil => self.out.push_str("null"),
            Value::StrMap(map) if map.is_nil() => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(self.out, "{u}");
            }
            Value::Float(f) => self.out.push_str(&float(*f)?),
            Value::Str(s) => self.string(s),
            Value::List(_) | Value::Strings(..) => {
                let items = value.elements().unwrap_or_default();
                self.sequence('[', ']', items.len(), |e, i| e.value(&items[i]))?;
            }
            Value::StrMap(_) | Value::Map(_) => {
                // encoding/json writes integer keys as text and sorts
                // every map by its keys' text; string keys come so sorted.
                let mut int_keyed = false;
                let mut entries: Vec<(String, Value)> = value
                    .entries()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| match k {
                        Value::Int(port) => {
                            int_keyed = true;
                            (port.to_string(), v)
                        }
                        other => (other.as_str().unwrap_or_default().to_owned(), v),
                    })
                    .collect();
                if int_keyed {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.sequence('{', '}', entries.len(), |e, i| {
                    let (k, v) = &entries[i];
                    e.string(k);
                    e.out.push(':');
                    if e.pretty {
                        e.out.push(' ');
                    }
                    e.value(v)
                })?;
            }
            Value::Obj(obj) => {
                let fields = obj.field_names();
                self.sequence('{', '}', fields.len(), |e, i| {
                    e.string(fields[i]);
                    e.out.push(':');
                    if e.pretty {
                        e.out.push(' ');
                    }
                    e.value(&obj.field(fields[i]).unwrap_or(Value::Nil))
                })?;
            }
            Value::Chan(_) => return Err("json: unsupported type: <-chan int64".to_owned()),
            Value::Scratch(_) => self.out.push_str("{}"),
        }
        Ok(())
    }

    fn sequence(
        &mut self,
        open: char,
        close: char,
        len: usize,
        mut item: impl FnMut(&mut Self, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        self.out.push(open);
        if len == 0 {
            self.out.push(close);
            return Ok(());
        }
        self.depth += 1;
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            self.newline();
            item(self, i)?;
        }
        self.depth -= 1;
        self.newline();
        self.out.push(close);
        Ok(())
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{2028}' => self.out.push_str("\\u2028"),
                '\u{2029}' => self.out.push_str("\\u2029"),
                '<' | '>' | '&' if self.escape_html => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// A float as Go's encoder writes it: shortest digits, `e` form only
/// below 1e-6 or from 1e21, with a one-digit negative exponent (`1e-7`).
fn float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        let name = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(format!("json: unsupported value: {name}"));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return Ok(format!("{mantissa}e{sign}{:02}", exp.unsigned_abs()).replace("e-0", "e-"));
    }
    // Rust's Display is the shortest round-trip form, without exponent.
    let text = format!("{f}");
    Ok(if text == "-0" { "-0".to_owned() } else { text })
}

/// `json.Unmarshal` into `interface{}`.
pub fn parse_json<'a>(text: &str) -> Result<Value<'a>, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
    };
    parser.space();
    if parser.at >= parser.bytes.len() {
        return Err("unexpected end of JSON input".to_owned());
    }
    let value = parser.value()?;
    parser.space();
    if let Some(&c) = parser.bytes.get(parser.at) {
        return Err(format!(
            "invalid character {} after top-level value",
            quote_char(parser.char_at(c))
        ));
    }
    Ok(value)
}

struct Parser<'t> {
    bytes: &'t [u8],
    text: &'t str,
    at: usize,
}

/// Go's `quoteChar`.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_owned(),
        '"' => "'\"'".to_owned(),
        c if c.is_control() => {
            let q = super::parse::quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
        c => format!("'{c}'"),
    }
}

impl Parser<'_> {
    fn char_at(&self, _byte: u8) -> char {
        self.text[self.at..].chars().next().unwrap_or('\0')
    }

    fn space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn invalid(&self, context: &str) -> String {
        match self.peek() {
            None => "unexpected end of JSON input".to_owned(),
            Some(c) => format!(
                "invalid character {} {context}",
                quote_char(self.char_at(c))
            ),
        }
    }

    fn value<'a>(&mut self) -> Result<Value<'a>, String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::string(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Nil),
            _ => Err(self.invalid("looking for beginning of value")),
        }
    }

    fn literal<'a>(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, String> {
        for expected in word.bytes() {
            match self.peek() {
                Some(c) if c == expected => self.at += 1,
                _ => {
                    let context = format!(
                        "in literal {word} (expecting {})",
                        quote_char(expected as char)
                    );
                    return Err(self.invalid(&context));
                }
            }
        }
        Ok(value)
    }

    fn object<'a>(&mut self) -> Result<Value<'a>, String> {
        self.at += 1;
        let mut entries = BTreeMap::new();
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::map(Elem::Any, entries));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.invalid("looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.space();
            if self.peek() != Some(b':') {
                return Err(self.invalid("after object key"));
            }
            self.at += 1;
            self.space();
            let value = self.value()?;
            entries.insert(key, value);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::map(Elem::Any, entries));
                }
                _ => return Err(self.invalid("after object key:value pair")),
            }
        }
    }

    fn array<'a>(&mut self) -> Result<Value<'a>, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::list(items));
        }
        loop {
            self.space();
            items.push(self.value()?);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::list(items));
                }
                _ => return Err(self.invalid("after array element")),
            }
        }
    }

    fn number<'a>(&mut self) -> Result<Value<'a>, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.at += 1;
                }
            }
            _ => return Err(self.invalid("in numeric literal")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.invalid("after decimal point in numeric literal"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.at += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.invalid("in exponent of numeric literal"));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.at += 1;
            }
        }
        let text = &self.text[start..self.at];
        text.parse::<f64>().map(Value::Float).map_err(|_| {
            format!("json: cannot unmarshal number {text} into Go value of type float64")
        })
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(c) = rest.chars().next() else {
                return Err("unexpected end of JSON input".to_owned());
            };
            match c {
                '"' => {
                    self.at += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.at += 1;
                    let Some(escaped) = self.peek() else {
                        return Err("unexpected end of JSON input".to_owned());
                    };
                    self.at += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&first)
                                && self.text[self.at..].starts_with("\\u")
                            {
                                let mark = self.at;
                                self.at += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    char::from_u32(
                                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00),
                                    )
                                } else {
                                    self.at = mark;
                                    None
                                }
                            } else {
                                char::from_u32(first)
                            };
                            out.push(c.unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.at -= 1;
                            return Err(self.invalid("in string escape code"));
                        }
                    }
                }
                c if (c as u32) < 0x20 => return Err(self.invalid("in string literal")),
                c => {
                    out.push(c);
                    self.at += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            let Some(d) = self.peek().and_then(|c| (c as char).to_digit(16)) else {
                return Err(self.invalid("in \\u hexadecimal character escape"));
            };
            code = code * 16 + d;
            self.at += 1;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::print;

    #[test]
    fn integer_keys_are_written_as_text_and_sorted_as_text() {
        let ports = Value::map(
            Elem::PortGroups,
            [("80", 1), ("443", 2), ("8080", 3)]
                .map(|(k, v)| (k.to_owned(), Value::Int(v)))
                .into(),
        );
        assert_eq!(print(&ports), "map[80:1 443:2 8080:3]");
        assert_eq!(
            to_json(&ports, false, true).unwrap(),
            r#"{"443":2,"80":1,"8080":3}"#
        );
    }

    #[test]
    fn marshals_as_go_does() {
        let parsed = parse_json(r#"{"b":[1,2.5,"x<y&z"],"a":{"n":null,"t":true}}"#).unwrap();
        assert_eq!(
            to_json(&parsed, false, true).unwrap(),
            r#"{"a":{"n":null,"t":true},"b":[1,2.5,"x\u003cy\u0026z"]}"#
        );
        assert_eq!(
            to_json(&parsed, false, false).unwrap(),
            r#"{"a":{"n":null,"t":true},"b":[1,2.5,"x<y&z"]}"#
        );
        assert_eq!(
            to_json(&parsed, true, true).unwrap(),
            "{\n  \"a\": {\n    \"n\": null,\n    \"t\": true\n  },\n  \"b\": [\n    1,\n    2.5,\n    \"x\\u003cy\\u0026z\"\n  ]\n}"
        );
        assert_eq!(to_json(&Value::list(vec![]), true, true).unwrap(), "[]");
        assert_eq!(float(1e21).unwrap(), "1e+21");
        assert_eq!(float(1e20).unwrap(), "100000000000000000000");
        assert_eq!(float(0.0000001).unwrap(), "1e-7");
        assert_eq!(float(0.000001).unwrap(), "0.000001");
        assert_eq!(float(f64::NAN).unwrap_err(), "json: unsupported value: NaN");
        assert_eq!(to_json(&Value::Int(3), false, true).unwrap(), "3");
        assert_eq!(
            to_json(&Value::str("a\n\u{1}"), false, true).unwrap(),
            r#""a\n\u0001""#
        );
    }

    #[test]
    fn parses_numbers_as_floats_and_objects_as_any_maps() {
        let v =
            parse_json(r#" {"port": 8080, "tags": ["a"], "s": "\u00e9\ud83d\ude00"} "#).unwrap();
        assert_eq!(print(&v), "map[port:8080 s:é😀 tags:[a]]");
        assert!(matches!(v.map_get("port"), Some(Some(Value::Float(f))) if f == 8080.0));
        assert!(matches!(v.map_zero(), Value::NoValue));
    }

    #[test]
    fn errors_read_as_go_errors() {
        let cases = [
            ("", "unexpected end of JSON input"),
            ("{", "unexpected end of JSON input"),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            (
                "{1:2}",
                "invalid character '1' looking for beginning of object key string",
            ),
            ("tru", "unexpected end of JSON input"),
            (
                "trux",
                "invalid character 'x' in literal true (expecting 'e')",
            ),
            ("1 2", "invalid character '2' after top-level value"),
            ("01", "invalid character '1' after top-level value"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_json(text).unwrap_err(), want, "{text}");
        }
    }
}
