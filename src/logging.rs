//! Log output: one line per event to stderr, with structured fields, at the
//! level `-log-level` asks for, as text or as one JSON object per line
//! (`-log-format`). Secrets never reach it (the token lives in a type that
//! prints as `<redacted>`).

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. Harmless to call twice (tests).
pub fn init(level: LogLevel, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::from(level))
        .with_target(false)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level, so that `jq .template` reads them.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
