//! Seeing a destination file reach given content, promptly: an inotify watch
//! on the directory (the tools replace the file by renaming a temp file over
//! it, or write it in place), and on every event in it a read and a byte
//! comparison. The clock stops when the read that matches returns; an event
//! wakes the bench within microseconds, so the cost of detection is one
//! small file read. Raw libc inotify: no dependency for four system calls.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Every way a file in the directory can get new content.
const EVENTS: u32 = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_MODIFY;

/// An inotify watch on one directory.
pub struct DirWatch {
    fd: OwnedFd,
    dir: PathBuf,
}

/// What [`DirWatch::wait_for`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When the file was first read with the expected content; `None` if
    /// the deadline passed first.
    pub at: Option<Instant>,
    /// Reads that found content that was neither the old content nor the
    /// expected one (partial writes, or a render the bench did not expect).
    pub other_contents: u32,
}

impl DirWatch {
    /// Watches `dir`.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: inotify_init1 takes flags only; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `fd` is an inotify descriptor and `path` a valid C string.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), EVENTS) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirWatch {
            fd,
            dir: dir.to_path_buf(),
        })
    }

    /// Waits until `file` (in the watched directory) holds exactly
    /// `expected`, or `deadline` passes. `old` is the content before the
    /// change, which is not counted as "other".
    pub fn wait_for(&self, file: &Path, old: &str, expected: &str, deadline: Instant) -> Arrival {
        debug_assert_eq!(file.parent(), Some(self.dir.as_path()));
        let mut other_contents = 0;
        let mut last_other: Option<Vec<u8>> = None;
        loop {
            // Drain first, then read: a write after the read leaves an event
            // for the poll below, so none is missed.
            self.drain();
            let content = fs::read(file).ok();
            let now = Instant::now();
            match content {
                Some(c) if c == expected.as_bytes() => {
                    return Arrival {
                        at: Some(now),
                        other_contents,
                    };
                }
                Some(c) if c != old.as_bytes() && last_other.as_ref() != Some(&c) => {
                    other_contents += 1;
                    last_other = Some(c);
                }
                _ => {}
            }
            if now >= deadline {
                return Arrival {
                    at: None,
                    other_contents,
                };
            }
            self.poll(deadline - now);
        }
    }

    /// Waits until `file` holds one of `wanted`, or `deadline` passes;
    /// returns when and which.
    pub fn wait_for_any(
        &self,
        file: &Path,
        wanted: &[&str],
        deadline: Instant,
    ) -> Option<(Instant, usize)> {
        debug_assert_eq!(file.parent(), Some(self.dir.as_path()));
        loop {
            self.drain();
            let content = fs::read(file).ok();
            let now = Instant::now();
            if let Some(which) = content
                .as_ref()
                .and_then(|c| wanted.iter().position(|w| w.as_bytes() == c.as_slice()))
            {
                return Some((now, which));
            }
            if now >= deadline {
                return None;
            }
            self.poll(deadline - now);
        }
    }

    /// Sleeps until an event arrives or `timeout` passes.
    fn poll(&self, timeout: std::time::Duration) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder still waits.
        let ms = libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd; an error or EINTR just means re-check.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Reads and discards every pending event.
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer we own, of the length given.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n <= 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn sees_a_renamed_file_reach_the_expected_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out.conf");
        fs::write(&file, "old").expect("write");
        let watch = DirWatch::new(dir.path()).expect("watch");
        let (tmp, target) = (dir.path().join(".tmp"), file.clone());
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            fs::write(&tmp, "half").expect("write");
            fs::rename(&tmp, &target).expect("rename");
            thread::sleep(Duration::from_millis(30));
            fs::write(&tmp, "new").expect("write");
            fs::rename(&tmp, &target).expect("rename");
        });
        let start = Instant::now();
        let arrival = watch.wait_for(&file, "old", "new", start + Duration::from_secs(5));
        writer.join().expect("writer");
        let at = arrival.at.expect("arrived");
        assert!(at - start >= Duration::from_millis(60));
        assert!(at - start < Duration::from_secs(2));
        assert_eq!(arrival.other_contents, 1);
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("out.conf");
        let watch = DirWatch::new(dir.path()).expect("watch");
        let start = Instant::now();
        let arrival = watch.wait_for(&file, "", "never", start + Duration::from_millis(50));
        assert!(arrival.at.is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
