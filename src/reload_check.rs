//! Did nginx take the reload? nginx's master takes a new configuration by
//! starting new workers; one that rejects it (a port it cannot bind, a
//! certificate it cannot read: what `nginx -t` cannot see) logs `[emerg]`
//! and keeps the old ones. So a reload took if a child of the master
//! appears that was not there before it. A master without children cannot
//! be judged and is not. Used for the supervised child and, with
//! `-nginx-pid-file`, for the master a reload command signals.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;

/// How long nginx may take to start the workers of a new configuration.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// The pids of `pid`'s children, from /proc.
pub fn workers(pid: i32) -> BTreeSet<i32> {
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

/// Waits until `master` has a worker not in `before` (the reload took), or
/// `VERIFY_TIMEOUT` (10 s) passes (it was rolled back: logged, counted,
/// shown by `/health`). `what` names the master in the log.
pub async fn verify(what: &'static str, master: i32, before: BTreeSet<i32>, metrics: Arc<Metrics>) {
    if before.is_empty() {
        return;
    }
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    loop {
        let now = workers(master);
        if now.is_empty() && !alive(master) {
            // It died; following that is someone else's business.
            return;
        }
        if now.iter().any(|worker| !before.contains(worker)) {
            tracing::debug!(pid = master, "{what} took the reload (new workers)");
            metrics.reload_verified(None);
            return;
        }
        if Instant::now() >= deadline {
            let why = format!(
                "no new worker process within {}s of the reload; {what} kept its old configuration (nginx logs why at [emerg] in its error log)",
                VERIFY_TIMEOUT.as_secs()
            );
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
