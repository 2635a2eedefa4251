//! The outage gate: one shared view of whether the Consul agent is
//! reachable, so that a thousand watchers behave like one client when it is
//! not.
//!
//! While the agent answers, every request passes at once. When a request
//! finds it unreachable (connection refused or reset, timeout, 429, 502–504),
//! an outage starts: from then on a single *probe* request goes out at each
//! retry time (capped exponential backoff with jitter) and everyone else
//! waits for its outcome. The probe's success ends the outage and releases
//! all waiters together. The request rate against a down agent is therefore
//! about one per backoff interval, however many dependencies are watched.
//!
//! It owns the retry policy (`-consul-retry*`): by default it never gives up.

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Capped exponential backoff with "equal jitter": attempt n waits between
/// half and all of `min(max, base · 2ⁿ⁻¹)`, so retries from many clients
/// spread out but never come sooner than half the nominal delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self.base.saturating_mul(1 << exp).min(self.max);
        let half = nominal / 2;
        half + jitter(nominal - half)
    }
}

/// A random duration in `[0, up_to]`.
fn jitter(up_to: Duration) -> Duration {
    let nanos = u64::try_from(up_to.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    // RandomState is seeded per instance from the OS: plenty for jitter.
    let random = RandomState::new().build_hasher().finish();
    Duration::from_nanos(random % (nanos + 1))
}

/// What the gate knows about the agent's reachability.
pub struct Gate {
    state: Mutex<State>,
    reopened: Notify,
    backoff: Backoff,
    /// `None`: retry forever.
    give_up_after: Option<u32>,
}

#[derive(Default)]
struct State {
    /// Bumped when an outage starts, so failures of requests sent before it
    /// are not counted again.
    generation: u64,
    outage: Option<Outage>,
}

struct Outage {
    failures: u32,
    retry_at: Instant,
    probing: bool,
    started: Instant,
}

/// Permission to send one request, to be reported back with
/// [`Gate::succeeded`] or [`Gate::failed`]. A probe dropped unreported (its
/// task was cancelled) hands the probe role on.
pub struct Ticket<'g> {
    gate: &'g Gate,
    generation: u64,
    probe: bool,
    reported: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            if let Some(outage) = self.gate.lock().outage.as_mut() {
                outage.probing = false;
            }
            self.gate.reopened.notify_waiters();
        }
    }
}

