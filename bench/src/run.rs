//! The order of a run, and the [`Results`] it collects. Each tool gets a
//! Consul agent of its own with the same catalog, so every request an agent
//! answers is either the bench's (counted as it makes them) or its tool's.
//!
//! 1. Start-up: each tool started and stopped `starts` times, alternating.
//! 2. Both tools started for good; their files checked byte for byte.
//! 3. Changes: `changes` per tool, alternating A B A B, each measured with
//!    its floor; the tools' CPU time and requests over the whole phase.
//! 4. A quiet window with both tools running (10 services).
//! 5. The big catalog, one tool after the other (see `scale`).
//! 6. Binary sizes.

use crate::catalog::Catalog;
use crate::consul::BenchAgent;
use crate::equivalence::{self, Rendered};
use crate::filewatch::DirWatch;
use crate::idle::{self, Idle};
use crate::latency::{self, Sample, Subject};
use crate::machine::{self, Environment};
use crate::options::{Options, repo_root};
use crate::requests::RequestCounts;
use crate::resources::{CpuSpent, ProcSample};
use crate::scale::{self, Scale};
use crate::startup::{self, Startup};
use crate::tools::{Tool, ToolRun, ToolSetup};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// The least pause between two changes; see [`settle`].
const SETTLE: Duration = Duration::from_millis(25);

/// The pause before and after the change phase's request and CPU windows,
/// so that the long polls woken by earlier changes have been answered
/// before the window opens and those woken by its last change are answered
/// before it closes.
const WINDOW_SETTLE: Duration = Duration::from_secs(1);

/// Everything a run measured.
pub struct Results {
    pub options: Options,
    pub env: Environment,
    pub load_at_end: String,
    pub took: Duration,
    pub tools: [ToolInfo; 2],
    pub startup: [Startup; 2],
    pub samples: Vec<Sample>,
    pub costs: [ChangeCost; 2],
    pub idle: Vec<Idle>,
    pub scale: Vec<Scale>,
}

/// A tool's binary and how it was run.
pub struct ToolInfo {
    pub tool: Tool,
    pub path: PathBuf,
    pub version: String,
    pub command_line: String,
    pub bytes: u64,
    pub stripped_bytes: Option<u64>,
}

/// What a tool spent over the change phase.
pub struct ChangeCost {
    pub changes: usize,
    pub cpu: CpuSpent,
    pub requests: RequestCounts,
}

/// Runs every phase.
pub fn run(options: Options) -> Results {
    let began = Instant::now();
    let env = Environment::read(&repo_root());
    let mut setups = [
        ToolSetup::new(Tool::ConsulRender, &options.consul_render),
        ToolSetup::new(Tool::ConsulTemplate, &options.consul_template),
    ];
    let tools = setups.each_ref().map(|s| {
        let path = s.binary.canonicalize().unwrap_or_else(|_| s.binary.clone());
        ToolInfo {
            tool: s.tool,
            version: s.version(),
            command_line: s.command_line(),
            bytes: machine::file_size(&path),
            stripped_bytes: machine::stripped_size(&path),
            path,
        }
    });

    eprintln!(
        "bench: starting two Consul agents with {} services x {} instances",
        options.services, options.instances
    );
    let agents = [BenchAgent::start(), BenchAgent::start()];
    let mut catalogs = [
        Catalog::new(options.services, options.instances),
        Catalog::new(options.services, options.instances),
    ];
    for (agent, catalog) in agents.iter().zip(&catalogs) {
        agent.fill(catalog);
    }
    let expected = catalogs[0].render();

    let startup = startup::measure(
        &mut setups,
        &agents,
        &expected,
        options.starts,
        options.start_deadline,
    );

    let mut runs: Vec<ToolRun> = setups
        .iter_mut()
        .zip(&agents)
        .map(|(setup, agent)| {
            let (mut run, took) =
                startup::first_file(setup, agent, &expected, options.start_deadline);
            if took.is_none() {
                run.assert_running();
                panic!(
                    "{} wrote no complete file within {:?}; its log:\n{}",
                    setup.tool.name(),
                    options.start_deadline,
                    run.log()
                );
            }
            run
        })
        .collect();

    {
        let [c0, c1] = &mut catalogs;
        equivalence::check(&mut [
            Rendered {
                setup: &setups[0],
                agent: &agents[0],
                catalog: c0,
            },
            Rendered {
                setup: &setups[1],
                agent: &agents[1],
                catalog: c1,
            },
        ]);
    }

    let (samples, costs) = change_phase(&setups, &agents, catalogs, &mut runs, &options);

    eprintln!(
        "bench: quiet window of {:?} with {} services",
        options.idle, options.services
    );
    let mut subjects: Vec<(&mut ToolRun, &BenchAgent)> = runs.iter_mut().zip(&agents).collect();
    let idle = idle::measure(&mut subjects, options.idle);
    for run in &runs {
        run.keep_log(&options.logs, &format!("{}-services", options.services));
    }
    drop(runs);
    drop(agents);

    let scale = setups
        .iter_mut()
        .map(|setup| {
            scale::measure(
                setup,
                options.big_services,
                options.big_render_deadline,
                options.idle,
                &options.logs,
            )
        })
        .collect();

    Results {
        env,
        load_at_end: machine::load_average(),
        took: began.elapsed(),
        tools,
        startup,
        samples,
        costs,
        idle,
        scale,
        options,
    }
}

