//! Watching dependencies: one task per dependency runs Consul's blocking
//! query loop (or, for a local file, [`local_file`](crate::local_file)'s
//! watch) and reports each *change* of its data; [`Watchers`] starts and
//! stops those tasks as the set of dependencies the templates use changes.
//!
//! The loop follows Consul's rules for blocking-query clients:
//! - block with the last `X-Consul-Index`; an index of 0 is read as 1;
//! - an index that goes backwards resets the loop (the next read does not
//!   block), as does any error: after an agent restart the old index may be
//!   far above the new agent's, and blocking on it would hide the reset for a
//!   whole `wait`;
//! - what a reply means (a change or not, suspect or not) is
//!   [`change`](super::change)'s rule, shared with signal mode;
//! - the first failed read of an episode tells the runner the data is
//!   stale from then on; the first good reply after it says when its
//!   change may date from, or that the data is current again;
//! - replies that bring changes are followed at once. After a wake-up that
//!   brought nothing new, a watch of one service or key blocks again at
//!   once too, paced only by a small token bucket so a misbehaving endpoint
//!   cannot make it spin; a catalog-wide list, which wakes for every
//!   registration in the datacenter, first lets the catalog settle, so a
//!   burst of registrations costs one request (an endpoint that sends no
//!   index at all is polled).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::change::{Event, LastReported, RECHECK_DELAY, Staleness, decode, index_went_back};
use super::dependency::Dependency;
use super::signal::Signal;
use super::transport::{ConsulIndex, FetchError, Reply, Transport};

/// How often a dependency without blocking support is re-read.
const POLL_INTERVAL: Duration = Duration::from_secs(60);
/// How often a blocking endpoint is re-read when its replies carry no index.
const NO_INDEX_POLL: Duration = Duration::from_secs(5);
/// How long a catalog-wide watch waits before blocking again after a
/// wake-up that brought nothing new: registrations that follow within it
/// share one answer. (consul-template holds any quick answer back until
/// 100–120 ms after its query was sent, whatever the endpoint.)
const CATALOG_SETTLE: Duration = Duration::from_millis(120);
/// Token bucket for wake-ups without news on one service or key: burst
/// size and refill period.
const BURST: u32 = 2;
const REFILL: Duration = Duration::from_millis(50);

/// The running watch tasks, keyed by dependency, and the signal task that
/// takes over the local service watches when they would not fit the
/// connection budget (see [`signal`](super::signal)).
pub struct Watchers {
    transport: Arc<Transport>,
    events: mpsc::UnboundedSender<Event>,
    running: HashMap<Dependency, JoinHandle<()>>,
    signal: Option<Signal>,
    /// How many blocking queries the last [`set`](Self::set) wanted.
    blocking: usize,
}

impl Watchers {
    pub fn new(transport: Arc<Transport>, events: mpsc::UnboundedSender<Event>) -> Watchers {
        Watchers {
            transport,
            events,
            running: HashMap::new(),
            signal: None,
            blocking: 0,
        }
    }

    /// Makes the watched set equal `wanted`: starts watchers for new
    /// dependencies, stops those no template uses any more, and moves the
    /// local service watches into or out of signal mode as their number
    /// crosses the connection budget.
    pub fn set(&mut self, wanted: &BTreeSet<Dependency>) {
        self.blocking = wanted.iter().filter(|d| d.is_blocking()).count();
        let signal_mode = self.signal_mode();
        let (signalled, direct): (BTreeSet<Dependency>, BTreeSet<Dependency>) = if signal_mode {
            wanted
                .iter()
                .cloned()
                .partition(|d| matches!(d, Dependency::Health(q) if q.dc.is_none()))
        } else {
            (BTreeSet::new(), wanted.clone())
        };
        match (signal_mode, self.signal.is_some()) {
            (true, false) => {
                tracing::info!(
                    services = signalled.len(),
                    capacity = ?self.transport.long_poll_capacity(),
                    "watching services through catalog-wide signals: one query per service would exceed the connection budget"
                );
                self.signal = Some(Signal::start(self.transport.clone(), self.events.clone()));
            }
            (false, true) => {
                tracing::info!("watching each service with its own query again");
                self.signal = None;
            }
            _ => {}
        }
        if let Some(signal) = &self.signal {
            let queries = signalled
                .into_iter()
                .filter_map(|d| match d {
                    Dependency::Health(q) => Some(q),
                    _ => None,
                })
                .collect();
            signal.set(queries);
        }
        self.running.retain(|dependency, task| {
            let keep = direct.contains(dependency);
            if !keep {
                tracing::debug!(%dependency, "stopping watch");
                task.abort();
            }
            keep
        });
        for dependency in &direct {
            if !self.running.contains_key(dependency) {
                tracing::debug!(%dependency, "starting watch");
                let events = self.events.clone();
                let task = if dependency.is_consul() {
                    tokio::spawn(watch(dependency.clone(), self.transport.clone(), events))
                } else {
                    tokio::spawn(crate::local_file::watch(dependency.clone(), events))
                };
                self.running.insert(dependency.clone(), task);
            }
        }
        if let Some(capacity) = self.transport.long_poll_capacity() {
            let direct_blocking = direct.iter().filter(|d| d.is_blocking()).count();
            let held = direct_blocking + if self.signal.is_some() { 2 } else { 0 };
            if held > capacity {
                tracing::warn!(
                    watches = held,
                    capacity,
                    "more key, catalog and other-datacenter watches than the connection budget; some wait for a connection (raise -consul-max-connections)"
                );
            }
        }
    }

