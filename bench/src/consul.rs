//! [`BenchAgent`]: a testbed Consul dev agent with Prometheus metrics on
//! (so its cumulative request counters can be read), and every request the
//! bench makes to it: filling the catalog, making changes, blocking queries
//! for the floor, probes, metrics reads. Each of those is counted, so that
//! the agent's own counters minus the bench's leave the tool's requests.

use crate::catalog::{Catalog, Change};
use crate::http::{self, Pending, Response};
use crate::requests::{METRICS_PATH, RequestCounts};
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use testbed::{AgentOptions, ConsulAgent, wait_until};

/// Cumulative request counters need Prometheus retention; the hostname is
/// left out of gauge names so they read the same on every machine.
const TELEMETRY: &str =
    r#"telemetry { prometheus_retention_time = "24h" disable_hostname = true }"#;

/// The metrics endpoint, in the format with cumulative counters.
const METRICS: &str = "/v1/agent/metrics?format=prometheus";

/// How long a metrics read is retried while the agent refuses the bench.
const COUNTERS_PATIENCE: Duration = Duration::from_secs(10);

/// Deadline for an ordinary (non-blocking) request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the catalog gets to show what the bench registered.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// A Consul dev agent used by one tool, plus the bench's request tally.
pub struct BenchAgent {
    agent: ConsulAgent,
    handle: AgentHandle,
}

/// What another thread needs to make counted requests to a [`BenchAgent`].
#[derive(Clone)]
pub struct AgentHandle {
    addr: String,
    own: Arc<Mutex<RequestCounts>>,
}

/// The source address of the bench's metrics reads: to Consul's
/// per-client connection limit a client other than 127.0.0.1, so a tool that
/// exhausts its own address's connections cannot hide the counters.
const METRICS_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

impl AgentHandle {
    /// Writes one request and returns without reading the answer (for
    /// blocking queries). It is counted when its answer is read.
    pub fn send(
        &self,
        method: &'static str,
        path: &str,
        label: &'static str,
        body: Option<&str>,
        timeout: Duration,
    ) -> io::Result<CountedPending> {
        self.send_from(None, method, path, label, body, timeout)
    }

    /// Like [`AgentHandle::send`], from loopback address `source`.
    fn send_from(
        &self,
        source: Option<Ipv4Addr>,
        method: &'static str,
        path: &str,
        label: &'static str,
        body: Option<&str>,
        timeout: Duration,
    ) -> io::Result<CountedPending> {
        let pending = http::send(&self.addr, source, method, path, body, timeout)?;
        Ok(CountedPending {
            pending,
            method,
            label,
            own: Arc::clone(&self.own),
        })
    }

    /// One counted request without a body.
    pub fn request(
        &self,
        method: &'static str,
        path: &str,
        label: &'static str,
        timeout: Duration,
    ) -> io::Result<Response> {
        self.send(method, path, label, None, timeout)?.receive()
    }
}

impl BenchAgent {
    /// Starts a dev agent on free ports and waits until it is ready.
    pub fn start() -> BenchAgent {
        let agent = ConsulAgent::dev_with(AgentOptions::new().hcl(TELEMETRY));
        let handle = AgentHandle {
            addr: agent.http_addr(),
            own: Arc::default(),
        };
        BenchAgent { agent, handle }
    }

    /// "127.0.0.1:PORT" of its HTTP API.
    pub fn http_addr(&self) -> String {
        self.agent.http_addr()
    }

    /// The port of its HTTP API.
    pub fn http_port(&self) -> u16 {
        self.http_addr()
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("testbed's http_addr is 127.0.0.1:PORT")
    }

    /// A handle for making counted requests from another thread.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Registers every instance of `catalog` and waits until the catalog
    /// lists them all, passing.
    pub fn fill(&self, catalog: &Catalog) {
        for change in catalog.registrations() {
            self.apply(&change);
        }
        self.wait_for_passing(catalog);
    }

    /// Waits until the agent's catalog has as many services as `catalog`
    /// (plus `consul`) and as many passing checks as it has passing
    /// instances (plus the node's `serfHealth`).
    pub fn wait_for_passing(&self, catalog: &Catalog) {
        let what = format!(
            "{} services with {} passing instances in the catalog of {}",
            catalog.service_count(),
            catalog.passing_count(),
            self.http_addr()
        );
        wait_until(&what, SYNC_TIMEOUT, || {
            let services = self.get("/v1/catalog/services", "v1_catalog_services");
            let passing = self.get("/v1/health/state/passing", "v1_health_state_");
            json_len(&services) == Some(catalog.service_count() + 1)
                && json_len(&passing) == Some(catalog.passing_count() + 1)
        });
    }

