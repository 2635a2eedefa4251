//! Signal mode: watching many services through few connections.
//!
//! Over HTTP/1.1 every blocking query holds a connection, and Consul
//! refuses a client address past 200 of them, so one query per service
//! cannot watch 1,000 services. In signal mode two catalog-wide blocking
//! queries are the change signal for every watched service of the local
//! datacenter:
//! - `/v1/health/state/any` lists every check with its service and the
//!   index it last changed at, so it wakes for any health or membership
//!   change of a service with checks and says which service changed;
//! - `/v1/catalog/services` wakes for any registration, removal or update,
//!   checks or not, and its diff names new and removed services and changed
//!   tags.
//!
//! After a wake, the services named by a difference are re-read. A catalog
//! wake no difference explains (an instance without checks added, removed
//! or moved) is resolved by probing each watched service's own index (a
//! reply of `[]` plus a header) and re-reading those that moved. A slow
//! safety sweep does the same every few minutes. A service read that Consul
//! refuses, or whose results it hides from the token, is re-read on its
//! own, paced by the backoff: no signal names a service the token cannot
//! see.
//!
//! Costs: a change is one or two signal replies (the state/any reply grows
//! with the number of checks, about 0.4 kB each) plus one read per changed
//! service; an unexplained change adds one small probe per watched service.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::change::{Event, LastReported, RECHECK_DELAY, Staleness, decode, index_went_back};
use super::dependency::{Dependency, HealthQuery};
use super::model::StateCheck;
use super::transport::{ConsulIndex, FetchError, GaveUp, Reply, Transport};

const STATE_ANY: &str = "/v1/health/state/any";
const CATALOG_SERVICES: &str = "/v1/catalog/services";
/// How long an unexplained catalog wake waits for the state/any reply of
/// the same change, which would explain it, before probing.
const EXPLAIN_GRACE: Duration = Duration::from_millis(50);
/// How often every watched service's index is probed regardless.
const SAFETY_SWEEP: Duration = Duration::from_secs(300);

/// The running signal task; stopped on drop.
pub struct Signal {
    wanted: watch::Sender<BTreeSet<HealthQuery>>,
    task: JoinHandle<()>,
}

impl Signal {
    pub fn start(transport: Arc<Transport>, events: mpsc::UnboundedSender<Event>) -> Signal {
        let (wanted, rx) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(async move { SignalLoop::new(transport, rx, events).run().await });
        Signal { wanted, task }
    }

