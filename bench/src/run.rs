//! The order of a run, and the [`Results`] it collects. Each tool gets a
//! Consul agent of its own with the same catalog, so every request an agent
//! answers is either the bench's (counted as it makes them) or its tool's.
//!
//! 1. Start-up: each tool started and stopped `starts` times, alternating.
//! 2. Both tools started for good; their files checked byte for byte.
//! 3. Spread changes: `changes` per tool, alternating A B A B, round-robin
//!    over the services, each measured with its floor; the tools' CPU time
//!    and requests over the whole series.
//! 4. Back-to-back changes: `b2b_changes` per tool on one service, each
//!    sent a fixed gap after the previous one reached the file.
//! 5. A quiet window with both tools running (10 services).
//! 6. Recovery: outages between each tool and its agent.
//! 7. The big catalog, one tool after the other, over HTTP then HTTPS (see
//!    `scale`).
//!
//! `--only` leaves phases out; the report says "not run" for them.

use crate::catalog::Catalog;
use crate::consul::BenchAgent;
use crate::equivalence::{self, Rendered};
use crate::filewatch::DirWatch;
use crate::idle::{self, Idle};
use crate::latency::{Plan, Sample, Subject};
use crate::machine::{self, Environment};
use crate::options::{Options, Phase, repo_root};
use crate::recovery::{self, Recovery, RecoveryParams};
use crate::scale::{self, LimitScope, Scale, ScaleParams, SignalSize};
use crate::series::{self, ChangeCost, Entrant, Pacing};
use crate::startup::{self, Startup};
use crate::tools::{Endpoint, Tool, ToolRun, ToolSetup};
use crate::writefloor;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything a run measured.
pub struct Results {
    pub options: Options,
    pub env: Environment,
    pub load_at_end: String,
    pub took: Duration,
    pub tools: [ToolInfo; 2],
    pub startup: Option<[Startup; 2]>,
    pub spread: Option<Scenario>,
    pub b2b: Option<Scenario>,
    pub nonews: Option<Scenario>,
    pub idle: Vec<Idle>,
    pub recovery: Option<[Recovery; 2]>,
    /// Per tool, HTTP then HTTPS.
    pub scale: Vec<Scale>,
    pub limit: Option<LimitScope>,
    pub signal: Option<SignalSize>,
    /// CPU per 1,000 safe writes of the 10-service file, by the bench
    /// itself next to the tools' files (see `writefloor`).
    pub write_floor: Option<Duration>,
}

/// Writes the bench makes to measure the write floor.
const WRITE_FLOOR_WRITES: usize = 300;

/// A latency series on the 10-service catalog.
pub struct Scenario {
    /// The measured changes of both tools, in the order made.
    pub samples: Vec<Sample>,
    /// Per tool (consul-render, consul-template).
    pub costs: Vec<ChangeCost>,
}

/// A tool's binary and how it was run.
pub struct ToolInfo {
    pub tool: Tool,
    pub path: PathBuf,
    pub version: String,
    pub command_line: String,
    pub https_command_line: String,
    pub bytes: u64,
    pub stripped_bytes: Option<u64>,
}

