//! Notices edits of template source files and tells the runner which one
//! changed. The kernel (inotify) watches the directories holding the
//! templates rather than the files, because editors and config management
//! replace a file by renaming a new one over it, which a watch on the old
//! inode would never see.
//!
//! Only the two events that finish an edit are asked for: a file closed
//! after writing, and a file renamed into the directory. Writes that do not
//! end an edit (a log appended to next to the templates, an editor's swap
//! file) cost nothing: the kernel does not wake the process for them, and
//! there is no watcher thread.
//!
//! If watching is impossible (inotify limits, missing directory) the runner
//! carries on without it: SIGHUP still re-reads every template.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A file in a watched directory was closed after writing, or renamed into it.
const EDIT_FINISHED: u32 = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO;
/// The fixed part of a `struct inotify_event`; the name follows it.
const EVENT_HEADER: usize = std::mem::size_of::<libc::inotify_event>();

/// The inotify descriptor and what its watches stand for.
pub struct TemplateFiles {
    inotify: Option<AsyncFd<OwnedFd>>,
    /// Watch descriptor → the directory it watches.
    dirs: HashMap<i32, PathBuf>,
    /// The template sources, absolute.
    wanted: BTreeSet<PathBuf>,
    /// Edited sources read from the kernel and not handed out yet.
    edited: VecDeque<PathBuf>,
}

impl TemplateFiles {
    /// Watches the directories of `sources`; events for other files in
    /// them are ignored. Needs a Tokio runtime.
    pub fn watch(sources: &[PathBuf]) -> TemplateFiles {
        let wanted: BTreeSet<PathBuf> = sources.iter().map(|p| absolute(p)).collect();
        let mut files = TemplateFiles {
            inotify: None,
            dirs: HashMap::new(),
            wanted,
            edited: VecDeque::new(),
        };
        match files.start() {
            Ok(inotify) => files.inotify = Some(inotify),
            Err(error) => tracing::warn!(
                "cannot watch for template edits ({error}); send SIGHUP after editing"
            ),
        }
        files
    }

    fn start(&mut self) -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: inotify_init1 takes flags only; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let inotify = unsafe { OwnedFd::from_raw_fd(raw) };
        let dirs: BTreeSet<&Path> = self.wanted.iter().filter_map(|p| p.parent()).collect();
        for dir in dirs {
            match add_watch(&inotify, dir) {
                Ok(watch) => {
                    self.dirs.insert(watch, dir.to_path_buf());
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), "cannot watch for template edits ({error}); send SIGHUP after editing");
                }
            }
        }
        // SAFETY: the AsyncFd owns the descriptor, which stays open and
        // the same until the AsyncFd is dropped.
        unsafe { AsyncFd::register_with_interest(inotify, Interest::READABLE) }.map_err(Into::into)
    }

    /// The next edited template source (absolute path). Never returns if
    /// nothing is watched.
    pub async fn next(&mut self) -> PathBuf {
        loop {
            if let Some(path) = self.edited.pop_front() {
                return path;
            }
            let Some(inotify) = &self.inotify else {
                return std::future::pending().await;
            };
            let mut buffer = [0u8; 4096];
            let read = match inotify.readable().await {
                Ok(mut ready) => match ready.try_io(|fd| read_events(fd.get_ref(), &mut buffer)) {
                    Ok(result) => result,
                    Err(_would_block) => continue,
                },
                Err(error) => Err(error),
            };
            match read {
                Ok(len) => self.note(&buffer[..len]),
                Err(error) => {
                    tracing::warn!(
                        "stopped watching for template edits ({error}); send SIGHUP after editing"
                    );
                    self.inotify = None;
                }
            }
        }
    }

    /// Queues the wanted files named in a buffer of inotify events.
    fn note(&mut self, mut events: &[u8]) {
        while events.len() >= EVENT_HEADER {
            // SAFETY: the kernel writes whole, possibly unaligned, events;
            // `events` holds at least one header's bytes.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(events.as_ptr().cast()) };
            let end = (EVENT_HEADER + event.len as usize).min(events.len());
            let name = &events[EVENT_HEADER..end];
            events = &events[end..];
            if event.mask & EDIT_FINISHED == 0 {
                continue;
            }
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            let Some(dir) = self.dirs.get(&event.wd) else {
                continue;
            };
            let path = dir.join(OsStr::from_bytes(name));
            if self.wanted.contains(&path) && !self.edited.contains(&path) {
                self.edited.push_back(path);
            }
        }
    }
}

fn add_watch(inotify: &OwnedFd, dir: &Path) -> io::Result<i32> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: a valid descriptor and a NUL-terminated path; checked below.
    let watch =
        unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), EDIT_FINISHED) };
    if watch < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(watch)
}

fn read_events(inotify: &OwnedFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads at most `buffer.len()` bytes into `buffer`.
    let n = unsafe {
        libc::read(
            inotify.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `path` made absolute against the current directory (events carry
/// absolute paths).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_edit_of_a_template_is_reported_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("t.tera");
        std::fs::write(&template, "a").unwrap();
        let mut files = TemplateFiles::watch(std::slice::from_ref(&template));
        // Noise first: another file written and renamed, the template's
        // own temp file written.
        std::fs::write(dir.path().join("other.log"), "x").unwrap();
        std::fs::write(dir.path().join("t.tera.swp"), "x").unwrap();
        let replacement = dir.path().join(".t.tera.new");
        std::fs::write(&replacement, "b").unwrap();
        std::fs::rename(&replacement, &template).unwrap();
        let edited = tokio::time::timeout(std::time::Duration::from_secs(10), files.next())
            .await
            .expect("the rename over the template is reported");
        assert_eq!(edited, absolute(&template));
        assert!(files.edited.is_empty(), "{:?}", files.edited);
        std::fs::write(&template, "c").unwrap();
        let edited = tokio::time::timeout(std::time::Duration::from_secs(10), files.next())
            .await
            .expect("a write in place is reported");
        assert_eq!(edited, absolute(&template));
    }
}
