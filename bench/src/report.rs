//! Turning [`Results`] into numbers both tools are compared on, the targets
//! with pass/fail (each evaluated on a named scenario), BENCHMARKS.md, and
//! the JSON files (a summary, and every change's raw sample). Measuring is
//! elsewhere; this only computes ratios and writes.

use crate::agentlog::{Anatomy, Class};
use crate::idle::Idle;
use crate::latency::{Sample, Summary};
use crate::recovery::Recovery;
use crate::resources::ProcSample;
use crate::run::{Results, Scenario};
use crate::scale::{CONNECTION_LIMIT, Scale};
use crate::series::ChangeCost;
use crate::tools::Tool;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// "Complete first render in seconds": the bound used for the 1,000-service
/// target.
const BIG_RENDER_TARGET: Duration = Duration::from_secs(10);

/// "At most a few connections held": the bound used for the 1,000-service
/// target (5% of Consul's default per-client limit of 200).
const FEW_CONNECTIONS: usize = 10;

/// The issue's consul-template figures, measured on this machine.
const ISSUE_CT_P50: Duration = Duration::from_millis(49);
const ISSUE_CT_P99: Duration = Duration::from_millis(53);

/// Index of each tool in the results' arrays.
const CR: usize = 0;
const CT: usize = 1;

/// One latency scenario's numbers for one tool.
#[derive(Debug, Clone, Copy)]
struct Latency {
    file: Option<Summary>,
    floor: Option<Summary>,
    /// Changes that reached the file / were made.
    missed: usize,
    n: usize,
    /// Median time from this tool's previous change reaching its file to
    /// the next change.
    since_previous: Option<Duration>,
}

impl Latency {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample> + Clone) -> Latency {
        Latency {
            file: Summary::of(samples.clone().map(|s| s.file)),
            floor: Summary::of(samples.clone().map(|s| s.floor)),
            missed: samples.clone().filter(|s| s.file.is_none()).count(),
            n: samples.clone().count(),
            since_previous: Summary::of(samples.map(|s| s.since_previous)).map(|s| s.p50),
        }
    }
}

/// A latency scenario as the report names it.
struct Named<'a> {
    /// Short name, used in the targets table.
    short: String,
    /// What it is, for the latency table.
    long: String,
    /// Per tool; `None` where the tool had no series (no first render).
    latency: [Option<Latency>; 2],
    costs: [Option<&'a ChangeCost>; 2],
    /// Whether consul-render is compared with consul-template here.
    compared: bool,
    /// Whether the CPU and request targets are evaluated here.
    cost_targets: bool,
}

fn scenario_latency(s: &Scenario) -> [Option<Latency>; 2] {
    Tool::BOTH.map(|t| Some(Latency::of(s.samples.iter().filter(move |x| x.tool == t))))
}

fn named(r: &Results) -> Vec<Named<'_>> {
    let o = &r.options;
    let mut out = Vec::new();
    if let Some(s) = &r.spread {
        out.push(Named {
            short: "spread".into(),
            long: format!(
                "{} services × {}, round-robin, 25–49 ms after the other tool's change",
                o.services, o.instances
            ),
            latency: scenario_latency(s),
            costs: [s.costs.first(), s.costs.get(1)],
            compared: true,
            cost_targets: true,
        });
    }
    if let Some(s) = &r.b2b {
        out.push(Named {
            short: "back-to-back".into(),
            long: format!(
                "one service, each change {} ms after the previous one reached the file (plus the floor's set-up)",
                o.b2b_gap.as_millis()
            ),
            latency: scenario_latency(s),
            costs: [s.costs.first(), s.costs.get(1)],
            compared: true,
            cost_targets: true,
        });
    }
    if let Some(s) = &r.nonews {
        let (low, high) = crate::run::NO_NEWS_GAPS;
        out.push(Named {
            short: "after a wake-up without news".into(),
            long: format!(
                "one service; a failing instance is \
                 deregistered or registered again (failing), which wakes the service's \
                 blocking queries without changing the file, then {}–{} ms later (plus \
                 the floor's set-up) another instance fails or passes",
                low.as_millis(),
                high.as_millis()
            ),
            latency: scenario_latency(s),
            costs: [s.costs.first(), s.costs.get(1)],
            compared: true,
            cost_targets: false,
        });
    }
    for transport in ["HTTP", "HTTPS"] {
        let of = |tool: Tool| {
            r.scale
                .iter()
                .find(|s| s.tool == tool && s.transport == transport)
        };
        let runs = Tool::BOTH.map(of);
        if runs.iter().all(Option::is_none) {
            continue;
        }
        let latency = runs.map(|s| {
            s.and_then(|s| s.changes.as_ref())
                .map(|(samples, _)| Latency::of(samples.iter()))
        });
        let costs = runs.map(|s| s.and_then(|s| s.changes.as_ref()).map(|(_, c)| c));
        out.push(Named {
            short: format!("{} services, {transport}", o.big_services),
            long: format!(
                "{} changes over {} services, 25–49 ms apart",
                o.big_changes,
                o.big_changes.div_ceil(4).min(o.big_services)
            ),
            latency,
            costs,
            compared: false,
            cost_targets: false,
        });
    }
    out
}

/// One target: what was compared, on which scenario, and whether it held
/// (`None`: could not be measured in this run).
struct Target {
    name: String,
    scenario: String,
    measured: String,
    pass: Option<bool>,
}

fn target(name: impl Into<String>, scenario: impl Into<String>) -> Target {
    Target {
        name: name.into(),
        scenario: scenario.into(),
        measured: "no data".into(),
        pass: None,
    }
}

