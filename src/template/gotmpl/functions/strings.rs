//! consul-template's string, conversion, encoding, JSON and environment
//! helpers (`template/funcs.go`), with its argument order (the subject
//! last, so that `{{ .Name | toUpper }}` and `{{ $s | split "," }}` read
//! left to right) and its error texts.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use super::super::json::{parse_json, to_json};
use super::super::parse::quote;
use super::super::value::{Elem, STRINGS, Value};
use super::{Param, Table, go_regex};

const S: Param = Param::Str;

pub fn register(table: &mut Table) {
    table.add("toLower", &[S], None, |a| {
        Ok(Value::string(
            text(&a[0]).chars().map(simple_lower).collect::<String>(),
        ))
    });
    table.add("toUpper", &[S], None, |a| {
        Ok(Value::string(
            text(&a[0]).chars().map(simple_upper).collect::<String>(),
        ))
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
        Ok(Value::Bool(
            go_regex::compile(text(&a[0]))?.is_match(text(&a[1])),
        ))
    });
    table.add("regexReplaceAll", &[S, S, S], None, |a| {
        let re = go_regex::compile(text(&a[0]))?;
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
            return Ok(Value::typed_list(STRINGS, Vec::new()));
        }
        Ok(Value::typed_list(
            STRINGS,
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
        Ok(Value::map(Elem::Str, map))
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
        "" => Ok(Value::map(Elem::Any, BTreeMap::new())),
        // JSON's null is a nil interface{}: no value to the template.
        s => parse_json(s).map(|v| if v.is_nil() { Value::NoValue } else { v }),
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

/// `cases.Title(language.Und, cases.NoLower)`: the first letter of each
/// word upper-cased, the rest left as it is.
/// The Greek letters with a subscript iota whose one-letter upper (and
/// title) case is eight code points on: `ᾀ` → `ᾈ`.
fn iota_subscript_upper(c: char) -> Option<char> {
    match c {
        '\u{1F80}'..='\u{1F87}' | '\u{1F90}'..='\u{1F97}' | '\u{1FA0}'..='\u{1FA7}' => {
            char::from_u32(c as u32 + 8)
        }
        'ᾳ' | 'ῃ' | 'ῳ' => char::from_u32(c as u32 + 9),
        _ => None,
    }
}

/// Go's `unicode.ToUpper`: the one-letter (simple) mapping, so `ß` stays
/// `ß` where Rust's full mapping makes it `SS`.
fn simple_upper(c: char) -> char {
    let mut full = c.to_uppercase();
    match (full.next(), full.next()) {
        (Some(upper), None) => upper,
        _ => iota_subscript_upper(c).unwrap_or(c),
    }
}

/// Go's `unicode.ToLower`, letter by letter: `Σ` is `σ` even at a word's
/// end, and `İ` is `i` (Rust's full mapping adds a combining dot).
fn simple_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// A word's first letter in title case, as `golang.org/x/text/cases`
/// writes it: the digraphs' own title letters (`ǆ` → `ǅ`), and where the
/// upper case is several letters, the first upper and the rest lower
/// (`ß` → `Ss`, `ﬁ` → `Fi`).
fn title_case(c: char, out: &mut String) {
    let digraph = match c {
        'Ǆ' | 'ǅ' | 'ǆ' => Some('ǅ'),
        'Ǉ' | 'ǈ' | 'ǉ' => Some('ǈ'),
        'Ǌ' | 'ǋ' | 'ǌ' => Some('ǋ'),
        'Ǳ' | 'ǲ' | 'ǳ' => Some('ǲ'),
        'ŉ' => {
            out.push_str("ʼN");
            return;
        }
        _ => iota_subscript_upper(c),
    };
    if let Some(title) = digraph {
        out.push(title);
        return;
    }
    let mut upper = c.to_uppercase();
    out.extend(upper.next());
    // Greek keeps a subscript iota in title case (`ᾲ` → `Ὰͅ`).
    let greek = ('\u{1F80}'..='\u{1FFF}').contains(&c);
    out.extend(
        upper
            .flat_map(char::to_lowercase)
            .map(|l| if greek && l == 'ι' { '\u{345}' } else { l }),
    );
}

/// How `golang.org/x/text/cases` groups a letter for finding words: its
/// approximation of Unicode's word-break classes.
#[derive(PartialEq)]
enum WordPart {
    /// Letters, digits, marks, connectors (`_`): never a break.
    Letter,
    /// `'`, `.`, `:` and their kin: inside a word once, a break twice.
    Mid,
    /// Everything else (spaces, `-`, `,`, `/`, ideographs): a break.
    Break,
}

fn word_part(c: char) -> WordPart {
    match c {
        '\'' | '.' | ':' | '·' | '\u{387}' | '\u{55F}' | '\u{5F4}' | '\u{2018}' | '\u{2019}'
        | '\u{2024}' | '\u{2027}' | '\u{FE13}' | '\u{FE52}' | '\u{FE55}' | '\u{FF07}'
        | '\u{FF0E}' | '\u{FF1A}' => WordPart::Mid,
        // Ideographs, kana and the scripts written without spaces are no
        // letters to the word-break rules.
        '\u{0E00}'..='\u{0EFF}'
        | '\u{1000}'..='\u{109F}'
        | '\u{1780}'..='\u{17FF}'
        | '\u{3040}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}' => WordPart::Break,
        '_'
        | '\u{200C}'
        | '\u{200D}'
        | '\u{AD}'
        | '\u{203F}'
        | '\u{2040}'
        | '\u{2054}'
        | '\u{FE33}'
        | '\u{FE34}'
        | '\u{FE4D}'..='\u{FE4F}'
        | '\u{FF3F}' => WordPart::Letter,
        c if c.is_alphanumeric() || is_mark(c) => WordPart::Letter,
        _ => WordPart::Break,
    }
}

/// A combining mark (the common blocks), which extends the letter before it.
fn is_mark(c: char) -> bool {
    matches!(c, '\u{300}'..='\u{36F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// A letter that has case: upper, lower, or one of the title-case letters.
fn is_cased(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase() || simple_upper(c) != c || simple_lower(c) != c
}

/// consul-template's `toTitle`: `cases.Title(language.Und, cases.NoLower)`.
/// A word's first cased letter goes to title case and the rest is left as
/// it is; words break as that package breaks them (`3abc` → `3Abc`,
/// `a.b` → `A.b`, `a,b` → `A,B`).
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut mid_word = false;
    let mut was_mid = false;
    for c in s.chars() {
        let part = word_part(c);
        if was_mid && part == WordPart::Mid {
            mid_word = false;
        }
        if is_cased(c) {
            if mid_word {
                out.push(c);
            } else {
                title_case(c, &mut out);
                mid_word = true;
            }
        } else {
            out.push(c);
            if part == WordPart::Break {
                mid_word = false;
            }
        }
        was_mid = part == WordPart::Mid;
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
    let bytes = go_base64_decode(s.as_bytes(), url)
        .map_err(|at| format!("illegal base64 data at input byte {at}"))?;
    Ok(Value::string(String::from_utf8_lossy(&bytes)))
}

/// Go's `base64.StdEncoding` (or `URLEncoding`) `DecodeString`, whose
/// leniency templates rely on and the base64 crate does not share: `\r`
/// and `\n` anywhere are skipped and the unused bits of a last symbol
/// are ignored; the padding is required. The error is the offset Go's
/// `CorruptInputError` names.
fn go_base64_decode(src: &[u8], url: bool) -> Result<Vec<u8>, usize> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' if !url => Some(62),
        b'/' if !url => Some(63),
        b'-' if url => Some(62),
        b'_' if url => Some(63),
        _ => None,
    };
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    // One quantum of four symbols at a time, as Go's decodeQuantum.
    while si < src.len() {
        let mut quantum = [0u8; 4];
        let mut len = 0;
        while len < 4 {
            let Some(&c) = src.get(si) else {
                // Only newlines after the last quantum: done.
                return if len == 0 { Ok(out) } else { Err(si - len) };
            };
            si += 1;
            if let Some(v) = value(c) {
                quantum[len] = v;
                len += 1;
            } else if newline(c) {
                continue;
            } else if c != b'=' || len < 2 {
                return Err(si - 1);
            } else {
                if len == 2 {
                    // The second `=` of `==`, past any newlines.
                    while src.get(si).copied().is_some_and(newline) {
                        si += 1;
                    }
                    match src.get(si) {
                        None => return Err(src.len()),
                        Some(b'=') => si += 1,
                        Some(_) => return Err(si - 1),
                    }
                }
                while src.get(si).copied().is_some_and(newline) {
                    si += 1;
                }
                if si < src.len() {
                    return Err(si);
                }
                break;
            }
        }
        let bits = quantum
            .iter()
            .fold(0u32, |bits, &v| (bits << 6) | u32::from(v));
        out.extend_from_slice(&bits.to_be_bytes()[1..len]);
    }
    Ok(out)
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
        // Go's case mapping, letter by letter; x/text's title case and words.
        assert_eq!(call("toUpper", &["straße ﬁ ᾳ"]), Ok("STRAßE ﬁ ᾼ".into()));
        assert_eq!(call("toLower", &["İΣΑΣ"]), Ok("iσασ".into()));
        assert_eq!(
            call("toTitle", &["ǆx ßa ﬁx 3abc a.b a,b a..b ᾲx"]),
            Ok("ǅx Ssa Fix 3Abc A.b A,B A..B Ὰͅx".into())
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
        // Go's decoder: newlines skipped, stray last bits ignored, and
        // CorruptInputError's offsets.
        for (input, want) in [
            ("YWJj\nZA==\r\n", Ok("abcd")),
            ("YR==", Ok("a")),
            ("", Ok("")),
            ("YQ", Err(0)),
            ("YWJjZA", Err(4)),
            ("YQ=", Err(3)),
            ("YQ===", Err(4)),
            ("Y===", Err(1)),
            ("YWJj=", Err(4)),
            ("YQ=x", Err(2)),
            ("YQ==YQ==", Err(4)),
            ("Y!", Err(1)),
        ] {
            let got = go_base64_decode(input.as_bytes(), false);
            assert_eq!(got, want.map(|s| s.as_bytes().to_vec()), "{input:?}");
        }
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
