//! [`BenchAgent`]: a testbed Consul dev agent with Prometheus metrics on
//! (so its cumulative request counters can be read), and every request the
//! bench makes to it: filling the catalog, making changes, blocking queries
//! for the floor, probes, metrics reads. Each of those is counted, so that
//! the agent's own counters minus the bench's leave the tool's requests.

use crate::catalog::{Catalog, Change};
use crate::http::{self, Pending, Response};
use crate::requests::{METRICS_PATH, RequestCounts};
use crate::tools::Endpoint;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use testbed::{AgentOptions, ConsulAgent, TlsFiles, wait_until};

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

/// How long [`BenchAgent::flush_parked`] lets the queries it woke return.
const FLUSH_PAUSE: Duration = Duration::from_millis(500);

/// How long the catalog gets to show what the bench registered.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// A Consul dev agent used by one tool, plus the bench's request tally.
pub struct BenchAgent {
    agent: ConsulAgent,
    handle: AgentHandle,
    /// The HTTPS API's port and the CA that signed its certificate, if it
    /// has one.
    https: Option<(u16, PathBuf)>,
}

/// What another thread needs to make counted requests to a [`BenchAgent`].
#[derive(Clone)]
pub struct AgentHandle {
    addr: String,
    own: Arc<Tally>,
}

/// The bench's own requests to one agent: counted when answered, and
/// tracked while in flight, so that a snapshot of both counters can wait
/// until none is (a request the agent has counted but the bench has not
/// read yet would otherwise fall on different sides of the snapshot in the
/// two counts).
#[derive(Default)]
struct Tally {
    state: Mutex<TallyState>,
    changed: Condvar,
}

#[derive(Default)]
struct TallyState {
    counts: RequestCounts,
    in_flight: usize,
    pausing: bool,
}

/// How long a snapshot waits for the bench's requests in flight to end, and
/// a new request for a snapshot to end.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(15);

