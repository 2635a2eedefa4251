//! `-log-file`: a copy of the log in files that rotate, named, rotated and
//! pruned as consul-template's `log_file` does it, so that log shippers and
//! clean-up jobs written for it keep working. This module owns the files:
//! their names, when a new one starts and which old ones are removed. What
//! goes in them (level, text or JSON) is [`crate::logging`]'s business; it
//! hands this module one finished line at a time.
//!
//! Every file, the one being written included, is `<stem>-<unix
//! nanoseconds><ext>` in the configured directory. A new one is started at
//! each start, and lazily before a line is written once the current one has
//! reached `rotate_bytes` or is `rotate_duration` old.
//!
//! A file that cannot be created at startup is an error for the caller;
//! after that, failures (a full disk, a removed directory) are reported once
//! on stderr and retried on later lines, and never stop the log on stderr.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFileConfig;

/// The name used when `-log-file` is a directory (ends in `/`);
/// consul-template's is `consul-template.log`.
const DEFAULT_FILE_NAME: &str = "consul-render.log";

/// consul-template's extension for a name that has none.
const DEFAULT_EXTENSION: &[u8] = b".log";

/// Why a log file could not be created, pruned or written.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    /// A new file could not be created: its directory is missing or not
    /// writable. At startup this stops consul-render.
    #[error("could not create log file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },

    /// The directory could not be listed to find old files to remove.
    #[error("could not list {dir} for old log files: {source}")]
    List { dir: PathBuf, source: io::Error },

    /// An old file could not be removed.
    #[error("could not remove old log file {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },

    /// A line could not be written to the current file (a full disk).
    #[error("could not write log file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Where the files go and what they are called, from `-log-file`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Naming {
    dir: PathBuf,
    stem: Vec<u8>,
    ext: Vec<u8>,
}

impl Naming {
    /// Splits the path as Go's `filepath.Split` and `filepath.Ext` do: the
    /// extension is everything from the last `.` of the name (so `.log` is
    /// all extension and gives `-<ns>.log`, as in consul-template).
    fn new(path: &Path) -> Naming {
        let (dir, name) = match path.file_name() {
            Some(name) if !path.as_os_str().as_bytes().ends_with(b"/") => {
                let dir = match path.parent() {
                    // A bare file name is in the working directory; `.`
                    // because an empty path cannot be listed.
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                (dir, name.as_bytes())
            }
            // `logs/`, and names that are no file (`..`, `/`), are a
            // directory to put the default name in.
            _ => (path.to_path_buf(), DEFAULT_FILE_NAME.as_bytes()),
        };
        let (stem, ext) = match name.iter().rposition(|&byte| byte == b'.') {
            Some(dot) => (&name[..dot], &name[dot..]),
            None => (name, DEFAULT_EXTENSION),
        };
        Naming {
            dir,
            stem: stem.to_vec(),
            ext: ext.to_vec(),
        }
    }

    /// The file started at `stamp` (unix nanoseconds).
    fn file_for(&self, stamp: u128) -> PathBuf {
        let mut name = self.stem.clone();
        name.push(b'-');
        name.extend_from_slice(stamp.to_string().as_bytes());
        name.extend_from_slice(&self.ext);
        self.dir.join(OsStr::from_bytes(&name))
    }

    /// The timestamp digits if `name` is exactly `<stem>-<digits><ext>`.
    /// consul-template globs `<stem>-*<ext>`, which also matches
    /// `ct-backup.log` or another instance's `ct-1-<ns>.log` and would
    /// delete them; only digits are ours, so nothing else is ever removed.
    fn stamp_of<'n>(&self, name: &'n [u8]) -> Option<&'n [u8]> {
        let digits = name
            .strip_prefix(self.stem.as_slice())?
            .strip_prefix(b"-")?
            .strip_suffix(self.ext.as_slice())?;
        (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then_some(digits)
    }