    /// Sets the health dependencies to watch (all of the local datacenter).
    pub fn set(&self, wanted: BTreeSet<HealthQuery>) {
        self.wanted.send_if_modified(|current| {
            let changed = *current != wanted;
            *current = wanted;
            changed
        });
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Poll = Pin<Box<dyn Future<Output = Result<Reply, FetchError>> + Send>>;

/// Every check Consul reported, keyed by (node, check id): its service,
/// status and the index it last changed at.
type Checks = HashMap<(String, String), (String, String, u64)>;

struct SignalLoop {
    transport: Arc<Transport>,
    wanted: watch::Receiver<BTreeSet<HealthQuery>>,
    events: mpsc::UnboundedSender<Event>,
    /// Every watched dependency and the data last reported for it.
    tracked: BTreeMap<HealthQuery, LastReported>,
    /// The last index of each watched service, from full reads and probes.
    service_index: HashMap<String, ConsulIndex>,
    /// (node, check id) → (service, status, modify index).
    checks: Option<Checks>,
    catalog: Option<BTreeMap<String, Vec<String>>>,
    state_index: Option<ConsulIndex>,
    catalog_index: Option<ConsulIndex>,
    state_failures: u32,
    catalog_failures: u32,
    /// A signal or service read failed: every watched service may be out
    /// of date, and the next good signal re-reads them all.
    staleness: Staleness,
    /// A state/any difference was attributed since the last catalog reply.
    attributed: Option<ConsulIndex>,
    pending_sweep: Option<(Instant, ConsulIndex)>,
    next_safety_sweep: Instant,
    recheck: Option<(Instant, BTreeSet<HealthQuery>)>,
    /// Reads in a row that Consul refused or hid something in: paces the
    /// re-reads of what it refused (no signal ever names a service the
    /// token cannot see).
    refusals: u32,
}

/// Why the signal loop stops.
enum Stop {
    /// Consul stayed unreachable past the retry policy: the runner is told.
    GaveUp(GaveUp),
    /// The runner no longer listens.
    RunnerStopped,
}

enum Wake {
    Wanted(bool),
    State(Result<Reply, FetchError>),
    Catalog(Result<Reply, FetchError>),
    Sweep,
    SafetySweep,
    Recheck,
}

impl SignalLoop {
    fn new(
        transport: Arc<Transport>,
        wanted: watch::Receiver<BTreeSet<HealthQuery>>,
        events: mpsc::UnboundedSender<Event>,
    ) -> SignalLoop {
        SignalLoop {
            transport,
            wanted,
            events,
            tracked: BTreeMap::new(),
            service_index: HashMap::new(),
            checks: None,
            catalog: None,
            state_index: None,
            catalog_index: None,
            state_failures: 0,
            catalog_failures: 0,
            staleness: Staleness::default(),
            attributed: None,
            pending_sweep: None,
            next_safety_sweep: Instant::now() + SAFETY_SWEEP,
            recheck: None,
            refusals: 0,
        }
    }

    fn poll(&self, path: &'static str, index: Option<ConsulIndex>, failures: u32) -> Poll {
        let transport = self.transport.clone();
        let delay = if failures > 0 {
            transport.backoff().delay(failures)
        } else {
            Duration::ZERO
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            transport.get_path(path, index).await
        })
    }

    async fn run(mut self) {
        self.sync_wanted().await;
        let mut state_poll = self.poll(STATE_ANY, None, 0);
        let mut catalog_poll = self.poll(CATALOG_SERVICES, None, 0);
        loop {
            let sweep_at = self.pending_sweep.map(|(at, _)| at);
            let recheck_at = self.recheck.as_ref().map(|(at, _)| *at);
            let wake = tokio::select! {
                changed = self.wanted.changed() => Wake::Wanted(changed.is_ok()),
                reply = &mut state_poll => Wake::State(reply),
                reply = &mut catalog_poll => Wake::Catalog(reply),
                () = sleep_until(sweep_at), if sweep_at.is_some() => Wake::Sweep,
                () = tokio::time::sleep_until(self.next_safety_sweep) => Wake::SafetySweep,
                () = sleep_until(recheck_at), if recheck_at.is_some() => Wake::Recheck,
            };
            let outcome = match wake {
                Wake::Wanted(false) => return,
                Wake::Wanted(true) => {
                    self.sync_wanted().await;
                    Ok(())
                }
                Wake::State(reply) => {
                    let outcome = self.on_state(reply).await;
                    state_poll = self.poll(STATE_ANY, self.state_index, self.state_failures);
                    outcome
                }
                Wake::Catalog(reply) => {
                    let outcome = self.on_catalog(reply).await;
                    catalog_poll =
                        self.poll(CATALOG_SERVICES, self.catalog_index, self.catalog_failures);
                    outcome
                }
                Wake::Sweep => {
                    self.pending_sweep = None;
                    tracing::debug!(
                        "catalog changed without a check telling which service: probing indexes"
                    );
                    self.sweep().await
                }
                Wake::SafetySweep => {
                    self.next_safety_sweep = Instant::now() + SAFETY_SWEEP;
                    self.sweep().await
                }
                Wake::Recheck => {
                    let queries = self
                        .recheck
                        .take()
                        .map(|(_, queries)| queries)
                        .unwrap_or_default();
                    self.read(queries, None).await
                }
            };
            if let Err(stop) = outcome {
                if let Stop::GaveUp(gave_up) = stop {
                    let _ = self.events.send(Event::GaveUp(gave_up));
                }
                return;
            }
        }
    }

    /// Starts tracking new dependencies (reading them at once) and forgets
    /// the ones no longer wanted.
    async fn sync_wanted(&mut self) {
        let wanted = self.wanted.borrow_and_update().clone();
        self.tracked.retain(|q, _| wanted.contains(q));
        let new: BTreeSet<HealthQuery> = wanted
            .iter()
            .filter(|q| !self.tracked.contains_key(q))
            .cloned()
            .collect();
        for q in &new {
            self.tracked.insert(q.clone(), LastReported::default());
        }
        if !new.is_empty() {
            tracing::debug!(count = new.len(), "reading newly watched services");
            // A give-up surfaces through the signal polls as well.
            let _ = self.read(new, None).await;
        }
    }

    async fn on_state(&mut self, reply: Result<Reply, FetchError>) -> Result<(), Stop> {
        let reply = match self.signal_reply(reply, "health state")? {
            Some(reply) => reply,
            None => {
                self.state_failures += 1;
                self.state_index = None;
                return Ok(());
            }
        };
        let list: Vec<StateCheck> = match serde_json::from_slice(&reply.body) {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!("could not decode consul's health state: {error}");
                self.state_failures += 1;
                self.state_index = None;
                self.went_stale();
                return Ok(());
            }
        };
        self.state_failures = 0;
        let went_back = index_went_back(self.state_index, reply.index);
        let checks: Checks = list
            .into_iter()
            .map(|c| {
                (
                    (c.node, c.check_id),
                    (c.service_name, c.status, c.modify_index),
                )
            })
            .collect();
        let changed: BTreeSet<String> = match &self.checks {
            // The first reply is the baseline. A service read before it may
            // have changed since: its checks say so.
            None => changed_after_read(&checks, &self.service_index),
            Some(before) => changed_services(before, &checks),
        };
        self.checks = Some(checks);
        self.state_index = if went_back { None } else { reply.index };
        if self.staleness.is_stale() || went_back {
            return self.reread_all().await;
        }
        if !changed.is_empty() {
            self.attributed = reply.index;
            if self
                .pending_sweep
                .is_some_and(|(_, at)| reply.index >= Some(at))
            {
                self.pending_sweep = None;
            }
            return self.read_services(&changed).await;
        }
        Ok(())
    }

