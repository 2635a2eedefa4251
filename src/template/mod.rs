//! Templates: parsing, the functions they call, and rendering a
//! [`Snapshot`] into text plus a `record` of the dependencies the render
//! used and the ones whose data is still missing. Rendering is pure: no I/O,
//! no network, except that a [`Sandbox`] resolves the paths `file` is given;
//! reading the source file is the caller's job. [`Options`] carry what
//! consul-template sets per template beyond the syntax: the sandbox, the
//! denied functions and `error_on_missing_key`.
//!
//! This module is engine-neutral: what a render looks up is Consul's
//! [`Data`](crate::consul::Data), recorded in one place, and each engine
//! converts it to its own values in its own module.

mod denylist;
mod gotmpl;
mod record;
mod sandbox;
mod snapshot;
mod tera;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub use denylist::Denylist;
pub use sandbox::Sandbox;
pub use snapshot::Snapshot;

use crate::consul::Dependency;

/// A parsed template, in the engine its source is written for.
pub struct Template {
    name: String,
    engine: Parsed,
}

enum Parsed {
    Tera(Box<tera::TeraTemplate>),
    Go(gotmpl::GoTemplate),
}

/// The dialect a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// consul-render's native dialect, Tera (`*.tera`).
    Tera,
    /// consul-template's Go text/template dialect (everything else).
    Go,
}

impl Engine {
    /// The engine a source file's name implies: `*.tera` is Tera; every
    /// other name (`*.ctmpl`, `*.tmpl`, …) is consul-template's dialect,
    /// so its templates run unchanged.
    pub fn for_path(path: &str) -> Engine {
        if path.ends_with(".tera") {
            Engine::Tera
        } else {
            Engine::Go
        }
    }

    /// `tera` or `go`, as `-template-engine` and the config file spell it.
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "tera" => Some(Engine::Tera),
            "go" => Some(Engine::Go),
            _ => None,
        }
    }
}

/// How to parse one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub engine: Engine,
    /// The action delimiters of the Go dialect, `{{` and `}}` by default.
    pub delimiters: Option<(String, String)>,
}

impl Syntax {
    /// The syntax a source file's name implies.
    pub fn for_path(path: &str) -> Syntax {
        Syntax {
            engine: Engine::for_path(path),
            delimiters: None,
        }
    }
}

/// How one template may run, beyond its syntax: consul-template's
/// `sandbox_path`, `function_denylist` and `error_on_missing_key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The directory `file` may read from; `None` lets it read anywhere.
    pub sandbox: Option<Sandbox>,
    /// The functions whose calls fail.
    pub denylist: Denylist,
    /// Go's `missingkey=error`: a field missing from a map (or read from
    /// no data) fails the render instead of reading as `<no value>`. The
    /// Go dialect's only: Tera always fails a render that prints a missing
    /// key.
    pub error_on_missing_key: bool,
}

/// The result of one render.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    /// Every dependency the render looked up.
    pub used: BTreeSet<Dependency>,
    /// Looked up but without data yet: the text is incomplete and must not
    /// be written.
    pub missing: BTreeSet<Dependency>,
}

/// A template that could not be parsed or rendered, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// `path:line:col` when the error has a position, else the path.
    pub location: String,
    pub message: String,
    /// The offending source line with a caret under the position, if any.
    pub excerpt: Option<String>,
}

impl std::error::Error for TemplateError {}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if let Some(excerpt) = &self.excerpt {
            write!(f, "\n{excerpt}")?;
        }
        Ok(())
    }
}

impl TemplateError {
    /// An error at `line` and `column` (both from 1) of `source`, with
    /// that line shown and `width` carets under the position.
    pub fn at(
        name: &str,
        source: &str,
        line: usize,
        column: usize,
        width: usize,
        message: String,
    ) -> TemplateError {
        TemplateError {
            location: format!("{name}:{line}:{column}"),
            message,
            excerpt: Some(TemplateError::excerpt(source, line, column, width)),
        }
    }

    /// `line` of `source` with `width` carets under `column` (both from 1).
    pub fn excerpt(source: &str, line: usize, column: usize, width: usize) -> String {
        let line_text = source
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default();
        let gutter = line.to_string();
        let pad = " ".repeat(gutter.len());
        let indent: String = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!(
            "{pad} |\n{gutter} | {line_text}\n{pad} | {indent}{}",
            "^".repeat(width.max(1))
        )
    }
}

impl Template {
    /// Parses `source` in the engine its name implies; `name` (usually the
    /// file's path) is how errors and logs refer to it.
    pub fn parse(name: &str, source: &str) -> Result<Template, TemplateError> {
        Template::parse_with(name, source, &Syntax::for_path(name), &Options::default())
    }

    /// Parses `source` in the engine and with the delimiters `syntax` names,
    /// to run as `options` say.
    pub fn parse_with(
        name: &str,
        source: &str,
        syntax: &Syntax,
        options: &Options,
    ) -> Result<Template, TemplateError> {
        let engine = match (syntax.engine, &syntax.delimiters) {
            (Engine::Tera, None) => {
                Parsed::Tera(Box::new(tera::TeraTemplate::parse(name, source, options)?))
            }
            (Engine::Tera, Some(_)) => {
                return Err(TemplateError {
                    location: name.to_owned(),
                    message: "custom delimiters apply to the Go template dialect only; \
                              this template is Tera"
                        .to_owned(),
                    excerpt: None,
                });
            }
            (Engine::Go, delimiters) => {
                let (left, right) = delimiters
                    .as_ref()
                    .map_or(("{{", "}}"), |(l, r)| (l.as_str(), r.as_str()));
                Parsed::Go(gotmpl::GoTemplate::parse(
                    name,
                    source,
                    left,
                    right,
                    options.clone(),
                )?)
            }
        };
        Ok(Template {
            name: name.to_owned(),
            engine,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders against `snapshot`.
    pub fn render(&self, snapshot: &Arc<Snapshot>) -> Result<Rendered, TemplateError> {
        match &self.engine {
            Parsed::Tera(template) => template.render(snapshot),
            Parsed::Go(template) => template.render(snapshot),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::consul::Dependency;

    #[test]
    fn file_outside_the_sandbox_fails_the_render_where_it_is_called_in_either_engine() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            sandbox: Some(Sandbox::new(dir.path().to_owned())),
            ..Options::default()
        };
        let inside = dir.path().join("in.txt").display().to_string();
        let refusal = format!(
            "'/etc/passwd' is outside of sandbox {}",
            dir.path().display()
        );
        // (template name, a call of `file` with `{}` for the path, where a
        // refusal on line 2 is located)
        let engines = [
            ("t.ctmpl", "{{ file \"{}\" }}", "template: t.ctmpl:2:3"),
            ("t.tera", "{{ file(path=\"{}\") }}", "t.tera:2:"),
        ];
        for (name, call, location) in engines {
            let template = |path: &str| {
                let source = format!("ok\n{}", call.replace("{}", path));
                Template::parse_with(name, &source, &Syntax::for_path(name), &options).unwrap()
            };
            let snapshot = Arc::new(Snapshot::default());
            let rendered = template(&inside).render(&snapshot).unwrap();
            let wanted = Dependency::File {
                path: inside.clone(),
            };
            assert_eq!(rendered.missing.into_iter().collect::<Vec<_>>(), [wanted]);
            let error = template("/etc/passwd").render(&snapshot).unwrap_err();
            assert!(error.location.starts_with(location), "{name}: {error}");
            assert!(error.message.ends_with(&refusal), "{name}: {error}");
        }
    }
}
