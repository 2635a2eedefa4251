//! Log output: one line per event to stderr, with structured fields, at the
//! level `-log-level` asks for, as text or as one JSON object per line
//! (`-log-format`), and the same lines to a rotating file with `-log-file`
//! (the files themselves are [`crate::log_file`]'s). Secrets never reach it
//! (the token lives in a type that prints as `<redacted>`).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::{LogFileConfig, LogFormat, LogLevel};
use crate::log_file::{LogFile, LogFileError, SharedLogFile};

/// Installs the global subscriber. Harmless to call twice (tests). With a
/// log file, the first file is started here, so that one that cannot be
/// created stops consul-render before it does anything.
pub fn init(
    level: LogLevel,
    format: LogFormat,
    log_file: Option<&LogFileConfig>,
) -> Result<(), LogFileError> {
    let Some(config) = log_file else {
        install(level, format, std::io::stderr);
        return Ok(());
    };
    let file = LogFile::open(config)?;
    let path = file.path().map(|path| path.display().to_string());
    install(level, format, std::io::stderr.and(SharedLogFile::new(file)));
    tracing::debug!(
        file = path.as_deref().unwrap_or_default(),
        rotate_bytes = config.rotate_bytes,
        rotate_duration = ?config.rotate_duration,
        max_files = config.max_files,
        "copying the log to a file"
    );
    Ok(())
}

fn install<W>(level: LogLevel, format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(tracing::Level::from(level))
        .with_target(false)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level, so that `jq .template` reads them.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
