//! The child-process guard every helper here (and any test that runs a
//! program of its own, such as consul-render itself) uses: spawn with stdout
//! and stderr appended to a log file, read that log, stop the process, and on
//! drop stop it and reap it, printing its log first if the test is panicking.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

/// How long [`Process::stop`] waits for a graceful exit before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running child process that is stopped and reaped when dropped.
pub struct Process {
    label: String,
    child: Child,
    log_path: PathBuf,
    stop_signal: libc::c_int,
    stopped: bool,
}

impl Process {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to
    /// `log_path` (created if missing). `label` names it in messages.
    /// Dropping it sends SIGKILL; see [`Process::with_stop_signal`].
    pub fn spawn(label: &str, mut cmd: Command, log_path: &Path) -> Process {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("{label}: opening log {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("{label}: duplicating log handle: {e}"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: spawning {cmd:?} failed: {e}"));
        Process {
            label: label.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            stop_signal: libc::SIGKILL,
            stopped: false,
        }
    }

    /// Makes [`Process::stop`] and drop send `signal` first (e.g. SIGTERM
    /// for a program whose children must go with it) and wait up to 5 s for
    /// the exit before SIGKILL.
    pub fn with_stop_signal(mut self, signal: libc::c_int) -> Process {
        self.stop_signal = signal;
        self
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("{}: waiting on pid {}: {e}", self.label, self.pid()))
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exit_status() {
            panic!(
                "{} (pid {}) exited unexpectedly with {status}; its log:\n{}",
                self.label,
                self.pid(),
                self.log()
            );
        }
    }

    /// Sends `signal` to the process (unless it has already been reaped).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.exit_status().is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own unreaped child, so it cannot have been recycled.
        if unsafe { libc::kill(pid, signal) } != 0 {
            panic!(
                "{}: kill({pid}, {signal}) failed: {}",
                self.label,
                std::io::Error::last_os_error()
            );
        }
    }

    /// Stops the process (stop signal, grace period, then SIGKILL) and reaps
    /// it. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.stop_signal != libc::SIGKILL {
            self.signal(self.stop_signal);
            let deadline = Instant::now() + GRACE;
            while self.exit_status().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        // Errors here only mean it has already exited; wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "----- {} (pid {}) log {} -----\n{}\n----- end of {} log -----",
                self.label,
                self.pid(),
                self.log_path.display(),
                self.log(),
                self.label
            );
        }
        self.stop();
    }
}

/// The contents of a log file, or a note saying why it could not be read.
pub(crate) fn read_log(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<could not read {}: {e}>", path.display()),
    }
}