/// Runs every phase the options ask for.
pub fn run(options: Options) -> Results {
    let began = Instant::now();
    let env = Environment::read(&repo_root());
    let mut setups = [
        ToolSetup::new(Tool::ConsulRender, &options.consul_render),
        ToolSetup::new(Tool::ConsulTemplate, &options.consul_template),
    ];
    let https_placeholder = Endpoint::Https {
        addr: "127.0.0.1:<https port>".into(),
        ca: PathBuf::from("<tls>/consul-agent-ca.pem"),
    };
    let tools = setups.each_ref().map(|s| {
        let path = s.binary.canonicalize().unwrap_or_else(|_| s.binary.clone());
        ToolInfo {
            tool: s.tool,
            version: s.version(),
            command_line: s.command_line(&Endpoint::Http("127.0.0.1:<port>".into())),
            https_command_line: s.command_line(&https_placeholder),
            bytes: machine::file_size(&path),
            stripped_bytes: machine::stripped_size(&path),
            path,
        }
    });

    let small = [
        Phase::Startup,
        Phase::Spread,
        Phase::BackToBack,
        Phase::NoNews,
        Phase::Idle,
        Phase::Recovery,
    ]
    .iter()
    .any(|&p| options.runs(p));
    let mut startup = None;
    let mut spread = None;
    let mut b2b = None;
    let mut nonews = None;
    let mut idle = Vec::new();
    let mut recovery = None;
    let mut write_floor = None;
    if small {
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
        if options.runs(Phase::Startup) {
            startup = Some(startup::measure(
                &mut setups,
                &agents,
                &expected,
                options.starts,
                options.start_deadline,
            ));
            // The stopped runs' blocking queries are still parked in the
            // agents (some endpoints only notice a closed connection when
            // they answer); answer them now, before anything is counted.
            for (agent, catalog) in agents.iter().zip(&catalogs) {
                agent.flush_parked(catalog);
            }
        }
        let long_running = [Phase::Spread, Phase::BackToBack, Phase::NoNews, Phase::Idle]
            .iter()
            .any(|&p| options.runs(p));
        if long_running {
            if options.runs(Phase::Spread) || options.runs(Phase::BackToBack) {
                let dir = setups[0].destination_dir().with_file_name("write-floor");
                eprintln!("bench: the write floor: {WRITE_FLOOR_WRITES} safe writes");
                write_floor = Some(writefloor::measure(
                    &dir,
                    expected.len(),
                    WRITE_FLOOR_WRITES,
                ));
            }
            let mut runs = start_tools(&mut setups, &agents, &expected, &options);
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
            let marks: Vec<usize> = agents.iter().map(BenchAgent::log_mark).collect();
            let phases = latency_phases(&setups, &agents, catalogs, &mut runs, &options);
            (spread, b2b, nonews, catalogs) = phases;
            if options.runs(Phase::Idle) {
                eprintln!(
                    "bench: quiet window of {:?} with {} services",
                    options.idle, options.services
                );
                let mut subjects: Vec<(&mut ToolRun, &BenchAgent, u16)> = runs
                    .iter_mut()
                    .zip(&agents)
                    .map(|(run, agent)| (run, agent, agent.http_port()))
                    .collect();
                idle = idle::measure(&mut subjects, options.idle);
            }
            let what = format!("{}-services", options.services);
            for ((run, agent), mark) in runs.iter().zip(&agents).zip(marks) {
                run.keep_log(&options.logs, &what);
                keep_agent_log(&options, run.tool, &what, &agent.log_since(mark));
            }
        }
        if options.runs(Phase::Recovery) {
            let params = RecoveryParams {
                outage: options.outage,
                trials: options.outages,
                start_deadline: options.start_deadline,
                change_deadline: options.change_deadline,
            };
            recovery = Some(recovery::measure(
                &mut setups,
                &agents,
                &mut catalogs,
                params,
                &options.logs,
            ));
        }
    }

    let mut scale = Vec::new();
    let mut limit = None;
    let mut signal = None;
    if options.runs(Phase::Big) {
        let params = ScaleParams {
            services: options.big_services,
            deadline: options.big_render_deadline,
            window: options.big_idle,
            changes: options.big_changes,
            change_deadline: options.change_deadline,
        };
        for (i, setup) in setups.iter_mut().enumerate() {
            let (runs, l, s) = scale::measure(setup, params, &options.logs, i == 0);
            scale.extend(runs);
            limit = limit.or(l);
            signal = signal.or(s);
        }
    }

    Results {
        env,
        load_at_end: machine::load_average(),
        took: began.elapsed(),
        tools,
        startup,
        spread,
        b2b,
        nonews,
        idle,
        recovery,
        scale,
        limit,
        signal,
        write_floor,
        options,
    }
}