/// Makes `options.changes` changes per tool, alternating, and measures each
/// and the tools' CPU time and requests over the whole phase.
fn change_phase(
    setups: &[ToolSetup; 2],
    agents: &[BenchAgent; 2],
    catalogs: [Catalog; 2],
    runs: &mut [ToolRun],
    options: &Options,
) -> (Vec<Sample>, [ChangeCost; 2]) {
    let [c0, c1] = catalogs;
    let mut subjects = [
        subject(&setups[0], &agents[0], c0),
        subject(&setups[1], &agents[1], c1),
    ];
    thread::sleep(WINDOW_SETTLE);
    let windows = agents.each_ref().map(BenchAgent::open_window);
    let cpu_before: Vec<ProcSample> = runs.iter().map(read_proc).collect();
    eprintln!("bench: {} changes per tool, alternating", options.changes);
    let mut samples = Vec::with_capacity(2 * options.changes);
    for seq in 0..options.changes {
        for (subject, run) in subjects.iter_mut().zip(runs.iter_mut()) {
            run.assert_running();
            let sample = latency::measure_change(subject, seq, options.change_deadline);
            if sample.file.is_none() {
                eprintln!(
                    "bench: {} missed change {seq} ({} {}) within {:?}",
                    run.tool.name(),
                    sample.kind.name(),
                    sample.service,
                    options.change_deadline
                );
            }
            samples.push(sample);
            thread::sleep(settle(seq));
        }
        if (seq + 1) % 50 == 0 {
            eprintln!("bench: {}/{} changes", seq + 1, options.changes);
        }
    }
    thread::sleep(WINDOW_SETTLE);
    let costs = [0, 1].map(|i| ChangeCost {
        changes: options.changes,
        cpu: CpuSpent::between(&cpu_before[i], &read_proc(&runs[i])),
        requests: windows[i].close(&agents[i]),
    });
    (samples, costs)
}

fn subject<'a>(setup: &'a ToolSetup, agent: &'a BenchAgent, catalog: Catalog) -> Subject<'a> {
    let dir = setup.destination_dir();
    Subject {
        setup,
        agent,
        current: catalog.render(),
        catalog,
        watch: DirWatch::new(&dir).unwrap_or_else(|e| panic!("watching {}: {e}", dir.display())),
    }
}

/// The pause after change `seq`: 25–49 ms, varied so that changes do not
/// fall into step with any timer in the tools.
fn settle(seq: usize) -> Duration {
    let jitter = (seq.wrapping_mul(7919) % 25) as u64;
    SETTLE + Duration::from_millis(jitter)
}

/// A running tool's CPU and memory so far.
fn read_proc(run: &ToolRun) -> ProcSample {
    ProcSample::read(run.pid()).unwrap_or_else(|e| {
        panic!(
            "reading /proc of {} (pid {}): {e}",
            run.tool.name(),
            run.pid()
        )
    })
}
