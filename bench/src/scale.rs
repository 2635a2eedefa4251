//! 1,000 watched services, over plain HTTP and over HTTPS: one tool at a
//! time, on an agent of its own holding N services of one instance each
//! (serving the API on both an HTTP and an HTTPS port, with certificates
//! from `consul tls`), with the template that ranges over every service.
//! For each transport in turn, the tool is started and the bench records
//! whether and when the first complete file appears (bounded), the
//! requests the agent answered until then, the connections the tool holds,
//! then a quiet window, then (if the file came) a series of changes spread
//! over the services, measured like the 10-service ones. Meanwhile a
//! bystander asks `/v1/status/leader` every 200 ms over plain HTTP from
//! the same address (127.0.0.1) and counts 429s: Consul's per-client
//! connection limit answers 429 to every client on an address once one
//! client holds too many connections. [`LimitScope`] checks whether that
//! limit counts the HTTP and HTTPS listeners together.

use crate::catalog::Catalog;
use crate::consul::{AgentHandle, BenchAgent};
use crate::filewatch::DirWatch;
use crate::idle::{self, Idle};
use crate::latency::{Plan, Sample, Subject};
use crate::requests::RequestCounts;
use crate::resources::connections_to;
use crate::series::{self, ChangeCost, Entrant, Pacing};
use crate::startup::first_file;
use crate::tools::{Endpoint, Tool, ToolSetup};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use testbed::TlsFiles;

/// How often the bystander asks.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// How long after the first render the quiet window starts: consul-render
/// in signal mode probes every service's index once right after it.
pub const AFTER_RENDER: Duration = Duration::from_secs(2);

/// The bystander's deadline per request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many log lines to keep as evidence.
const EVIDENCE_LINES: usize = 3;

/// Consul's default `http_max_conns_per_client`.
pub const CONNECTION_LIMIT: usize = 200;

/// What the bystander got.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeCounts {
    pub ok: u64,
    pub too_many: u64,
    /// Connections reset: what a 429 from the connection limit looks like
    /// when the agent closes before the request is written.
    pub reset: u64,
    /// Other statuses, refused connections, timeouts.
    pub failed: u64,
}

impl ProbeCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.too_many + self.reset + self.failed
    }

    /// Requests the connection limit turned away.
    pub fn refused(&self) -> u64 {
        self.too_many + self.reset
    }
}

/// How the scale runs are sized.
#[derive(Debug, Clone, Copy)]
pub struct ScaleParams {
    pub services: usize,
    pub deadline: Duration,
    pub window: Duration,
    pub changes: usize,
    pub change_deadline: Duration,
}

/// One tool's run against the big catalog over one transport.
#[derive(Debug, Clone)]
pub struct Scale {
    pub tool: Tool,
    /// "HTTP" or "HTTPS".
    pub transport: &'static str,
    pub command_line: String,
    pub services: usize,
    pub deadline: Duration,
    pub first_render: Option<Duration>,
    /// Requests the agent answered from start to first render (or to the
    /// deadline); `None` if its counters could not be read.
    pub requests_to_render: Option<RequestCounts>,
    /// Requests in the [`AFTER_RENDER`] after the first-render wait.
    pub requests_after_render: Option<RequestCounts>,
    /// Established connections from the tool to the agent when the wait
    /// for the first render ended.
    pub connections_after_wait: Option<usize>,
    /// What the bystander got from start to the end of the run.
    pub probe: ProbeCounts,
    pub idle: Idle,
    /// The change series, if the first render came.
    pub changes: Option<(Vec<Sample>, ChangeCost)>,
    /// Lines of the tool's log that mention 429.
    pub log_429_lines: usize,
    /// Lines of the tool's log at warning or error level.
    pub log_problem_lines: usize,
    /// The first few problem lines, then the log's last few lines.
    pub evidence: Vec<String>,
}