    /// The regular files in the directory named like ours, oldest first.
    fn existing(&self) -> Result<Vec<PathBuf>, LogFileError> {
        let list_error = |source| LogFileError::List {
            dir: self.dir.clone(),
            source,
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            let name = entry.file_name();
            let Some(stamp) = self.stamp_of(name.as_bytes()) else {
                continue;
            };
            // Not a directory or a symlink that happens to have our name.
            if !entry.file_type().map_err(list_error)?.is_file() {
                continue;
            }
            // Shorter digit strings are older: sorted as numbers, so the
            // order holds even if the digit count ever changes.
            found.push(((stamp.len(), stamp.to_vec()), entry.path()));
        }
        found.sort();
        Ok(found.into_iter().map(|(_, path)| path).collect())
    }
}

/// The file being written.
#[derive(Debug)]
struct Current {
    file: File,
    path: PathBuf,
    opened: Instant,
    written: u64,
}

/// The log files of one `-log-file`: the current one and the rules for
/// starting the next and removing old ones.
#[derive(Debug)]
pub struct LogFile {
    naming: Naming,
    rotate_bytes: u64,
    rotate_duration: Duration,
    max_files: i64,
    /// `None` after a new file could not be created; the next line tries
    /// again.
    current: Option<Current>,
    /// The last stamp used, so that two files started within one clock tick
    /// never get the same name (which, opened with `O_TRUNC`, would empty
    /// the first).
    last_stamp: u128,
    /// A failure was reported on stderr and nothing has succeeded since, so
    /// a full disk is reported once rather than on every line.
    failing: bool,
}

impl LogFile {
    /// Removes old files as `max_files` says and starts a new file, as
    /// consul-template does at startup. The directory must exist.
    pub fn open(config: &LogFileConfig) -> Result<LogFile, LogFileError> {
        let mut log = LogFile {
            naming: Naming::new(&config.path),
            rotate_bytes: config.rotate_bytes,
            rotate_duration: config.rotate_duration,
            max_files: config.max_files,
            current: None,
            last_stamp: 0,
            failing: false,
        };
        log.prune()?;
        log.current = Some(log.start_file()?);
        Ok(log)
    }

    /// The file being written, if there is one.
    pub fn path(&self) -> Option<&Path> {
        self.current.as_ref().map(|current| current.path.as_path())
    }

    /// Writes one whole log line, first starting a new file if the current
    /// one is due. A line is never split between files. A failed prune does
    /// not keep the line from being written; it is returned afterwards.
    pub fn write_record(&mut self, record: &[u8]) -> Result<(), LogFileError> {
        let mut pruned = Ok(());
        if self
            .current
            .as_ref()
            .is_some_and(|current| self.is_due(current))
        {
            // Closed before pruning, so it counts as one of the old files.
            self.current = None;
            pruned = self.prune();
        }
        let mut current = match self.current.take() {
            Some(current) => current,
            // Just rotated, or the last start failed: old files were pruned
            // when the last file was closed, so this only starts one.
            None => self.start_file()?,
        };
        // Counted even if the write fails, as consul-template does, so a
        // file on a full disk still rotates (and prunes) on schedule.
        current.written = current
            .written
            .saturating_add(u64::try_from(record.len()).unwrap_or(u64::MAX));
        let written = current
            .file
            .write_all(record)
            .map_err(|source| LogFileError::Write {
                path: current.path.clone(),
                source,
            });
        self.current = Some(current);
        written?;
        pruned
    }

    /// [`LogFile::write_record`] for the logger, which has nobody to return
    /// an error to: the first failure is reported on stderr directly (not
    /// through `tracing`, whose writer is what is failing) and the next line
    /// tries again; once a line is written, a later failure is reported
    /// again.
    fn write_reporting(&mut self, record: &[u8]) {
        match self.write_record(record) {
            Ok(()) => self.failing = false,
            Err(error) => {
                if !self.failing {
                    // `eprintln!` would panic if stderr is gone too.
                    let _ = writeln!(
                        io::stderr(),
                        "consul-render: {error} (still logging to stderr; the file is \
                         retried with each line)"
                    );
                }
                self.failing = true;
            }
        }
    }

