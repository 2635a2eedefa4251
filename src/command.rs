//! Running the user's commands (the nginx check, the reload): one shell
//! command at a time, in its own process group ([`crate::process`]), with a
//! deadline.
//!
//! This module owns starting the shell, capturing what it printed, and making
//! sure nothing it started outlives a timeout or a caller that gave up on it.
//! It does not decide when a command runs, what its failure means for the
//! rendered files, or whether to try again: that is the runner's business.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::process::{ProcessGroup, describe};

/// How long a timed-out command's process group has between SIGTERM and
/// SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How much output is kept. The tail, because that is where the error is.
const OUTPUT_LIMIT: u64 = 64 * 1024;

/// Starts the output when its beginning was cut off.
const TRUNCATED: &str = "…(truncated)\n";

/// An absolute path, so that a `PATH` among the command's extra environment
/// cannot change which shell runs it.
const SHELL: &str = "/bin/sh";

/// What a command that succeeded printed, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its stdout and stderr interleaved as written, tail-truncated, trailing
    /// whitespace trimmed.
    pub output: String,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The shell could not be started at all (distinct from "ran and failed").
    #[error("could not start `{command}`: {source}")]
    Spawn { command: String, source: io::Error },

    /// It ran and exited non-zero or was killed by a signal.
    #[error(
        "`{command}` exited with {status} after {}{}",
        human(elapsed),
        indented(output)
    )]
    Failed {
        command: String,
        /// How it ended: "exit code 1", "signal 9 (SIGKILL)".
        status: String,
        output: String,
        elapsed: Duration,
    },

    /// It outlived its timeout; its process group was killed.
    #[error(
        "`{command}` timed out after {} and was killed{}",
        human(timeout),
        indented(output)
    )]
    TimedOut {
        command: String,
        timeout: Duration,
        output: String,
    },
}

impl CommandError {
    /// What the command printed before it failed; empty when it never
    /// started.
    pub fn output(&self) -> &str {
        match self {
            CommandError::Spawn { .. } => "",
            CommandError::Failed { output, .. } | CommandError::TimedOut { output, .. } => output,
        }
    }
}

/// Runs `command` through `sh -c` with stdin from /dev/null, `env` added to
/// the inherited environment, and returns its combined stdout and stderr.
///
/// Returns once the shell itself exits: processes it left running in the
/// background (a daemonising `nginx`) are neither waited for nor killed. If
/// the shell is still running after `timeout`, its whole process group gets
/// SIGTERM, then SIGKILL after a grace period. Dropping the returned future
/// before it completes kills the process group at once.
pub async fn run(
    command: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_with_shell(Path::new(SHELL), command, env, timeout).await
}

async fn run_with_shell(
    shell: &Path,
    command: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let spawn_error = |source| CommandError::Spawn {
        command: command.to_owned(),
        source,
    };
    // A file, not a pipe: reading a pipe to EOF waits for every process that
    // inherited it, and daemons started by the command (`nginx`, `service
    // nginx start`) hold it open for ever. consul-template hangs on exactly
    // that. With a file, only the shell's own exit is waited for.
    let capture = tempfile::tempfile().map_err(spawn_error)?;
    let stdout = capture.try_clone().map_err(spawn_error)?;
    let stderr = capture.try_clone().map_err(spawn_error)?;

    let started = Instant::now();
    let mut group = ProcessGroup::spawn(
        Command::new(shell)
            .arg("-c")
            .arg(command)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr),
    )
    .map_err(spawn_error)?;

    match tokio::time::timeout(timeout, group.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(CommandOutput {
            output: read_output(&capture),
            elapsed: started.elapsed(),
        }),
        Ok(Ok(status)) => Err(CommandError::Failed {
            command: command.to_owned(),
            status: describe(status),
            output: read_output(&capture),
            elapsed: started.elapsed(),
        }),
        // Without a status there is no telling whether it worked, so it
        // counts as a failure; dropping `group` kills whatever is left of it.
        Ok(Err(err)) => Err(CommandError::Failed {
            command: command.to_owned(),
            status: format!("unknown status (waiting for it failed: {err})"),
            output: read_output(&capture),
            elapsed: started.elapsed(),
        }),
        Err(_) => {
            group.terminate(Signal::SIGTERM, KILL_GRACE).await;
            Err(CommandError::TimedOut {
                command: command.to_owned(),
                timeout,
                output: read_output(&capture),
            })
        }
    }
}

/// The tail of what the command wrote to `capture`. A failure to read it is
/// shown in place of the output rather than hiding how the command ended.
fn read_output(capture: &File) -> String {
    // A blocking read inside async code, but of at most 64 KiB that were just
    // written, so it comes from the page cache.
    let tail = || -> io::Result<(Vec<u8>, bool)> {
        let len = capture.metadata()?.len();
        let kept = len.min(OUTPUT_LIMIT);
        let mut bytes = vec![0; kept as usize];
        // Positioned, so the offset shared with anything the command left
        // running (and still writing) is not moved.
        capture.read_exact_at(&mut bytes, len - kept)?;
        Ok((bytes, kept < len))
    };
    match tail() {
        Ok((bytes, truncated)) => text(&bytes, truncated),
        Err(err) => format!("(could not read its output: {err})"),
    }
}

