//! Turning [`Results`] into numbers both tools are compared on, the targets
//! with pass/fail, BENCHMARKS.md, and the JSON files (a summary, and every
//! change's raw sample). Measuring is elsewhere; this only computes ratios
//! and writes.

use crate::idle::Idle;
use crate::latency::{Sample, Summary};
use crate::resources::ProcSample;
use crate::run::Results;
use crate::scale::Scale;
use crate::tools::Tool;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// "Complete first render in seconds": the bound used for the 1,000-service
/// target.
const BIG_RENDER_TARGET: Duration = Duration::from_secs(10);

/// Index of each tool in the results' arrays.
const CR: usize = 0;
const CT: usize = 1;

/// The numbers derived from a run, per tool (index 0 consul-render,
/// 1 consul-template).
struct Derived {
    latency: [Option<Summary>; 2],
    floor: [Option<Summary>; 2],
    floor_all: Option<Summary>,
    startup: [Option<Summary>; 2],
    /// From the CPU-time clock.
    cpu_per_1000: [Duration; 2],
    /// From /proc/PID/stat's ticks.
    cpu_per_1000_stat: [Duration; 2],
    requests_per_change: [f64; 2],
    other_contents: [u32; 2],
}

impl Derived {
    fn of(r: &Results) -> Derived {
        let of_tool = |tool: Tool| r.samples.iter().filter(move |s| s.tool == tool);
        let latency = Tool::BOTH.map(|t| Summary::of(of_tool(t).map(|s| s.file)));
        let floor = Tool::BOTH.map(|t| Summary::of(of_tool(t).map(|s| s.floor)));
        let floor_all = Summary::of(r.samples.iter().map(|s| s.floor));
        let startup = r
            .startup
            .each_ref()
            .map(|s| Summary::of(s.times.iter().copied()));
        let per_1000 =
            |cpu: Duration, changes: usize| cpu * 1000 / u32::try_from(changes).unwrap_or(u32::MAX);
        let cpu_per_1000 = r.costs.each_ref().map(|c| per_1000(c.cpu.clock, c.changes));
        let cpu_per_1000_stat = r.costs.each_ref().map(|c| per_1000(c.cpu.stat, c.changes));
        let requests_per_change = r
            .costs
            .each_ref()
            .map(|c| c.requests.total() as f64 / c.changes as f64);
        let other_contents = Tool::BOTH.map(|t| of_tool(t).map(|s| s.other_contents).sum());
        Derived {
            latency,
            floor,
            floor_all,
            startup,
            cpu_per_1000,
            cpu_per_1000_stat,
            requests_per_change,
            other_contents,
        }
    }
}

/// One target: what was compared and whether it held (`None`: could not be
/// measured in this run).
struct Target {
    name: String,
    measured: String,
    pass: Option<bool>,
}