    async fn on_catalog(&mut self, reply: Result<Reply, FetchError>) -> Result<(), Stop> {
        let reply = match self.signal_reply(reply, "service catalog")? {
            Some(reply) => reply,
            None => {
                self.catalog_failures += 1;
                self.catalog_index = None;
                return Ok(());
            }
        };
        let catalog: BTreeMap<String, Option<Vec<String>>> =
            match serde_json::from_slice(&reply.body) {
                Ok(catalog) => catalog,
                Err(error) => {
                    tracing::warn!("could not decode consul's service catalog: {error}");
                    self.catalog_failures += 1;
                    self.catalog_index = None;
                    self.went_stale();
                    return Ok(());
                }
            };
        self.catalog_failures = 0;
        let catalog: BTreeMap<String, Vec<String>> = catalog
            .into_iter()
            .map(|(name, tags)| (name, tags.unwrap_or_default()))
            .collect();
        let went_back = index_went_back(self.catalog_index, reply.index);
        let moved = self.catalog_index.is_some() && reply.index != self.catalog_index;
        let changed = match &self.catalog {
            None => {
                // The first reply is the baseline: anything without checks
                // that changed since the services were read shows only in
                // their indexes.
                if !self.tracked.is_empty()
                    && let Some(index) = reply.index
                {
                    self.pending_sweep = Some((Instant::now() + EXPLAIN_GRACE, index));
                }
                BTreeSet::new()
            }
            Some(before) => changed_entries(before, &catalog),
        };
        self.catalog = Some(catalog);
        self.catalog_index = if went_back { None } else { reply.index };
        if self.staleness.is_stale() || went_back {
            return self.reread_all().await;
        }
        let explained =
            !changed.is_empty() || (self.attributed.is_some() && self.attributed >= reply.index);
        if moved
            && !explained
            && let Some(index) = reply.index
        {
            // The state/any reply of the same change may be on its way.
            self.pending_sweep = Some((Instant::now() + EXPLAIN_GRACE, index));
        }
        self.read_services(&changed).await
    }

    /// Sorts a signal reply: `Some` to use, `None` for a failure to retry
    /// (after which everything is re-read), `Err` when retries are exhausted.
    fn signal_reply(
        &mut self,
        reply: Result<Reply, FetchError>,
        what: &str,
    ) -> Result<Option<Reply>, Stop> {
        match reply {
            Ok(reply) => Ok(Some(reply)),
            Err(FetchError::GaveUp(e)) => Err(Stop::GaveUp(e)),
            Err(FetchError::Unreachable(_)) => {
                self.went_stale();
                Ok(None)
            }
            Err(error @ (FetchError::Rejected { .. } | FetchError::Hidden { .. })) => {
                tracing::warn!(%error, "watching the {what} failed");
                self.went_stale();
                Ok(None)
            }
        }
    }

    /// After an outage or reset nothing is known to be current: read every
    /// watched service again (data that lost entries is flagged, so the
    /// runner can hold it).
    async fn reread_all(&mut self) -> Result<(), Stop> {
        let (since, was_stale) = self.staleness.confirmed();
        self.pending_sweep = None;
        let all: BTreeSet<HealthQuery> = self.tracked.keys().cloned().collect();
        tracing::debug!(count = all.len(), "re-reading every watched service");
        self.read(all, Some(since)).await?;
        if was_stale && !self.staleness.is_stale() {
            for q in self.tracked.keys() {
                if self
                    .events
                    .send(Event::Current(Dependency::Health(q.clone())))
                    .is_err()
                {
                    return Err(Stop::RunnerStopped);
                }
            }
        }
        Ok(())
    }

