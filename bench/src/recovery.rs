//! Recovery after an outage: how soon after Consul is reachable again the
//! changes made during the outage reach the file, and what each tool sent
//! while Consul was unreachable.
//!
//! Each tool talks to its agent through a [`CutProxy`]. First, one
//! instance of each of services 2, 3, … is made to fail (one per outage;
//! the bench waits for the file). Then each outage: an instance of the
//! first service fails (sent to the agent directly; the bench waits for
//! the file), a second later the proxy cuts the tool off (its connections
//! reset, new ones reset on arrival and counted), a second into the outage
//! two instances pass again, directly on the agent, which is never down:
//! the one of the first service (a service that changed just before the
//! outage) and one of the services failed at the start (a service quiet
//! since the previous outage, if any). When the outage ends the proxy
//! forwards again, and the clock runs to the file holding the first
//! service's instance, and to the file holding both. The changes are gains
//! on purpose: right after a failure consul-render holds back data that
//! *lost* instances for `-reset-grace` (60 s) in case the agent came back
//! empty, so a loss would measure that deliberate hold. Outages alternate
//! between tools.

use crate::catalog::Catalog;
use crate::consul::BenchAgent;
use crate::filewatch::DirWatch;
use crate::proxy::{CutCounts, CutProxy};
use crate::scale::is_problem;
use crate::startup::first_file;
use crate::tools::{Endpoint, Tool, ToolRun, ToolSetup};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Pause between the change before the cut reaching the file and the
/// cut, so the tool's blocking queries are parked again.
const BEFORE_CUT: Duration = Duration::from_secs(1);

/// How far into the outage the change is made.
const CHANGE_AFTER: Duration = Duration::from_secs(1);

/// How long after the restore the change may take: past consul-template's
/// largest default backoff (1 min).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);

/// How many log lines to keep as evidence.
const EVIDENCE_LINES: usize = 4;

/// One outage.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Restore to the file holding the change to the service that changed
    /// just before the outage; `None` if not within the deadline.
    pub recent: Option<Duration>,
    /// Restore to the file holding both changes (the other is to a service
    /// that had not changed since the previous outage).
    pub all: Option<Duration>,
    /// What the tool sent to the proxy while it was cut.
    pub cut: CutCounts,
    /// How long the proxy was cut.
    pub outage: Duration,
}

/// One tool's outages.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub tool: Tool,
    pub trials: Vec<Trial>,
    /// Still running at the end (or how it exited).
    pub exit: Option<String>,
    /// Log lines at warning or error level during the trials.
    pub log_problem_lines: usize,
    /// The first few of them.
    pub evidence: Vec<String>,
}

/// How the outages are sized.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryParams {
    pub outage: Duration,
    pub trials: usize,
    pub start_deadline: Duration,
    pub change_deadline: Duration,
}