fn targets(r: &Results) -> Vec<Target> {
    let o = &r.options;
    let mut t = Vec::new();
    for s in named(r) {
        let cr = s.latency[CR];
        let ct = s.latency[CT];
        let lat = cr.and_then(|l| l.file.zip(l.floor));
        let mut p50 = target("change→file p50 within 2× the floor's p50", &s.short);
        if let Some((l, f)) = lat {
            p50.measured = format!(
                "{} vs floor {} ({:.2}×)",
                ms(l.p50),
                ms(f.p50),
                ratio(l.p50, f.p50)
            );
            p50.pass = Some(l.p50 <= f.p50 * 2);
        }
        t.push(p50);
        if s.compared {
            let mut fifth = target("change→file p50 ≤ 1/5 of consul-template's", &s.short);
            if let (Some(a), Some(b)) = (cr.and_then(|l| l.file), ct.and_then(|l| l.file)) {
                let floor = cr.and_then(|l| l.floor);
                fifth.measured = format!(
                    "{} vs {} ({:.2}×){}",
                    ms(a.p50),
                    ms(b.p50),
                    ratio(a.p50, b.p50),
                    match floor {
                        Some(f) if b.p50 / 5 < f.p50 => format!(
                            "; 1/5 of consul-template's is {}, below the floor's {}: \
                             no Consul client can get there on this setup",
                            ms(b.p50 / 5),
                            ms(f.p50)
                        ),
                        _ => String::new(),
                    }
                );
                fifth.pass = Some(a.p50 * 5 <= b.p50);
            }
            t.push(fifth);
        }
        let mut p99 = target("change→file p99 within 4× the floor's p99", &s.short);
        if let Some((l, f)) = lat {
            p99.measured = format!(
                "{} vs floor {} ({:.2}×)",
                ms(l.p99),
                ms(f.p99),
                ratio(l.p99, f.p99)
            );
            p99.pass = Some(l.p99 <= f.p99 * 4);
        }
        t.push(p99);
        let mut all = target("every change reaches the file", &s.short);
        if let Some(l) = cr {
            all.measured = format!("{} of {} missed", l.missed, l.n);
            all.pass = Some(l.missed == 0);
        }
        t.push(all);
    }
    t.push(third(
        "idle RSS ≤ 1/3 of consul-template's",
        format!("quiet window, {} services", o.services),
        rss(&r.idle, CR),
        rss(&r.idle, CT),
        kib,
    ));
    for transport in ["HTTP", "HTTPS"] {
        let scenario = format!("quiet window, {} services, {transport}", o.big_services);
        let of = |tool| big(r, tool, transport).and_then(|s| s.idle.end.map(|e| e.rss_kib));
        t.push(third(
            "idle RSS ≤ 1/3 of consul-template's",
            scenario,
            of(Tool::ConsulRender),
            of(Tool::ConsulTemplate),
            kib,
        ));
    }
    t.push(third(
        "binary size ≤ 1/3 of consul-template's",
        "consul-render as shipped (static musl) vs consul-template stripped",
        Some(r.tools[CR].bytes),
        r.tools[CT].stripped_bytes,
        mib,
    ));
    for s in named(r).iter().filter(|s| s.cost_targets) {
        let cpu = s
            .costs
            .map(|c| c.and_then(ChangeCost::cpu_per_1000).map(|c| c.0));
        let mut cpu_target = third(
            "CPU per 1,000 changes ≤ 1/3 of consul-template's",
            &s.short,
            cpu[CR].map(|d| d.as_micros() as u64),
            cpu[CT].map(|d| d.as_micros() as u64),
            |us| ms(Duration::from_micros(us)),
        );
        if let (Some(a), Some(b), Some(floor)) = (cpu[CR], cpu[CT], r.write_floor) {
            let (a, b) = (a.saturating_sub(floor), b.saturating_sub(floor));
            cpu_target.measured.push_str(&format!(
                "; beyond the write both make ({} per 1,000, measured by the bench): {} vs {} ({:.3}×)",
                ms(floor),
                ms(a),
                ms(b),
                ratio(a, b)
            ));
        }
        t.push(cpu_target);
    }
    for s in named(r).iter().filter(|s| s.cost_targets) {
        let per = s.costs.map(|c| c.and_then(ChangeCost::requests_per_change));
        let mut req = target("Consul requests per change ≤ consul-template's", &s.short);
        if let (Some(a), Some(b)) = (per[CR], per[CT]) {
            req.measured = format!("{a:.3} vs {b:.3}");
            req.pass = Some(a <= b);
        }
        t.push(req);
    }
    t.push(at_most(
        "Consul requests at idle ≤ consul-template's",
        format!("quiet window, {} services", o.services),
        r.idle.get(CR).and_then(Idle::requests_per_minute),
        r.idle.get(CT).and_then(Idle::requests_per_minute),
    ));
    for transport in ["HTTP", "HTTPS"] {
        let of = |tool| big(r, tool, transport).and_then(|s| s.idle.requests_per_minute());
        t.push(at_most(
            "Consul requests at idle ≤ consul-template's",
            format!("quiet window, {} services, {transport}", o.big_services),
            of(Tool::ConsulRender),
            of(Tool::ConsulTemplate),
        ));
    }
    for transport in ["HTTP", "HTTPS"] {
        let scenario = format!("{} services, {transport}", o.big_services);
        let s = big(r, Tool::ConsulRender, transport);
        let mut first = target(
            format!(
                "complete first render in seconds (≤ {})",
                secs(BIG_RENDER_TARGET)
            ),
            &scenario,
        );
        let mut conns = target(
            format!("at most a few connections held (≤ {FEW_CONNECTIONS})"),
            &scenario,
        );
        let mut bystander = target("no 429 for another client on the host", &scenario);
        if let Some(s) = s {
            first.measured = s
                .first_render
                .map_or(format!("none within {}", secs(s.deadline)), secs);
            first.pass = Some(s.first_render.is_some_and(|t| t <= BIG_RENDER_TARGET));
            if let Some(most) = s.most_connections() {
                conns.measured = format!(
                    "at most {most} (after the first render {}, end of quiet window {}, end of changes {})",
                    opt_count(s.connections_after_wait),
                    opt_count(s.idle.connections),
                    opt_count(s.changes.as_ref().and_then(|(_, c)| c.connections))
                );
                conns.pass = Some(most <= FEW_CONNECTIONS);
            }
            bystander.measured = format!(
                "bystander (plain HTTP, same address, every 100 ms) refused {} times \
                 ({} × 429, {} × connection reset) in {} requests",
                s.probe.refused(),
                s.probe.too_many,
                s.probe.reset,
                s.probe.total()
            );
            bystander.pass = Some(s.probe.refused() == 0);
        }
        t.extend([first, conns, bystander]);
    }
    t
}

/// consul-render's `a` at most a third of consul-template's `b`.
fn third(
    name: &str,
    scenario: impl Into<String>,
    a: Option<u64>,
    b: Option<u64>,
    show: fn(u64) -> String,
) -> Target {
    let mut t = target(name, scenario);
    if let (Some(a), Some(b)) = (a, b) {
        t.measured = format!("{} vs {} ({:.3}×)", show(a), show(b), a as f64 / b as f64);
        t.pass = Some(a * 3 <= b);
    }
    t
}

/// consul-render's `a` at most consul-template's `b` (requests a minute).
fn at_most(name: &str, scenario: impl Into<String>, a: Option<f64>, b: Option<f64>) -> Target {
    let mut t = target(name, scenario);
    if let (Some(a), Some(b)) = (a, b) {
        t.measured = format!("{a:.1}/min vs {b:.1}/min");
        t.pass = Some(a <= b);
    }
    t
}

fn rss(idle: &[Idle], i: usize) -> Option<u64> {
    idle.get(i)?.end.map(|e| e.rss_kib)
}

fn big<'a>(r: &'a Results, tool: Tool, transport: &str) -> Option<&'a Scale> {
    r.scale
        .iter()
        .find(|s| s.tool == tool && s.transport == transport)
}

/// Writes BENCHMARKS.md, the summary JSON and the samples JSON.
pub fn write(r: &Results) {
    let targets = targets(r);
    write_file(&r.options.report, &markdown(r, &targets));
    let summary =
        serde_json::to_string_pretty(&summary_json(r, &targets)).expect("a JSON value serialises");
    write_file(&r.options.json, &(summary + "\n"));
    let mut samples: Vec<Value> = Vec::new();
    for (name, list) in [
        ("spread", r.spread.as_ref().map(|s| &s.samples)),
        ("back-to-back", r.b2b.as_ref().map(|s| &s.samples)),
        (
            "after a wake-up without news",
            r.nonews.as_ref().map(|s| &s.samples),
        ),
    ] {
        for s in list.into_iter().flatten() {
            samples.push(sample_json(name, s));
        }
    }
    for s in &r.scale {
        if let Some((list, _)) = &s.changes {
            let name = format!("{} services, {}", s.services, s.transport);
            samples.extend(list.iter().map(|x| sample_json(&name, x)));
        }
    }
    let samples = serde_json::to_string(&samples).expect("a JSON value serialises");
    write_file(&r.options.samples, &(samples + "\n"));
    let failed: Vec<String> = targets
        .iter()
        .filter(|t| t.pass == Some(false))
        .map(|t| format!("{} ({})", t.name, t.scenario))
        .collect();
    eprintln!(
        "bench: wrote {}, {} and {}; {} of {} targets failed{}",
        r.options.report.display(),
        r.options.json.display(),
        r.options.samples.display(),
        failed.len(),
        targets.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join("; "))
        }
    );
}