    /// Marks a failed read; the first of an episode tells the runner that
    /// every watched service may be out of date. (A runner gone is noticed
    /// by the next change it is sent.)
    fn went_stale(&mut self) {
        let Some(since) = self.staleness.failed() else {
            return;
        };
        for q in self.tracked.keys() {
            let _ = self.events.send(Event::Stale {
                dependency: Dependency::Health(q.clone()),
                since,
            });
        }
    }

    async fn read_services(&mut self, services: &BTreeSet<String>) -> Result<(), Stop> {
        let queries: BTreeSet<HealthQuery> = self
            .tracked
            .keys()
            .filter(|q| services.contains(&q.service))
            .cloned()
            .collect();
        self.read(queries, None).await
    }

    /// Probes every watched service's index and re-reads those that moved.
    async fn sweep(&mut self) -> Result<(), Stop> {
        let mut one_per_service: BTreeMap<String, HealthQuery> = BTreeMap::new();
        for q in self.tracked.keys() {
            one_per_service
                .entry(q.service.clone())
                .or_insert_with(|| q.clone());
        }
        let results = self
            .concurrently(one_per_service.into_values(), |t, q| async move {
                let index = t.index_of(&Dependency::Health(q.clone())).await;
                (q, index)
            })
            .await;
        let mut moved = BTreeSet::new();
        for (q, index) in results {
            match index {
                Ok(Some(index)) if self.service_index.get(&q.service) != Some(&index) => {
                    moved.insert(q.service);
                }
                Ok(_) => {}
                Err(FetchError::GaveUp(e)) => return Err(Stop::GaveUp(e)),
                // A failed probe: read it in full to be sure.
                Err(_) => {
                    moved.insert(q.service);
                }
            }
        }
        if !moved.is_empty() {
            tracing::debug!(services = ?moved, "indexes moved");
        }
        self.read_services(&moved).await
    }

    /// Reads `queries` in full, side by side, and reports the ones whose
    /// data changed. `reset_since`: the read follows an outage or reset,
    /// whose changes may date from then.
    async fn read(
        &mut self,
        queries: BTreeSet<HealthQuery>,
        reset_since: Option<Instant>,
    ) -> Result<(), Stop> {
        let results = self
            .concurrently(queries.into_iter(), |t, q| async move {
                let reply = t.get(&Dependency::Health(q.clone()), None).await;
                (q, reply)
            })
            .await;
        let mut suspect = BTreeSet::new();
        let mut refused = BTreeSet::new();
        for (q, reply) in results {
            let dependency = Dependency::Health(q.clone());
            let reply = match reply {
                Ok(reply) => reply,
                Err(FetchError::GaveUp(e)) => return Err(Stop::GaveUp(e)),
                Err(error @ FetchError::Unreachable(_)) => {
                    tracing::debug!(%dependency, %error, "read failed; retrying after the next signal");
                    self.went_stale();
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%dependency, %error, "query failed");
                    refused.insert(q.clone());
                    continue;
                }
            };
            let (data, rejections) = match decode(&dependency, &reply) {
                Ok(decoded) => decoded,
                Err(error) => {
                    tracing::warn!(%dependency, %error, "could not decode consul's reply");
                    self.went_stale();
                    continue;
                }
            };
            if let Some(index) = reply.index {
                self.service_index.insert(q.service.clone(), index);
            }
            let Some(last) = self.tracked.get_mut(&q) else {
                continue;
            };
            let since = reset_since.unwrap_or_else(Instant::now);
            let Some(news) =
                last.update(&dependency, data, &rejections, reset_since.is_some(), since)
            else {
                continue;
            };
            if news.suspect {
                suspect.insert(q.clone());
            }
            if self.events.send(Event::Changed(news.change)).is_err() {
                return Err(Stop::RunnerStopped);
            }
        }
        let mut delay = RECHECK_DELAY;
        if refused.is_empty() {
            self.refusals = 0;
        } else {
            self.refusals += 1;
            delay = delay.max(self.transport.backoff().delay(self.refusals));
            suspect.extend(refused);
        }
        if !suspect.is_empty() {
            let mut at = Instant::now() + delay;
            // A recheck already due keeps its place and what it holds.
            if let Some((due, pending)) = self.recheck.take() {
                at = at.min(due);
                suspect.extend(pending);
            }
            self.recheck = Some((at, suspect));
        }
        Ok(())
    }

    /// Runs `work` for every item, at most `read_concurrency` at a time.
    async fn concurrently<I, F, Fut, T>(&self, items: I, work: F) -> Vec<T>
    where
        I: Iterator<Item = HealthQuery>,
        F: Fn(Arc<Transport>, HealthQuery) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let limit = self.transport.read_concurrency();
        let mut set = JoinSet::new();
        let mut results = Vec::new();
        for item in items {
            if set.len() >= limit
                && let Some(Ok(result)) = set.join_next().await
            {
                results.push(result);
            }
            set.spawn(work(self.transport.clone(), item));
        }
        while let Some(result) = set.join_next().await {
            if let Ok(result) = result {
                results.push(result);
            }
        }
        results
    }
}