/// Output bytes as text: lossy UTF-8, trailing whitespace trimmed, marked
/// when `truncated`.
fn text(bytes: &[u8], truncated: bool) -> String {
    if !truncated {
        return String::from_utf8_lossy(bytes).trim_end().to_owned();
    }
    // The cut may have split a character; its leftover continuation bytes
    // would only show up as a replacement character.
    let partial = bytes
        .iter()
        .take(3)
        .take_while(|&&byte| byte & 0b1100_0000 == 0b1000_0000)
        .count();
    format!(
        "{TRUNCATED}{}",
        String::from_utf8_lossy(&bytes[partial..]).trim_end()
    )
}

/// A duration the way a person would say it: "12ms", "3s", "1.5s".
fn human(duration: &Duration) -> String {
    if *duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Output appended to an error message: after a colon when it is one line,
/// indented on lines of its own when it is more.
fn indented(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else if !output.contains('\n') {
        format!(": {output}")
    } else {
        output.lines().fold(":".to_owned(), |message, line| {
            format!("{message}\n    {line}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that no test depends on how fast the machine is.
    const PATIENT: Duration = Duration::from_secs(60);

    async fn sh(command: &str) -> Result<CommandOutput, CommandError> {
        run(command, &[], PATIENT).await
    }

    /// Whether `pid` is still a live process. A zombie counts as gone: on a
    /// machine whose PID 1 does not reap orphans (this one's doesn't), a
    /// killed grandchild stays a zombie for ever and `kill(pid, 0)` keeps
    /// succeeding.
    fn alive(pid: libc::pid_t) -> bool {
        // No signal only checks that the process exists.
        if let Err(errno) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            assert_eq!(errno, nix::errno::Errno::ESRCH);
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses.
            Ok(stat) => !matches!(stat.rsplit(") ").next(), Some(s) if s.starts_with(['Z', 'X'])),
            Err(_) => false,
        }
    }

    /// Polls until `condition` holds, failing the test with `what` if it
    /// takes longer than any machine should.
    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENT;
        while !condition() {
            assert!(Instant::now() < deadline, "gave up waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The pids a test command wrote to `file`, once it has written them.
    async fn pids_in(file: &Path) -> Vec<libc::pid_t> {
        let mut pids = Vec::new();
        eventually("the command writes its pids", || {
            // Written with `echo`, so a line is complete once it ends.
            let written = std::fs::read_to_string(file).unwrap_or_default();
            pids = written
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            written.ends_with('\n')
        })
        .await;
        pids
    }

    #[tokio::test]
    async fn captures_both_stdout_and_stderr_in_order() {
        let done = sh("echo out; echo err >&2; echo more").await.unwrap();
        assert_eq!(done.output, "out\nerr\nmore");
    }

    #[tokio::test]
    async fn reports_how_a_failed_command_ended_and_what_it_printed() {
        let cases = [
            ("echo broken; exit 1", "exit code 1", "broken"),
            ("echo to stderr >&2; exit 3", "exit code 3", "to stderr"),
            ("echo bye; kill -9 $$", "signal 9 (SIGKILL)", "bye"),
            ("kill -TERM $$", "signal 15 (SIGTERM)", ""),
        ];
        for (command, want_status, want_output) in cases {
            match sh(command).await {
                Err(err @ CommandError::Failed { .. }) => {
                    assert_eq!(err.output(), want_output, "{command}");
                    let CommandError::Failed { status, .. } = err else {
                        unreachable!()
                    };
                    assert_eq!(status, want_status, "{command}");
                }
                other => panic!("{command}: expected Failed, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        let command = format!(
            "sleep 300 & echo $$ $! > {}; echo started; sleep 300",
            pidfile.display()
        );
        let err = run(&command, &[], Duration::from_secs(3))
            .await
            .unwrap_err();

        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        assert_eq!(err.output(), "started");
        let pids = pids_in(&pidfile).await;
        assert_eq!(pids.len(), 2);
        eventually("the shell and its background sleep are gone", || {
            !pids.iter().any(|&pid| alive(pid))
        })
        .await;
    }

    #[tokio::test]
    async fn a_command_ignoring_sigterm_is_killed_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        // An ignored signal stays ignored in children, so the sleep shrugs
        // off SIGTERM too.
        let command = format!(
            "trap '' TERM; sleep 300 & echo $$ $! > {}; wait",
            pidfile.display()
        );
        let timeout = Duration::from_secs(1);
        let started = Instant::now();
        let err = run(&command, &[], timeout).await.unwrap_err();

        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        // A lower bound, so no machine is too slow for it: only SIGKILL can
        // have ended it, and that comes after the grace period.
        assert!(started.elapsed() >= timeout + KILL_GRACE);
        let pids = pids_in(&pidfile).await;
        eventually("the shell and its background sleep are gone", || {
            !pids.iter().any(|&pid| alive(pid))
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_a_running_command_kills_its_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        let command = format!("sleep 300 & echo $$ $! > {}; wait", pidfile.display());

        let pids = tokio::select! {
            result = run(&command, &[], PATIENT) => panic!("finished early: {result:?}"),
            pids = pids_in(&pidfile) => pids,
        };

        eventually("the shell and its background sleep are gone", || {
            !pids.iter().any(|&pid| alive(pid))
        })
        .await;
    }

    #[tokio::test]
    async fn returns_when_the_shell_exits_even_if_a_daemon_it_started_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cases = [
            // The daemon keeps the output file open: a pipe would never see EOF.
            "(sleep 300 & echo $! > PIDFILE); echo done",
            "sleep 300 >/dev/null 2>&1 & echo $! > PIDFILE; echo done",
        ];
        for command in cases {
            let command = command.replace("PIDFILE", &pidfile.display().to_string());
            let result = tokio::time::timeout(Duration::from_secs(10), sh(&command)).await;
            let pids = pids_in(&pidfile).await;

            assert_eq!(result.expect(&command).unwrap().output, "done");
            // Left alone by `run`, as a daemon should be.
            assert!(alive(pids[0]), "{command}");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
            std::fs::remove_file(&pidfile).unwrap();
        }
    }

    #[tokio::test]
    async fn long_output_is_cut_to_its_last_64_kib() {
        let done = sh("yes 0123456789 | head -n 10000; echo last")
            .await
            .unwrap();

        let full = "0123456789\n".repeat(10000) + "last\n";
        let tail = &full[full.len() - OUTPUT_LIMIT as usize..];
        assert_eq!(done.output, format!("{TRUNCATED}{}", tail.trim_end()));
    }

    #[test]
    fn output_bytes_become_trimmed_text() {
        let cases: [(&[u8], bool, &str); 5] = [
            (b"ok\n\n  ", false, "ok"),
            (b"  indented stays\n", false, "  indented stays"),
            (b"bad \xff byte", false, "bad \u{fffd} byte"),
            (b"whole", true, "…(truncated)\nwhole"),
            // The tail of "é" (0xc3 0xa9) is dropped, not shown as garbage.
            (b"\xa9tail", true, "…(truncated)\ntail"),
        ];
        for (bytes, truncated, want) in cases {
            assert_eq!(text(bytes, truncated), want, "{bytes:?}");
        }
    }

    #[tokio::test]
    async fn extra_environment_reaches_the_command_alongside_the_inherited_one() {
        let done = run(
            r#"printf '%s|%s' "$CONSUL_RENDER_TEST" "${PATH:+inherited}""#,
            &[("CONSUL_RENDER_TEST", "hello world")],
            PATIENT,
        )
        .await
        .unwrap();
        assert_eq!(done.output, "hello world|inherited");
    }

    #[tokio::test]
    async fn stdin_is_empty_so_a_command_reading_it_does_not_hang() {
        assert_eq!(sh("cat").await.unwrap().output, "");
    }

    #[tokio::test]
    async fn a_shell_that_cannot_be_started_is_not_a_command_failure() {
        let err = run_with_shell(Path::new("/nonexistent/sh"), "true", &[], PATIENT)
            .await
            .unwrap_err();

        match &err {
            CommandError::Spawn { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound)
            }
            other => panic!("expected Spawn, got {other:?}"),
        }
        assert_eq!(err.output(), "");
        assert_eq!(
            err.to_string(),
            "could not start `true`: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn error_messages_name_the_command_say_what_happened_and_show_the_output() {
        let failed = |output: &str, elapsed| CommandError::Failed {
            command: "nginx -s reload".to_owned(),
            status: "exit code 1".to_owned(),
            output: output.to_owned(),
            elapsed,
        };
        let cases = [
            (
                failed(
                    "nginx: [emerg] unknown directive",
                    Duration::from_millis(12),
                ),
                "`nginx -s reload` exited with exit code 1 after 12ms: nginx: [emerg] unknown directive",
            ),
            (
                failed("first\nsecond", Duration::from_millis(1500)),
                "`nginx -s reload` exited with exit code 1 after 1.5s:\n    first\n    second",
            ),
            (
                failed("", Duration::from_secs(3)),
                "`nginx -s reload` exited with exit code 1 after 3s",
            ),
            (
                CommandError::TimedOut {
                    command: "sleep 100".to_owned(),
                    timeout: Duration::from_secs(1),
                    output: String::new(),
                },
                "`sleep 100` timed out after 1s and was killed",
            ),
            (
                CommandError::TimedOut {
                    command: "sleep 100".to_owned(),
                    timeout: Duration::from_secs(1),
                    output: "waiting".to_owned(),
                },
                "`sleep 100` timed out after 1s and was killed: waiting",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
