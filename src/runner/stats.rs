//! Counters of what the runner did and what went wrong, shared with the
//! apply task. Failure log lines carry the running count; the whole set is
//! logged on SIGUSR1 and at exit.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since start.
#[derive(Default, Debug)]
pub struct Stats {
    pub renders: AtomicU64,
    pub writes: AtomicU64,
    pub unchanged: AtomicU64,
    pub check_failures: AtomicU64,
    pub write_failures: AtomicU64,
    pub command_runs: AtomicU64,
    pub command_failures: AtomicU64,
    /// Values from Consul that validation kept out of the data.
    pub rejected_values: AtomicU64,
    /// Times data that lost entries after an outage or reset was held back.
    pub holds: AtomicU64,
}

impl Stats {
    /// Adds `n` to `counter` and returns the new total.
    pub fn add(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed) + n
    }

    /// Adds one to `counter` and returns the new total.
    pub fn bump(counter: &AtomicU64) -> u64 {
        Stats::add(counter, 1)
    }

    /// Logs every counter on one line.
    pub fn log(&self) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            renders = get(&self.renders),
            writes = get(&self.writes),
            unchanged = get(&self.unchanged),
            check_failures = get(&self.check_failures),
            write_failures = get(&self.write_failures),
            command_runs = get(&self.command_runs),
            command_failures = get(&self.command_failures),
            rejected_values = get(&self.rejected_values),
            holds = get(&self.holds),
            "stats"
        );
    }
}