fn targets(r: &Results, d: &Derived) -> Vec<Target> {
    let (small, big) = (r.options.services, r.options.big_services);
    let mut t = Vec::new();
    let (cr, ct) = (&d.latency[CR], &d.latency[CT]);
    let floor = &d.floor[CR];
    t.push(match (cr, floor) {
        (Some(l), Some(f)) => Target {
            name: "change→file p50 within 2× the floor's p50".into(),
            measured: format!(
                "{} vs floor {} ({:.2}×)",
                ms(l.p50),
                ms(f.p50),
                ratio(l.p50, f.p50)
            ),
            pass: Some(l.p50 <= f.p50 * 2),
        },
        _ => missing("change→file p50 within 2× the floor's p50"),
    });
    t.push(match (cr, ct) {
        (Some(a), Some(b)) => Target {
            name: "change→file p50 ≤ 1/5 of consul-template's".into(),
            measured: format!(
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
            ),
            pass: Some(a.p50 * 5 <= b.p50),
        },
        _ => missing("change→file p50 ≤ 1/5 of consul-template's"),
    });
    t.push(match (cr, floor) {
        (Some(l), Some(f)) => Target {
            name: "change→file p99 within 4× the floor's p99".into(),
            measured: format!(
                "{} vs floor {} ({:.2}×)",
                ms(l.p99),
                ms(f.p99),
                ratio(l.p99, f.p99)
            ),
            pass: Some(l.p99 <= f.p99 * 4),
        },
        _ => missing("change→file p99 within 4× the floor's p99"),
    });
    let missed = r
        .samples
        .iter()
        .filter(|s| s.tool == Tool::ConsulRender && s.file.is_none())
        .count();
    t.push(Target {
        name: "every change reaches the file".into(),
        measured: format!("{missed} of {} missed", r.options.changes),
        pass: Some(missed == 0),
    });
    t.push(third(
        format!("idle RSS, {small} services, ≤ 1/3 of consul-template's"),
        rss(&r.idle, CR),
        rss(&r.idle, CT),
        kib,
    ));
    t.push(third(
        format!("idle RSS, {big} services, ≤ 1/3 of consul-template's"),
        r.scale.get(CR).and_then(|s| s.idle.end.map(|e| e.rss_kib)),
        r.scale.get(CT).and_then(|s| s.idle.end.map(|e| e.rss_kib)),
        kib,
    ));
    t.push(third(
        "binary size ≤ 1/3 of consul-template's".into(),
        Some(r.tools[CR].bytes),
        Some(r.tools[CT].bytes),
        mib,
    ));
    t.push(third(
        "CPU per 1,000 changes ≤ 1/3 of consul-template's".into(),
        Some(d.cpu_per_1000[CR].as_micros() as u64),
        Some(d.cpu_per_1000[CT].as_micros() as u64),
        |us| ms(Duration::from_micros(us)),
    ));
    let [a, b] = d.requests_per_change;
    t.push(Target {
        name: "Consul requests per change ≤ consul-template's".into(),
        measured: format!("{a:.3} vs {b:.3}"),
        pass: Some(a <= b),
    });
    t.push(at_most(
        format!("Consul requests at idle, {small} services, ≤ consul-template's"),
        r.idle.get(CR).and_then(Idle::requests_per_minute),
        r.idle.get(CT).and_then(Idle::requests_per_minute),
    ));
    t.push(at_most(
        format!("Consul requests at idle, {big} services, ≤ consul-template's"),
        r.scale.get(CR).and_then(|s| s.idle.requests_per_minute()),
        r.scale.get(CT).and_then(|s| s.idle.requests_per_minute()),
    ));
    let scaled = r.scale.get(CR);
    t.push(Target {
        name: format!(
            "{big} services: complete first render in seconds (≤ {})",
            secs(BIG_RENDER_TARGET)
        ),
        measured: scaled.map_or("not run".into(), |s| {
            s.first_render
                .map_or(format!("none within {}", secs(s.deadline)), secs)
        }),
        pass: scaled.map(|s| s.first_render.is_some_and(|t| t <= BIG_RENDER_TARGET)),
    });
    t.push(Target {
        name: format!("{big} services: no 429 to other clients"),
        measured: scaled.map_or("not run".into(), |s| {
            format!(
                "bystander got {} × 429 in {} requests",
                s.probe.too_many,
                probe_total(s)
            )
        }),
        pass: scaled.map(|s| s.probe.too_many == 0),
    });
    t
}

fn missing(name: impl Into<String>) -> Target {
    Target {
        name: name.into(),
        measured: "no data".into(),
        pass: None,
    }
}

/// consul-render's `a` at most a third of consul-template's `b`.
fn third(name: String, a: Option<u64>, b: Option<u64>, show: fn(u64) -> String) -> Target {
    match (a, b) {
        (Some(a), Some(b)) => Target {
            name,
            measured: format!("{} vs {} ({:.3}×)", show(a), show(b), a as f64 / b as f64),
            pass: Some(a * 3 <= b),
        },
        _ => missing(name),
    }
}

