//! Change-to-file latency and the blocking-query floor, measured on the same
//! change. For each change: read the service's current index, send a
//! blocking query `GET /v1/health/service/<svc>?index=N` and give it a few
//! milliseconds to park in the agent, then start the clock just before
//! connecting to send the change (`PUT /v1/agent/...`), and stop it (a) when
//! the tool's destination file holds the new config (inotify, then a byte
//! comparison; see `filewatch`) and (b) when the blocking query's answer has
//! been read in full. (b) is the floor: no Consul client can learn of the
//! change sooner than a blocking query does.

use crate::catalog::{Catalog, Change, ChangeKind};
use crate::consul::BenchAgent;
use crate::filewatch::DirWatch;
use crate::tools::{Tool, ToolSetup};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Consul's metric label for `/v1/health/service/`.
const HEALTH_SERVICE: &str = "v1_health_service_";

/// How long the floor's blocking query gets to reach the agent and park
/// before the change is sent.
const FLOOR_ARM: Duration = Duration::from_millis(5);

/// The floor query's `wait`: far longer than any change takes to arrive.
const FLOOR_WAIT: &str = "20s";

/// Deadline for the floor query's answer (`wait` plus Consul's jitter of up
/// to wait/16, plus slack).
const FLOOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Which service each change goes to.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Round-robin over every service.
    RoundRobin,
    /// Always service `index`.
    One(usize),
    /// Round-robin over the listed services.
    Among { services: Vec<usize>, next: usize },
    /// Instance `instance` of service `service` fails, passes, fails…;
    /// instance `spare`, failing, is there for changes without news.
    Flip {
        service: usize,
        instance: usize,
        spare: usize,
    },
}

impl Plan {
    /// `count` services spread evenly over a catalog of `total`.
    pub fn spread(count: usize, total: usize) -> Plan {
        let count = count.clamp(1, total);
        Plan::Among {
            services: (0..count).map(|k| k * total / count).collect(),
            next: 0,
        }
    }
}

/// One tool with everything a change needs: its agent, the model of that
/// agent's catalog, a watch on its destination and the content it holds.
pub struct Subject<'a> {
    pub setup: &'a ToolSetup,
    pub agent: &'a BenchAgent,
    pub catalog: Catalog,
    pub watch: DirWatch,
    /// The destination's content before the next change.
    pub current: String,
    pub plan: Plan,
    /// When the destination last reached a change's content.
    pub last_arrival: Option<Instant>,
}

impl Subject<'_> {
    /// The next change its plan calls for, applied to the model.
    fn next_change(&mut self) -> Change {
        match &mut self.plan {
            Plan::RoundRobin => self.catalog.next_change(),
            Plan::One(index) => self.catalog.next_change_of(*index),
            Plan::Among { services, next } => {
                let index = services[*next % services.len()];
                *next += 1;
                self.catalog.next_change_of(index)
            }
            Plan::Flip {
                service, instance, ..
            } => {
                let (service, instance) = (*service, *instance);
                let passing = self.catalog.is_passing(service, instance);
                self.catalog
                    .set_instance_passing(service, instance, !passing)
            }
        }
    }

    /// Sends a change that wakes the plan's service without news (see
    /// [`Catalog::no_news_change`]); only for [`Plan::Flip`].
    pub fn no_news(&mut self) {
        let Plan::Flip { service, spare, .. } = self.plan else {
            panic!("changes without news need a Flip plan");
        };
        let change = self.catalog.no_news_change(service, spare);
        self.agent.apply(&change);
    }
}

/// One measured change.
#[derive(Debug, Clone)]
pub struct Sample {
    pub tool: Tool,
    pub seq: usize,
    pub kind: ChangeKind,
    pub service: String,
    /// Change request start to the file holding the new config; `None` if
    /// it did not within the deadline.
    pub file: Option<Duration>,
    /// Change request start to the blocking query's answer; `None` if the
    /// query ended without the change (its `wait` ran out).
    pub floor: Option<Duration>,
    /// How long the agent took to answer the change request itself.
    pub request: Duration,
    /// Wall-clock time of the change request's start, to match it with
    /// the agent's log.
    pub at: SystemTime,
    /// From this tool's previous change reaching its file to this change's
    /// start.
    pub since_previous: Option<Duration>,
    /// Reads of the destination that were neither the old nor the new config.
    pub other_contents: u32,
}