impl Gate {
    pub fn new(backoff: Backoff, give_up_after: Option<u32>) -> Gate {
        Gate {
            state: Mutex::default(),
            reopened: Notify::new(),
            backoff,
            give_up_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic in another holder.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether no outage is in progress.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.lock().outage.is_none()
    }

    /// Waits until a request may be sent: at once while the agent is
    /// reachable; during an outage, when this caller becomes the next probe.
    pub async fn admit(&self) -> Ticket<'_> {
        loop {
            let notified = self.reopened.notified();
            tokio::pin!(notified);
            // Register before looking at the state, so a wake-up between the
            // look and the wait is not lost.
            notified.as_mut().enable();
            let retry_at = {
                let mut state = self.lock();
                let generation = state.generation;
                match state.outage.as_mut() {
                    None => {
                        return Ticket {
                            gate: self,
                            generation,
                            probe: false,
                            reported: false,
                        };
                    }
                    Some(outage) if !outage.probing && Instant::now() >= outage.retry_at => {
                        outage.probing = true;
                        return Ticket {
                            gate: self,
                            generation,
                            probe: true,
                            reported: false,
                        };
                    }
                    Some(outage) if !outage.probing => Some(outage.retry_at),
                    Some(_) => None,
                }
            };
            match retry_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// How long the outage in progress has lasted; `None` while the agent
    /// answers.
    pub fn outage_for(&self) -> Option<Duration> {
        self.lock().outage.as_ref().map(|o| o.started.elapsed())
    }

    /// The agent answered: ends any outage and releases everyone waiting.
    pub fn succeeded(&self, mut ticket: Ticket<'_>) {
        ticket.reported = true;
        let mut state = self.lock();
        if let Some(outage) = state.outage.take() {
            tracing::info!(
                after = ?outage.started.elapsed(),
                failed_attempts = outage.failures,
                "consul reachable again"
            );
            drop(state);
            self.reopened.notify_waiters();
        }
    }

    /// The agent could not be reached (`error` says why, for the log):
    /// starts or extends the outage. Errs with the number of failed
    /// attempts once the retry policy says to stop.
    pub fn failed(&self, mut ticket: Ticket<'_>, error: &dyn fmt::Display) -> Result<(), u32> {
        ticket.reported = true;
        let mut state = self.lock();
        let now = Instant::now();
        let current_generation = state.generation;
        let failures = match state.outage.as_mut() {
            Some(outage) if ticket.probe => {
                outage.failures += 1;
                outage.retry_at = now + self.backoff.delay(outage.failures);
                outage.probing = false;
                tracing::debug!(attempt = outage.failures, %error, "consul still unreachable");
                outage.failures
            }
            // Sent before the current outage started, or alongside it: that
            // failure is already counted.
            Some(outage) => outage.failures,
            None if ticket.generation != current_generation => return Ok(()),
            None => {
                state.generation += 1;
                state.outage = Some(Outage {
                    failures: 1,
                    retry_at: now + self.backoff.delay(1),
                    probing: false,
                    started: now,
                });
                tracing::warn!(
                    %error,
                    max_backoff = ?self.backoff.max,
                    "consul unreachable; retrying with backoff, keeping the last good files"
                );
                1
            }
        };
        drop(state);
        self.reopened.notify_waiters();
        match self.give_up_after {
            Some(limit) if failures > limit => Err(failures),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        for (attempt, nominal_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = BACKOFF.delay(attempt).as_millis();
                assert!(
                    (nominal_ms / 2..=nominal_ms).contains(&d),
                    "attempt {attempt}: {d} ms"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_everything_while_consul_answers() {
        let gate = Gate::new(BACKOFF, None);
        for _ in 0..3 {
            let ticket = gate.admit().await;
            gate.succeeded(ticket);
        }
        assert!(gate.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn during_an_outage_only_one_probe_goes_out_per_retry() {
        let gate = Arc::new(Gate::new(BACKOFF, None));
        let first = gate.admit().await;
        gate.failed(first, &"connection refused").unwrap();
        assert!(!gate.is_open());

        // 50 watchers keep trying for 10 s of (paused) time against a dead agent.
        let attempts = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (gate, attempts) = (gate.clone(), attempts.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let ticket = gate.admit().await;
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.failed(ticket, &"connection refused");
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let n = attempts.load(Ordering::SeqCst);
        // Delays are >= 50, 100, 200, 400, then >= 500 ms: at most ~25 probes in 10 s.
        assert!(
            (5..=25).contains(&n),
            "{n} requests in 10 s from 50 watchers"
        );
        for task in tasks {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_probe_releases_every_waiter() {
        let gate = Arc::new(Gate::new(BACKOFF, None));
        let first = gate.admit().await;
        gate.failed(first, &"reset").unwrap();
        let released = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (gate, released) = (gate.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                let ticket = gate.admit().await;
                released.fetch_add(1, Ordering::SeqCst);
                gate.succeeded(ticket);
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(released.load(Ordering::SeqCst), 10);
        assert!(gate.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_hands_the_role_on() {
        let gate = Gate::new(BACKOFF, None);
        let first = gate.admit().await;
        gate.failed(first, &"reset").unwrap();
        let probe = gate.admit().await;
        drop(probe);
        let next = tokio::time::timeout(Duration::from_secs(2), gate.admit())
            .await
            .expect("next probe admitted");
        gate.succeeded(next);
        assert!(gate.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_requests_sent_before_the_outage_count_once() {
        let gate = Gate::new(BACKOFF, Some(1));
        let (a, b, c) = (gate.admit().await, gate.admit().await, gate.admit().await);
        gate.failed(a, &"reset").unwrap();
        gate.failed(b, &"reset").unwrap();
        gate.failed(c, &"reset").unwrap();
        let probe = gate.admit().await;
        assert_eq!(gate.failed(probe, &"refused"), Err(2));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_disabled_gives_up_on_the_first_failure() {
        let gate = Gate::new(BACKOFF, Some(0));
        let ticket = gate.admit().await;
        assert_eq!(gate.failed(ticket, &"refused"), Err(1));
    }
}