    /// Sends `change` and waits for the agent's answer, which must be 200.
    /// The catalog may show the change a little later: the agent syncs it.
    pub fn apply(&self, change: &Change) -> Response {
        let response = self
            .request(
                change.method,
                &change.path,
                change.label,
                change.body.as_deref(),
            )
            .unwrap_or_else(|e| panic!("{} {} failed: {e}", change.method, change.path));
        assert_eq!(
            response.status, 200,
            "{} {} answered {}: {}",
            change.method, change.path, response.status, response.body
        );
        response
    }

    /// A GET that must succeed with 200.
    pub fn get(&self, path: &str, label: &'static str) -> Response {
        let response = self
            .request("GET", path, label, None)
            .unwrap_or_else(|e| panic!("GET {path} on {} failed: {e}", self.http_addr()));
        assert_eq!(
            response.status,
            200,
            "GET {path} on {} answered {}: {}",
            self.http_addr(),
            response.status,
            response.body
        );
        response
    }

    /// One counted request with the standard deadline.
    pub fn request(
        &self,
        method: &'static str,
        path: &str,
        label: &'static str,
        body: Option<&str>,
    ) -> io::Result<Response> {
        self.send(method, path, label, body, REQUEST_TIMEOUT)?
            .receive()
    }

    /// See [`AgentHandle::send`].
    pub fn send(
        &self,
        method: &'static str,
        path: &str,
        label: &'static str,
        body: Option<&str>,
        timeout: Duration,
    ) -> io::Result<CountedPending> {
        self.handle.send(method, path, label, body, timeout)
    }

    /// The agent's cumulative request counters; panics if it will not say.
    pub fn counters(&self) -> RequestCounts {
        self.try_counters().unwrap_or_else(|| {
            panic!(
                "the agent at {} did not answer GET {METRICS} within {COUNTERS_PATIENCE:?}",
                self.http_addr()
            )
        })
    }

    /// The agent's cumulative request counters, asking again for a while
    /// if it refuses (a greedy client can keep it answering 429).
    pub fn try_counters(&self) -> Option<RequestCounts> {
        let deadline = Instant::now() + COUNTERS_PATIENCE;
        loop {
            let response = self
                .handle
                .send_from(
                    Some(METRICS_SOURCE),
                    "GET",
                    METRICS,
                    METRICS_PATH,
                    None,
                    REQUEST_TIMEOUT,
                )
                .and_then(CountedPending::receive);
            match response {
                Ok(r) if r.status == 200 => return Some(RequestCounts::from_prometheus(&r.body)),
                _ if Instant::now() >= deadline => return None,
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The requests the bench has made to this agent so far (as the agent
    /// counts them: answered by a handler, so not 429s).
    pub fn own_requests(&self) -> RequestCounts {
        lock(&self.handle.own).clone()
    }

    /// Both counters at one moment, for [`RequestWindow::close`].
    pub fn open_window(&self) -> RequestWindow {
        RequestWindow {
            agent: self.counters(),
            own: self.own_requests(),
        }
    }

    /// Like [`BenchAgent::open_window`], `None` if the counters cannot be
    /// read.
    pub fn try_open_window(&self) -> Option<RequestWindow> {
        Some(RequestWindow {
            agent: self.try_counters()?,
            own: self.own_requests(),
        })
    }
}

/// Counters at the start of a measured window.
pub struct RequestWindow {
    agent: RequestCounts,
    own: RequestCounts,
}

impl RequestWindow {
    /// The requests someone other than the bench made to `agent` since the
    /// window opened: the tool's.
    pub fn close(&self, agent: &BenchAgent) -> RequestCounts {
        self.tally(agent.counters(), agent)
    }

    /// Like [`RequestWindow::close`], `None` if the counters cannot be read.
    pub fn try_close(&self, agent: &BenchAgent) -> Option<RequestCounts> {
        Some(self.tally(agent.try_counters()?, agent))
    }

    fn tally(&self, now: RequestCounts, agent: &BenchAgent) -> RequestCounts {
        let all = now.since(&self.agent);
        let own = agent.own_requests().since(&self.own);
        all.without(&own)
    }
}

/// A request in flight, counted as the bench's once answered.
pub struct CountedPending {
    pending: Pending,
    method: &'static str,
    label: &'static str,
    own: Arc<Mutex<RequestCounts>>,
}

impl CountedPending {
    /// Reads the answer. A 429 from the connection limit or a transport
    /// error is not counted: Consul's handler never saw it.
    pub fn receive(self) -> io::Result<Response> {
        let response = self.pending.receive()?;
        if response.status != 429 {
            lock(&self.own).add(self.method, self.label);
        }
        Ok(response)
    }
}

/// Locks the tally; a panic elsewhere cannot leave a count half-written.
fn lock(counts: &Mutex<RequestCounts>) -> MutexGuard<'_, RequestCounts> {
    counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The length of a JSON array or object body.
fn json_len(response: &Response) -> Option<usize> {
    match serde_json::from_str::<serde_json::Value>(&response.body).ok()? {
        serde_json::Value::Array(a) => Some(a.len()),
        serde_json::Value::Object(o) => Some(o.len()),
        _ => None,
    }
}
