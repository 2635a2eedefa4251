//! The local files templates read with `file`: each is read once, then
//! again whenever it is edited (through [`FileEdits`]) or, as a fallback
//! for what inotify cannot see (a directory that did not exist yet, a
//! network file system), when a stat every [`POLL`] shows a new size or
//! modification time. A change of its text is reported like a Consul
//! watch reports one.
//!
//! A file that cannot be read (missing, unreadable, larger than
//! [`MAX_FILE_LEN`]) is `Data::File(None)`: the templates reading it wait
//! for it, keeping their last good output, and the reason is logged once
//! per episode. consul-template instead fails the read, retries, and then
//! exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::consul::change::{Event, LastReported};
use crate::consul::{Data, Dependency};
use crate::file_edits::{FileEdits, stamp};

/// How often a file's size and modification time are checked.
pub const POLL: Duration = Duration::from_secs(2);
/// Largest file a template may read: a rendered file is held in memory.
pub const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

/// The data of the file at `path`; why it cannot be read is logged.
pub fn read(path: &str) -> Data {
    load(path, true)
}

fn load(path: &str, warn: bool) -> Data {
    match read_text(Path::new(path)) {
        Ok(text) => Data::File(Some(text)),
        Err(reason) => {
            if warn {
                tracing::warn!(
                    file = path,
                    "cannot read the file; its templates wait: {reason}"
                );
            }
            Data::File(None)
        }
    }
}

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0} bytes is over the limit of {MAX_FILE_LEN}")]
    TooLarge(u64),
}

fn read_text(path: &Path) -> Result<String, ReadError> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_LEN {
        return Err(ReadError::TooLarge(len));
    }
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reports the file's data, then each change of it, until aborted or
/// until the runner is gone.
pub async fn watch(dependency: Dependency, events: mpsc::UnboundedSender<Event>) {
    let Dependency::File { path } = &dependency else {
        return;
    };
    let file = PathBuf::from(path);
    let mut edits = FileEdits::watch(
        std::slice::from_ref(&file),
        "checking it for changes every 2 s",
    );
    let mut last = LastReported::default();
    let mut readable = true;
    loop {
        let last_stamp = stamp(&file);
        // Why it cannot be read is logged when that starts, not every poll.
        let data = load(path, readable);
        readable = matches!(data, Data::File(Some(_)));
        if let Some(news) = last.update(&dependency, data, &[], false, Instant::now())
            && events.send(Event::Changed(news.change)).is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                _ = edits.next() => break,
                () = tokio::time::sleep(POLL) => {
                    if stamp(&file) != last_stamp {
                        break;
                    }
                }
            }
        }
    }
}