impl Tally {
    fn lock(&self) -> MutexGuard<'_, TallyState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request is about to go out: waits out a snapshot in progress.
    fn begin(&self) {
        let mut state = self.lock();
        let deadline = Instant::now() + SNAPSHOT_PATIENCE;
        while state.pausing && Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, deadline - Instant::now())
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        state.in_flight += 1;
    }

    /// A request begun with [`Tally::begin`] ended; `counted` if the agent
    /// counted it.
    fn end(&self, counted: Option<(&'static str, &'static str)>) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some((method, label)) = counted {
            state.counts.add(method, label);
        }
        self.changed.notify_all();
    }

    /// Counts an ungated request (the counters' own reads).
    fn add(&self, method: &'static str, label: &'static str) {
        self.lock().counts.add(method, label);
    }

    fn counts(&self) -> RequestCounts {
        self.lock().counts.clone()
    }

    /// Runs `f` while no gated request is in flight and none starts.
    fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut state = self.lock();
            state.pausing = true;
            let deadline = Instant::now() + SNAPSHOT_PATIENCE;
            while state.in_flight > 0 && Instant::now() < deadline {
                state = self
                    .changed
                    .wait_timeout(state, deadline - Instant::now())
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            if state.in_flight > 0 {
                eprintln!(
                    "bench: {} of the bench's requests still in flight at a counter snapshot",
                    state.in_flight
                );
            }
        }
        let out = f();
        self.lock().pausing = false;
        self.changed.notify_all();
        out
    }
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
        self.own.begin();
        match http::send(&self.addr, None, method, path, body, timeout) {
            Ok(pending) => Ok(CountedPending {
                pending: Some(pending),
                method,
                label,
                own: Arc::clone(&self.own),
            }),
            Err(e) => {
                self.own.end(None);
                Err(e)
            }
        }
    }

    /// A read of the agent's counters, from [`METRICS_SOURCE`], outside the
    /// in-flight tracking (it runs inside snapshots).
    fn metrics(&self) -> io::Result<Response> {
        let response = http::send(
            &self.addr,
            Some(METRICS_SOURCE),
            "GET",
            METRICS,
            None,
            REQUEST_TIMEOUT,
        )?
        .receive()?;
        if response.status != 429 {
            self.own.add("GET", METRICS_PATH);
        }
        Ok(response)
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
        BenchAgent::start_with(None)
    }

    /// Like [`BenchAgent::start`], also serving the API over HTTPS (HTTP/2)
    /// on another free port with `tls`'s certificate. `tls` must outlive
    /// the agent.
    pub fn start_with(tls: Option<&TlsFiles>) -> BenchAgent {
        let mut options = AgentOptions::new().hcl(TELEMETRY);
        if let Some(tls) = tls {
            options = options.https(tls);
        }
        let agent = ConsulAgent::dev_with(options);
        let https = agent.https_port().zip(tls.map(TlsFiles::ca_file));
        let handle = AgentHandle {
            addr: agent.http_addr(),
            own: Arc::default(),
        };
        BenchAgent {
            agent,
            handle,
            https,
        }
    }

    /// "127.0.0.1:PORT" of its HTTP API.
    pub fn http_addr(&self) -> String {
        self.agent.http_addr()
    }

    /// Its plain HTTP API, as a tool is pointed at it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::Http(self.http_addr())
    }

    /// Its HTTPS API, if it has one.
    pub fn https_endpoint(&self) -> Option<Endpoint> {
        self.https.as_ref().map(|(port, ca)| Endpoint::Https {
            addr: format!("127.0.0.1:{port}"),
            ca: ca.clone(),
        })
    }

    /// The port a tool using `endpoint` connects to.
    pub fn port_of(endpoint: &Endpoint) -> u16 {
        let addr = match endpoint {
            Endpoint::Http(addr) | Endpoint::Https { addr, .. } => addr,
        };
        addr.rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("{addr} is not HOST:PORT"))
    }

    /// How long its log is now: a mark for [`BenchAgent::log_since`].
    pub fn log_mark(&self) -> usize {
        self.agent.log().len()
    }

    /// Its log from `mark` on (the dev agent logs every HTTP request it
    /// answers at DEBUG level; see `agentlog`).
    pub fn log_since(&self, mark: usize) -> String {
        let log = self.agent.log();
        log.get(mark..).unwrap_or_default().to_string()
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

    /// Makes every blocking query parked on this agent return: the node
    /// goes into maintenance (a critical check on every service, which
    /// wakes every health query) and out again, and a service nobody
    /// watches is registered and deregistered (which wakes the service
    /// list); then the catalog is back to `catalog`. A killed client's
    /// parked queries stay open in the agent until they are answered (the
    /// service-list endpoint does not notice the closed connection), and the
    /// agent counts each when it is; flushing them keeps them out of the
    /// next window. Only while no tool is running: the tools would render
    /// the maintenance.
    pub fn flush_parked(&self, catalog: &Catalog) {
        let body = r#"{"ID":"bench-flush","Name":"bench-flush","Port":1}"#;
        for (path, label, body) in [
            (
                "/v1/agent/maintenance?enable=true&reason=bench",
                "v1_agent_maintenance",
                None,
            ),
            (
                "/v1/agent/maintenance?enable=false",
                "v1_agent_maintenance",
                None,
            ),
            (
                "/v1/agent/service/register",
                "v1_agent_service_register",
                Some(body),
            ),
            (
                "/v1/agent/service/deregister/bench-flush",
                "v1_agent_service_deregister_",
                None,
            ),
        ] {
            let response = self
                .request("PUT", path, label, body)
                .unwrap_or_else(|e| panic!("PUT {path} failed: {e}"));
            assert_eq!(
                response.status, 200,
                "PUT {path} answered {}: {}",
                response.status, response.body
            );
            thread::sleep(FLUSH_PAUSE);
        }
        self.wait_for_passing(catalog);
        thread::sleep(FLUSH_PAUSE);
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

    /// The agent's cumulative request counters, asking again for a while
    /// if it refuses (a greedy client can keep it answering 429).
    pub fn try_counters(&self) -> Option<RequestCounts> {
        let deadline = Instant::now() + COUNTERS_PATIENCE;
        loop {
            match self.handle.metrics() {
                Ok(r) if r.status == 200 => return Some(RequestCounts::from_prometheus(&r.body)),
                _ if Instant::now() >= deadline => return None,
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The requests the bench has made to this agent so far (as the agent
    /// counts them: answered by a handler, so not 429s).
    pub fn own_requests(&self) -> RequestCounts {
        self.handle.own.counts()
    }

    /// The agent's counters and the bench's own, at one moment with none of
    /// the bench's requests in flight.
    fn snapshot(&self) -> Option<(RequestCounts, RequestCounts)> {
        self.handle
            .own
            .paused(|| Some((self.try_counters()?, self.own_requests())))
    }

    /// Both counters at one moment, for [`RequestWindow::try_close`].
    pub fn open_window(&self) -> RequestWindow {
        self.try_open_window().unwrap_or_else(|| {
            panic!(
                "the agent at {} did not answer GET {METRICS} within {COUNTERS_PATIENCE:?}",
                self.http_addr()
            )
        })
    }

    /// Like [`BenchAgent::open_window`], `None` if the counters cannot be
    /// read.
    pub fn try_open_window(&self) -> Option<RequestWindow> {
        let (agent, own) = self.snapshot()?;
        Some(RequestWindow { agent, own })
    }
}

/// Counters at the start of a measured window.
pub struct RequestWindow {
    agent: RequestCounts,
    own: RequestCounts,
}

impl RequestWindow {
    /// The requests someone other than the bench made to `agent` since the
    /// window opened (the tool's); `None` if the counters cannot be read.
    pub fn try_close(&self, agent: &BenchAgent) -> Option<RequestCounts> {
        let (now, own) = agent.snapshot()?;
        let all = now.since(&self.agent);
        Some(all.without(&own.since(&self.own)))
    }
}

/// A request in flight, counted as the bench's once answered.
pub struct CountedPending {
    /// Taken by [`CountedPending::receive`].
    pending: Option<Pending>,
    method: &'static str,
    label: &'static str,
    own: Arc<Tally>,
}

impl CountedPending {
    /// Reads the answer. A 429 from the connection limit or a transport
    /// error is not counted: Consul's handler never saw it.
    pub fn receive(mut self) -> io::Result<Response> {
        let pending = self
            .pending
            .take()
            .expect("a pending request is received once");
        let response = pending.receive();
        let counted = match &response {
            Ok(r) if r.status != 429 => Some((self.method, self.label)),
            _ => None,
        };
        self.own.end(counted);
        response
    }
}

impl Drop for CountedPending {
    fn drop(&mut self) {
        // Never received: it no longer holds up snapshots.
        if self.pending.take().is_some() {
            self.own.end(None);
        }
    }
}

/// The length of a JSON array or object body.
fn json_len(response: &Response) -> Option<usize> {
    match serde_json::from_str::<serde_json::Value>(&response.body).ok()? {
        serde_json::Value::Array(a) => Some(a.len()),
        serde_json::Value::Object(o) => Some(o.len()),
        _ => None,
    }
}
