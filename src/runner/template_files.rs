//! Notices edits of template source files (inotify through `notify`) and
//! tells the runner which one changed. Directories are watched rather than
//! files, because editors and config management replace a file by renaming
//! a new one over it, which a watch on the old inode would never see.
//!
//! If watching is impossible (inotify limits, missing directory) the runner
//! carries on without it: SIGHUP still re-reads every template.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the watches alive; dropping it stops them.
pub struct TemplateFiles {
    _watcher: Option<notify::RecommendedWatcher>,
    changed: mpsc::Receiver<PathBuf>,
}

impl TemplateFiles {
    /// Watches the directories of `sources`; events for other files in
    /// them are ignored.
    pub fn watch(sources: &[PathBuf]) -> TemplateFiles {
        // Bounded: a burst of events only needs to say "look again".
        let (tx, changed) = mpsc::channel(64);
        let wanted: BTreeSet<PathBuf> = sources.iter().map(|p| absolute(p)).collect();
        let callback = {
            let wanted = wanted.clone();
            move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
                    return;
                }
                for path in event.paths.into_iter().filter(|p| wanted.contains(p)) {
                    // A full channel already holds a wake-up: dropping is fine.
                    let _ = tx.try_send(path);
                }
            }
        };
        let watcher = match notify::recommended_watcher(callback) {
            Ok(mut watcher) => {
                let dirs: BTreeSet<&Path> = wanted.iter().filter_map(|p| p.parent()).collect();
                for dir in dirs {
                    if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), "cannot watch for template edits ({error}); send SIGHUP after editing");
                    }
                }
                Some(watcher)
            }
            Err(error) => {
                tracing::warn!(
                    "cannot watch for template edits ({error}); send SIGHUP after editing"
                );
                None
            }
        };
        TemplateFiles {
            _watcher: watcher,
            changed,
        }
    }

    /// The next edited template source (absolute path).
    pub async fn next(&mut self) -> Option<PathBuf> {
        self.changed.recv().await
    }
}

/// `path` made absolute against the current directory (events carry
/// absolute paths).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
