//! The variable-name patterns of `exec.env`'s `allowlist` and `denylist`
//! (and their old names `whitelist` and `blacklist`). consul-template
//! matches each environment variable's name with Go's `path/filepath.Match`,
//! so this module is a port of it (Unix flavour, separator `/`): `*` is any
//! run of characters but `/`, `?` one character but `/`, `[...]` a class with
//! `^` for negation and `lo-hi` ranges, and `\` escapes the next character,
//! in or out of a class.
//!
//! It owns the pattern language only; which variables a child gets is the
//! caller's business.
//!
//! Not the `glob` crate: the same text means something else to it. It reads a
//! leading `!` in a class as negation where Go reads a literal `!`, has no `\`
//! escapes (so `[a\]]` or `[a\-z]` cannot be said the Go way), and refuses a
//! `**` that is not a whole path component, where Go reads `A**` as `A*`.
//!
//! One deliberate difference: consul-template ignores `Match`'s error, so a
//! malformed pattern there silently matches nothing (Go only reports the
//! error when a match reaches the bad part, and a match never succeeds
//! without reading the whole pattern). Here a malformed pattern is refused
//! when it is read, which loses no match consul-template would have made.

use std::str::FromStr;

/// Go's `filepath.Separator` on Unix: no wildcard matches it.
const SEPARATOR: u8 = b'/';

const NOT_CLOSED: BadPattern = BadPattern("a character class is not closed");
const ENDS_IN_ESCAPE: BadPattern = BadPattern("it ends in an escape");
const EMPTY_CLASS: BadPattern =
    BadPattern("an empty character class (a `]` that starts one needs a `\\`)");
const NO_RANGE_START: BadPattern =
    BadPattern("a range has no start (a literal `-` in a class needs a `\\`)");
const NO_RANGE_END: BadPattern =
    BadPattern("a range has no end (a literal `-` in a class needs a `\\`)");

/// A variable-name pattern of `exec.env`'s lists, as Go's `filepath.Match` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPattern(String);

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPattern(pub &'static str);

impl FromStr for EnvPattern {
    type Err = BadPattern;

    /// Refuses any pattern in which Go's `Match` could report
    /// `ErrBadPattern`, wherever the bad part is.
    fn from_str(pattern: &str) -> Result<Self, BadPattern> {
        validate(pattern)?;
        Ok(Self(pattern.to_owned()))
    }
}

impl EnvPattern {
    /// Whether all of `name` matches, as `filepath.Match(pattern, name)`.
    pub fn matches(&self, name: &str) -> bool {
        // `from_str` refused every pattern with a syntax error, the only
        // error Go's `Match` has, so nothing is lost by dropping it.
        go_match(&self.0, name.as_bytes()).unwrap_or(false)
    }
}

/// Checks the syntax of every chunk, not only those a match would reach.
fn validate(mut pattern: &str) -> Result<(), BadPattern> {
    while !pattern.is_empty() {
        let (_, chunk, rest) = scan_chunk(pattern);
        // Against an empty name the match fails at once, and from then on
        // `match_chunk` only checks the chunk's syntax, to its end.
        match_chunk(chunk, b"")?;
        pattern = rest;
    }
    Ok(())
}

/// Go's `Match`. The name is bytes, not `str`, because Go's star skips the
/// name a byte at a time and may resume inside a multi-byte character.
fn go_match(mut pattern: &str, mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&SEPARATOR));
        }
        // The last chunk must use up the name; otherwise a star before it
        // may still find a match further on.
        if let Some(after) = match_chunk(chunk, name)?
            && (after.is_empty() || !pattern.is_empty())
        {
            name = after;
            continue;
        }
        if star {
            for (i, &byte) in name.iter().enumerate() {
                if byte == SEPARATOR {
                    break;
                }
                if let Some(after) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !after.is_empty() {
                        continue;
                    }
                    name = after;
                    continue 'pattern;
                }
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: splits off a run of stars (reported as `true`) and the
/// star-free chunk after it.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let unstarred = pattern.trim_start_matches('*');
    let star = unstarred.len() < pattern.len();
    let bytes = unstarred.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // A trailing escape is left for `match_chunk` to refuse.
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            // Every byte split at is ASCII, so the split is on a character
            // boundary.
            b'*' if !in_class => return (star, &unstarred[..i], &unstarred[i..]),
            _ => {}
        }
        i += 1;
    }
    (star, unstarred, "")
}

