//! Child processes, for both the one-shot commands (checks, reloads) and
//! the supervised child of `-exec`: each starts as the leader of its own
//! process group, signals reach it or its whole group, and nothing it
//! started outlives a caller that gave up on it.
//!
//! This module also owns how a process ended is told ("exit code 1",
//! "signal 9 (SIGKILL)"), signal names, and, when consul-render is PID 1 of
//! a container, reaping the orphans the kernel hands it. It does not decide
//! when anything runs or what an exit means: `command` and `supervise` do.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The pids of the children this process spawned and has not reaped yet.
/// The orphan reaper leaves them to tokio, which waits on them by pid.
static OWN_CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// A child and everything it started, as one process group.
///
/// Dropping it before the child has been reaped kills the whole group: that
/// is what makes a cancelled command leave nothing behind, since tokio's
/// `kill_on_drop` only reaches the leader.
pub struct ProcessGroup {
    child: Child,
    pid: i32,
    reaped: bool,
}

/// Variables that carry Consul credentials: no child ever sees them.
const SECRET_VARIABLES: &[&str] = &[
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_TOKEN_FILE",
    "CONSUL_HTTP_AUTH",
];

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group, without the
    /// variables that carry Consul credentials.
    pub fn spawn(command: &mut Command) -> io::Result<ProcessGroup> {
        for name in SECRET_VARIABLES {
            command.env_remove(name);
        }
        let child = command.process_group(0).kill_on_drop(true).spawn()?;
        // tokio forgets the pid only once the child has been reaped, and
        // nothing has waited on this one yet. Pids always fit in an i32.
        let pid = child.id().expect("a child never waited on has a pid") as i32;
        own_children().insert(pid);
        Ok(ProcessGroup {
            child,
            pid,
            reaped: false,
        })
    }

    /// The leader's pid, which also names the group.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the leader to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.forget();
        Ok(status)
    }

    /// Sends `signal` to the leader alone (a reload: nginx's workers must
    /// not see the master's SIGHUP). Fails once the leader has been reaped.
    pub fn signal_leader(&self, signal: Signal) -> io::Result<()> {
        if self.reaped {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        signal::kill(Pid::from_raw(self.pid), signal).map_err(io::Error::from)
    }

    /// Sends `signal` to every process in the group. Safe after the leader
    /// was reaped: the kernel does not hand out the group's number again
    /// while any member is alive, and when none is, the signal just fails
    /// (ESRCH), which is ignored.
    pub fn signal_group(&self, signal: Signal) {
        let _ = signal::killpg(Pid::from_raw(self.pid), signal);
    }

    /// Sends `first` to the group, SIGKILL once the leader has gone or
    /// `grace` is over, then reaps the leader. Whatever is still in the
    /// group once the leader has gone is an orphan nobody would wait for,
    /// and it has had its `first`.
    pub async fn terminate(&mut self, first: Signal, grace: Duration) -> Option<ExitStatus> {
        self.signal_group(first);
        let status = match tokio::time::timeout(grace, self.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        };
        self.signal_group(Signal::SIGKILL);
        match status {
            Some(status) => Some(status),
            None => self.wait().await.ok(),
        }
    }

    fn forget(&mut self) {
        self.reaped = true;
        own_children().remove(&self.pid);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Once the leader has exited on its own, what it left running (a
        // daemonised nginx) is meant to stay.
        if !self.reaped {
            self.signal_group(Signal::SIGKILL);
            // tokio reaps it (kill_on_drop queues it as an orphan of its own).
            own_children().remove(&self.pid);
        }
    }
}

fn own_children() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // A panic while holding it cannot leave the set half-changed.
    OWN_CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// As PID 1, the kernel makes every orphan in the container a child of
/// ours, and nobody else will wait for them: reaps those that have exited
/// (zombies whose parent is this process and that are not our own
/// children, which tokio waits for). Returns how many were reaped.
pub fn reap_orphans() -> usize {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let zombies: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| is_zombie_child_of(pid, me))
        .collect();
    let own = own_children();
    zombies
        .into_iter()
        .filter(|pid| !own.contains(pid))
        .filter(|&pid| waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).is_ok())
        .count()
}

/// Whether `/proc/PID/stat` says `pid` is a zombie whose parent is `parent`.
fn is_zombie_child_of(pid: i32, parent: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ppid …"; comm may hold spaces and parentheses, so
    // the fields are read after its last ')'.
    let mut fields = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split(' ');
    let state = fields.next();
    let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
    state == Some("Z") && ppid == Some(parent)
}

/// How a process that did not succeed ended: "exit code 1",
/// "signal 9 (SIGKILL)".
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(number) = status.signal() {
        match signal_name(number) {
            Some(name) => format!("signal {number} ({name})"),
            None => format!("signal {number}"),
        }
    } else {
        status.to_string()
    }
}

/// The exit code a shell would give for `status`: the code, or 128 plus
/// the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(number)) => (128 + number) as u8,
        (None, None) => 1,
    }
}

/// `SIGHUP` for 1, and so on; `None` for numbers with no signal.
pub fn signal_name(number: i32) -> Option<&'static str> {
    Signal::try_from(number).ok().map(Signal::as_str)
}

/// Reads `SIGHUP`, `HUP` or `hup`, as consul-template does.
pub fn signal_by_name(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    format!("SIG{bare}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_the_ways_consul_template_reads_them() {
        for name in ["SIGHUP", "HUP", "hup", "sighup", " SIGHUP "] {
            assert_eq!(signal_by_name(name), Some(Signal::SIGHUP), "{name}");
        }
        assert_eq!(signal_by_name("SIGNOPE"), None);
        assert_eq!(signal_by_name(""), None);
        assert_eq!(signal_name(libc::SIGQUIT), Some("SIGQUIT"));
        assert_eq!(signal_name(0), None);
    }

    #[tokio::test]
    async fn an_exit_is_told_by_code_or_signal() {
        let status = |script: &str| {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(script);
            async move {
                ProcessGroup::spawn(&mut command)
                    .unwrap()
                    .wait()
                    .await
                    .unwrap()
            }
        };
        let exited = status("exit 3").await;
        assert_eq!(
            (describe(exited), exit_code(exited)),
            ("exit code 3".to_owned(), 3)
        );
        let killed = status("kill -TERM $$").await;
        assert_eq!(
            (describe(killed), exit_code(killed)),
            ("signal 15 (SIGTERM)".to_owned(), 143)
        );
    }

    #[tokio::test]
    async fn a_reaped_child_is_no_longer_counted_as_our_own() {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg("exit 0");
        let mut group = ProcessGroup::spawn(&mut command).unwrap();
        let pid = group.pid();
        assert!(own_children().contains(&pid));
        group.wait().await.unwrap();
        assert!(!own_children().contains(&pid));
        assert!(group.signal_leader(Signal::SIGHUP).is_err());
    }
}