impl Scale {
    /// The most connections seen at any reading.
    pub fn most_connections(&self) -> Option<usize> {
        [
            self.connections_after_wait,
            self.idle.connections,
            self.changes.as_ref().and_then(|(_, c)| c.connections),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// Whether Consul's per-client connection limit counts the HTTP and HTTPS
/// listeners together: what a plain-HTTP request from 127.0.0.1 gets while
/// the bench holds idle TCP connections from 127.0.0.1 to each port.
#[derive(Debug, Clone)]
pub struct LimitScope {
    /// (connections held, port they go to, what the request got, whether
    /// the connection limit refused it).
    pub trials: Vec<(usize, &'static str, String, bool)>,
}

impl LimitScope {
    /// Whether holding the limit on the HTTPS port made the agent refuse a
    /// plain-HTTP request.
    pub fn shared(&self) -> Option<bool> {
        self.trials
            .iter()
            .find(|(n, port, _, _)| *n == CONNECTION_LIMIT && *port == "HTTPS")
            .map(|(_, _, _, refused)| *refused)
    }
}

/// The size of the catalog-wide signal consul-render reads in signal mode.
#[derive(Debug, Clone, Copy)]
pub struct SignalSize {
    pub state_any_bytes: usize,
    pub catalog_services_bytes: usize,
}

/// Runs `setup`'s tool against a fresh agent with `params.services`
/// services, over HTTP and then HTTPS. Its logs are kept in `logs`.
/// Returns the two runs, and (if `scope`) the connection-limit check and
/// the signal sizes, done on the same agent before the tool starts.
pub fn measure(
    setup: &mut ToolSetup,
    params: ScaleParams,
    logs: &Path,
    scope: bool,
) -> (Vec<Scale>, Option<LimitScope>, Option<SignalSize>) {
    let tls = TlsFiles::generate();
    let agent = BenchAgent::start_with(Some(&tls));
    let mut catalog = Catalog::new(params.services, 1);
    eprintln!(
        "bench: {}: registering {} services",
        setup.tool.name(),
        params.services
    );
    agent.fill(&catalog);
    let (limit, sizes) = if scope {
        (Some(limit_scope(&agent)), Some(signal_size(&agent)))
    } else {
        (None, None)
    };
    let endpoints = [
        agent.endpoint(),
        agent
            .https_endpoint()
            .expect("the agent was started with HTTPS"),
    ];
    let mark = agent.log_mark();
    let mut runs = Vec::new();
    for endpoint in &endpoints {
        if !runs.is_empty() {
            agent.flush_parked(&catalog);
        }
        runs.push(run_one(setup, &agent, &mut catalog, endpoint, params, logs));
    }
    let path = logs.join(format!(
        "consul-agent-{}-{}-services.log",
        setup.tool.name(),
        params.services
    ));
    std::fs::create_dir_all(logs)
        .and_then(|()| {
            std::fs::write(
                &path,
                crate::agentlog::without_sync_noise(&agent.log_since(mark)),
            )
        })
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    (runs, limit, sizes)
}

fn run_one(
    setup: &mut ToolSetup,
    agent: &BenchAgent,
    catalog: &mut Catalog,
    endpoint: &Endpoint,
    params: ScaleParams,
    logs: &Path,
) -> Scale {
    let transport = endpoint.transport();
    let name = setup.tool.name();
    let port = BenchAgent::port_of(endpoint);
    let expected = catalog.render();
    let requests = agent.open_window();
    let probe = Probe::start(agent);
    let (mut run, first_render) = first_file(setup, endpoint, &expected, params.deadline);
    let requests_to_render = requests.try_close(agent);
    let connections_after_wait = connections_to(run.pid(), port).ok();
    let settle = agent.try_open_window();
    thread::sleep(AFTER_RENDER);
    let requests_after_render = settle.and_then(|w| w.try_close(agent));
    eprintln!(
        "bench: {name} with {} services over {transport}: first complete file {}",
        params.services,
        first_render.map_or(format!("not within {:?}", params.deadline), |t| format!(
            "after {t:.2?}"
        ))
    );
    let idle = idle::measure(&mut [(&mut run, agent, port)], params.window)
        .pop()
        .expect("one subject, one result");
    let changes = if first_render.is_some() && run.exit().is_none() && params.changes > 0 {
        let dir = setup.destination_dir();
        let subject = Subject {
            setup,
            agent,
            catalog: catalog.clone(),
            watch: DirWatch::new(&dir)
                .unwrap_or_else(|e| panic!("watching {}: {e}", dir.display())),
            current: expected.clone(),
            plan: Plan::spread(params.changes.div_ceil(4), params.services),
            last_arrival: None,
        };
        let mut entrants = [Entrant {
            subject,
            run: &mut run,
            port,
        }];
        let label = format!("{name}, {} services, {transport}", params.services);
        let (samples, mut costs) = series::run(
            &mut entrants,
            params.changes,
            Pacing::Spread,
            params.change_deadline,
            &label,
        );
        let [entrant] = entrants;
        *catalog = entrant.subject.catalog;
        Some((samples, costs.remove(0)))
    } else {
        None
    };
    let probe = probe.stop();
    let what = format!("{}-services-{}", params.services, transport.to_lowercase());
    run.keep_log(logs, &what);
    let log = run.log();
    let exit = run.exit();
    drop(run);
    let log_429_lines = log.lines().filter(|l| mentions_429(l)).count();
    let problems: Vec<&str> = log.lines().filter(|l| is_problem(l)).collect();
    let mut evidence: Vec<String> = problems
        .iter()
        .take(EVIDENCE_LINES)
        .map(|l| l.to_string())
        .collect();
    let tail: Vec<&str> = log.lines().rev().take(EVIDENCE_LINES).collect();
    evidence.extend(tail.into_iter().rev().map(String::from));
    let mut idle = idle;
    if idle.exit.is_none() {
        idle.exit = exit;
    }
    Scale {
        tool: setup.tool,
        transport,
        command_line: setup.command_line(endpoint),
        services: params.services,
        deadline: params.deadline,
        first_render,
        requests_to_render,
        requests_after_render,
        connections_after_wait,
        probe,
        idle,
        changes,
        log_429_lines,
        log_problem_lines: problems.len(),
        evidence,
    }
}

/// Whether a log line is a warning or an error: consul-render's `WARN` and
/// `ERROR`, consul-template's `[WARN]` and `[ERR]`, or any mention of 429
/// (Go's HTTP client logs unsolicited 429 answers without a level).
pub fn is_problem(line: &str) -> bool {
    ["WARN", "ERR"].iter().any(|p| line.contains(p)) || mentions_429(line)
}

/// Whether a log line is about an HTTP 429 (not a timestamp or a byte
/// count that happens to hold the digits): consul-render's `HTTP 429`,
/// consul-template's `response code: 429`, Go's `HTTP/1.1 429`.
fn mentions_429(line: &str) -> bool {
    ["HTTP 429", "HTTP/1.1 429", "code: 429", "429 Too Many"]
        .iter()
        .any(|p| line.contains(p))
}

/// Holds idle connections from 127.0.0.1 to one of the agent's ports and
/// asks `/v1/status/leader` over plain HTTP from the same address: below
/// the limit on the HTTPS port, at the limit on the HTTPS port, at the
/// limit on the HTTP port. The connections carry nothing (an HTTPS one has
/// not even started its handshake, which the agent allows 5 s for), so the
/// request goes out within a second of opening them.
fn limit_scope(agent: &BenchAgent) -> LimitScope {
    let https = agent
        .https_endpoint()
        .map(|e| BenchAgent::port_of(&e))
        .expect("the agent was started with HTTPS");
    let http = agent.http_port();
    let mut trials = Vec::new();
    for (held, port, name) in [
        (CONNECTION_LIMIT - 50, https, "HTTPS"),
        (CONNECTION_LIMIT, https, "HTTPS"),
        (CONNECTION_LIMIT, http, "HTTP"),
    ] {
        let conns: Vec<TcpStream> = (0..held)
            .filter_map(|_| {
                TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PROBE_TIMEOUT).ok()
            })
            .collect();
        thread::sleep(Duration::from_millis(300));
        let asked = ask(&agent.handle());
        let refused = matches!(asked, Asked::TooMany | Asked::Reset);
        let status = asked.describe();
        eprintln!(
            "bench: holding {} connections to the {name} port, a plain-HTTP request got {status}",
            conns.len()
        );
        trials.push((conns.len(), name, status, refused));
        drop(conns);
        // Let the agent see them close before the next trial.
        thread::sleep(Duration::from_millis(500));
    }
    LimitScope { trials }
}

/// The sizes of the two catalog-wide replies signal mode reads on a change.
fn signal_size(agent: &BenchAgent) -> SignalSize {
    SignalSize {
        state_any_bytes: agent
            .get("/v1/health/state/any", "v1_health_state_")
            .body
            .len(),
        catalog_services_bytes: agent
            .get("/v1/catalog/services", "v1_catalog_services")
            .body
            .len(),
    }
}

/// What one `/v1/status/leader` from 127.0.0.1 got.
enum Asked {
    Ok,
    TooMany,
    Reset,
    Failed(String),
}

impl Asked {
    fn describe(&self) -> String {
        match self {
            Asked::Ok => "200".into(),
            Asked::TooMany => "429".into(),
            Asked::Reset => "connection reset (the connection limit's 429, unread)".into(),
            Asked::Failed(e) => e.clone(),
        }
    }
}

fn ask(agent: &AgentHandle) -> Asked {
    match agent.request(
        "GET",
        "/v1/status/leader",
        "v1_status_leader",
        PROBE_TIMEOUT,
    ) {
        Ok(r) if r.status == 200 => Asked::Ok,
        Ok(r) if r.status == 429 => Asked::TooMany,
        Ok(r) => Asked::Failed(format!("HTTP {}", r.status)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Asked::Reset,
        Err(e) => Asked::Failed(e.to_string()),
    }
}

/// A bystander client asking the agent a trivial question until stopped.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeCounts>,
}

impl Probe {
    fn start(agent: &BenchAgent) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let agent = agent.handle();
        let thread = thread::spawn(move || {
            let mut counts = ProbeCounts::default();
            while !flag.load(Ordering::Relaxed) {
                let asked = Instant::now();
                match ask(&agent) {
                    Asked::Ok => counts.ok += 1,
                    Asked::TooMany => counts.too_many += 1,
                    Asked::Reset => counts.reset += 1,
                    Asked::Failed(_) => counts.failed += 1,
                }
                thread::sleep(PROBE_INTERVAL.saturating_sub(asked.elapsed()));
            }
            counts
        });
        Probe { stop, thread }
    }

    fn stop(self) -> ProbeCounts {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| panic!("the probe thread panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_is_an_http_status_not_digits_in_a_timestamp() {
        for line in [
            "WARN consul unreachable error=\"HTTP 429: Your IP is issuing too many\"",
            "[WARN] (view) health.service(x): Unexpected response code: 429 (Your IP ...)",
            "Unsolicited response received on idle HTTP channel starting with \"HTTP/1.1 429 Too Many Requests",
        ] {
            assert!(mentions_429(line), "{line}");
        }
        let info = "2026-11-26T02:33:16.124291Z  INFO rendered; written bytes=49950";
        assert!(!mentions_429(info));
        assert!(!is_problem(info));
    }
}