    fn is_due(&self, current: &Current) -> bool {
        (self.rotate_bytes > 0 && current.written >= self.rotate_bytes)
            || current.opened.elapsed() >= self.rotate_duration
    }

    fn start_file(&mut self) -> Result<Current, LogFileError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        self.last_stamp = now.max(self.last_stamp + 1);
        let path = self.naming.file_for(self.last_stamp);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&path)
            .map_err(|source| LogFileError::Create {
                path: path.clone(),
                source,
            })?;
        Ok(Current {
            file,
            path,
            opened: Instant::now(),
            written: 0,
        })
    }

    /// Removes the oldest files named like ours until `max_files` remain:
    /// 0 keeps all, a negative count none. Runs while no file is open, so
    /// after the next start there are `max_files` old files and the current
    /// one. Every removal is tried; the first failure is returned.
    fn prune(&self) -> Result<(), LogFileError> {
        if self.max_files == 0 {
            return Ok(());
        }
        let keep = usize::try_from(self.max_files.max(0)).unwrap_or(usize::MAX);
        let old = self.naming.existing()?;
        let excess = old.len().saturating_sub(keep);
        let mut result = Ok(());
        for path in &old[..excess] {
            match fs::remove_file(path) {
                Ok(()) => {}
                // Someone else removed it first: that is what we wanted.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    if result.is_ok() {
                        result = Err(LogFileError::Remove {
                            path: path.clone(),
                            source,
                        });
                    }
                }
            }
        }
        result
    }
}

/// A [`LogFile`] as a `tracing_subscriber` writer, shared by every thread
/// that logs. A line is written under the lock, so lines never interleave
/// and a rotation happens between two lines, never inside one.
#[derive(Debug)]
pub struct SharedLogFile(Mutex<LogFile>);

impl SharedLogFile {
    pub fn new(log: LogFile) -> SharedLogFile {
        SharedLogFile(Mutex::new(log))
    }
}