fn write_file(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn markdown(r: &Results, targets: &[Target]) -> String {
    let o = &r.options;
    let mut m = String::new();
    let w = &mut m;
    line(w, "# Benchmarks: consul-render and consul-template");
    line(w, "");
    line(
        w,
        &format!(
            "Generated by `scripts/bench` on {}; do not edit by hand (run it again).",
            r.env.date
        ),
    );
    line(w, "");
    if o.quick {
        line(
            w,
            "> **Quick run** (`--quick`): few changes, short quiet windows and outages. \
             Good for checking the harness, not for quoting.",
        );
        line(w, "");
    }
    let skipped: Vec<&str> = crate::options::Phase::ALL
        .iter()
        .filter(|p| !o.runs(**p))
        .map(|p| p.name())
        .collect();
    if !skipped.is_empty() {
        line(
            w,
            &format!(
                "> **Partial run** (`--only`): not run: {}.",
                skipped.join(", ")
            ),
        );
        line(w, "");
    }
    line(
        w,
        &format!(
            "> Load average {} at the start and {} at the end on {} cores: \
             other work on the machine adds noise, mostly to the tails and to CPU time.",
            r.env.load_at_start, r.load_at_end, r.env.cores
        ),
    );
    line(w, "");

    setup_section(w, r);
    targets_section(w, targets);
    latency_section(w, r);
    small_section(w, r);
    scale_section(w, r);
    recovery_section(w, r);
    anatomy_section(w, r);
    kinds_section(w, r);
    logs_section(w, r);

    line(w, "## How each number is measured");
    line(w, "");
    m.push_str(METHOD);
    m
}

fn setup_section(w: &mut String, r: &Results) {
    let o = &r.options;
    line(w, "## Setup");
    line(w, "");
    line(
        w,
        &format!(
            "- Machine: {} cores, {}, Linux {}",
            r.env.cores, r.env.cpu_model, r.env.kernel
        ),
    );
    line(
        w,
        &format!(
            "- Consul: {} (dev agent, one per tool)",
            r.env.consul_version
        ),
    );
    line(w, &format!("- consul-template: {}", r.tools[CT].version));
    line(
        w,
        &format!(
            "- consul-render: {}, commit {}, built with `cargo build --release --locked \
             --target x86_64-unknown-linux-musl` (the static binary the image ships)",
            r.tools[CR].version, r.env.commit
        ),
    );
    line(
        w,
        &format!("- Command: `{}` (took {})", o.command, secs(r.took)),
    );
    for t in &r.tools {
        line(w, &format!("- {}: `{}`", t.tool.name(), t.command_line));
    }
    for t in &r.tools {
        line(
            w,
            &format!("- {} over HTTPS: `{}`", t.tool.name(), t.https_command_line),
        );
    }
    line(
        w,
        &format!(
            "- Sizes: {} services × {} instances; {} spread changes, {} back-to-back \
             changes and {} changes after a wake-up without news (blocks of {}) per tool; \
             quiet windows of {}; {} starts per tool; \
             {} services × 1 for the scale runs (first-render deadline {}, quiet windows \
             of {}, {} changes per tool and transport); {} outages of {} per tool",
            o.services,
            o.instances,
            o.changes,
            o.b2b_changes,
            o.nonews_changes,
            o.b2b_block,
            secs(o.idle),
            o.starts,
            o.big_services,
            secs(o.big_render_deadline),
            secs(o.big_idle),
            o.big_changes,
            o.outages,
            secs(o.outage),
        ),
    );
    line(w, "");
}

fn targets_section(w: &mut String, targets: &[Target]) {
    line(w, "## Targets");
    line(w, "");
    line(
        w,
        "Each target is evaluated on the scenario named next to it; the latency targets \
         are evaluated on every scenario, each against its own floor.",
    );
    line(w, "");
    line(
        w,
        "| target | scenario | measured (consul-render vs consul-template) | result |",
    );
    line(w, "|---|---|---|---|");
    for t in targets {
        let result = match t.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "not measured",
        };
        line(
            w,
            &format!(
                "| {} | {} | {} | {result} |",
                t.name, t.scenario, t.measured
            ),
        );
    }
    line(w, "");
}

