//! A quiet window: nothing changes in Consul for a fixed time while the
//! tools sit on their blocking queries. Measured per tool: memory at the end
//! of the window, CPU time spent in it, the Consul requests its agent
//! answered in it (the agent's counters minus the bench's own reads), and
//! the connections it holds to the agent at the end.

use crate::consul::BenchAgent;
use crate::requests::RequestCounts;
use crate::resources::{CpuSpent, ProcSample, connections_to};
use crate::tools::{Tool, ToolRun};
use std::thread;
use std::time::{Duration, Instant};

/// One tool's quiet window.
#[derive(Debug, Clone)]
pub struct Idle {
    pub tool: Tool,
    pub window: Duration,
    /// Readings at the end of the window (or at the tool's exit).
    pub end: Option<ProcSample>,
    pub cpu: Option<CpuSpent>,
    /// `None` if the agent's counters could not be read (e.g. it refused the
    /// bench with 429 the whole time).
    pub requests: Option<RequestCounts>,
    /// Established TCP connections from the tool to its agent at the end.
    pub connections: Option<usize>,
    /// Set if the tool was not running at the end of the window.
    pub exit: Option<String>,
}

impl Idle {
    /// Requests per minute over the window.
    pub fn requests_per_minute(&self) -> Option<f64> {
        let total = self.requests.as_ref()?.total() as f64;
        Some(total * 60.0 / self.window.as_secs_f64())
    }
}

/// Measures every `(run, agent, port)` over the same `window`; `port` is
/// the agent's port the tool connects to.
pub fn measure(subjects: &mut [(&mut ToolRun, &BenchAgent, u16)], window: Duration) -> Vec<Idle> {
    let starts: Vec<_> = subjects
        .iter()
        .map(|(run, agent, _)| (ProcSample::read(run.pid()).ok(), agent.try_open_window()))
        .collect();
    let began = Instant::now();
    thread::sleep(window);
    let window = began.elapsed();
    subjects
        .iter_mut()
        .zip(starts)
        .map(|((run, agent, port), (start, requests))| {
            let end = ProcSample::read(run.pid()).ok();
            let cpu = match (start, end) {
                (Some(s), Some(e)) => Some(CpuSpent::between(&s, &e)),
                _ => None,
            };
            Idle {
                tool: run.tool,
                window,
                end,
                cpu,
                requests: requests.and_then(|w| w.try_close(agent)),
                connections: connections_to(run.pid(), *port).ok(),
                exit: run.exit(),
            }
        })
        .collect()
}
