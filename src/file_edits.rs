//! Notices edits of files (template sources, files templates read with
//! `file`) and says which one changed. The `notify` crate (inotify on
//! Linux) watches the directories holding the files rather than the files,
//! because editors and config management replace a file by renaming a new
//! one over it, which a watch on the old inode would never see.
//!
//! Only the two events that finish an edit count: a file closed after
//! writing, and a file renamed into the directory. A file being created or
//! written to is not an edit yet: reading it then could render a half-written
//! template. Other files in the directories (a log next to the templates, an
//! editor's swap file) are dropped on notify's thread. That thread wakes for
//! every open, write and close in the watched directories, as notify asks
//! the kernel for all of them; the owner is woken only for its files.
//!
//! If watching is impossible (inotify limits, missing directory) the owner
//! carries on without it, with the fallback its `unwatched` hint names.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The watcher and the edited sources it reports.
pub struct FileEdits {
    /// Watching stops when this is dropped; `None` if it could not start.
    _watcher: Option<RecommendedWatcher>,
    /// Edited files (absolute), sent from notify's thread. Closed if
    /// the watcher could not start.
    reported: UnboundedReceiver<PathBuf>,
    /// Edited files taken from `reported` and not handed out yet.
    edited: VecDeque<PathBuf>,
}

impl FileEdits {
    /// Watches the directories of `sources`; events for other files in
    /// them are ignored. `unwatched` says, in a warning, what stands in
    /// when a directory cannot be watched.
    pub fn watch(sources: &[PathBuf], unwatched: &'static str) -> FileEdits {
        let wanted: BTreeSet<PathBuf> = sources.iter().map(|p| absolute(p)).collect();
        let dirs: BTreeSet<PathBuf> = wanted
            .iter()
            .filter_map(|p| p.parent())
            .map(Path::to_path_buf)
            .collect();
        let (sender, reported) = unbounded_channel();
        let watcher = match notify::recommended_watcher(move |event| {
            report(&wanted, &sender, event);
        }) {
            Ok(mut watcher) => {
                for dir in &dirs {
                    if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), "cannot watch for edits ({error}); {unwatched}");
                    }
                }
                Some(watcher)
            }
            Err(error) => {
                tracing::warn!("cannot watch for edits ({error}); {unwatched}");
                None
            }
        };
        FileEdits {
            _watcher: watcher,
            reported,
            edited: VecDeque::new(),
        }
    }

    /// The next edited file (absolute path). Never returns if
    /// nothing is watched. Cancel-safe.
    pub async fn next(&mut self) -> PathBuf {
        if let Some(path) = self.edited.pop_front() {
            return path;
        }
        let Some(first) = self.reported.recv().await else {
            return std::future::pending().await;
        };
        // What is already queued belongs to the same burst: each file once.
        while let Ok(path) = self.reported.try_recv() {
            if path != first && !self.edited.contains(&path) {
                self.edited.push_back(path);
            }
        }
        first
    }
}

/// Runs on notify's thread: sends the wanted files an event says were
/// edited. The send fails only once the `FileEdits` is gone.
fn report(
    wanted: &BTreeSet<PathBuf>,
    sender: &UnboundedSender<PathBuf>,
    event: notify::Result<Event>,
) {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!("watching for edits: {error}");
            return;
        }
    };
    let paths: Vec<&PathBuf> = if event.need_rescan() {
        // The kernel's queue overflowed and events were lost: any
        // file may have been edited.
        wanted.iter().collect()
    } else if edit_finished(&event.kind) {
        event.paths.iter().filter(|p| wanted.contains(*p)).collect()
    } else {
        Vec::new()
    };
    for path in paths {
        let _ = sender.send(path.clone());
    }
}

/// Whether an event of this kind ends an edit of the file it names.
/// `Create` and `Modify(Data)` come while the file is still being written;
/// the close after writing follows them. `Name(Both)` and `Name(From)`
/// also name the file a rename took away.
fn edit_finished(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To))
    )
}

/// What a poll compares to notice an edit that no event reported: the
/// file's identity (device, inode), size, and modification and status-change
/// times to the nanosecond. The change time moves with every write and
/// rename, so two same-length writes within one mtime tick (a rotated
/// token) still differ. `None` if it cannot be read.
pub fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp([
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ]))
}

/// See [`stamp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp([u64; 7]);

/// `path` made absolute against the current directory (events carry
/// absolute paths).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    async fn next_edit(files: &mut FileEdits, what: &str) -> PathBuf {
        tokio::time::timeout(Duration::from_secs(10), files.next())
            .await
            .unwrap_or_else(|_| panic!("{what} is reported"))
    }

    /// Reports that arrived and were not handed out.
    fn queued(files: &mut FileEdits) -> Vec<PathBuf> {
        let mut queued: Vec<PathBuf> = files.edited.drain(..).collect();
        while let Ok(path) = files.reported.try_recv() {
            queued.push(path);
        }
        queued
    }

    #[tokio::test]
    async fn an_edit_of_a_template_is_reported_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("t.tera");
        std::fs::write(&template, "a").unwrap();
        let mut files = FileEdits::watch(std::slice::from_ref(&template), "test");
        // Noise first: another file written and renamed, the template's
        // own temp file written. Events come in order, so the report of
        // the rename below comes after any report of the noise.
        std::fs::write(dir.path().join("other.log"), "x").unwrap();
        std::fs::rename(dir.path().join("other.log"), dir.path().join("other.log.1")).unwrap();
        std::fs::write(dir.path().join("t.tera.swp"), "x").unwrap();
        let replacement = dir.path().join(".t.tera.new");
        std::fs::write(&replacement, "b").unwrap();
        std::fs::rename(&replacement, &template).unwrap();
        let edited = next_edit(&mut files, "the rename over the template").await;
        assert_eq!(edited, absolute(&template));
        assert_eq!(queued(&mut files), Vec::<PathBuf>::new());
        std::fs::write(&template, "c").unwrap();
        let edited = next_edit(&mut files, "a write in place").await;
        assert_eq!(edited, absolute(&template));
    }

    #[tokio::test]
    async fn a_template_still_being_written_is_reported_once_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.tera"), dir.path().join("b.tera"));
        std::fs::write(&second, "b").unwrap();
        let mut files = FileEdits::watch(&[first.clone(), second.clone()], "test");
        // Created and half written, still open.
        let mut writing = std::fs::File::create(&first).unwrap();
        writing.write_all(b"half").unwrap();
        writing.flush().unwrap();
        // Barrier: a later edit is reported, and nothing before it was.
        std::fs::write(&second, "b2").unwrap();
        assert_eq!(
            next_edit(&mut files, "the barrier").await,
            absolute(&second)
        );
        assert_eq!(queued(&mut files), Vec::<PathBuf>::new());
        writing.write_all(b" and the rest").unwrap();
        drop(writing);
        assert_eq!(next_edit(&mut files, "the close").await, absolute(&first));
    }
}
