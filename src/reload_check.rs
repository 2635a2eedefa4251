//! Did nginx take the reload? nginx's master takes a new configuration by
//! starting new workers; one that rejects it (a port it cannot bind, a
//! certificate it cannot read: what `nginx -t` cannot see) logs `[emerg]`
//! and keeps the old ones. So a reload took if a child of the master
//! appears that was not there before it, and was rolled back if nginx's
//! error log gains an `[emerg]` line (or, when that log cannot be read,
//! if no new worker appears in time). nginx points its master's stderr at
//! its error log once the configuration is read, so the log is found
//! through `/proc/<master>/fd/2` with no flag to set. A master without
//! children cannot be judged and is not. Used for the supervised child
//! and, with `-nginx-pid-file`, for the master a reload command signals.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;

/// How long nginx may take to start the workers of a new configuration.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What an nginx master looked like just before it was asked to reload.
pub struct Before {
    master: i32,
    workers: BTreeSet<i32>,
    error_log: Option<ErrorLog>,
}

impl Before {
    /// Takes note of `master`'s workers and of where its error log ends.
    pub fn take(master: i32) -> Before {
        Before {
            master,
            workers: workers(master),
            error_log: ErrorLog::of(master),
        }
    }
}

/// The pids of `pid`'s children, from /proc.
fn workers(pid: i32) -> BTreeSet<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .collect()
}

/// The master named by an nginx pid file, if it names a running process.
pub fn master_from(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The master's error log, read from where it ended before the reload.
struct ErrorLog {
    file: File,
    read_to: u64,
    /// A line not yet ended by `\n`.
    partial: String,
}

impl ErrorLog {
    /// `master`'s stderr, if it is a regular file (nginx's error log);
    /// `None` when it is a pipe or terminal (`error_log stderr`) or not
    /// ours to open.
    fn of(master: i32) -> Option<ErrorLog> {
        ErrorLog::open(
            Path::new(&format!("/proc/{master}/fd/2")),
            Path::new("/proc/self/fd/2"),
        )
    }

    /// The regular file at `path`, read from its end, unless it is the
    /// file at `own`: a child nginx logging to the stderr it got from
    /// consul-render writes into consul-render's own log, whose lines
    /// quote the `[emerg]` of failed checks.
    fn open(path: &Path, own: &Path) -> Option<ErrorLog> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let ours = std::fs::metadata(own)
            .is_ok_and(|own| own.dev() == meta.dev() && own.ino() == meta.ino());
        (meta.is_file() && !ours).then(|| ErrorLog {
            file,
            read_to: meta.len(),
            partial: String::new(),
        })
    }

    /// The `[emerg]` lines written since the last call, joined by `; `
    /// (`None` if there were none).
    fn new_emergencies(&mut self) -> Option<String> {
        let len = self.file.metadata().ok()?.len();
        if len < self.read_to {
            // Truncated (rotated in place): read it from the start.
            self.read_to = 0;
        }
        self.file.seek(SeekFrom::Start(self.read_to)).ok()?;
        let mut bytes = Vec::new();
        let read = (&mut self.file)
            .take(len - self.read_to)
            .read_to_end(&mut bytes)
            .ok()?;
        self.read_to += read as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let complete = self.partial.rfind('\n').map_or(0, |end| end + 1);
        let lines: String = self.partial.drain(..complete).collect();
        let emergencies: Vec<&str> = lines
            .lines()
            .filter_map(|line| line.find("[emerg]").map(|at| &line[at..]))
            .collect();
        (!emergencies.is_empty()).then(|| emergencies.join("; "))
    }
}