/// Runs `params.trials` outages per tool, alternating, each tool against
/// its agent through a proxy. `catalogs` must model the agents.
pub fn measure(
    setups: &mut [ToolSetup; 2],
    agents: &[BenchAgent; 2],
    catalogs: &mut [Catalog; 2],
    params: RecoveryParams,
    logs: &Path,
) -> [Recovery; 2] {
    let RecoveryParams {
        outage,
        trials,
        start_deadline,
        change_deadline,
    } = params;
    let proxies = agents.each_ref().map(|a| CutProxy::start(&a.http_addr()));
    let mut runs: Vec<ToolRun> = setups
        .iter_mut()
        .zip(&proxies)
        .zip(catalogs.iter())
        .map(|((setup, proxy), catalog)| {
            let endpoint = Endpoint::Http(proxy.addr());
            let (mut run, took) = first_file(setup, &endpoint, &catalog.render(), start_deadline);
            if took.is_none() {
                run.assert_running();
                panic!(
                    "{} wrote no complete file through the proxy within {start_deadline:?}; its log:\n{}",
                    setup.tool.name(),
                    run.log()
                );
            }
            run
        })
        .collect();
    // The instances that will come back during the outages, failed now.
    let mut pending: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
    for i in 0..2 {
        let total = catalogs[i].service_total();
        for n in 0..trials {
            let service = 1 + n % total.saturating_sub(1).max(1);
            let service = service.min(total - 1);
            let Some(instance) = catalogs[i].healthy_instance_of(service) else {
                continue;
            };
            let before = catalogs[i].render();
            agents[i].apply(&catalogs[i].set_instance_passing(service, instance, false));
            wait_file(&setups[i], &before, &catalogs[i].render(), change_deadline);
            pending[i].push((service, instance));
        }
    }
    let log_marks: Vec<usize> = runs.iter().map(|r| r.log().len()).collect();
    let mut results: [Vec<Trial>; 2] = [Vec::new(), Vec::new()];
    for n in 0..trials {
        for i in 0..2 {
            eprintln!(
                "bench: outage {}/{trials} of {:?} for {}",
                n + 1,
                outage,
                setups[i].tool.name()
            );
            let quiet = pending[i].get(n).copied();
            let trial = one_outage(
                &setups[i],
                &agents[i],
                &mut catalogs[i],
                &proxies[i],
                &mut runs[i],
                quiet,
                outage,
                change_deadline,
            );
            let show = |d: Option<Duration>| {
                d.map_or(format!("not within {RECOVERY_DEADLINE:?}"), |t| {
                    format!("{t:.2?}")
                })
            };
            eprintln!(
                "bench: {}: after the restore, the recent service's change in {}, both in {}; {} connections ({} with a request) during the outage",
                setups[i].tool.name(),
                show(trial.recent),
                show(trial.all),
                trial.cut.connections,
                trial.cut.with_request
            );
            results[i].push(trial);
        }
    }
    let mut out = Vec::new();
    for ((mut run, trials), mark) in runs.into_iter().zip(results).zip(log_marks) {
        run.keep_log(logs, "recovery");
        let log = run.log();
        let problems: Vec<String> = log
            .get(mark..)
            .unwrap_or_default()
            .lines()
            .filter(|l| is_problem(l) || l.contains("unreachable") || l.contains("reachable"))
            .map(String::from)
            .collect();
        out.push(Recovery {
            tool: run.tool,
            trials,
            exit: run.exit(),
            log_problem_lines: problems.len(),
            evidence: problems.into_iter().take(EVIDENCE_LINES).collect(),
        });
    }
    let [a, b]: [Recovery; 2] = out
        .try_into()
        .unwrap_or_else(|_| panic!("two tools, two results"));
    [a, b]
}

/// Waits for `setup`'s file to go from `before` to `after`; panics if it
/// does not within `deadline`.
fn wait_file(setup: &ToolSetup, before: &str, after: &str, deadline: Duration) {
    let dir = setup.destination_dir();
    let watch = DirWatch::new(&dir).unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
    let arrival = watch.wait_for(
        &setup.destination(),
        before,
        after,
        Instant::now() + deadline,
    );
    assert!(
        arrival.at.is_some(),
        "{} did not follow a change within {deadline:?} before an outage",
        setup.tool.name()
    );
}

#[allow(clippy::too_many_arguments)]
fn one_outage(
    setup: &ToolSetup,
    agent: &BenchAgent,
    catalog: &mut Catalog,
    proxy: &CutProxy,
    run: &mut ToolRun,
    quiet: Option<(usize, usize)>,
    outage: Duration,
    change_deadline: Duration,
) -> Trial {
    run.assert_running();
    let dir = setup.destination_dir();
    let watch = DirWatch::new(&dir).unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
    let dest = setup.destination();
    let recent = catalog
        .healthy_instance_of(0)
        .expect("the first service has a healthy instance");

    let before = catalog.render();
    agent.apply(&catalog.set_instance_passing(0, recent, false));
    wait_file(setup, &before, &catalog.render(), change_deadline);
    thread::sleep(BEFORE_CUT);

    proxy.cut();
    let cut_at = Instant::now();
    thread::sleep(CHANGE_AFTER);
    // What the file may hold after the restore: the recent service's change
    // alone, the quiet one's alone, or both.
    let mut recent_only = catalog.clone();
    recent_only.set_instance_passing(0, recent, true);
    let recent_only = recent_only.render();
    agent.apply(&catalog.set_instance_passing(0, recent, true));
    if let Some((service, instance)) = quiet {
        agent.apply(&catalog.set_instance_passing(service, instance, true));
    }
    agent.wait_for_passing(catalog);
    let both = catalog.render();
    thread::sleep(outage.saturating_sub(cut_at.elapsed()));
    let cut = proxy.restore();
    let restored = Instant::now();
    let deadline = restored + RECOVERY_DEADLINE;
    let first = watch.wait_for_any(&dest, &[&recent_only, &both], deadline);
    let all = match first {
        Some((at, 1)) => Some(at),
        Some(_) => watch
            .wait_for_any(&dest, &[&both], deadline)
            .map(|(at, _)| at),
        None => None,
    };
    Trial {
        recent: first.map(|(at, _)| at - restored),
        all: all.map(|at| at - restored),
        cut,
        outage: restored - cut_at,
    }
}
