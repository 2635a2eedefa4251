//! Supervise mode (`-exec`): one child (typically `nginx -g 'daemon off;'`)
//! started once every template has rendered, sent its reload signal after a
//! render that changed a file, and sent the stop signals consul-render gets.
//!
//! The child's life is [`ChildState`]. This module starts and signals it
//! and reports its exit; the runner decides when (first complete render,
//! changed render, stop) and what an exit means (consul-render exits with
//! the child's code). With a splay (`-exec-splay`) a reload is signalled a
//! random while after it is asked for, as [`ChildEvent::ReloadDue`].

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::time::Instant;

use crate::config::{ExecConfig, ProcessSignal};
use crate::metrics::{Metrics, ReloadLabels};
use crate::process::{self, ProcessGroup};
use crate::reload_check;

/// Where the child is in its life.
pub enum ChildState {
    /// Not started: some template has not rendered completely yet.
    Waiting,
    Running {
        group: ProcessGroup,
    },
    /// A stop signal was sent; SIGKILL to its group follows at `deadline`.
    Stopping {
        group: ProcessGroup,
        deadline: Instant,
    },
    /// It exited (or never could start); consul-render follows it.
    Exited(ExitStatus),
}

pub struct Supervisor {
    config: ExecConfig,
    state: ChildState,
    /// When the reload asked for during a splay is signalled; the reloads
    /// asked for until then are the same one.
    reload_at: Option<Instant>,
}

/// What the runner hears from the child.
pub enum ChildEvent {
    Exited(ExitStatus),
    /// A splayed reload's time has come: call [`Supervisor::reload_now`].
    ReloadDue,
}

impl Supervisor {
    pub fn new(config: ExecConfig) -> Supervisor {
        Supervisor {
            config,
            state: ChildState::Waiting,
            reload_at: None,
        }
    }

    pub fn command(&self) -> &str {
        &self.config.command
    }

    pub fn state(&self) -> &ChildState {
        &self.state
    }

    /// Starts the child, if it is still waiting for its first start.
    pub fn start(&mut self) -> io::Result<()> {
        if !matches!(self.state, ChildState::Waiting) {
            return Ok(());
        }
        let mut command = Command::new("/bin/sh");
        // `exec`, so that the signals reach the program and not a shell
        // that would not pass them on.
        command
            .arg("-c")
            .arg(format!("exec {}", self.config.command))
            .stdin(Stdio::null())
            .env_clear()
            .envs(std::env::vars_os().filter(|(name, _)| self.config.env.inherits(name)))
            .envs(self.config.env.custom.iter().cloned());
        let group = ProcessGroup::spawn(&mut command)?;
        tracing::info!(
            command = self.config.command,
            pid = group.pid(),
            "started the child"
        );
        self.state = ChildState::Running { group };
        Ok(())
    }

    /// After a changed render: sends the reload signal, if there is one and
    /// the child runs, at once or, with a splay, once it is due.
    pub fn reload(&mut self, metrics: &Arc<Metrics>) {
        if self.config.splay.is_zero() {
            return self.reload_now(metrics);
        }
        if self.reload_at.is_none() && self.config.reload_signal.is_some() {
            let delay = random_up_to(self.config.splay);
            tracing::debug!(?delay, "signalling the child to reload after a splay");
            self.reload_at = Some(Instant::now() + delay);
        }
    }

    /// Sends the reload signal, if there is one and the child runs, then
    /// checks in the background that the child took it (see
    /// [`crate::reload_check::verify`]).
    pub fn reload_now(&mut self, metrics: &Arc<Metrics>) {
        self.reload_at = None;
        let (ChildState::Running { group }, Some(signal)) =
            (&self.state, self.config.reload_signal)
        else {
            return;
        };
        let via = ReloadLabels {
            via: "signal".to_owned(),
        };
        metrics.reloads.get_or_create(&via).inc();
        let before = reload_check::Before::take(group.pid());
        match send(group, signal) {
            Ok(()) => {
                tracing::info!(signal = %signal, pid = group.pid(), "signalled the child to reload");
                tokio::spawn(reload_check::verify("the child", before, metrics.clone()));
            }
            Err(error) => {
                metrics.reload_failures.get_or_create(&via).inc();
                tracing::error!(signal = %signal, "could not signal the child to reload: {error}");
            }
        }
    }

    /// Passes a signal that is not consul-render's own on to the child
    /// (its leader, as a reload is), if it runs.
    pub fn pass_on(&self, signal: Signal) {
        let ChildState::Running { group } = &self.state else {
            return;
        };
        match group.signal_leader(signal) {
            Ok(()) => {
                tracing::info!(signal = %signal, pid = group.pid(), "passed the signal on to the child")
            }
            Err(error) => {
                tracing::warn!(signal = %signal, "could not pass the signal on to the child: {error}")
            }
        }
    }

