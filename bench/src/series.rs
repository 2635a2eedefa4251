//! A series of measured changes for one or more tools, alternating between
//! them, with what each tool spent on the series: CPU time, the requests
//! its agent answered (counters), and which change each request followed
//! (the agent's log, see `agentlog`).
//!
//! Two pacings:
//! - **spread**: A, B, A, B… with 25–49 ms between changes, so each tool
//!   sees a change roughly every 100 ms, over whichever services the
//!   subjects' plans name;
//! - **back-to-back**: in blocks, each tool in turn gets a warm-up change
//!   (not in the percentiles) and then `block` changes, each sent a fixed
//!   gap after the previous one reached that tool's file.

use crate::agentlog::{self, Anatomy};
use crate::consul::{BenchAgent, RequestWindow};
use crate::latency::{self, Sample, Subject};
use crate::requests::RequestCounts;
use crate::resources::{CpuSpent, ProcSample, connections_to};
use crate::tools::ToolRun;
use std::thread;
use std::time::Duration;

/// The least pause between two spread changes.
const SETTLE: Duration = Duration::from_millis(25);

/// The pause before and after a series' request and CPU windows, so that
/// the long polls woken by earlier changes have been answered before the
/// window opens and those woken by its last change are answered before it
/// closes.
pub const WINDOW_SETTLE: Duration = Duration::from_secs(1);

/// How changes follow each other.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    Spread,
    BackToBack {
        block: usize,
        gap: Duration,
    },
    /// In blocks per tool: a change without news to the service, then,
    /// after a pause spread evenly over `gaps`, the measured change; then
    /// `settle` before the next.
    AfterNoNews {
        block: usize,
        gaps: (Duration, Duration),
        settle: Duration,
    },
}

/// What a tool spent over a series.
#[derive(Debug, Clone)]
pub struct ChangeCost {
    /// Changes made to its agent, warm-ups included.
    pub changes: usize,
    pub cpu: Option<CpuSpent>,
    /// `None` if the agent's counters could not be read.
    pub requests: Option<RequestCounts>,
    /// Established connections to the agent at the end.
    pub connections: Option<usize>,
    pub anatomy: Anatomy,
}

impl ChangeCost {
    pub fn requests_per_change(&self) -> Option<f64> {
        let total = self.requests.as_ref()?.total() as f64;
        (self.changes > 0).then(|| total / self.changes as f64)
    }

    pub fn cpu_per_1000(&self) -> Option<(Duration, Duration)> {
        let cpu = self.cpu?;
        let n = u32::try_from(self.changes).ok().filter(|&n| n > 0)?;
        Some((cpu.clock * 1000 / n, cpu.stat * 1000 / n))
    }
}

/// One tool in a series: the subject, its process and the agent port it
/// connects to.
pub struct Entrant<'a, 'b> {
    pub subject: Subject<'a>,
    pub run: &'b mut ToolRun,
    pub port: u16,
}

/// Makes `changes` measured changes per entrant and returns the samples (in
/// the order made) and each entrant's costs.
pub fn run(
    entrants: &mut [Entrant<'_, '_>],
    changes: usize,
    pacing: Pacing,
    deadline: Duration,
    label: &str,
) -> (Vec<Sample>, Vec<ChangeCost>) {
    thread::sleep(WINDOW_SETTLE);
    let opened: Vec<(Option<RequestWindow>, usize, Option<ProcSample>)> = entrants
        .iter()
        .map(|e| {
            (
                e.subject.agent.try_open_window(),
                e.subject.agent.log_mark(),
                ProcSample::read(e.run.pid()).ok(),
            )
        })
        .collect();
    let mut made = vec![0usize; entrants.len()];
    let mut every: Vec<Vec<Sample>> = vec![Vec::new(); entrants.len()];
    let mut samples = Vec::with_capacity(changes * entrants.len());
    let mut one = |e: &mut Entrant<'_, '_>, i: usize, seq: usize, keep: bool| {
        e.run.assert_running();
        let sample = latency::measure_change(&mut e.subject, seq, deadline);
        made[i] += 1;
        if sample.file.is_none() {
            eprintln!(
                "bench: {label}: {} missed change {seq} ({} {}) within {deadline:?}",
                e.run.tool.name(),
                sample.kind.name(),
                sample.service,
            );
        }
        every[i].push(sample.clone());
        if keep {
            samples.push(sample);
        }
    };
    match pacing {
        Pacing::Spread => {
            for seq in 0..changes {
                for (i, e) in entrants.iter_mut().enumerate() {
                    one(e, i, seq, true);
                    thread::sleep(settle(seq));
                }
                if (seq + 1) % 50 == 0 {
                    eprintln!("bench: {label}: {}/{changes} changes", seq + 1);
                }
            }
        }
        Pacing::BackToBack { block, gap } => {
            let block = block.max(1);
            let mut seq = 0;
            while seq < changes {
                let n = block.min(changes - seq);
                for (i, e) in entrants.iter_mut().enumerate() {
                    // The warm-up follows the other tool's block: not
                    // back to back for this one.
                    one(e, i, seq, false);
                    for k in 0..n {
                        thread::sleep(gap);
                        one(e, i, seq + k, true);
                    }
                    thread::sleep(SETTLE);
                }
                seq += n;
                if seq % 50 < n {
                    eprintln!("bench: {label}: {seq}/{changes} changes");
                }
            }
        }
        Pacing::AfterNoNews {
            block,
            gaps,
            settle,
        } => {
            let block = block.max(1);
            let mut seq = 0;
            while seq < changes {
                let n = block.min(changes - seq);
                for (i, e) in entrants.iter_mut().enumerate() {
                    for k in 0..n {
                        e.subject.no_news();
                        thread::sleep(no_news_gap(seq + k, gaps));
                        one(e, i, seq + k, true);
                        thread::sleep(settle);
                    }
                }
                seq += n;
            }
        }
    }
    thread::sleep(WINDOW_SETTLE);
    let costs = entrants
        .iter()
        .zip(opened)
        .zip(made.iter().zip(&every))
        .map(|((e, (window, mark, cpu_before)), (&made, every))| {
            let agent: &BenchAgent = e.subject.agent;
            let log = agentlog::parse(&agent.log_since(mark));
            let all: Vec<&Sample> = every.iter().collect();
            ChangeCost {
                changes: made,
                cpu: cpu_before
                    .zip(ProcSample::read(e.run.pid()).ok())
                    .map(|(a, b)| CpuSpent::between(&a, &b)),
                requests: window.and_then(|w| w.try_close(agent)),
                connections: connections_to(e.run.pid(), e.port).ok(),
                anatomy: Anatomy::of(&log, &all),
            }
        })
        .collect();
    (samples, costs)
}

/// The pause between the change without news and measured change `seq`:
/// spread evenly over `gaps` (a stride through 0–96% of the range, so
/// neighbours differ).
pub fn no_news_gap(seq: usize, (low, high): (Duration, Duration)) -> Duration {
    let step = (seq.wrapping_mul(37) % 25) as u32;
    low + (high.saturating_sub(low)) * step / 25
}

/// The pause after spread change `seq`: 25–49 ms, varied so that changes do
/// not fall into step with any timer in the tools.
fn settle(seq: usize) -> Duration {
    let jitter = (seq.wrapping_mul(7919) % 25) as u64;
    SETTLE + Duration::from_millis(jitter)
}
