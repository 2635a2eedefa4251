//! Go's `regexp` on the regex crate. Both speak RE2 syntax, but where Go's
//! meaning differs the pattern is rewritten before it is compiled:
//!
//! - `\d`, `\w`, `\s` and `\b` (and their negations) are ASCII-only in Go
//!   and Unicode-aware in the regex crate, so `\d` becomes `[0-9]`, `\s`
//!   `[\t\n\f\r ]` (Go's four spaces and the blank), `\b` an ASCII word
//!   boundary, inside character classes too;
//! - `\Q…\E` quotes a literal in Go and is unknown to the regex crate, so
//!   its text is escaped instead.
//!
//! Everything else (classes such as `\pL` and `[[:alpha:]]`, flags,
//! repetition, `$1`/`${name}` in replacements) already means the same.

/// `regexp.Compile`; a failure names the pattern as written.
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&rewrite(pattern)).map_err(|e| {
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or_default().trim().to_owned();
        format!(
            "error parsing regexp: {}: `{pattern}`",
            last.trim_start_matches("error: ")
        )
    })
}

/// Go's ASCII Perl classes, as the regex crate writes them outside a
/// class and (the part between the brackets) inside one.
fn perl_class(letter: char) -> Option<(&'static str, &'static str)> {
    Some(match letter {
        'd' => ("[0-9]", "0-9"),
        'D' => ("[^0-9]", "[^0-9]"),
        'w' => ("[0-9A-Za-z_]", "0-9A-Za-z_"),
        'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
        's' => ("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r "),
        'S' => ("[^\\t\\n\\f\\r ]", "[^\\t\\n\\f\\r ]"),
        _ => return None,
    })
}

/// The pattern with Go's meanings spelled out for the regex crate.
fn rewrite(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Inside `[...]`: how many brackets are open (nested classes count).
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match (next, perl_class(next)) {
                    (_, Some((outside, inside))) => {
                        out.push_str(if class_depth == 0 { outside } else { inside });
                    }
                    ('b' | 'B', None) if class_depth == 0 => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    ('Q', None) if class_depth == 0 => {
                        let mut literal = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(q);
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' => {
                out.push('[');
                if class_depth > 0 && chars.peek() == Some(&':') {
                    // A POSIX class such as `[:alpha:]`: copied to its `]`.
                    for p in chars.by_ref() {
                        out.push(p);
                        if p == ']' {
                            break;
                        }
                    }
                    continue;
                }
                class_depth += 1;
                if chars.peek() == Some(&'^') {
                    out.extend(chars.next());
                }
                // A `]` first in a class is a literal one.
                if chars.peek() == Some(&']') {
                    out.extend(chars.next());
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_and_boundaries_are_ascii_as_in_go() {
        let matches = |pattern: &str, text: &str| compile(pattern).unwrap().is_match(text);
        assert!(!matches(r"^\d+$", "٣"));
        assert!(matches(r"^\d+$", "42"));
        assert!(!matches(r"^\w+$", "é"));
        assert!(!matches(r"^\s$", "\u{a0}"));
        assert!(matches(r"^\s$", "\t"));
        assert!(!matches(r"^\s$", "\u{b}"), "Go's \\s has no vertical tab");
        assert!(!matches(r"[\d]", "٣"));
        assert!(matches(r"^[\D]$", "٣"));
        assert!(matches(r"^[^\d\s]+$", "ab"));
        assert!(matches(r"^[]a]+$", "]a"));
        assert!(matches(r"^[[:alpha:]\d]+$", "a1"));
        assert!(matches(r"^\pL$", "é"));
        let boundaries: Vec<usize> = compile(r"\b")
            .unwrap()
            .find_iter("é a")
            .map(|m| m.start())
            .collect();
        assert_eq!(boundaries, [3, 4], "no ASCII word boundary around é");
    }

    #[test]
    fn quoted_literals_and_errors() {
        let re = compile(r"\Qa.b*\E+").unwrap();
        assert!(re.is_match("a.b*b*"));
        assert!(!re.is_match("axb"));
        assert!(
            compile(r"\Qunterminated.")
                .unwrap()
                .is_match("unterminated.")
        );
        assert_eq!(rewrite(r"a\\d"), r"a\\d", "an escaped backslash stays");
        let error = compile("(").unwrap_err();
        assert!(error.starts_with("error parsing regexp: "), "{error}");
        assert!(error.ends_with(": `(`"), "{error}");
    }
}