/// Waits until `before.master` has a worker that was not there (the reload
/// took), its error log gains an `[emerg]` line, or `VERIFY_TIMEOUT` (10 s)
/// passes (either way it was rolled back: logged, counted, shown by
/// `/health` with nginx's own words when there are some). `what` names the
/// master in the log.
pub async fn verify(what: &'static str, mut before: Before, metrics: Arc<Metrics>) {
    if before.workers.is_empty() {
        return;
    }
    let master = before.master;
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    loop {
        let now = workers(master);
        if now.is_empty() && !alive(master) {
            // It died; following that is someone else's business.
            return;
        }
        if now.iter().any(|worker| !before.workers.contains(worker)) {
            tracing::debug!(pid = master, "{what} took the reload (new workers)");
            metrics.reload_verified(None);
            return;
        }
        let why = match before
            .error_log
            .as_mut()
            .and_then(ErrorLog::new_emergencies)
        {
            Some(emergencies) => Some(format!(
                "{what} kept its old configuration; its error log says: {emergencies}"
            )),
            None if Instant::now() >= deadline => Some(format!(
                "no new worker process within {}s of the reload; {what} kept its old configuration (nginx logs why at [emerg] in its error log)",
                VERIFY_TIMEOUT.as_secs()
            )),
            None => None,
        };
        if let Some(why) = why {
            let rollbacks = metrics.reload_rollbacks.get() + 1;
            tracing::error!(
                pid = master,
                reload_rollbacks = rollbacks,
                "{what} did not take the reload: {why}"
            );
            metrics.reload_verified(Some(why));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn log_at_end(path: &Path) -> ErrorLog {
        let file = File::open(path).unwrap();
        let read_to = file.metadata().unwrap().len();
        ErrorLog {
            file,
            read_to,
            partial: String::new(),
        }
    }

    #[test]
    fn only_emergencies_written_after_the_reload_count_and_a_half_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        std::fs::write(&path, "2026/12/07 [emerg] 1#1: an old one\n").unwrap();
        let mut log = log_at_end(&path);
        assert_eq!(log.new_emergencies(), None);
        let mut append = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(
            append,
            "2026/12/07 [notice] 1#1: signal process started\n2026/12/07 [emerg] 1#1: bind() to 127.0.0.1:80 failed (98: Address in use)\n2026/12/07 [emerg] 1#1: half"
        )
        .unwrap();
        assert_eq!(
            log.new_emergencies().as_deref(),
            Some("[emerg] 1#1: bind() to 127.0.0.1:80 failed (98: Address in use)")
        );
        writeln!(append, " a line").unwrap();
        assert_eq!(
            log.new_emergencies().as_deref(),
            Some("[emerg] 1#1: half a line")
        );
        assert_eq!(log.new_emergencies(), None);
    }

    #[test]
    fn a_log_truncated_in_place_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        std::fs::write(&path, "a long line of notices before the rotation\n").unwrap();
        let mut log = log_at_end(&path);
        std::fs::write(&path, "[emerg] new\n").unwrap();
        assert_eq!(log.new_emergencies().as_deref(), Some("[emerg] new"));
    }

    #[test]
    fn the_error_log_of_a_process_is_its_stderr_when_that_is_a_file() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        std::fs::write(&path, "[emerg] from before the reload\n").unwrap();
        let stderr = File::options().append(true).open(&path).unwrap();
        // The child writes once told to, after its log was opened.
        let mut child = Command::new("sh")
            .args(["-c", "read go; echo '[emerg] from the child' >&2"])
            .stdin(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut log = ErrorLog::of(child.id() as i32).expect("a file on fd 2");
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        child.wait().unwrap();
        let found = log.new_emergencies();
        let piped = std::process::Command::new("sleep")
            .arg("5")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let of_pipe = ErrorLog::of(piped.id() as i32).is_some();
        let mut piped = piped;
        piped.kill().unwrap();
        piped.wait().unwrap();
        assert_eq!(found.as_deref(), Some("[emerg] from the child"));
        assert!(!of_pipe, "a pipe on fd 2 is no error log");
    }

    #[test]
    fn consul_render_s_own_log_is_never_taken_for_nginx_s() {
        let dir = tempfile::tempdir().unwrap();
        let (own, other) = (dir.path().join("own.log"), dir.path().join("other.log"));
        std::fs::write(&own, "").unwrap();
        std::fs::write(&other, "").unwrap();
        let link = dir.path().join("link-to-own");
        std::os::unix::fs::symlink(&own, &link).unwrap();
        assert!(ErrorLog::open(&link, &own).is_none());
        assert!(ErrorLog::open(&own, &own).is_none());
        assert!(ErrorLog::open(&other, &own).is_some());
    }
}
