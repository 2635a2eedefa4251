//! Log output: one line per event to stderr, with structured fields, at the
//! level `-log-level` asks for. Secrets never reach it (the token lives in
//! a type that prints as `<redacted>`).

use crate::config::LogLevel;

/// Installs the global subscriber. Harmless to call twice (tests).
pub fn init(level: LogLevel) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::from(level))
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
