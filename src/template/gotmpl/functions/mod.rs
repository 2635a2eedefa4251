//! The functions a Go-dialect template can call: text/template's builtins
//! and consul-template's, each declared with the Go parameter types its
//! arguments are checked against before it runs.

mod builtins;
mod dicts;
mod digests;
mod go_regex;
mod lists;
mod math;
mod sprig;
mod strings;
mod timestamp;

use std::collections::HashMap;
use std::sync::OnceLock;

use super::value::Value;

/// A parameter's Go type, as text/template checks arguments against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `interface{}`: anything.
    Any,
    /// `string`.
    Str,
    /// `int` (an integer constant or value).
    Int,
    /// `bool`.
    Bool,
    /// `[]string`.
    Strings,
    /// `map[string]interface {}`: sprig's dicts.
    Dict,
    /// `[]interface {}`: what `containsAll` and kin search for.
    List,
    /// `func(*mergo.Config)`: `mergeMap`'s options, which no template
    /// value is but `nil`.
    MergeOption,
}

/// A function of its arguments alone.
pub type Pure = for<'a> fn(Vec<Value<'a>>) -> Result<Value<'a>, String>;

/// One callable function.
pub struct Func {
    pub params: &'static [Param],
    /// The element type of a trailing `...` parameter.
    pub variadic: Option<Param>,
    pub run: Pure,
}

/// Every function a template can call, by name.
#[derive(Default)]
pub struct Table(HashMap<&'static str, Func>);

impl Table {
    pub fn add(
        &mut self,
        name: &'static str,
        params: &'static [Param],
        variadic: Option<Param>,
        run: Pure,
    ) {
        debug_assert!(!self.0.contains_key(name), "{name} is registered twice");
        self.0.insert(
            name,
            Func {
                params,
                variadic,
                run,
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&Func> {
        self.0.get(name)
    }

    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.keys().copied()
    }
}

/// Whether `name` is one of text/template's builtins rather than one of
/// consul-template's functions.
pub fn is_builtin(name: &str) -> bool {
    builtins::NAMES.contains(&name)
}

/// The table of every pure function consul-template and text/template
/// define, built on first use.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table::default();
        builtins::register(&mut table);
        strings::register(&mut table);
        math::register(&mut table);
        lists::register(&mut table);
        sprig::register(&mut table);
        timestamp::register(&mut table);
        digests::register(&mut table);
        dicts::register(&mut table);
        table
    })
}