impl<'a> MakeWriter<'a> for SharedLogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> LogFileWriter<'a> {
        // A panic while logging must not turn every later line into a
        // panic too (`Mutex<W>`'s own `MakeWriter` would): the state is a
        // file handle and counters, still usable.
        LogFileWriter(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The locked file for one event. Never returns an error: failures are
/// reported by the file itself, and an error here would make
/// `tracing_subscriber` print its own complaint on every line.
#[derive(Debug)]
pub struct LogFileWriter<'a>(MutexGuard<'a, LogFile>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_reporting(buf);
        Ok(buf.len())
    }

    /// The formatter hands over each event as one `write_all`; taking it
    /// whole is what keeps a line in one file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_reporting(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Lines go straight to the file, unbuffered.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path, rotate_bytes: u64, max_files: i64) -> LogFileConfig {
        LogFileConfig {
            path: path.to_path_buf(),
            rotate_bytes,
            rotate_duration: Duration::from_secs(24 * 60 * 60),
            max_files,
        }
    }

    /// Every file name in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The files named `<stem>-<digits><ext>`, oldest first.
    fn ours(dir: &Path, stem: &str, ext: &str) -> Vec<PathBuf> {
        Naming {
            dir: dir.to_path_buf(),
            stem: stem.as_bytes().to_vec(),
            ext: ext.as_bytes().to_vec(),
        }
        .existing()
        .unwrap()
    }

    #[test]
    fn names_keep_the_extension_or_add_log_and_default_for_a_directory() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // path, dir, stem, ext
            ("/var/log/ct.log", "/var/log", "ct", ".log"),
            ("/var/log/ct", "/var/log", "ct", ".log"),
            ("/var/log/ct.txt", "/var/log", "ct", ".txt"),
            ("/var/log/a.tar.gz", "/var/log", "a.tar", ".gz"),
            ("/var/log/.log", "/var/log", "", ".log"),
            ("/var/log/", "/var/log/", "consul-render", ".log"),
            ("ct.log", ".", "ct", ".log"),
            ("logs/ct", "logs", "ct", ".log"),
        ];
        for &(path, dir, stem, ext) in cases {
            let naming = Naming::new(Path::new(path));
            assert_eq!(
                naming,
                Naming {
                    dir: PathBuf::from(dir),
                    stem: stem.as_bytes().to_vec(),
                    ext: ext.as_bytes().to_vec(),
                },
                "{path}"
            );
        }
        assert_eq!(
            Naming::new(Path::new("/var/log/ct")).file_for(1_700_000_000_123_456_789),
            Path::new("/var/log/ct-1700000000123456789.log")
        );
        assert_eq!(
            Naming::new(Path::new("/var/log/")).file_for(42),
            Path::new("/var/log/consul-render-42.log")
        );
    }

    #[test]
    fn the_first_file_is_stamped_too_and_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        for (given, stem, ext) in [
            ("ct", "ct", ".log"),
            ("ct.log", "ct", ".log"),
            ("", "consul-render", ".log"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = if given.is_empty() {
                // A directory: `…/`.
                PathBuf::from(format!("{}/", dir.path().display()))
            } else {
                dir.path().join(given)
            };
            let mut log = LogFile::open(&config(&path, 0, 0)).unwrap();
            log.write_record(b"hello\n").unwrap();
            let files = ours(dir.path(), stem, ext);
            assert_eq!(files.len(), 1, "{given}: {:?}", names(dir.path()));
            assert_eq!(log.path(), Some(files[0].as_path()));
            assert_eq!(fs::read_to_string(&files[0]).unwrap(), "hello\n");
            // Only the permission bits a umask can take away are asserted.
            let mode = fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & !0o640, 0, "{mode:o}");
        }
    }

    #[test]
    fn rotates_by_size_before_a_line_without_losing_or_splitting_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(&config(&dir.path().join("ct.log"), 100, 0)).unwrap();
        let lines: Vec<String> = (0..50).map(|n| format!("line number {n}\n")).collect();
        for line in &lines {
            log.write_record(line.as_bytes()).unwrap();
        }
        let files = ours(dir.path(), "ct", ".log");
        assert!(files.len() >= 6, "{:?}", names(dir.path()));
        let mut all = String::new();
        for file in &files {
            let text = fs::read_to_string(file).unwrap();
            assert!(text.ends_with('\n'), "{file:?}: {text:?}");
            // Rotation is checked before a line, so a file ends at most
            // one line past the limit.
            assert!(text.len() < 100 + 16, "{file:?}: {}", text.len());
            all.push_str(&text);
        }
        assert_eq!(all, lines.concat());
    }

    #[test]
    fn rotates_when_the_file_is_older_than_the_duration() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(&LogFileConfig {
            rotate_duration: Duration::from_millis(1),
            ..config(&dir.path().join("ct.log"), 0, 0)
        })
        .unwrap();
        let first = log.path().unwrap().to_path_buf();
        std::thread::sleep(Duration::from_millis(5));
        log.write_record(b"later\n").unwrap();
        assert_ne!(log.path(), Some(first.as_path()));
        let files = ours(dir.path(), "ct", ".log");
        assert_eq!(files.len(), 2, "{:?}", names(dir.path()));
        assert_eq!(fs::read_to_string(&files[0]).unwrap(), "");
        assert_eq!(fs::read_to_string(&files[1]).unwrap(), "later\n");
    }

    #[test]
    fn a_day_old_default_does_not_rotate_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(&config(&dir.path().join("ct.log"), 0, 0)).unwrap();
        for _ in 0..100 {
            log.write_record(b"0123456789\n").unwrap();
        }
        assert_eq!(ours(dir.path(), "ct", ".log").len(), 1);
    }

    #[test]
    fn prunes_at_startup_as_max_files_says_and_never_touches_other_files() {
        // Old files; 9 is older than 10 although it sorts after it as text.
        let old = ["ct-9.log", "ct-10.log", "ct-11.log"];
        let unrelated = [
            "ct.log",
            "ct-old.log",
            "ct-12a.log",
            "ct-.log",
            "ct-1-5.log",
            "ct-5.txt",
            "other-5.log",
            "notes.txt",
        ];
        // max_files, the old files still there after the start.
        let cases: &[(i64, &[&str])] = &[
            (0, &["ct-9.log", "ct-10.log", "ct-11.log"]),
            (-1, &[]),
            (2, &["ct-10.log", "ct-11.log"]),
            (3, &["ct-9.log", "ct-10.log", "ct-11.log"]),
            (5, &["ct-9.log", "ct-10.log", "ct-11.log"]),
        ];
        for &(max_files, kept) in cases {
            let dir = tempfile::tempdir().unwrap();
            for name in old.iter().chain(&unrelated) {
                fs::write(dir.path().join(name), "x").unwrap();
            }
            // A directory named like ours is not a log file either.
            fs::create_dir(dir.path().join("ct-8.log")).unwrap();
            let log = LogFile::open(&config(&dir.path().join("ct.log"), 0, max_files)).unwrap();
            let current = log.path().unwrap().file_name().unwrap().to_str().unwrap();
            let mut expected: Vec<String> = kept
                .iter()
                .chain(&unrelated)
                .chain(&["ct-8.log", current])
                .map(|name| name.to_string())
                .collect();
            expected.sort();
            assert_eq!(names(dir.path()), expected, "max_files {max_files}");
        }
    }

    #[test]
    fn rotation_keeps_max_files_old_files_and_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ct.log"), "not ours").unwrap();
        let mut log = LogFile::open(&config(&dir.path().join("ct.log"), 15, 2)).unwrap();
        let mut last = Vec::new();
        for n in 0..30 {
            let line = format!("line {n:02} ......\n");
            log.write_record(line.as_bytes()).unwrap();
            last.push(line);
            assert!(ours(dir.path(), "ct", ".log").len() <= 3);
        }
        let files = ours(dir.path(), "ct", ".log");
        assert_eq!(files.len(), 3, "{:?}", names(dir.path()));
        assert_eq!(log.path(), Some(files[2].as_path()));
        // The newest lines survive, in order: 15 bytes each, one per file.
        let kept: Vec<String> = files
            .iter()
            .map(|file| fs::read_to_string(file).unwrap())
            .collect();
        assert_eq!(kept, last[27..]);
        assert_eq!(
            fs::read_to_string(dir.path().join("ct.log")).unwrap(),
            "not ours"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        for max_files in [0, 2] {
            let error = LogFile::open(&config(&missing.join("ct.log"), 0, max_files)).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(&missing.display().to_string()),
                "max_files {max_files}: {message}"
            );
        }
        assert!(!missing.exists());
    }

    #[test]
    fn a_failing_file_never_fails_the_writer_and_is_retried() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs");
        fs::create_dir(&dir).unwrap();
        let log = LogFile::open(&config(&dir.join("ct.log"), 1, 0)).unwrap();
        let shared = SharedLogFile::new(log);
        shared.make_writer().write_all(b"one\n").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        // Due for rotation, and the directory is gone: reported, not
        // returned, and the writer keeps accepting lines.
        shared.make_writer().write_all(b"lost\n").unwrap();
        assert_eq!(shared.make_writer().write(b"lost too\n").unwrap(), 9);
        assert!(shared.0.lock().unwrap().failing);
        fs::create_dir(&dir).unwrap();
        shared.make_writer().write_all(b"back\n").unwrap();
        assert!(!shared.0.lock().unwrap().failing);
        let files = ours(&dir, "ct", ".log");
        assert_eq!(files.len(), 1);
        assert_eq!(fs::read_to_string(&files[0]).unwrap(), "back\n");
    }

    #[test]
    fn the_error_from_a_failed_start_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs");
        fs::create_dir(&dir).unwrap();
        let mut log = LogFile::open(&config(&dir.join("ct.log"), 1, 0)).unwrap();
        log.write_record(b"one\n").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let error = log.write_record(b"two\n").unwrap_err();
        assert!(matches!(error, LogFileError::Create { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&dir.display().to_string()),
            "{error}"
        );
        assert_eq!(log.path(), None);
    }
}