/// consul-render's `a` at most consul-template's `b` (requests a minute).
fn at_most(name: String, a: Option<f64>, b: Option<f64>) -> Target {
    match (a, b) {
        (Some(a), Some(b)) => Target {
            name,
            measured: format!("{a:.1}/min vs {b:.1}/min"),
            pass: Some(a <= b),
        },
        _ => missing(name),
    }
}

fn rss(idle: &[Idle], i: usize) -> Option<u64> {
    idle.get(i)?.end.map(|e| e.rss_kib)
}

fn probe_total(s: &Scale) -> u64 {
    s.probe.ok + s.probe.too_many + s.probe.failed
}

/// Writes BENCHMARKS.md, the summary JSON and the samples JSON.
pub fn write(r: &Results) {
    let d = Derived::of(r);
    let targets = targets(r, &d);
    write_file(&r.options.report, &markdown(r, &d, &targets));
    let summary = serde_json::to_string_pretty(&summary_json_all(r, &d, &targets))
        .expect("a JSON value serialises");
    write_file(&r.options.json, &(summary + "\n"));
    let samples: Vec<Value> = r.samples.iter().map(sample_json).collect();
    let samples = serde_json::to_string(&samples).expect("a JSON value serialises");
    write_file(&r.options.samples, &(samples + "\n"));
    let failed: Vec<&str> = targets
        .iter()
        .filter(|t| t.pass == Some(false))
        .map(|t| t.name.as_str())
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

fn markdown(r: &Results, d: &Derived, targets: &[Target]) -> String {
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
            "> **Quick run** (`--quick`): few changes and short quiet windows. \
             Good for checking the harness, not for quoting.",
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
            "- consul-render: {}, commit {}",
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
    line(
        w,
        &format!(
            "- Catalog: {} services × {} instances; {} changes per tool; quiet windows of {}; \
             {} starts per tool; {} services × 1 for the scale test",
            o.services,
            o.instances,
            o.changes,
            secs(o.idle),
            o.starts,
            o.big_services
        ),
    );
    line(w, "");

    line(w, "## Results");
    line(w, "");
    line(
        w,
        "| | consul-render | consul-template | floor | consul-render / consul-template |",
    );
    line(w, "|---|---:|---:|---:|---:|");
    let lat = |i: usize, f: fn(&Summary) -> Duration| d.latency[i].as_ref().map(f);
    for (label, f) in [
        (
            "change→file p50",
            (|s: &Summary| s.p50) as fn(&Summary) -> Duration,
        ),
        ("change→file p90", |s: &Summary| s.p90),
        ("change→file p99", |s: &Summary| s.p99),
        ("change→file max", |s: &Summary| s.max),
    ] {
        row(
            w,
            label,
            lat(CR, f).map(ms),
            lat(CT, f).map(ms),
            d.floor_all.as_ref().map(|s| ms(f(s))),
            ratio_opt(lat(CR, f), lat(CT, f)),
        );
    }
    for (label, f) in [
        (
            "p50 / floor p50",
            (|s: &Summary| s.p50) as fn(&Summary) -> Duration,
        ),
        ("p99 / floor p99", |s: &Summary| s.p99),
    ] {
        let r_of = |i: usize| match (&d.latency[i], &d.floor[i]) {
            (Some(l), Some(fl)) => Some(format!("{:.2}×", ratio(f(l), f(fl)))),
            _ => None,
        };
        row(w, label, r_of(CR), r_of(CT), Some("1×".into()), None);
    }
    row(
        w,
        "missed changes",
        Some(missed(&r.samples, Tool::ConsulRender).to_string()),
        Some(missed(&r.samples, Tool::ConsulTemplate).to_string()),
        Some(d.floor_all.map_or(0, |s| s.missed).to_string()),
        None,
    );
    row(
        w,
        &format!("start → first complete file (median of {})", o.starts),
        d.startup[CR].map(|s| ms(s.p50)),
        d.startup[CT].map(|s| ms(s.p50)),
        None,
        ratio_opt(d.startup[CR].map(|s| s.p50), d.startup[CT].map(|s| s.p50)),
    );
    let cost = |i: usize| {
        Some(format!(
            "{} (stat: {})",
            ms(d.cpu_per_1000[i]),
            ms(d.cpu_per_1000_stat[i])
        ))
    };
    row(
        w,
        "CPU per 1,000 changes",
        cost(CR),
        cost(CT),
        None,
        Some(format!(
            "{:.2}",
            ratio(d.cpu_per_1000[CR], d.cpu_per_1000[CT])
        )),
    );
    row(
        w,
        "Consul requests per change",
        Some(format!("{:.2}", d.requests_per_change[CR])),
        Some(format!("{:.2}", d.requests_per_change[CT])),
        None,
        Some(format!(
            "{:.2}",
            d.requests_per_change[CR] / d.requests_per_change[CT]
        )),
    );
    row(
        w,
        "Consul requests in the change phase, by route",
        Some(r.costs[CR].requests.to_string()),
        Some(r.costs[CT].requests.to_string()),
        None,
        None,
    );
    idle_rows(w, &format!("idle, {} services", o.services), &r.idle);
    let big_idle: Vec<Idle> = r.scale.iter().map(|s| s.idle.clone()).collect();
    let n = o.big_services;
    row(
        w,
        &format!("{n} services: start → first complete file"),
        r.scale.get(CR).map(first_render),
        r.scale.get(CT).map(first_render),
        None,
        ratio_opt(
            r.scale.get(CR).and_then(|s| s.first_render),
            r.scale.get(CT).and_then(|s| s.first_render),
        ),
    );
    row(
        w,
        &format!("{n} services: requests to first render (or to the deadline)"),
        r.scale.get(CR).map(requests_to_render),
        r.scale.get(CT).map(requests_to_render),
        None,
        None,
    );
    row(
        w,
        &format!("{n} services: connections to Consul when the wait ended"),
        r.scale.get(CR).map(|s| opt_count(s.connections_after_wait)),
        r.scale.get(CT).map(|s| opt_count(s.connections_after_wait)),
        None,
        None,
    );
    row(
        w,
        &format!("{n} services: log lines with 429"),
        r.scale.get(CR).map(|s| s.log_429_lines.to_string()),
        r.scale.get(CT).map(|s| s.log_429_lines.to_string()),
        None,
        None,
    );
    row(
        w,
        &format!("{n} services: bystander's 429s"),
        r.scale.get(CR).map(bystander),
        r.scale.get(CT).map(bystander),
        None,
        None,
    );
    row(
        w,
        &format!("{n} services: still running after"),
        r.scale.get(CR).map(still_running),
        r.scale.get(CT).map(still_running),
        None,
        None,
    );
    row(
        w,
        &format!("{n} services: warning and error log lines"),
        r.scale.get(CR).map(|s| s.log_problem_lines.to_string()),
        r.scale.get(CT).map(|s| s.log_problem_lines.to_string()),
        None,
        None,
    );
    idle_rows(
        w,
        &format!("{n} services, quiet window after the first-render wait"),
        &big_idle,
    );
    row(
        w,
        "binary size",
        Some(mib(r.tools[CR].bytes)),
        Some(mib(r.tools[CT].bytes)),
        None,
        Some(format!(
            "{:.2}",
            r.tools[CR].bytes as f64 / r.tools[CT].bytes as f64
        )),
    );
    row(
        w,
        "binary size, stripped copy",
        r.tools[CR].stripped_bytes.map(mib),
        r.tools[CT].stripped_bytes.map(mib),
        None,
        match (r.tools[CR].stripped_bytes, r.tools[CT].stripped_bytes) {
            (Some(a), Some(b)) => Some(format!("{:.2}", a as f64 / b as f64)),
            _ => None,
        },
    );
    line(w, "");
    line(
        w,
        &format!(
            "The floor column is the blocking query's time over all {} changes; the \
             p50/floor and p99/floor rows divide each tool's latency by the floor measured \
             on its own changes (consul-render: p50 {}, p99 {}; consul-template: p50 {}, p99 {}).",
            r.samples.len(),
            opt_ms(d.floor[CR].map(|s| s.p50)),
            opt_ms(d.floor[CR].map(|s| s.p99)),
            opt_ms(d.floor[CT].map(|s| s.p50)),
            opt_ms(d.floor[CT].map(|s| s.p99)),
        ),
    );
    if d.other_contents.iter().any(|&n| n > 0) {
        line(w, "");
        line(
            w,
            &format!(
                "Reads of a destination that held neither the old nor the new config \
                 (partial or unexpected writes): consul-render {}, consul-template {}.",
                d.other_contents[CR], d.other_contents[CT]
            ),
        );
    }
    line(w, "");

    line(w, "## Targets");
    line(w, "");
    line(
        w,
        "| target | measured (consul-render vs consul-template) | result |",
    );
    line(w, "|---|---|---|");
    for t in targets {
        let result = match t.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "not measured",
        };
        line(w, &format!("| {} | {} | {result} |", t.name, t.measured));
    }
    line(w, "");

    line(w, "## Latency by kind of change (p50, with its floor)");
    line(w, "");
    line(w, "| change | consul-render | consul-template | floor |");
    line(w, "|---|---:|---:|---:|");
    for kind in ["fail", "pass", "deregister", "register"] {
        let of = |tool: Option<Tool>, floor: bool| {
            Summary::of(
                r.samples
                    .iter()
                    .filter(|s| s.kind.name() == kind && tool.is_none_or(|t| s.tool == t))
                    .map(|s| if floor { s.floor } else { s.file }),
            )
            .map_or("–".into(), |s| ms(s.p50))
        };
        line(
            w,
            &format!(
                "| {kind} | {} | {} | {} |",
                of(Some(Tool::ConsulRender), false),
                of(Some(Tool::ConsulTemplate), false),
                of(None, true)
            ),
        );
    }
    line(w, "");

    line(w, &format!("## {n} services: what the logs say"));
    line(w, "");
    for s in &r.scale {
        line(
            w,
            &format!(
                "{} ({} warning or error lines, {} of them mentioning 429; the first few, \
                 then the log's last lines; whole logs are kept in the `--logs` directory, \
                 `bench/results/logs/` by default):",
                s.tool.name(),
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

    line(w, "## How each number is measured");
    line(w, "");
    m.push_str(METHOD);
    m
}

/// What the numbers mean and how they lean.
const METHOD: &str = "\
Each tool runs against a Consul dev agent of its own holding the same catalog,
started by the bench on free loopback ports, so every request an agent answers
is the bench's (counted as it makes them) or its tool's. Both tools run with
their defaults: no `-wait`, no command, default log level. Their templates
(in `bench/src/tools.rs`) range over `services` and write one `upstream` per
service with its passing instances, or a `server 127.0.0.1:1 down;`
placeholder; before anything is measured the bench checks that both files are
byte-identical to its own rendering of the catalog, with all services healthy
and with one service without a passing instance, and that `nginx -t` accepts
the result.

- **change→file**: changes go round-robin over the services (for each: an
  instance's TTL check fails, it passes again, another instance is
  deregistered, it is registered again), alternating tools: A, B, A, B.
  The clock starts just before the bench connects to send the change
  (`PUT /v1/agent/...`) and stops when a read of the destination returns
  exactly the new config. The bench learns of writes through inotify on the
  destination's directory (close-after-write, rename-into, create, modify),
  so detection costs one small read. Between changes the bench pauses
  25–49 ms. A change that does not arrive within the deadline is counted as
  missed and left out of the percentiles. Percentiles are nearest-rank.
- **floor**: before each change the bench reads the service's
  `X-Consul-Index` N, sends `GET /v1/health/service/<svc>?index=N&wait=20s`
  and gives it 5 ms to park; the floor is the time from the same clock start
  to reading that query's whole answer. It is what any client of this agent
  could achieve at best: agent-local registration and health changes reach the
  catalog asynchronously, and the floor includes that sync.
- **CPU** is read two ways: from the process's CPU-time clock
  (`clock_getcpuclockid`, nanoseconds, all threads including exited ones),
  which the tables and targets use, and as `utime + stime` from
  `/proc/PID/stat` (shown as *stat*), which counts in clock ticks of usually
  10 ms, so a figure spanning a few ticks is coarse. CPU per 1,000 changes is
  the tool's CPU over the whole change phase (including whatever it does
  while the other tool is being measured) scaled to 1,000 changes.
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
  cannot hide them.
  The change phase's window opens a second after the equivalence check's
  last change and closes a second after the phase's last change, so the
  polls those woke are outside and inside it respectively.
  Requests per change are over the change phase, which also holds any
  re-polls a tool makes while idle (consul-template re-issues each blocking
  query every minute by default).
- **Quiet windows**: nothing changes in Consul; the tools sit on their
  blocking queries. CPU and requests are over the window; requests are given
  per minute.
- **Start-up**: the destination is removed, the clock starts just before the
  spawn and stops when the file holds the whole expected config; the median
  over the starts, alternating tools.
- **1,000 services**: one tool at a time, each on a fresh agent with N services
  of one instance each and the same template. A bystander on the same address
  asks `/v1/status/leader` every 200 ms from the tool's start to the end of
  its quiet window and counts 429s: Consul's `http_max_conns_per_client`
  (default 200) refuses every client on an address once one holds too many
  connections. The first render gets a deadline; the quiet window follows
  whether or not it came (for a tool that never rendered, it is not quiet).
- **Connections** are the established TCP connections from the tool's
  process to its agent's HTTP port (its sockets in `/proc/PID/fd` matched
  against `/proc/PID/net/tcp`).
- **Binary size** is the file's size on disk after resolving symlinks:
  consul-render's release build (LTO, stripped); consul-template as
  installed (`go install` leaves symbols and debug info in; the stripped-copy
  row shows what `strip` makes of each).
- The machine is shared: other processes' load shows up mostly in the tails
  and in CPU time. The load averages above say how busy it was.
";

fn idle_rows(w: &mut String, what: &str, idle: &[Idle]) {
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
        row(
            w,
            &format!("{what}: {label}"),
            get(CR, f),
            get(CT, f),
            None,
            r,
        );
    }
    let cpu = |i: usize| {
        idle.get(i)
            .and_then(|x| x.cpu)
            .map(|c| format!("{} (stat: {})", ms(c.clock), ms(c.stat)))
    };
    row(
        w,
        &format!("{what}: CPU over the window"),
        cpu(CR),
        cpu(CT),
        None,
        None,
    );
    let req = |i: usize| {
        idle.get(i)
            .map(|x| match (&x.requests, x.requests_per_minute()) {
                (Some(c), Some(per_min)) => format!("{per_min:.1}/min ({})", c.total()),
                _ => "unreadable".into(),
            })
    };
    row(
        w,
        &format!("{what}: Consul requests"),
        req(CR),
        req(CT),
        None,
        None,
    );
    let conns = |i: usize| idle.get(i).map(|x| opt_count(x.connections));
    row(
        w,
        &format!("{what}: connections to Consul at the end"),
        conns(CR),
        conns(CT),
        None,
        None,
    );
}