    /// Passes a stop signal consul-render received on to the child, which
    /// then has the kill timeout to exit. Returns whether the child was
    /// there to get it (a second signal while stopping is passed on too).
    pub fn forward(&mut self, signal: Signal) -> bool {
        self.stop_with(ProcessSignal(signal as i32))
    }

    /// Stops the child for a reason of consul-render's own, with the kill
    /// signal, after the splay. Returns whether there was a child to stop.
    pub async fn stop(&mut self) -> bool {
        if matches!(self.state, ChildState::Running { .. }) && !self.config.splay.is_zero() {
            let delay = random_up_to(self.config.splay);
            tracing::debug!(?delay, "stopping the child after a splay");
            tokio::time::sleep(delay).await;
        }
        self.stop_with(self.config.kill_signal)
    }

    fn stop_with(&mut self, signal: ProcessSignal) -> bool {
        let deadline = match &self.state {
            ChildState::Running { .. } => Instant::now() + self.config.kill_timeout,
            ChildState::Stopping { deadline, .. } => *deadline,
            ChildState::Waiting | ChildState::Exited(_) => return false,
        };
        let state = std::mem::replace(&mut self.state, ChildState::Waiting);
        let (ChildState::Running { group } | ChildState::Stopping { group, .. }) = state else {
            unreachable!("matched above")
        };
        match send(&group, signal) {
            Ok(()) => {
                tracing::info!(signal = %signal, pid = group.pid(), timeout = ?self.config.kill_timeout, "stopping the child")
            }
            Err(error) => tracing::warn!(signal = %signal, "could not signal the child: {error}"),
        }
        self.state = ChildState::Stopping { group, deadline };
        true
    }

    /// Waits for the child to exit or a splayed reload to fall due.
    pub async fn next_event(&mut self) -> ChildEvent {
        let reload_at = self.reload_at;
        tokio::select! {
            status = self.exited() => ChildEvent::Exited(status),
            () = async {
                match reload_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => ChildEvent::ReloadDue,
        }
    }

    /// Waits for the child to exit, killing its group once a stop's
    /// deadline passes; never returns while the child waits or has exited.
    pub async fn exited(&mut self) -> ExitStatus {
        let status = match &mut self.state {
            ChildState::Waiting | ChildState::Exited(_) => std::future::pending().await,
            ChildState::Running { group } => wait(group).await,
            ChildState::Stopping { group, deadline } => {
                match tokio::time::timeout_at(*deadline, wait(group)).await {
                    Ok(status) => status,
                    Err(_) => {
                        tracing::warn!(
                            pid = group.pid(),
                            "the child outlived its kill timeout; killing it"
                        );
                        match group.terminate(Signal::SIGKILL, Duration::ZERO).await {
                            Some(status) => status,
                            None => wait(group).await,
                        }
                    }
                }
            }
        };
        if let ChildState::Running { group } | ChildState::Stopping { group, .. } = &self.state {
            // Whatever the child left in its group has no one to serve.
            group.signal_group(Signal::SIGKILL);
        }
        tracing::info!(status = process::describe(status), "the child exited");
        self.state = ChildState::Exited(status);
        status
    }
}

/// A uniformly random while in `[0, splay)`, as consul-template draws it.
fn random_up_to(splay: Duration) -> Duration {
    let nanos = u64::try_from(splay.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(..nanos.max(1)))
}

async fn wait(group: &mut ProcessGroup) -> ExitStatus {
    group.wait().await.unwrap_or_else(|error| {
        // No status to follow: count it as a failure; its group is killed.
        tracing::error!("could not wait for the child: {error}; counting it as exit code 1");
        ExitStatus::from_raw(1 << 8)
    })
}

fn send(group: &ProcessGroup, signal: ProcessSignal) -> io::Result<()> {
    let signal = Signal::try_from(signal.0).map_err(io::Error::from)?;
    group.signal_leader(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_splay_is_drawn_below_its_bound() {
        for splay in [
            Duration::from_nanos(1),
            Duration::from_millis(3),
            Duration::from_secs(1),
        ] {
            for _ in 0..1000 {
                assert!(random_up_to(splay) < splay, "{splay:?}");
            }
        }
        let draws: std::collections::BTreeSet<Duration> = (0..100)
            .map(|_| random_up_to(Duration::from_secs(1)))
            .collect();
        assert!(draws.len() > 90, "not random: {draws:?}");
    }
}