/// Starts both tools for good and waits for their first files.
fn start_tools(
    setups: &mut [ToolSetup; 2],
    agents: &[BenchAgent; 2],
    expected: &str,
    options: &Options,
) -> Vec<ToolRun> {
    setups
        .iter_mut()
        .zip(agents)
        .map(|(setup, agent)| {
            let (mut run, took) =
                startup::first_file(setup, &agent.endpoint(), expected, options.start_deadline);
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
        .collect()
}

/// What [`latency_phases`] hands back: spread, back-to-back, after a wake
/// without news, and the catalogs' models.
type LatencyPhases = (
    Option<Scenario>,
    Option<Scenario>,
    Option<Scenario>,
    [Catalog; 2],
);

/// The spread, back-to-back and no-news series, as the options ask; hands
/// the catalogs' models back.
fn latency_phases(
    setups: &[ToolSetup; 2],
    agents: &[BenchAgent; 2],
    catalogs: [Catalog; 2],
    runs: &mut [ToolRun],
    options: &Options,
) -> LatencyPhases {
    let mut entrants: Vec<Entrant<'_, '_>> = setups
        .iter()
        .zip(agents)
        .zip(catalogs)
        .zip(runs.iter_mut())
        .map(|(((setup, agent), catalog), run)| {
            let dir = setup.destination_dir();
            Entrant {
                subject: Subject {
                    setup,
                    agent,
                    current: catalog.render(),
                    catalog,
                    watch: DirWatch::new(&dir)
                        .unwrap_or_else(|e| panic!("watching {}: {e}", dir.display())),
                    plan: Plan::RoundRobin,
                    last_arrival: None,
                },
                run,
                port: agent.http_port(),
            }
        })
        .collect();
    let mut spread = None;
    if options.runs(Phase::Spread) {
        eprintln!(
            "bench: {} spread changes per tool, alternating",
            options.changes
        );
        let (samples, costs) = series::run(
            &mut entrants,
            options.changes,
            Pacing::Spread,
            options.change_deadline,
            "spread",
        );
        spread = Some(Scenario { samples, costs });
    }
    let mut b2b = None;
    if options.runs(Phase::BackToBack) {
        eprintln!(
            "bench: {} back-to-back changes per tool on one service, in blocks of {}",
            options.b2b_changes, options.b2b_block
        );
        for e in &mut entrants {
            e.subject.plan = Plan::One(0);
            e.subject.last_arrival = None;
        }
        let (samples, costs) = series::run(
            &mut entrants,
            options.b2b_changes,
            Pacing::BackToBack {
                block: options.b2b_block,
                gap: options.b2b_gap,
            },
            options.change_deadline,
            "back-to-back",
        );
        b2b = Some(Scenario { samples, costs });
    }
    let mut nonews = None;
    if options.runs(Phase::NoNews) && options.instances >= 2 {
        eprintln!(
            "bench: {} changes per tool after a wake-up without news, in blocks of {}",
            options.nonews_changes, options.b2b_block
        );
        let spare = options.instances - 1;
        for e in &mut entrants {
            let s = &mut e.subject;
            let mut setup = s.catalog.complete_cycle(0);
            setup.push(s.catalog.set_instance_passing(0, spare, false));
            for change in &setup {
                s.agent.apply(change);
            }
            let expected = s.catalog.render();
            let arrival = s.watch.wait_for(
                &s.setup.destination(),
                &s.current,
                &expected,
                Instant::now() + options.change_deadline,
            );
            assert!(
                arrival.at.is_some(),
                "{} did not follow the no-news set-up within {:?}",
                s.setup.tool.name(),
                options.change_deadline
            );
            s.current = expected;
            s.plan = Plan::Flip {
                service: 0,
                instance: 0,
                spare,
            };
            s.last_arrival = None;
        }
        let (samples, costs) = series::run(
            &mut entrants,
            options.nonews_changes,
            Pacing::AfterNoNews {
                block: options.b2b_block,
                gaps: NO_NEWS_GAPS,
                settle: NO_NEWS_SETTLE,
            },
            options.change_deadline,
            "after a wake-up without news",
        );
        nonews = Some(Scenario { samples, costs });
    }
    let catalogs: Vec<Catalog> = entrants.into_iter().map(|e| e.subject.catalog).collect();
    let [a, b]: [Catalog; 2] = catalogs
        .try_into()
        .unwrap_or_else(|_| panic!("two tools, two catalogs"));
    (spread, b2b, nonews, [a, b])
}

/// How long after a change without news the measured change comes: spread
/// evenly over this range.
pub const NO_NEWS_GAPS: (Duration, Duration) =
    (Duration::from_millis(5), Duration::from_millis(95));

/// The pause after a measured change reached the file before the next
/// change without news: past consul-template's 100–120 ms hold.
pub const NO_NEWS_SETTLE: Duration = Duration::from_millis(150);

/// Writes an agent's log to `logs/consul-agent-<tool>-<what>.log`.
fn keep_agent_log(options: &Options, tool: Tool, what: &str, log: &str) {
    let path = options
        .logs
        .join(format!("consul-agent-{}-{what}.log", tool.name()));
    std::fs::create_dir_all(&options.logs)
        .and_then(|()| std::fs::write(&path, crate::agentlog::without_sync_noise(log)))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
