//! 1,000 watched services: one tool at a time, on an agent of its own
//! holding N services of one instance each, with the template that ranges
//! over every service. Records whether and when the first complete file
//! appears (bounded), whether the tool is still running, the 429s in its log,
//! what a bystander on the same address gets from the agent meanwhile (a
//! probe asking `/v1/status/leader` every 200 ms: Consul's per-client
//! connection limit answers 429 to every client on an address once one
//! client holds too many connections), the requests the agent answered, and
//! then a quiet window like the 10-service one.

use crate::catalog::Catalog;
use crate::consul::BenchAgent;
use crate::idle::{self, Idle};
use crate::requests::RequestCounts;
use crate::resources::connections_to;
use crate::startup::first_file;
use crate::tools::{Tool, ToolSetup};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the bystander asks.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The bystander's deadline per request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many log lines to keep as evidence.
const EVIDENCE_LINES: usize = 4;

/// What the bystander got.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeCounts {
    pub ok: u64,
    pub too_many: u64,
    /// Other statuses, refused or reset connections, timeouts.
    pub failed: u64,
}

/// One tool's run against the big catalog.
#[derive(Debug, Clone)]
pub struct Scale {
    pub tool: Tool,
    pub services: usize,
    pub deadline: Duration,
    pub first_render: Option<Duration>,
    /// Requests the agent answered from start to first render (or to the
    /// deadline); `None` if its counters could not be read.
    pub requests_to_render: Option<RequestCounts>,
    /// Established connections from the tool to the agent when the wait
    /// for the first render ended.
    pub connections_after_wait: Option<usize>,
    /// What the bystander got from start to the end of the quiet window.
    pub probe: ProbeCounts,
    pub idle: Idle,
    /// Lines of the tool's log that mention 429.
    pub log_429_lines: usize,
    /// Lines of the tool's log at warning or error level.
    pub log_problem_lines: usize,
    /// The first few problem lines, then the log's last few lines.
    pub evidence: Vec<String>,
}

/// Runs `setup`'s tool against a fresh agent with `services` services.
/// Its log is kept in `logs`.
pub fn measure(
    setup: &mut ToolSetup,
    services: usize,
    deadline: Duration,
    window: Duration,
    logs: &Path,
) -> Scale {
    let agent = BenchAgent::start();
    let catalog = Catalog::new(services, 1);
    eprintln!(
        "bench: {}: registering {services} services",
        setup.tool.name()
    );
    agent.fill(&catalog);
    let expected = catalog.render();
    let requests = agent.open_window();
    let probe = Probe::start(&agent);
    let (mut run, first_render) = first_file(setup, &agent, &expected, deadline);
    let requests_to_render = requests.try_close(&agent);
    let connections_after_wait = connections_to(run.pid(), agent.http_port()).ok();
    eprintln!(
        "bench: {} with {services} services: first complete file {}",
        setup.tool.name(),
        first_render.map_or(format!("not within {deadline:?}"), |t| format!(
            "after {t:.2?}"
        ))
    );
    let idle = idle::measure(&mut [(&mut run, &agent)], window)
        .pop()
        .expect("one subject, one result");
    let probe = probe.stop();
    run.keep_log(logs, &format!("{services}-services"));
    let log = run.log();
    let log_429_lines = log.lines().filter(|l| l.contains("429")).count();
    let problems: Vec<&str> = log.lines().filter(|l| is_problem(l)).collect();
    let mut evidence: Vec<String> = problems
        .iter()
        .take(EVIDENCE_LINES)
        .map(|l| l.to_string())
        .collect();
    let tail: Vec<&str> = log.lines().rev().take(EVIDENCE_LINES).collect();
    evidence.extend(tail.into_iter().rev().map(String::from));
    Scale {
        tool: setup.tool,
        services,
        deadline,
        first_render,
        requests_to_render,
        connections_after_wait,
        probe,
        idle,
        log_429_lines,
        log_problem_lines: problems.len(),
        evidence,
    }
}

/// Whether a log line is a warning or an error: consul-render's `WARN` and
/// `ERROR`, consul-template's `[WARN]` and `[ERR]`, or any mention of 429
/// (Go's HTTP client logs unsolicited 429 answers without a level).
fn is_problem(line: &str) -> bool {
    ["WARN", "ERR", "429"].iter().any(|p| line.contains(p))
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
                match agent.request(
                    "GET",
                    "/v1/status/leader",
                    "v1_status_leader",
                    PROBE_TIMEOUT,
                ) {
                    Ok(r) if r.status == 200 => counts.ok += 1,
                    Ok(r) if r.status == 429 => counts.too_many += 1,
                    _ => counts.failed += 1,
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