/// Makes the next change of `subject`'s catalog and measures it.
pub fn measure_change(subject: &mut Subject<'_>, seq: usize, deadline: Duration) -> Sample {
    let agent = subject.agent;
    let change = subject.next_change();
    let expected = subject.catalog.render();

    let path = format!("/v1/health/service/{}", change.service);
    let now = agent.get(&path, HEALTH_SERVICE);
    let index: u64 = now
        .header("X-Consul-Index")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("GET {path} has no X-Consul-Index"));
    let blocking = agent
        .send(
            "GET",
            &format!("{path}?index={index}&wait={FLOOR_WAIT}"),
            HEALTH_SERVICE,
            None,
            FLOOR_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("sending the floor query {path}?index={index}: {e}"));
    let floor = thread::spawn(move || {
        let response = blocking.receive();
        (Instant::now(), response)
    });
    thread::sleep(FLOOR_ARM);

    let start = Instant::now();
    let at = SystemTime::now();
    agent.apply(&change);
    let request = start.elapsed();
    let dest = subject.setup.destination();
    let arrival = subject
        .watch
        .wait_for(&dest, &subject.current, &expected, start + deadline);

    let (floor_at, response) = floor
        .join()
        .unwrap_or_else(|_| panic!("the floor query thread for {path} panicked"));
    let response =
        response.unwrap_or_else(|e| panic!("the floor query {path}?index={index} failed: {e}"));
    assert_eq!(
        response.status, 200,
        "floor query {path}?index={index} answered {}: {}",
        response.status, response.body
    );
    let woke = response
        .header("X-Consul-Index")
        .and_then(|i| i.parse::<u64>().ok())
        .is_some_and(|new| new != index);

    subject.current = match arrival.at {
        Some(_) => expected,
        None => std::fs::read_to_string(&dest).unwrap_or_default(),
    };
    let since_previous = subject.last_arrival.map(|last| start - last);
    subject.last_arrival = arrival.at;
    Sample {
        tool: subject.setup.tool,
        seq,
        kind: change.kind,
        service: change.service,
        file: arrival.at.map(|at| at - start),
        floor: woke.then(|| floor_at - start),
        request,
        at,
        since_previous,
        other_contents: arrival.other_contents,
    }
}

/// Percentiles of a set of durations (nearest rank: the p-th percentile is
/// the smallest sample with at least p% of samples at or below it).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    /// Samples that never arrived (not in the percentiles).
    pub missed: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    /// Summarises `samples`; `None` if none arrived.
    pub fn of(samples: impl IntoIterator<Item = Option<Duration>>) -> Option<Summary> {
        let mut missed = 0;
        let mut arrived: Vec<Duration> = samples
            .into_iter()
            .filter_map(|s| {
                if s.is_none() {
                    missed += 1;
                }
                s
            })
            .collect();
        if arrived.is_empty() {
            return None;
        }
        arrived.sort();
        let n = arrived.len();
        let rank = |p: usize| arrived[(p * n).div_ceil(100).clamp(1, n) - 1];
        let total: Duration = arrived.iter().sum();
        Some(Summary {
            n,
            missed,
            min: arrived[0],
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: arrived[n - 1],
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of((1..=100).map(ms)).expect("samples");
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let s = Summary::of([ms(3), ms(1), ms(2)]).expect("samples");
        assert_eq!(s.p50, Duration::from_millis(2));
        assert_eq!(s.p99, Duration::from_millis(3));
    }

    #[test]
    fn missed_samples_are_counted_not_ranked() {
        let s = Summary::of([ms(1), None, ms(5)]).expect("samples");
        assert_eq!((s.n, s.missed), (2, 1));
        assert!(Summary::of([None]).is_none());
    }
}