fn latency_section(w: &mut String, r: &Results) {
    let scenarios = named(r);
    if scenarios.is_empty() {
        return;
    }
    line(w, "## Change→file latency, per scenario");
    line(w, "");
    for s in &scenarios {
        line(w, &format!("- **{}**: {}", s.short, s.long));
    }
    line(w, "");
    line(
        w,
        "| scenario | tool | changes | p50 | p90 | p99 | max | floor p50 | floor p99 | p50 / floor | p99 / floor | missed | previous change's arrival → this change (median) |",
    );
    line(
        w,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for s in &scenarios {
        for (i, tool) in Tool::BOTH.iter().enumerate() {
            let Some(l) = s.latency[i] else {
                line(
                    w,
                    &format!(
                        "| {} | {} | – | no first render, not measured | | | | | | | | | |",
                        s.short,
                        tool.name()
                    ),
                );
                continue;
            };
            let f =
                |g: fn(&Summary) -> Duration| l.file.as_ref().map_or("–".into(), |x| ms(g(x)));
            let fl =
                |g: fn(&Summary) -> Duration| l.floor.as_ref().map_or("–".into(), |x| ms(g(x)));
            let rel = |g: fn(&Summary) -> Duration| match (&l.file, &l.floor) {
                (Some(a), Some(b)) => format!("{:.2}×", ratio(g(a), g(b))),
                _ => "–".into(),
            };
            line(
                w,
                &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    s.short,
                    tool.name(),
                    l.n,
                    f(|x| x.p50),
                    f(|x| x.p90),
                    f(|x| x.p99),
                    f(|x| x.max),
                    fl(|x| x.p50),
                    fl(|x| x.p99),
                    rel(|x| x.p50),
                    rel(|x| x.p99),
                    l.missed,
                    opt_ms(l.since_previous),
                ),
            );
        }
    }
    line(w, "");
    line(
        w,
        "Each tool's floor is the blocking query's time on its own changes (see below). \
         The last column is how long after a tool's previous change reached its file the \
         next change to that tool was sent.",
    );
    line(w, "");
    // Which scenario the issue's consul-template figure matches.
    let ct: Vec<(String, Duration, Duration)> = scenarios
        .iter()
        .filter(|s| s.compared)
        .filter_map(|s| {
            let l = s.latency[CT]?.file?;
            Some((s.short.clone(), l.p50, l.p99))
        })
        .collect();
    if !ct.is_empty() {
        let near = |a: Duration, b: Duration| a.abs_diff(b) <= b / 4;
        let close: Vec<&String> = ct
            .iter()
            .filter(|(_, p50, _)| near(*p50, ISSUE_CT_P50))
            .map(|(name, _, _)| name)
            .collect();
        let close_p99: Vec<&String> = ct
            .iter()
            .filter(|(_, _, p99)| near(*p99, ISSUE_CT_P99))
            .map(|(name, _, _)| name)
            .collect();
        let list: Vec<String> = ct
            .iter()
            .map(|(name, p50, p99)| format!("{} p50 / p99 in {name}", pair(*p50, *p99)))
            .collect();
        let names = |list: &[&String]| {
            list.iter()
                .map(|n| format!("**{n}**"))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let verdict = match (close.is_empty(), close_p99.is_empty()) {
            (true, _) => "no scenario here comes within a quarter of its p50".to_string(),
            (false, true) => format!(
                "its p50 is matched (within a quarter) by {}, its p99 by no scenario here",
                names(&close)
            ),
            (false, false) => format!(
                "its p50 is matched (within a quarter) by {}, its p99 by {}",
                names(&close),
                names(&close_p99)
            ),
        };
        line(
            w,
            &format!(
                "The issue measured consul-template at {} p50 and {} p99 on this machine. \
                 Here it took {}: {verdict}. consul-template's watch loop \
                 (`watch/view.go`) sleeps when a blocking query returns within 100 ms of \
                 being sent (`minDelayBetweenUpdates`: the rest of 100 ms plus 0–20 ms), \
                 but not on the first query after it delivered data (`firstLoop`): only a \
                 query that follows a wake-up without news (same index, or the same data) \
                 is held back.",
                ms(ISSUE_CT_P50),
                ms(ISSUE_CT_P99),
                list.join("; "),
            ),
        );
        line(w, "");
    }
}

fn small_section(w: &mut String, r: &Results) {
    let o = &r.options;
    line(w, &format!("## {} services: resources", o.services));
    line(w, "");
    line(
        w,
        "| | consul-render | consul-template | consul-render / consul-template |",
    );
    line(w, "|---|---:|---:|---:|");
    if let Some(startup) = &r.startup {
        let s = startup
            .each_ref()
            .map(|s| Summary::of(s.times.iter().copied()));
        row3(
            w,
            &format!("start → first complete file (median of {})", o.starts),
            s[CR].map(|s| ms(s.p50)),
            s[CT].map(|s| ms(s.p50)),
            ratio_opt(s[CR].map(|s| s.p50), s[CT].map(|s| s.p50)),
        );
    }
    if let Some(floor) = r.write_floor {
        row3(
            w,
            "the write alone, CPU per 1,000 (read, create, write, fsync, rename; by the bench, same filesystem)",
            Some(ms(floor)),
            Some(ms(floor)),
            None,
        );
    }
    for (name, scenario) in [("spread", &r.spread), ("back-to-back", &r.b2b)] {
        let Some(s) = scenario else { continue };
        let cpu = |i: usize| {
            s.costs
                .get(i)
                .and_then(ChangeCost::cpu_per_1000)
                .map(|(clock, stat)| format!("{} (stat: {})", ms(clock), ms(stat)))
        };
        let clock = |i: usize| {
            s.costs
                .get(i)
                .and_then(ChangeCost::cpu_per_1000)
                .map(|c| c.0)
        };
        row3(
            w,
            &format!("CPU per 1,000 changes, {name}"),
            cpu(CR),
            cpu(CT),
            ratio_opt(clock(CR), clock(CT)),
        );
        if let Some(floor) = r.write_floor {
            let beyond = |i: usize| clock(i).map(|c| c.saturating_sub(floor));
            row3(
                w,
                &format!("CPU per 1,000 changes beyond the write, {name}"),
                beyond(CR).map(ms),
                beyond(CT).map(ms),
                ratio_opt(beyond(CR), beyond(CT)),
            );
        }
        let per = |i: usize| s.costs.get(i).and_then(ChangeCost::requests_per_change);
        row3(
            w,
            &format!("Consul requests per change, {name}"),
            per(CR).map(|x| format!("{x:.3}")),
            per(CT).map(|x| format!("{x:.3}")),
            per(CR).zip(per(CT)).map(|(a, b)| format!("{:.2}", a / b)),
        );
        let routes = |i: usize| {
            s.costs.get(i).map(|c| {
                format!(
                    "{} in {} changes",
                    c.requests
                        .as_ref()
                        .map_or("unreadable".into(), ToString::to_string),
                    c.changes
                )
            })
        };
        row3(
            w,
            &format!("Consul requests by route, {name}"),
            routes(CR),
            routes(CT),
            None,
        );
    }
    idle_rows(w, &format!("idle, {} services", o.services), &r.idle);
    let [cr, ct] = [&r.tools[CR], &r.tools[CT]];
    row3(
        w,
        "binary size (consul-render static musl as shipped; consul-template stripped, as its releases are built)",
        Some(mib(cr.bytes)),
        ct.stripped_bytes.map(mib),
        ct.stripped_bytes
            .map(|b| format!("{:.2}", cr.bytes as f64 / b as f64)),
    );
    row3(
        w,
        "binary size, as installed (reference: consul-template from `go install`, with symbols and debug info)",
        Some(mib(cr.bytes)),
        Some(mib(ct.bytes)),
        Some(format!("{:.2}", cr.bytes as f64 / ct.bytes as f64)),
    );
    line(w, "");
}

fn scale_section(w: &mut String, r: &Results) {
    if r.scale.is_empty() {
        return;
    }
    let n = r.options.big_services;
    line(w, &format!("## {n} services through one agent"));
    line(w, "");
    let cols: Vec<&Scale> = ["HTTP", "HTTPS"]
        .iter()
        .flat_map(|t| Tool::BOTH.iter().filter_map(move |tool| big(r, *tool, t)))
        .collect();
    let mut header = "| |".to_string();
    let mut rule = "|---|".to_string();
    for s in &cols {
        header.push_str(&format!(" {} over {} |", s.tool.name(), s.transport));
        rule.push_str("---:|");
    }
    line(w, &header);
    line(w, &rule);
    let rowv = |w: &mut String, label: &str, f: &dyn Fn(&Scale) -> String| {
        let cells: Vec<String> = cols.iter().map(|s| f(s)).collect();
        line(w, &format!("| {label} | {} |", cells.join(" | ")));
    };
    rowv(w, "start → first complete file", &|s| {
        s.first_render
            .map_or(format!("none within {}", secs(s.deadline)), secs)
    });
    rowv(w, "requests to first render (or to the deadline)", &|s| {
        s.requests_to_render
            .as_ref()
            .map_or("unreadable".into(), |c| c.total().to_string())
    });
    rowv(
        w,
        &format!(
            "requests in the {} after the first-render wait",
            secs(crate::scale::AFTER_RENDER)
        ),
        &|s| {
            s.requests_after_render
                .as_ref()
                .map_or("unreadable".into(), |c| c.total().to_string())
        },
    );
    rowv(w, "connections when the first-render wait ended", &|s| {
        opt_count(s.connections_after_wait)
    });
    rowv(w, "connections at the end of the quiet window", &|s| {
        opt_count(s.idle.connections)
    });
    rowv(w, "quiet window: RSS", &|s| {
        s.idle.end.map_or("–".into(), |e| kib(e.rss_kib))
    });
    rowv(w, "quiet window: CPU", &|s| {
        s.idle.cpu.map_or("–".into(), |c| {
            format!("{} (stat: {})", ms(c.clock), ms(c.stat))
        })
    });
    rowv(w, "quiet window: Consul requests", &|s| match (
        &s.idle.requests,
        s.idle.requests_per_minute(),
    ) {
        (Some(c), Some(per)) => format!("{per:.1}/min ({})", c.total()),
        _ => "unreadable".into(),
    });
    rowv(w, "changes: p50 / p99 (floor p50 / p99)", &|s| {
        s.changes
            .as_ref()
            .map_or("not measured: no first render".into(), |(samples, _)| {
                let l = Latency::of(samples.iter());
                match (l.file, l.floor) {
                    (Some(a), Some(f)) => format!(
                        "{} / {} ({} / {}); {} missed",
                        ms(a.p50),
                        ms(a.p99),
                        ms(f.p50),
                        ms(f.p99),
                        l.missed
                    ),
                    _ => format!("{} missed", l.missed),
                }
            })
    });
    rowv(w, "changes: Consul requests per change", &|s| {
        s.changes
            .as_ref()
            .and_then(|(_, c)| c.requests_per_change())
            .map_or("–".into(), |x| format!("{x:.2}"))
    });
    rowv(w, "changes: requests by route", &|s| {
        s.changes
            .as_ref()
            .and_then(|(_, c)| c.requests.as_ref())
            .map_or("–".into(), |c| c.to_string())
    });
    rowv(w, "changes: CPU per 1,000 changes", &|s| {
        s.changes
            .as_ref()
            .and_then(|(_, c)| c.cpu_per_1000())
            .map_or("–".into(), |c| ms(c.0))
    });
    rowv(w, "changes: connections at the end", &|s| {
        s.changes
            .as_ref()
            .map_or("–".into(), |(_, c)| opt_count(c.connections))
    });
    rowv(
        w,
        "bystander refused: 429 + reset (of its requests)",
        &|s| {
            format!(
                "{} + {} (of {})",
                s.probe.too_many,
                s.probe.reset,
                s.probe.total()
            )
        },
    );
    rowv(w, "bystander's other failures", &|s| {
        s.probe.failed.to_string()
    });
    rowv(w, "log lines with 429", &|s| s.log_429_lines.to_string());
    rowv(w, "warning and error log lines", &|s| {
        s.log_problem_lines.to_string()
    });
    rowv(w, "still running at the end", &|s| {
        s.idle
            .exit
            .as_ref()
            .map_or("yes".into(), |e| format!("no: {e}"))
    });
    line(w, "");
    if let Some(sig) = &r.signal {
        line(
            w,
            &format!(
                "Over plain HTTP consul-render watches the {n} services in signal mode: two \
                 catalog-wide blocking queries (`/v1/health/state/any`, `/v1/catalog/services`) \
                 and a re-read of each service they name. Here a `/v1/health/state/any` reply \
                 is {:.0} kB and a `/v1/catalog/services` reply {:.0} kB, read on every \
                 change that wakes them; over HTTPS each service has its own blocking query \
                 on a few HTTP/2 connections, and a change costs one small reply.",
                sig.state_any_bytes as f64 / 1000.0,
                sig.catalog_services_bytes as f64 / 1000.0
            ),
        );
        line(w, "");
    }
    if let Some(limit) = &r.limit {
        line(
            w,
            "**Does the per-client connection limit count HTTP and HTTPS together?** The bench \
             held idle TCP connections from 127.0.0.1 to one port of an agent serving both \
             and sent one plain-HTTP request from 127.0.0.1:",
        );
        line(w, "");
        for (held, port, status, _) in &limit.trials {
            line(
                w,
                &format!("- {held} connections held to the {port} port: the request got {status}"),
            );
        }
        line(w, "");
        line(
            w,
            &match limit.shared() {
                Some(true) => format!(
                    "So `http_max_conns_per_client` ({CONNECTION_LIMIT}) is per agent and \
                     client address, across both listeners: a client holding connections on \
                     the HTTPS port starves plain-HTTP clients on the same address too, which \
                     is why the bystander uses plain HTTP in both runs."
                ),
                Some(false) => "So the limit is counted per listener here: the bystander on \
                     plain HTTP cannot see connections a tool holds on the HTTPS port."
                    .to_string(),
                None => "The check did not run to the end.".to_string(),
            },
        );
        line(w, "");
    }
}

fn recovery_section(w: &mut String, r: &Results) {
    let Some(rec) = &r.recovery else { return };
    line(w, "## Recovery after an outage");
    line(w, "");
    line(
        w,
        "| | consul-render | consul-template | consul-render / consul-template |",
    );
    line(w, "|---|---:|---:|---:|");
    type Pick = fn(&crate::recovery::Trial) -> Option<Duration>;
    let picks: [(&str, Pick); 2] = [
        ("the service that changed just before the outage", |t| {
            t.recent
        }),
        (
            "both changes (the other to a service quiet since the previous outage)",
            |t| t.all,
        ),
    ];
    for (what, pick) in picks {
        let median = |x: &Recovery| Summary::of(x.trials.iter().map(pick)).map(|s| s.p50);
        row3(
            w,
            &format!("restore → file holds {what}: median"),
            median(&rec[CR]).map(ms),
            median(&rec[CT]).map(ms),
            ratio_opt(median(&rec[CR]), median(&rec[CT])),
        );
        let each = |x: &Recovery| {
            x.trials
                .iter()
                .map(|t| pick(t).map_or("missed".into(), ms))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row3(
            w,
            "… each outage",
            Some(each(&rec[CR])),
            Some(each(&rec[CT])),
            None,
        );
    }
    let conns = |x: &Recovery| {
        x.trials
            .iter()
            .map(|t| format!("{} ({})", t.cut.connections, t.cut.with_request))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row3(
        w,
        "connections tried during each outage (with a request sent)",
        Some(conns(&rec[CR])),
        Some(conns(&rec[CT])),
        None,
    );
    let rate = |x: &Recovery| {
        let n: u64 = x.trials.iter().map(|t| t.cut.connections).sum();
        let s: f64 = x.trials.iter().map(|t| t.outage.as_secs_f64()).sum();
        (s > 0.0).then(|| n as f64 / s)
    };
    row3(
        w,
        "connections tried per second of outage",
        rate(&rec[CR]).map(|x| format!("{x:.2}")),
        rate(&rec[CT]).map(|x| format!("{x:.2}")),
        rate(&rec[CR])
            .zip(rate(&rec[CT]))
            .map(|(a, b)| format!("{:.2}", a / b)),
    );
    row3(
        w,
        "still running at the end",
        Some(rec[CR].exit.clone().unwrap_or_else(|| "yes".into())),
        Some(rec[CT].exit.clone().unwrap_or_else(|| "yes".into())),
        None,
    );
    line(w, "");
    line(
        w,
        &format!(
            "Both tools run with their default retry settings: consul-render backs off from \
             250 ms doubling to a 1 s cap with jitter, one probe for all its queries \
             (`src/consul/gate.rs`); consul-template backs off per query from 250 ms \
             doubling to a 1 min cap, without jitter, each of its {} blocking queries on \
             its own ({} services plus the service list). consul-template resets a query's \
             retry count only when that query succeeds (`watch/view.go`, `poll`), and after \
             an outage a blocking query that parks again succeeds only when its service \
             changes or its 60 s `wait` ends: a service that has not changed since an \
             earlier outage less than a minute before resumes at that outage's backoff, \
             which the rows for both changes show from the second outage on.",
            r.options.services + 1,
            r.options.services
        ),
    );
    line(w, "");
    for x in rec.iter() {
        line(
            w,
            &format!(
                "{} during the outages ({} warning, error or reachability log lines; the first few):",
                x.tool.name(),
                x.log_problem_lines
            ),
        );
        line(w, "");
        line(w, "```");
        for e in &x.evidence {
            line(w, &shorten(e, 300));
        }
        line(w, "```");
        line(w, "");
    }
}

fn anatomy_section(w: &mut String, r: &Results) {
    let Some(spread) = &r.spread else { return };
    line(w, "## Where the spread scenario's requests come from");
    line(w, "");
    line(
        w,
        "Each tool request in the agent's log, attributed to the last change sent before the \
         agent answered it, by route and kind: *parked* blocking queries (held until a change \
         or their `wait`), blocking queries *answered at once* (under 5 ms: the index they \
         asked with was already behind), and *plain reads* without an index.",
    );
    line(w, "");
    let catalog = "/v1/catalog/services";
    let summary: Vec<(u64, u64, u64)> = spread
        .costs
        .iter()
        .map(|c| {
            let a = &c.anatomy;
            let kinds = ["register", "deregister"];
            let changes: usize = kinds.iter().filter_map(|k| a.changes.get(*k)).sum();
            let asked: u64 = a.changes.keys().map(|k| a.count(k, catalog, None)).sum();
            let at_once: u64 = a
                .changes
                .keys()
                .map(|k| a.count(k, catalog, Some(Class::Immediate)))
                .sum();
            (changes as u64, asked, at_once)
        })
        .collect();
    if let [(n, a, _), (_, b, c)] = summary[..] {
        line(
            w,
            &format!(
                "`{catalog}` wakes for every registration and deregistration of an \
                 instance, though the service names it lists only change when a service \
                 appears or disappears. consul-render asked it {a} times for {n} \
                 registrations and deregistrations, consul-template {b} times ({c} of them \
                 answered at once: after a wake-up without news consul-template holds the \
                 next answer back until 100–120 ms after the query was sent, so the next \
                 registration is often already there when it asks again, and two that come \
                 close together can share one answer)."
            ),
        );
        line(w, "");
    }
    for (i, tool) in Tool::BOTH.iter().enumerate() {
        let Some(cost) = spread.costs.get(i) else {
            continue;
        };
        let a = &cost.anatomy;
        let routes = a.routes();
        line(w, &format!("**{}**", tool.name()));
        line(w, "");
        let mut header = "| change (count) |".to_string();
        let mut rule = "|---|".to_string();
        for route in &routes {
            header.push_str(&format!(" `{route}` |"));
            rule.push_str("---:|");
        }
        line(w, &header);
        line(w, &rule);
        for (kind, n) in &a.changes {
            let cells: Vec<String> = routes.iter().map(|route| cell(a, kind, route)).collect();
            line(w, &format!("| {kind} ({n}) | {} |", cells.join(" | ")));
        }
        line(w, "");
        if a.before_first > 0 {
            line(
                w,
                &format!(
                    "{} requests were answered before the series' first change.",
                    a.before_first
                ),
            );
            line(w, "");
        }
        if !a.examples.is_empty() {
            line(w, "Requests that were not parked (the first few):");
            line(w, "");
            line(w, "```");
            for (after, kind, url, latency) in &a.examples {
                line(
                    w,
                    &format!("{after} ms after a {kind}: {url} (held {latency:.1?})"),
                );
            }
            line(w, "```");
            line(w, "");
        }
    }
}

/// `N (a at once, r plain)` for one kind and route.
fn cell(a: &Anatomy, kind: &str, route: &str) -> String {
    let all = a.count(kind, route, None);
    let at_once = a.count(kind, route, Some(Class::Immediate));
    let plain = a.count(kind, route, Some(Class::Read));
    let mut extra = Vec::new();
    if at_once > 0 {
        extra.push(format!("{at_once} {}", Class::Immediate.name()));
    }
    if plain > 0 {
        extra.push(format!("{plain} {}", Class::Read.name()));
    }
    if extra.is_empty() {
        all.to_string()
    } else {
        format!("{all} ({})", extra.join(", "))
    }
}

fn kinds_section(w: &mut String, r: &Results) {
    let scenarios: Vec<(&str, &Scenario)> = [
        ("spread", &r.spread),
        ("back-to-back", &r.b2b),
        ("after a wake-up without news", &r.nonews),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
    .collect();
    if scenarios.is_empty() {
        return;
    }
    line(w, "## Latency by kind of change (p50, with its floor)");
    line(w, "");
    line(
        w,
        "| scenario | change | consul-render | consul-template | floor |",
    );
    line(w, "|---|---|---:|---:|---:|");
    for (name, s) in scenarios {
        for kind in ["fail", "pass", "deregister", "register"] {
            let of = |tool: Option<Tool>, floor: bool| {
                Summary::of(
                    s.samples
                        .iter()
                        .filter(|x| x.kind.name() == kind && tool.is_none_or(|t| x.tool == t))
                        .map(|x| if floor { x.floor } else { x.file }),
                )
                .map_or("–".into(), |x| ms(x.p50))
            };
            line(
                w,
                &format!(
                    "| {name} | {kind} | {} | {} | {} |",
                    of(Some(Tool::ConsulRender), false),
                    of(Some(Tool::ConsulTemplate), false),
                    of(None, true)
                ),
            );
        }
    }
    line(w, "");
}

fn logs_section(w: &mut String, r: &Results) {
    if r.scale.is_empty() {
        return;
    }
    line(
        w,
        &format!("## {} services: what the logs say", r.options.big_services),
    );
    line(w, "");
    line(
        w,
        "The first few warning or error lines, then the log's last lines; whole logs are \
         kept in the `--logs` directory (`bench/results/logs/` by default), with the agents' \
         logs next to them.",
    );
    line(w, "");
    for s in &r.scale {
        line(
            w,
            &format!(
                "{} over {} ({} warning or error lines, {} of them mentioning 429):",
                s.tool.name(),
                s.transport,
                s.log_problem_lines,
                s.log_429_lines
            ),
        );
        line(w, "");
        line(w, "```");
        for e in &s.evidence {
            line(w, &shorten(e, 300));
        }
        line(w, "```");
        line(w, "");
    }
}

/// What the numbers mean and how they lean.
const METHOD: &str = "\
Each tool runs against a Consul dev agent of its own holding the same catalog,
started by the bench on free loopback ports, so every request an agent answers
is the bench's (counted as it makes them) or its tool's. Both tools run with
their defaults: no `-wait`, no command, default log level. consul-render is
the static musl release build (`opt-level = \"z\"`, LTO, stripped), the
binary the image ships. Their templates (in `bench/src/tools.rs`) range over
`services` and write one `upstream` per service with its passing instances,
or a `server 127.0.0.1:1 down;` placeholder; before anything is measured the
bench checks that both files are byte-identical to its own rendering of the
catalog, with all services healthy and with one service without a passing
instance, and that `nginx -t` accepts the result.

- **change→file**: the clock starts just before the bench connects to send
  the change (`PUT /v1/agent/...`) and stops when a read of the destination
  returns exactly the new config. The bench learns of writes through inotify
  on the destination's directory (close-after-write, rename-into, create,
  modify), so detection costs one small read. Each service cycles through:
  an instance's TTL check fails, it passes again, another instance is
  deregistered, it is registered again. A change that does not arrive within
  5 s is counted as missed and left out of the percentiles. Percentiles are
  nearest-rank. Scenarios:
  - *spread*: round-robin over the 10 services, alternating tools A, B, A, B,
    with 25–49 ms after each change, so a tool gets a change roughly every
    100 ms, each on another service than its last.
  - *back-to-back*: all changes on one service. In blocks of 10 per tool
    (tools alternating between blocks), each change is sent a fixed gap
    (5 ms by default) after the previous one reached that tool's file, plus
    the floor's set-up (an index read and 5 ms for the floor's query to park),
    so about 11 ms after the file; the table shows the measured median. Each
    block starts with a warm-up change that is not in the percentiles (it
    follows the other tool's block, not a change of its own).
  - *after a wake-up without news*: one service, whose last instance is
    failing. Before each measured change, that instance is deregistered (or
    registered again, still failing): the service's blocking queries wake,
    with nothing new to render. 5–95 ms later (spread evenly over the
    changes), plus the floor's set-up, another instance fails or passes, and
    that change is measured; 150 ms after it reached the file the next round
    starts. Blocks of 10 per tool, tools alternating. This is the case
    consul-template's 100 ms hold (`minDelayBetweenUpdates`) applies to: it
    holds back a query's answer only when the previous answer of the same
    watch brought nothing new. The changes without news are not counted as
    changes, so this scenario has no CPU or request targets.
  - *1,000 services*: 100 changes by default, spread over 25 services (each
    through the whole cycle, 25–49 ms apart), one tool at a time, over plain
    HTTP and over HTTPS.
- **floor**: before each change the bench reads the service's
  `X-Consul-Index` N, sends `GET /v1/health/service/<svc>?index=N&wait=20s`
  (plain HTTP, also for the HTTPS runs) and gives it 5 ms to park; the floor
  is the time from the same clock start to reading that query's whole
  answer. It is what any client of this agent could achieve at best:
  agent-local registration and health changes reach the catalog
  asynchronously, and the floor includes that sync.
- **CPU** is read two ways: from the process's CPU-time clock
  (`clock_getcpuclockid`, nanoseconds, all threads including exited ones),
  which the tables and targets use, and as `utime + stime` from
  `/proc/PID/stat` (shown as *stat*), which counts in clock ticks of usually
  10 ms, so a figure spanning a few ticks is coarse. CPU per 1,000 changes is
  the tool's CPU over a whole series (including whatever it does while the
  other tool is being measured) scaled to 1,000 changes, warm-ups included.
- **The write floor**: before the tools start, the bench itself makes 300
  safe writes of the rendered file next to the tools' directories (read
  the file, create a temp file, write, set its mode, fsync, rename over
  the file), 5 ms apart, and reads its own thread's CPU clock around each.
  Both tools do exactly that for every change that reaches the file
  (consul-template's `renderer.AtomicWrite` and consul-render's `output`),
  so that much CPU per change is the same for any tool that writes
  safely; the CPU rows and targets also show each tool's CPU beyond it.
- **Memory** is read at the end of each quiet window: `VmRSS` from
  `/proc/PID/status`, `Pss` and `Private_Clean + Private_Dirty` from
  `/proc/PID/smaps_rollup`.
- **Consul requests** come from the agent's own cumulative counter
  `consul_api_http_count{method,path}` (`/v1/agent/metrics?format=prometheus`,
  with `telemetry { prometheus_retention_time }` set on the agent), minus the
  requests the bench itself made. Consul counts a request when it is
  answered, so a long poll open across the start or end of a window is
  counted in the window where it ends; connections refused with 429 by the
  per-client connection limit never reach a handler and are not counted
  (they show in the tool's log and the bystander's count instead). The bench
  reads the counters from source address 127.0.0.2, which the connection
  limit treats as another client, so a tool holding 127.0.0.1's connections
  cannot hide them. A series' window opens a second before its first change
  and closes a second after its last, so the polls woken by earlier changes
  are outside it and those woken by its last change inside. Requests per
  change are over the series (warm-ups included in the change count), which
  also holds any re-polls a tool makes meanwhile (consul-template re-issues
  each blocking query every minute by default).
- **Stopped runs' queries**: a stopped tool's blocking queries stay parked
  in the agent until the next change answers them (the service-list
  endpoint does not notice the closed connection), and the agent counts them
  then. After the start-up runs the bench therefore wakes every parked query
  (the node into maintenance and out, a service registered and deregistered)
  before the tools are started for good, and again between a scale run's
  HTTP and HTTPS runs. Without that, each start-up run left one
  `/v1/catalog/services` query per tool to be counted in the spread series.
- **Where requests come from**: the dev agent logs every request it answers
  (`Request finished: method=GET url=\"...\" latency=...`). The tools' requests
  are the ones with `stale` (both tools' default `-max-stale` is 2 s; the
  bench never asks with it); each is attributed to the last change the bench
  sent before the agent answered it (log timestamps are in milliseconds;
  changes are at least 25 ms apart).
- **Quiet windows**: nothing changes in Consul; the tools sit on their
  blocking queries. CPU and requests are over the window; requests are given
  per minute.
- **Start-up**: the destination is removed, the clock starts just before the
  spawn and stops when the file holds the whole expected config; the median
  over the starts, alternating tools.
- **1,000 services**: one tool at a time, each on a fresh agent with N
  services of one instance each, serving the API over HTTP and over HTTPS
  (certificates from `consul tls ca create` and `consul tls cert create
  -server -dc dc1`, made by the test bed's `TlsFiles`; the tools get the CA file).
  The tool runs over HTTP, then is stopped and runs over HTTPS; in between
  the bench puts the agent's node into maintenance and out again, which
  wakes every blocking query the stopped tool left parked in the agent (the
  agent counts a request when it returns, so they would otherwise land in the
  HTTPS run's counts). Each run: the first render gets a deadline, then 2 s
  pass (consul-render in signal mode reads every service's index right after
  its first render; those requests are shown on their own row), a quiet
  window follows whether or not the first render came (for a tool that never
  rendered it is not quiet), then the changes if it came. A bystander asks
  `/v1/status/leader` over plain HTTP from 127.0.0.1 every 100 ms from the
  tool's start to the end of the run and counts refusals: Consul's
  `http_max_conns_per_client` (default 200) refuses every client on an
  address once that address holds too many connections, with a 429 that the
  client reads as a 429 or, if the agent closes first, as a connection
  reset; both count. Before the first tool runs, the bench checks whether
  that limit counts the two listeners together (idle connections held to
  one port, a plain-HTTP request from the same address).
- **Connections** are the established TCP connections from the tool's
  process to the agent port it uses (its sockets in `/proc/PID/fd` matched
  against `/proc/PID/net/tcp`), read when the first-render wait ends, at the
  end of the quiet window and at the end of the changes.
- **Recovery**: each tool reaches its agent through a TCP proxy in the bench
  (`bench/src/proxy.rs`; toxiproxy's disabled proxy closes its port, so the
  kernel would refuse the connections and nothing could count them). First
  one instance of each of services 2, 3, … fails (one per outage). Each
  outage: an instance of the first service fails (the bench waits for the
  file), a second later the proxy resets every connection it relays and,
  until restored, accepts each new connection, counts it (and whether a
  request arrived on it within 200 ms) and resets it. A second into the
  outage two instances pass again, sent to the agent directly: the first
  service's (a service that changed just before the outage) and one of the
  instances failed at the start (a service that has not changed since the
  previous outage). When the outage ends the proxy forwards again, and the
  clock runs until the file holds the first service's instance, and until it
  holds both. The changes are gains on purpose: right after a failure
  consul-render holds back data that lost instances for `-reset-grace` (60 s)
  in case the agent came back empty; a loss would measure that hold. Outages
  alternate between the tools.
- **Binary size** is the file's size on disk after resolving symlinks:
  consul-render's static musl release build (stripped by its profile);
  consul-template stripped with `strip` into a temp file (its official
  release builds are stripped with `-ldflags \"-s -w\"`), which is the figure
  the target uses, and as installed (`go install` leaves symbols and debug
  info in) for reference.
- The machine is shared: other processes' load shows up mostly in the tails
  and in CPU time. The load averages above say how busy it was.
";

fn idle_rows(w: &mut String, what: &str, idle: &[Idle]) {
    if idle.is_empty() {
        return;
    }
    let get = |i: usize, f: fn(&ProcSample) -> u64| {
        idle.get(i).and_then(|x| x.end.as_ref()).map(|e| kib(f(e)))
    };
    for (label, f) in [
        (
            "RSS",
            (|e: &ProcSample| e.rss_kib) as fn(&ProcSample) -> u64,
        ),
        ("PSS", |e: &ProcSample| e.pss_kib),
        ("private memory", |e: &ProcSample| e.private_kib),
    ] {
        let r = match (
            idle.get(CR).and_then(|x| x.end),
            idle.get(CT).and_then(|x| x.end),
        ) {
            (Some(a), Some(b)) => Some(format!("{:.2}", f(&a) as f64 / f(&b) as f64)),
            _ => None,
        };
        row3(w, &format!("{what}: {label}"), get(CR, f), get(CT, f), r);
    }
    let cpu = |i: usize| {
        idle.get(i)
            .and_then(|x| x.cpu)
            .map(|c| format!("{} (stat: {})", ms(c.clock), ms(c.stat)))
    };
    row3(
        w,
        &format!("{what}: CPU over the window"),
        cpu(CR),
        cpu(CT),
        None,
    );
    let req = |i: usize| {
        idle.get(i)
            .map(|x| match (&x.requests, x.requests_per_minute()) {
                (Some(c), Some(per_min)) => format!("{per_min:.1}/min ({})", c.total()),
                _ => "unreadable".into(),
            })
    };
    row3(
        w,
        &format!("{what}: Consul requests"),
        req(CR),
        req(CT),
        None,
    );
    let conns = |i: usize| idle.get(i).map(|x| opt_count(x.connections));
    row3(
        w,
        &format!("{what}: connections to Consul at the end"),
        conns(CR),
        conns(CT),
        None,
    );
}

fn row3(w: &mut String, label: &str, a: Option<String>, b: Option<String>, ratio: Option<String>) {
    let dash = || "–".to_string();
    line(
        w,
        &format!(
            "| {label} | {} | {} | {} |",
            a.unwrap_or_else(dash),
            b.unwrap_or_else(dash),
            ratio.unwrap_or_else(dash)
        ),
    );
}

fn line(w: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(w, "{text}");
}

fn opt_count(n: Option<usize>) -> String {
    n.map_or("unreadable".into(), |n| n.to_string())
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ratio_opt(a: Option<Duration>, b: Option<Duration>) -> Option<String> {
    Some(format!("{:.2}", ratio(a?, b?)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn pair(a: Duration, b: Duration) -> String {
    format!("{} / {}", ms(a), ms(b))
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), ms)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn kib(k: u64) -> String {
    format!("{:.2} MiB", k as f64 / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary_value(s: &Option<Summary>) -> Value {
    match s {
        Some(s) => json!({
            "n": s.n, "missed": s.missed,
            "min_ms": millis(s.min), "p50_ms": millis(s.p50), "p90_ms": millis(s.p90),
            "p99_ms": millis(s.p99), "max_ms": millis(s.max), "mean_ms": millis(s.mean),
        }),
        None => Value::Null,
    }
}

fn proc_json(p: &Option<ProcSample>) -> Value {
    match p {
        Some(p) => json!({
            "rss_kib": p.rss_kib, "pss_kib": p.pss_kib, "private_kib": p.private_kib,
        }),
        None => Value::Null,
    }
}

fn idle_json(i: &Idle) -> Value {
    json!({
        "tool": i.tool.key(),
        "window_s": i.window.as_secs_f64(),
        "memory": proc_json(&i.end),
        "cpu_ms": i.cpu.map(|c| millis(c.clock)),
        "cpu_ms_stat": i.cpu.map(|c| millis(c.stat)),
        "requests": i.requests.as_ref().map(|c| c.total()),
        "requests_by_route": i.requests.as_ref().map(|c| c.routes().collect::<Vec<_>>()),
        "requests_per_minute": i.requests_per_minute(),
        "connections": i.connections,
        "exit": i.exit,
    })
}

fn cost_json(c: &ChangeCost) -> Value {
    json!({
        "changes": c.changes,
        "cpu_ms": c.cpu.map(|x| millis(x.clock)),
        "cpu_ms_stat": c.cpu.map(|x| millis(x.stat)),
        "cpu_ms_per_1000_changes": c.cpu_per_1000().map(|x| millis(x.0)),
        "requests": c.requests.as_ref().map(|x| x.total()),
        "requests_by_route": c.requests.as_ref().map(|x| x.routes().collect::<Vec<_>>()),
        "requests_per_change": c.requests_per_change(),
        "connections_at_end": c.connections,
        "requests_by_change_kind": c.anatomy.requests.iter().map(|((kind, route, class), n)| json!({
            "kind": kind, "route": route, "class": class.name(), "requests": n,
        })).collect::<Vec<_>>(),
    })
}

fn latency_json(l: &Option<Latency>) -> Value {
    match l {
        Some(l) => json!({
            "change_to_file": summary_value(&l.file),
            "floor": summary_value(&l.floor),
            "missed": l.missed,
            "changes": l.n,
            "since_previous_arrival_p50_ms": l.since_previous.map(millis),
        }),
        None => Value::Null,
    }
}

fn sample_json(scenario: &str, s: &Sample) -> Value {
    json!({
        "scenario": scenario,
        "tool": s.tool.key(), "seq": s.seq, "kind": s.kind.name(), "service": s.service,
        "file_ms": s.file.map(millis), "floor_ms": s.floor.map(millis),
        "request_ms": millis(s.request), "other_contents": s.other_contents,
        "since_previous_arrival_ms": s.since_previous.map(millis),
    })
}

fn summary_json(r: &Results, targets: &[Target]) -> Value {
    let o = &r.options;
    let scenarios: Vec<Value> = named(r)
        .iter()
        .map(|s| {
            json!({
                "scenario": s.short,
                "description": s.long,
                "consul_render": latency_json(&s.latency[CR]),
                "consul_template": latency_json(&s.latency[CT]),
                "consul_render_cost": s.costs[CR].map(cost_json),
                "consul_template_cost": s.costs[CT].map(cost_json),
            })
        })
        .collect();
    let tools: serde_json::Map<String, Value> = Tool::BOTH
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let info = &r.tools[i];
            (
                tool.key().to_string(),
                json!({
                    "version": info.version,
                    "binary": info.path.display().to_string(),
                    "binary_bytes": info.bytes,
                    "binary_bytes_stripped": info.stripped_bytes,
                    "command_line": info.command_line,
                    "https_command_line": info.https_command_line,
                    "startup_ms": r.startup.as_ref().map(|s| s[i].times.iter().map(|t| t.map(millis)).collect::<Vec<_>>()),
                    "idle": r.idle.get(i).map(idle_json),
                    "recovery": r.recovery.as_ref().map(|rec| rec[i].trials.iter().map(|t| json!({
                        "outage_s": t.outage.as_secs_f64(),
                        "recent_service_ms": t.recent.map(millis),
                        "both_changes_ms": t.all.map(millis),
                        "connections_during_outage": t.cut.connections,
                        "with_request": t.cut.with_request,
                    })).collect::<Vec<_>>()),
                }),
            )
        })
        .collect();
    let scale: Vec<Value> = r
        .scale
        .iter()
        .map(|s| {
            json!({
                "tool": s.tool.key(),
                "transport": s.transport,
                "command_line": s.command_line,
                "services": s.services,
                "deadline_s": s.deadline.as_secs_f64(),
                "first_render_ms": s.first_render.map(millis),
                "requests_to_render": s.requests_to_render.as_ref().map(|c| c.total()),
                "requests_to_render_by_route": s.requests_to_render.as_ref().map(|c| c.routes().collect::<Vec<_>>()),
                "requests_after_render": s.requests_after_render.as_ref().map(|c| c.total()),
                "connections_after_wait": s.connections_after_wait,
                "probe": { "ok": s.probe.ok, "too_many_requests": s.probe.too_many, "reset": s.probe.reset, "failed": s.probe.failed },
                "log_lines_with_429": s.log_429_lines,
                "log_warning_or_error_lines": s.log_problem_lines,
                "idle": idle_json(&s.idle),
                "changes": s.changes.as_ref().map(|(samples, cost)| json!({
                    "latency": latency_json(&Some(Latency::of(samples.iter()))),
                    "cost": cost_json(cost),
                })),
                "evidence": s.evidence,
            })
        })
        .collect();
    json!({
        "date": r.env.date,
        "command": o.command,
        "quick": o.quick,
        "phases": o.phases.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "took_s": r.took.as_secs_f64(),
        "machine": {
            "cores": r.env.cores, "cpu": r.env.cpu_model, "kernel": r.env.kernel,
            "load_at_start": r.env.load_at_start, "load_at_end": r.load_at_end,
        },
        "versions": {
            "consul": r.env.consul_version,
            "consul_template": r.tools[CT].version,
            "consul_render": r.tools[CR].version,
            "consul_render_commit": r.env.commit,
        },
        "parameters": {
            "services": o.services, "instances": o.instances, "changes_per_tool": o.changes,
            "b2b_changes_per_tool": o.b2b_changes, "b2b_block": o.b2b_block,
            "b2b_gap_ms": millis(o.b2b_gap),
            "idle_window_s": o.idle.as_secs_f64(), "starts": o.starts,
            "big_services": o.big_services, "big_idle_window_s": o.big_idle.as_secs_f64(),
            "big_changes": o.big_changes, "big_deadline_s": o.big_render_deadline.as_secs_f64(),
            "outage_s": o.outage.as_secs_f64(), "outages": o.outages,
            "change_deadline_s": o.change_deadline.as_secs_f64(),
        },
        "scenarios": scenarios,
        "write_floor_cpu_ms_per_1000": r.write_floor.map(millis),
        "tools": tools,
        "scale": scale,
        "connection_limit_scope": r.limit.as_ref().map(|l| l.trials.iter().map(|(n, port, status, refused)| json!({
            "held": n, "port": port, "plain_http_request": status, "refused": refused,
        })).collect::<Vec<_>>()),
        "signal_reply_bytes": r.signal.map(|s| json!({
            "health_state_any": s.state_any_bytes, "catalog_services": s.catalog_services_bytes,
        })),
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "scenario": t.scenario, "measured": t.measured, "pass": t.pass,
        })).collect::<Vec<_>>(),
    })
}