/// Services with a check that appeared, disappeared, or changed.
fn changed_services(before: &Checks, now: &Checks) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    for (key, (service, status, index)) in now {
        if before
            .get(key)
            .is_none_or(|(_, s, i)| s != status || i != index)
        {
            changed.insert(service.clone());
        }
    }
    for (key, (service, _, _)) in before {
        if !now.contains_key(key) {
            changed.insert(service.clone());
        }
    }
    changed.remove("");
    changed
}

/// Services with a check that changed after the index their data was read
/// at.
fn changed_after_read(checks: &Checks, read_at: &HashMap<String, ConsulIndex>) -> BTreeSet<String> {
    checks
        .values()
        .filter(|(service, _, modified)| {
            read_at
                .get(service)
                .is_some_and(|index| *modified > index.get())
        })
        .map(|(service, _, _)| service.clone())
        .collect()
}

/// Services added, removed, or with changed tags.
fn changed_entries(
    before: &BTreeMap<String, Vec<String>>,
    now: &BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = now
        .iter()
        .filter(|(name, tags)| before.get(*name) != Some(tags))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|name| !now.contains_key(*name))
            .cloned(),
    );
    changed
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(
        list: &[(&str, &str, &str, &str, u64)],
    ) -> HashMap<(String, String), (String, String, u64)> {
        list.iter()
            .map(|(node, id, service, status, index)| {
                (
                    (node.to_string(), id.to_string()),
                    (service.to_string(), status.to_string(), *index),
                )
            })
            .collect()
    }

    #[test]
    fn check_differences_name_the_services_that_changed() {
        let before = checks(&[
            ("n1", "serfHealth", "", "passing", 5),
            ("n1", "c:web-1", "web", "passing", 10),
            ("n1", "c:api-1", "api", "passing", 11),
            ("n1", "c:db-1", "db", "passing", 12),
        ]);
        let now = checks(&[
            ("n1", "serfHealth", "", "critical", 20),
            ("n1", "c:web-1", "web", "critical", 21),
            ("n1", "c:api-1", "api", "passing", 11),
            ("n1", "c:new-1", "new", "passing", 22),
        ]);
        let changed: Vec<String> = changed_services(&before, &now).into_iter().collect();
        assert_eq!(changed, ["db", "new", "web"]);
    }

    #[test]
    fn the_first_state_names_services_whose_checks_moved_after_they_were_read() {
        let now = checks(&[
            ("n1", "c:web-1", "web", "passing", 30),
            ("n1", "c:api-1", "api", "passing", 12),
            ("n1", "c:db-1", "db", "critical", 40),
        ]);
        let read_at = HashMap::from([
            ("web".to_owned(), ConsulIndex::new(25)),
            ("api".to_owned(), ConsulIndex::new(20)),
        ]);
        let changed: Vec<String> = changed_after_read(&now, &read_at).into_iter().collect();
        // db is not watched; api has not moved since it was read.
        assert_eq!(changed, ["web"]);
    }

    #[test]
    fn catalog_differences_name_added_removed_and_retagged_services() {
        let entry = |name: &str, tags: &[&str]| {
            (
                name.to_string(),
                tags.iter().map(|t| t.to_string()).collect(),
            )
        };
        let before = BTreeMap::from([entry("a", &[]), entry("b", &["x"]), entry("c", &[])]);
        let now = BTreeMap::from([entry("a", &[]), entry("b", &["y"]), entry("d", &[])]);
        let changed: Vec<String> = changed_entries(&before, &now).into_iter().collect();
        assert_eq!(changed, ["b", "c", "d"]);
    }
}