fn row(
    w: &mut String,
    label: &str,
    a: Option<String>,
    b: Option<String>,
    floor: Option<String>,
    ratio: Option<String>,
) {
    let dash = || "–".to_string();
    line(
        w,
        &format!(
            "| {label} | {} | {} | {} | {} |",
            a.unwrap_or_else(dash),
            b.unwrap_or_else(dash),
            floor.unwrap_or_else(dash),
            ratio.unwrap_or_else(dash)
        ),
    );
}

fn line(w: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(w, "{text}");
}

fn missed(samples: &[Sample], tool: Tool) -> usize {
    samples
        .iter()
        .filter(|s| s.tool == tool && s.file.is_none())
        .count()
}

fn opt_count(n: Option<usize>) -> String {
    n.map_or("unreadable".into(), |n| n.to_string())
}

fn first_render(s: &Scale) -> String {
    s.first_render
        .map_or(format!("none within {}", secs(s.deadline)), secs)
}

fn requests_to_render(s: &Scale) -> String {
    s.requests_to_render
        .as_ref()
        .map_or("unreadable".into(), |c| c.total().to_string())
}

fn bystander(s: &Scale) -> String {
    format!("{} of {}", s.probe.too_many, probe_total(s))
}

fn still_running(s: &Scale) -> String {
    s.idle
        .exit
        .as_ref()
        .map_or("yes".into(), |e| format!("no: {e}"))
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

fn summary_json(s: &Option<Summary>) -> Value {
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

fn sample_json(s: &Sample) -> Value {
    json!({
        "tool": s.tool.key(), "seq": s.seq, "kind": s.kind.name(), "service": s.service,
        "file_ms": s.file.map(millis), "floor_ms": s.floor.map(millis),
        "request_ms": millis(s.request), "other_contents": s.other_contents,
    })
}

fn summary_json_all(r: &Results, d: &Derived, targets: &[Target]) -> Value {
    let o = &r.options;
    let mut tools = serde_json::Map::new();
    for (i, tool) in Tool::BOTH.iter().enumerate() {
        let info = &r.tools[i];
        tools.insert(
            tool.key().into(),
            json!({
                "version": info.version,
                "binary": info.path.display().to_string(),
                "binary_bytes": info.bytes,
                "binary_bytes_stripped": info.stripped_bytes,
                "command_line": info.command_line,
                "change_to_file": summary_json(&d.latency[i]),
                "floor_on_its_changes": summary_json(&d.floor[i]),
                "other_contents": d.other_contents[i],
                "startup": {
                    "times_ms": r.startup[i].times.iter().map(|t| t.map(millis)).collect::<Vec<_>>(),
                    "summary": summary_json(&d.startup[i]),
                },
                "change_phase": {
                    "changes": r.costs[i].changes,
                    "cpu_ms": millis(r.costs[i].cpu.clock),
                    "cpu_ms_stat": millis(r.costs[i].cpu.stat),
                    "cpu_ms_per_1000_changes": millis(d.cpu_per_1000[i]),
                    "cpu_ms_per_1000_changes_stat": millis(d.cpu_per_1000_stat[i]),
                    "requests": r.costs[i].requests.total(),
                    "requests_by_route": r.costs[i].requests.routes().collect::<Vec<_>>(),
                    "requests_per_change": d.requests_per_change[i],
                },
                "idle": r.idle.get(i).map(idle_json),
                "scale": r.scale.get(i).map(|s| json!({
                    "services": s.services,
                    "deadline_s": s.deadline.as_secs_f64(),
                    "first_render_ms": s.first_render.map(millis),
                    "requests_to_render": s.requests_to_render.as_ref().map(|c| c.total()),
                    "requests_to_render_by_route": s.requests_to_render.as_ref().map(|c| c.routes().collect::<Vec<_>>()),
                    "connections_after_wait": s.connections_after_wait,
                    "probe": { "ok": s.probe.ok, "too_many_requests": s.probe.too_many, "failed": s.probe.failed },
                    "log_lines_with_429": s.log_429_lines,
                    "log_warning_or_error_lines": s.log_problem_lines,
                    "idle": idle_json(&s.idle),
                    "evidence": s.evidence,
                })),
            }),
        );
    }
    json!({
        "date": r.env.date,
        "command": o.command,
        "quick": o.quick,
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
            "idle_window_s": o.idle.as_secs_f64(), "starts": o.starts,
            "big_services": o.big_services, "change_deadline_s": o.change_deadline.as_secs_f64(),
        },
        "floor": summary_json(&d.floor_all),
        "tools": tools,
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "measured": t.measured, "pass": t.pass,
        })).collect::<Vec<_>>(),
    })
}