/// Go's `matchChunk`: matches `chunk` against the start of `s` and returns
/// the rest of `s`. After a mismatch it reads on to the chunk's end, checking
/// syntax only.
///
/// Go steps through a literal a byte at a time; here a literal is a whole
/// character, which decides the same since the pattern is valid UTF-8.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a [u8]) -> Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while let Some(c) = chunk.chars().next() {
        failed = failed || s.is_empty();
        match c {
            '[' => {
                let mut r = '\0';
                if !failed {
                    let (decoded, n) = decode_rune(s);
                    r = decoded;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0
                        && let Some(after) = chunk.strip_prefix(']')
                    {
                        chunk = after;
                        break;
                    }
                    let (lo, after) = get_esc(chunk, Bound::Lo)?;
                    chunk = after;
                    let mut hi = lo;
                    if let Some(after) = chunk.strip_prefix('-') {
                        (hi, chunk) = get_esc(after, Bound::Hi)?;
                    }
                    matched = matched || (lo <= r && r <= hi);
                    ranges += 1;
                }
                failed = failed || matched == negated;
            }
            '?' => {
                if !failed {
                    failed = s[0] == SEPARATOR;
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            '\\' => {
                chunk = &chunk[1..];
                let Some(escaped) = chunk.chars().next() else {
                    return Err(ENDS_IN_ESCAPE);
                };
                (chunk, s, failed) = match_literal(escaped, chunk, s, failed);
            }
            _ => (chunk, s, failed) = match_literal(c, chunk, s, failed),
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Matches the literal `c`, which starts `chunk`, against the start of `s`.
fn match_literal<'p, 'a>(
    c: char,
    chunk: &'p str,
    s: &'a [u8],
    failed: bool,
) -> (&'p str, &'a [u8], bool) {
    let chunk = &chunk[c.len_utf8()..];
    if failed {
        return (chunk, s, true);
    }
    let mut buf = [0; 4];
    match s.strip_prefix(c.encode_utf8(&mut buf).as_bytes()) {
        Some(after) => (chunk, after, false),
        None => (chunk, s, true),
    }
}

/// Which end of a range `get_esc` reads, to say what is wrong.
#[derive(Clone, Copy)]
enum Bound {
    Lo,
    Hi,
}

/// Go's `getEsc`: one possibly escaped character of a class, which must not
/// be the class's last.
fn get_esc(chunk: &str, bound: Bound) -> Result<(char, &str), BadPattern> {
    let mut chars = chunk.chars();
    let c = match chars.next() {
        None => return Err(NOT_CLOSED),
        Some('-') => {
            return Err(match bound {
                Bound::Lo => NO_RANGE_START,
                Bound::Hi => NO_RANGE_END,
            });
        }
        // A `]` closes a class only after its first range, so as a low end
        // it means the class is empty.
        Some(']') => {
            return Err(match bound {
                Bound::Lo => EMPTY_CLASS,
                Bound::Hi => NO_RANGE_END,
            });
        }
        Some('\\') => chars.next().ok_or(ENDS_IN_ESCAPE)?,
        Some(c) => c,
    };
    let rest = chars.as_str();
    if rest.is_empty() {
        return Err(NOT_CLOSED);
    }
    Ok((c, rest))
}

/// Go's `utf8.DecodeRune`: a byte that starts no valid character reads as
/// U+FFFD, one byte long.
fn decode_rune(s: &[u8]) -> (char, usize) {
    // A character is at most four bytes; looking no further keeps this
    // constant-time on long names.
    let head = &s[..s.len().min(4)];
    match head.utf8_chunks().next() {
        None => (char::REPLACEMENT_CHARACTER, 0),
        Some(chunk) => match chunk.valid().chars().next() {
            Some(c) => (c, c.len_utf8()),
            None => (char::REPLACEMENT_CHARACTER, 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Go's `filepath.Match` returned.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Go {
        True,
        False,
        Bad,
    }

    /// `filepath.Match(pattern, name)` as printed by go1.26.8 linux/amd64.
    const GO_RESULTS: &[(&str, &str, Go)] = &[
        (r"KEEP_*", "KEEP_", Go::True),
        (r"KEEP_*", "KEEP_A", Go::True),
        (r"KEEP_*", "KEEP", Go::False),
        (r"KEEP_*", "XKEEP_A", Go::False),
        (r"*", "", Go::True),
        (r"*", "PATH", Go::True),
        (r"*", "a/b", Go::False),
        (r"?", "", Go::False),
        (r"?", "A", Go::True),
        (r"?", "AB", Go::False),
        (r"?", "/", Go::False),
        (r"?", "É", Go::True),
        (r"A?C", "ABC", Go::True),
        (r"A?C", "AC", Go::False),
        (r"A?C", "A/C", Go::False),
        (r"A?C", "AÉC", Go::True),
        (r"[!A]X", "!X", Go::True),
        (r"[!A]X", "AX", Go::True),
        (r"[!A]X", "BX", Go::False),
        (r"[\!a]", "!", Go::True),
        (r"[\!a]", "a", Go::True),
        (r"[\!a]", "b", Go::False),
        (r"[a\]]", "a", Go::True),
        (r"[a\]]", "]", Go::True),
        (r"[a\]]", "a]", Go::False),
        (r"[a\-z]", "a", Go::True),
        (r"[a\-z]", "-", Go::True),
        (r"[a\-z]", "z", Go::True),
        (r"[a\-z]", "m", Go::False),
        (r"A**", "A", Go::True),
        (r"A**", "AB", Go::True),
        (r"A**", "A/B", Go::False),
        (r"[^A]X", "AX", Go::False),
        (r"[^A]X", "BX", Go::True),
        (r"[^A]X", "/X", Go::True),
        (r"[a-c]", "a", Go::True),
        (r"[a-c]", "b", Go::True),
        (r"[a-c]", "c", Go::True),
        (r"[a-c]", "d", Go::False),
        (r"[a-c]", "B", Go::False),
        (r"\*", "*", Go::True),
        (r"\*", "a", Go::False),
        (r"\a", "a", Go::True),
        (r"a/b", "a/b", Go::True),
        (r"*", "a/b", Go::False),
        (r"a*", "a/b", Go::False),
        (r"a*b", "a/b", Go::False),
        (r"*/b", "a/b", Go::True),
        (r"É*", "ÉTÉ", Go::True),
        (r"É*", "ETE", Go::False),
        (r"?T?", "ÉTÉ", Go::True),
        (r"[É]TÉ", "ÉTÉ", Go::True),
        (r"[À-Ê]*", "ÉTÉ", Go::True),
        (r"*??", "€", Go::True),
        (r"*???", "€", Go::False),
        (r"*?", "€", Go::True),
        (r"a*b*c", "abc", Go::True),
        (r"a*b*c", "aXbYc", Go::True),
        (r"a*b*c", "aXbY", Go::False),
        (r"*x", "xxx", Go::True),
        (r"[a*]", "*", Go::True),
        (r"[*]x", "*x", Go::True),
        (r"[z-a]", "m", Go::False),
        (r"[^a-c]", "d", Go::True),
        (r"[^a-c]", "b", Go::False),
        (r"[!]", "!", Go::True),
        (r"[]]", "]", Go::Bad),
        (r"[a-b-c]", "a", Go::Bad),
        (r"[-a]", "a", Go::Bad),
        (r"[a-]", "a", Go::Bad),
        (r"[a--]", "a", Go::Bad),
        (r"[]a]", "a", Go::Bad),
        (r"[]a]", "]", Go::Bad),
        (r"[^]]", "a", Go::Bad),
        (r"[", "", Go::Bad),
        (r"[", "a", Go::Bad),
        (r"a\", "a", Go::Bad),
        (r"[a", "a", Go::Bad),
        (r"[x-]", "x", Go::Bad),
        (r"[]", "", Go::Bad),
        (r"[^]", "a", Go::Bad),
        (r"[\", "a", Go::Bad),
        (r"[a\", "a", Go::Bad),
        (r"[a-\", "a", Go::Bad),
        (r"[a-b", "a", Go::Bad),
        (r"x*[", "y", Go::False),
        (r"x*[", "x", Go::Bad),
        (r"a[", "b", Go::Bad),
        (r"[z-a]*[", "a", Go::False),
        (r"\", "", Go::Bad),
        (r"[a-\]]", "]", Go::False),
        (r"[a-\]]", "b", Go::False),
        (r"[\]-a]", "^", Go::True),
        (r"[\-]", "-", Go::True),
    ];

    /// Every pattern Go reports `ErrBadPattern` for on some name, and the
    /// reason it is refused.
    const MALFORMED: &[(&str, BadPattern)] = &[
        ("[]]", EMPTY_CLASS),
        ("[]a]", EMPTY_CLASS),
        ("[^]]", EMPTY_CLASS),
        ("[]", EMPTY_CLASS),
        ("[^]", EMPTY_CLASS),
        ("[a-b-c]", NO_RANGE_START),
        ("[-a]", NO_RANGE_START),
        ("[a-]", NO_RANGE_END),
        ("[x-]", NO_RANGE_END),
        ("[a--]", NO_RANGE_END),
        ("[", NOT_CLOSED),
        ("[a", NOT_CLOSED),
        ("[a-b", NOT_CLOSED),
        ("x*[", NOT_CLOSED),
        ("a[", NOT_CLOSED),
        ("a\\", ENDS_IN_ESCAPE),
        ("\\", ENDS_IN_ESCAPE),
        ("[\\", ENDS_IN_ESCAPE),
        ("[a\\", ENDS_IN_ESCAPE),
        ("[a-\\", ENDS_IN_ESCAPE),
        // Go never reports this one: no name gets past `[z-a]`, so its
        // `Match` never reaches the `[`. It is malformed all the same.
        ("[z-a]*[", NOT_CLOSED),
    ];

    fn reason(pattern: &str) -> Option<&BadPattern> {
        MALFORMED
            .iter()
            .find(|(malformed, _)| *malformed == pattern)
            .map(|(_, reason)| reason)
    }

    #[test]
    fn the_port_returns_what_go_returns_on_every_row() {
        for &(pattern, name, go) in GO_RESULTS {
            let port = match go_match(pattern, name.as_bytes()) {
                Ok(true) => Go::True,
                Ok(false) => Go::False,
                Err(_) => Go::Bad,
            };
            assert_eq!(port, go, "pattern {pattern:?}, name {name:?}");
        }
    }

    #[test]
    fn patterns_go_accepts_parse_and_match_as_in_go() {
        for &(pattern, name, go) in GO_RESULTS {
            if reason(pattern).is_some() {
                continue;
            }
            assert_ne!(go, Go::Bad, "{pattern:?} belongs in MALFORMED");
            let parsed: EnvPattern = pattern.parse().expect(pattern);
            assert_eq!(
                parsed.matches(name),
                go == Go::True,
                "pattern {pattern:?}, name {name:?}"
            );
        }
    }

    #[test]
    fn malformed_patterns_are_refused_when_read() {
        for (pattern, expected) in MALFORMED {
            assert_eq!(
                pattern.parse::<EnvPattern>().as_ref(),
                Err(expected),
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn a_refusal_reads_as_a_reason() {
        let error = "[a-]".parse::<EnvPattern>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "a range has no end (a literal `-` in a class needs a `\\`)"
        );
    }

    #[test]
    fn a_star_may_resume_inside_a_multi_byte_character_as_in_go() {
        // "€" is three bytes; Go's star skips one and `??` reads the other
        // two as one U+FFFD each.
        let pattern: EnvPattern = "*??".parse().unwrap();
        assert!(pattern.matches("€"));
    }
}
