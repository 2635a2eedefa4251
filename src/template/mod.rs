//! Templates: parsing, the functions they call, and rendering a
//! [`Snapshot`] into text plus a [`record`] of the dependencies the render
//! used and the ones whose data is still missing. Rendering is pure: no I/O,
//! no network; reading the source file is the caller's job.
//!
//! This module is engine-neutral: what a render looks up is Consul's
//! [`Data`](crate::consul::Data), recorded in one place, and each engine
//! converts it to its own values in its own module.

mod record;
mod snapshot;
mod tera;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub use snapshot::Snapshot;

use crate::consul::Dependency;

/// A parsed template, in the engine its source is written for.
pub struct Template {
    name: String,
    engine: Parsed,
}

enum Parsed {
    Tera(tera::TeraTemplate),
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
        TemplateError {
            location: format!("{name}:{line}:{column}"),
            message,
            excerpt: Some(format!(
                "{pad} |\n{gutter} | {line_text}\n{pad} | {indent}{}",
                "^".repeat(width.max(1))
            )),
        }
    }
}

impl Template {
    /// Parses `source`; `name` (usually the file's path) is how errors and
    /// logs refer to it.
    pub fn parse(name: &str, source: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            name: name.to_owned(),
            engine: Parsed::Tera(tera::TeraTemplate::parse(name, source)?),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders against `snapshot`.
    pub fn render(&self, snapshot: &Arc<Snapshot>) -> Result<Rendered, TemplateError> {
        match &self.engine {
            Parsed::Tera(template) => template.render(snapshot),
        }
    }
}