    /// Whether the blocking watches exceed what the connections can hold.
    /// Once in signal mode, it stays there until they fall well below the
    /// budget, so a set hovering at the limit does not flap.
    /// Whether local service watches go through catalog-wide signals now.
    pub fn signalling(&self) -> bool {
        self.signal.is_some()
    }

    fn signal_mode(&self) -> bool {
        let Some(capacity) = self.transport.long_poll_capacity() else {
            return false;
        };
        if self.signal.is_some() {
            self.blocking > capacity / 2
        } else {
            self.blocking > capacity
        }
    }

    /// Whether the watches set last are still in the right mode: the
    /// transport learns only with its first connection whether it can
    /// multiplex, which changes the connection budget. If not, the caller
    /// sets the same dependencies again.
    pub fn mode_holds(&self) -> bool {
        self.signal_mode() == self.signal.is_some()
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// The blocking-query loop for one dependency. Runs until aborted or until
/// the retry policy gives up.
async fn watch(
    dependency: Dependency,
    transport: Arc<Transport>,
    events: mpsc::UnboundedSender<Event>,
) {
    // What the next query blocks on; cleared by errors and resets.
    let mut block_on: Option<ConsulIndex> = None;
    // The last index seen, kept across errors so that a reset is noticed
    // even when it happened while Consul was unreachable.
    let mut last_index: Option<ConsulIndex> = None;
    // A read failed (Consul unreachable, an error answer, a garbled body)
    // since the last good reply: the next data may not be the whole truth,
    // and the runner is told the data may be out of date.
    let mut staleness = Staleness::default();
    let mut last = LastReported::default();
    let mut refused = 0u32;
    // The last reply brought nothing new: pace the next query. Replies that
    // bring changes are paced by Consul's own writes and must flow at once.
    let mut idle_wake = false;
    let mut bucket = TokenBucket::new();
    let mut warned_no_index = false;
    // What is read for `dependency`: resolved once (see `resolve`).
    let mut target: Option<Dependency> = None;
    loop {
        if idle_wake {
            if dependency.wakes_on_any_registration() {
                tokio::time::sleep(CATALOG_SETTLE).await;
            } else {
                bucket.take().await;
            }
        }
        let reply = match fetch(&dependency, &mut target, &transport, block_on).await {
            Ok(reply) => reply,
            Err(FetchError::GaveUp(e)) => {
                let _ = events.send(Event::GaveUp(e));
                return;
            }
            Err(FetchError::Unreachable(_)) => {
                // The gate logs the outage and paces the retries.
                block_on = None;
                if !went_stale(&mut staleness, &dependency, &events) {
                    return;
                }
                continue;
            }
            Err(error @ (FetchError::Rejected { .. } | FetchError::Hidden { .. })) => {
                refused += 1;
                block_on = None;
                if !went_stale(&mut staleness, &dependency, &events) {
                    return;
                }
                let delay = transport.backoff().delay(refused);
                tracing::warn!(%dependency, %error, retry_in = ?delay, "query failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let went_back = index_went_back(last_index, reply.index);
        let reply_had_no_index = reply.index.is_none();
        match decode(&dependency, &reply) {
            Ok((data, rejections)) => {
                refused = 0;
                if went_back {
                    tracing::warn!(%dependency, old = ?last_index, new = ?reply.index, "consul index went backwards (agent restarted or state reset)");
                }
                let after_reset = went_back || staleness.is_stale();
                let (since, was_stale) = staleness.confirmed();
                let news = last.update(&dependency, data, &rejections, after_reset, since);
                idle_wake = news.is_none();
                // Suspect data (a re-syncing catalog, a garbled answer that
                // parsed) is read again shortly without blocking, rather
                // than blocking on an index that may not match the data.
                let suspect = news.as_ref().is_some_and(|news| news.suspect);
                if let Some(news) = news
                    && events.send(Event::Changed(news.change)).is_err()
                {
                    return;
                }
                if was_stale && events.send(Event::Current(dependency.clone())).is_err() {
                    return;
                }
                last_index = reply.index;
                // Consul's rule: after a backwards index, start over unblocked.
                block_on = if went_back || suspect {
                    None
                } else {
                    reply.index
                };
                if suspect {
                    tokio::time::sleep(RECHECK_DELAY).await;
                }
            }
            Err(error) => {
                refused += 1;
                block_on = None;
                if !went_stale(&mut staleness, &dependency, &events) {
                    return;
                }
                let delay = transport.backoff().delay(refused);
                tracing::warn!(%dependency, %error, retry_in = ?delay, "could not decode consul's reply");
                tokio::time::sleep(delay).await;
                continue;
            }
        }
        if !dependency.is_blocking() {
            tokio::time::sleep(POLL_INTERVAL).await;
        } else if block_on.is_none() && reply_had_no_index {
            // Without an index every query returns at once (something
            // between us and Consul strips the header): poll instead of spin.
            if !warned_no_index {
                tracing::warn!(%dependency, every = ?NO_INDEX_POLL, "consul's reply has no X-Consul-Index; polling");
                warned_no_index = true;
            }
            tokio::time::sleep(NO_INDEX_POLL).await;
        }
    }
}

/// Marks a failed read; the first of an episode tells the runner the data
/// may be out of date. Returns whether the runner still listens.
fn went_stale(
    staleness: &mut Staleness,
    dependency: &Dependency,
    events: &mpsc::UnboundedSender<Event>,
) -> bool {
    let Some(since) = staleness.failed() else {
        return true;
    };
    events
        .send(Event::Stale {
            dependency: dependency.clone(),
            since,
        })
        .is_ok()
}

/// Reads `dependency` through `target`, resolving that first if need be.
async fn fetch(
    dependency: &Dependency,
    target: &mut Option<Dependency>,
    transport: &Transport,
    index: Option<ConsulIndex>,
) -> Result<Reply, FetchError> {
    let target = match target {
        Some(target) => target,
        None => target.insert(resolve(dependency, transport).await?),
    };
    transport.get(target, index).await
}

/// What is read for `dependency`: itself, except that the local agent's
/// node is asked for by the name `/v1/agent/self` gives (as consul-template
/// does, once per watch: an agent does not change its name while running).
async fn resolve(dependency: &Dependency, transport: &Transport) -> Result<Dependency, FetchError> {
    let Dependency::CatalogNode { name: None, dc } = dependency else {
        return Ok(dependency.clone());
    };
    #[derive(serde::Deserialize)]
    struct AgentSelf {
        #[serde(rename = "Config")]
        config: AgentConfig,
    }
    #[derive(serde::Deserialize)]
    struct AgentConfig {
        #[serde(rename = "NodeName")]
        node_name: String,
    }
    let reply = transport.get_path("/v1/agent/self", None).await?;
    match serde_json::from_slice::<AgentSelf>(&reply.body) {
        Ok(agent) if !agent.config.node_name.is_empty() => Ok(Dependency::CatalogNode {
            name: Some(agent.config.node_name),
            dc: dc.clone(),
        }),
        _ => Err(FetchError::Rejected {
            status: reply.status,
            body: "/v1/agent/self did not name the agent's node (Config.NodeName)".to_owned(),
        }),
    }
}

/// A small token bucket: `BURST` requests at once, then one per `REFILL`.
struct TokenBucket {
    tokens: u32,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new() -> TokenBucket {
        TokenBucket {
            tokens: BURST,
            refilled_at: Instant::now(),
        }
    }

    async fn take(&mut self) {
        let now = Instant::now();
        let earned = (now - self.refilled_at).as_nanos() / REFILL.as_nanos();
        if earned > 0 {
            self.tokens = (self.tokens + u32::try_from(earned).unwrap_or(BURST)).min(BURST);
            self.refilled_at = now;
        }
        if self.tokens == 0 {
            tokio::time::sleep_until(self.refilled_at + REFILL).await;
            self.refilled_at = Instant::now();
            return;
        }
        self.tokens -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_a_burst_then_paces() {
        let mut bucket = TokenBucket::new();
        let start = Instant::now();
        for _ in 0..BURST {
            bucket.take().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst passes at once");
        for _ in 0..10 {
            bucket.take().await;
        }
        assert!(
            start.elapsed() >= REFILL * 10,
            "then one per refill: {:?}",
            start.elapsed()
        );
        tokio::time::sleep(REFILL * 100).await;
        let idle = Instant::now();
        for _ in 0..BURST {
            bucket.take().await;
        }
        assert_eq!(
            idle.elapsed(),
            Duration::ZERO,
            "an idle watcher has its burst back"
        );
    }
}
