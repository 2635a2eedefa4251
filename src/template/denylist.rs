//! consul-template's `function_denylist`: the functions a template may not
//! call, by name or by `*` pattern (`sprig_*`), matched as consul-template
//! matches them (github.com/ryanuber/go-glob).
//!
//! This module owns the patterns and the matching. Each engine decides
//! which of its functions a pattern can reach and what a denied call does
//! (it fails when it runs, with [`DISABLED`], as in consul-template).

/// What a call of a denied function fails with, in consul-template's words.
pub const DISABLED: &str = "function is disabled";

/// The patterns of one template's denied functions; empty denies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist(Vec<String>);

impl Denylist {
    pub fn new(patterns: Vec<String>) -> Denylist {
        Denylist(patterns)
    }

    /// Whether some pattern matches the function `name`.
    pub fn denies(&self, name: &str) -> bool {
        self.0.iter().any(|pattern| glob(pattern, name))
    }
}

/// go-glob's `Glob`: `*` matches any run of characters, everything else
/// itself. An empty pattern matches only the empty name.
fn glob(pattern: &str, subject: &str) -> bool {
    let Some((head, last)) = pattern.rsplit_once('*') else {
        return subject == pattern;
    };
    let mut rest = subject;
    for (i, part) in head.split('*').enumerate() {
        let Some(at) = rest.find(part) else {
            return false;
        };
        // The first part is anchored at the start; after a leading `*` it
        // is empty, and found there.
        if i == 0 && at != 0 {
            return false;
        }
        rest = &rest[at + part.len()..];
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names_and_patterns_as_go_glob_does() {
        let cases = [
            ("env", "env", true),
            ("env", "mustEnv", false),
            ("env", "envOrDefault", false),
            ("*", "anything", true),
            ("*", "", true),
            ("", "", true),
            ("", "env", false),
            ("sprig_*", "sprig_upper", true),
            ("sprig_*", "sprig_", true),
            ("sprig_*", "upper", false),
            ("*Env", "mustEnv", true),
            ("*Env", "env", false),
            ("*env*", "envOrDefault", true),
            ("to*JSON", "toUnescapedJSON", true),
            ("to*JSON", "toJSONPretty", false),
            ("k*y", "key", true),
            ("k*y", "keyExists", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("**", "x", true),
        ];
        for (pattern, name, denied) in cases {
            assert_eq!(glob(pattern, name), denied, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn denies_what_any_pattern_matches() {
        let denylist = Denylist::new(vec!["env".to_owned(), "sprig_*".to_owned()]);
        assert!(denylist.denies("env") && denylist.denies("sprig_trim"));
        assert!(!denylist.denies("key"));
        assert!(!Denylist::default().denies("env"));
    }
}
