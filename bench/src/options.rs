//! The bench's command line, read into a validated [`Options`]: the size of
//! the catalog and of each measurement (full or `--quick`), and where the
//! binaries and the outputs are.

use crate::catalog::Catalog;
use std::env;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "\
usage: consul-render-bench [--quick] [options]

Measures consul-render against consul-template on real Consul dev agents and
writes BENCHMARKS.md and the raw numbers as JSON. scripts/bench builds the
release binary (static, musl) and runs this.

  --quick                 fewer changes, shorter windows and outages (development)
  --only PHASES           run only these phases (comma-separated): startup,
                          spread, b2b, nonews, idle, big, recovery (default: all)
  --changes N             spread changes per tool, 10 services (300; quick 40)
  --b2b-changes N         back-to-back changes per tool on one service (100; quick 20)
  --b2b-block N           back-to-back changes per tool before switching tools (10)
  --b2b-gap-ms MS         pause after a change reaches the file before the next (5)
  --nonews-changes N      changes per tool that follow a wake-up without news (60; quick 20)
  --services N            services in the latency catalog (10)
  --instances N           instances per service (3)
  --idle SECS             length of the 10-service quiet window (60; quick 10)
  --starts N              start-up measurements per tool (5; quick 2)
  --big-services N        services in the scale phase, 1 instance each (1000)
  --big-deadline SECS     time each tool gets for its first render there (90; quick 30)
  --big-idle SECS         length of each quiet window there (30; quick 10)
  --big-changes N         changes per tool and transport there (100; quick 20)
  --outage SECS           length of each outage in the recovery phase (20; quick 8)
  --outages N             outages per tool (3; quick 1)
  --consul-render PATH    binary (default: target/x86_64-unknown-linux-musl/release/consul-render)
  --consul-template PATH  binary (default: consul-template on PATH)
  --report PATH           Markdown report (default: BENCHMARKS.md at the root)
  --json PATH             summary JSON (default: bench/results/latest.json)
  --samples PATH          every change's sample (default: bench/results/samples.json)
  --logs DIR              the tools' and agents' logs (default: bench/results/logs)
";

/// The parts of a run `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Startup,
    Spread,
    BackToBack,
    NoNews,
    Idle,
    Big,
    Recovery,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Startup,
        Phase::Spread,
        Phase::BackToBack,
        Phase::NoNews,
        Phase::Idle,
        Phase::Big,
        Phase::Recovery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Spread => "spread",
            Phase::BackToBack => "b2b",
            Phase::NoNews => "nonews",
            Phase::Idle => "idle",
            Phase::Big => "big",
            Phase::Recovery => "recovery",
        }
    }
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub phases: Vec<Phase>,
    pub changes: usize,
    pub b2b_changes: usize,
    pub b2b_block: usize,
    pub b2b_gap: Duration,
    pub nonews_changes: usize,
    pub services: usize,
    pub instances: usize,
    pub idle: Duration,
    pub starts: usize,
    pub big_services: usize,
    pub big_idle: Duration,
    pub big_changes: usize,
    /// How long a tool gets for its first render of the big catalog.
    pub big_render_deadline: Duration,
    pub outage: Duration,
    pub outages: usize,
    /// How long a change may take to reach the file before it counts as
    /// missed.
    pub change_deadline: Duration,
    /// How long a tool gets for its first render of the small catalog.
    pub start_deadline: Duration,
    pub consul_render: PathBuf,
    pub consul_template: PathBuf,
    pub report: PathBuf,
    pub json: PathBuf,
    pub samples: PathBuf,
    /// Where the tools' logs are kept after the run.
    pub logs: PathBuf,
    /// How the bench was invoked, for the report.
    pub command: String,
}

/// Why the command line does not lead to a run.
#[derive(Debug)]
pub enum NoRun {
    /// `--help`: print [`USAGE`] and succeed.
    Help,
    /// A bad argument or a missing binary, with a message for the user.
    Invalid(String),
}

impl From<String> for NoRun {
    fn from(message: String) -> NoRun {
        NoRun::Invalid(message)
    }
}

impl Options {
    /// Reads the arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, NoRun> {
        let args: Vec<String> = args.into_iter().collect();
        let quick = args.iter().any(|a| a == "--quick");
        let root = repo_root();
        let mut o = Options {
            quick,
            phases: Phase::ALL.to_vec(),
            changes: if quick { 40 } else { 300 },
            b2b_changes: if quick { 20 } else { 100 },
            b2b_block: 10,
            b2b_gap: Duration::from_millis(5),
            nonews_changes: if quick { 20 } else { 60 },
            services: 10,
            instances: 3,
            idle: Duration::from_secs(if quick { 10 } else { 60 }),
            starts: if quick { 2 } else { 5 },
            big_services: 1000,
            big_idle: Duration::from_secs(if quick { 10 } else { 30 }),
            big_changes: if quick { 20 } else { 100 },
            big_render_deadline: Duration::from_secs(if quick { 30 } else { 90 }),
            outage: Duration::from_secs(if quick { 8 } else { 20 }),
            outages: if quick { 1 } else { 3 },
            change_deadline: Duration::from_secs(5),
            start_deadline: Duration::from_secs(30),
            consul_render: root.join("target/x86_64-unknown-linux-musl/release/consul-render"),
            consul_template: on_path("consul-template").unwrap_or_default(),
            report: root.join("BENCHMARKS.md"),
            json: root.join("bench/results/latest.json"),
            samples: root.join("bench/results/samples.json"),
            logs: root.join("bench/results/logs"),
            command: env::var("CONSUL_RENDER_BENCH_COMMAND").unwrap_or_else(|_| {
                std::iter::once("consul-render-bench".to_string())
                    .chain(args.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let secs = |v: String| number(name, &v).map(|n| Duration::from_secs(n as u64));
            match name {
                "--quick" => {}
                "-h" | "--help" => return Err(NoRun::Help),
                "--only" => o.phases = phases(&value()?)?,
                "--changes" => o.changes = number(name, &value()?)?,
                "--b2b-changes" => o.b2b_changes = number(name, &value()?)?,
                "--b2b-block" => o.b2b_block = number(name, &value()?)?,
                "--nonews-changes" => o.nonews_changes = number(name, &value()?)?,
                "--b2b-gap-ms" => {
                    o.b2b_gap = Duration::from_millis(number(name, &value()?)? as u64);
                }
                "--services" => o.services = number(name, &value()?)?,
                "--instances" => o.instances = number(name, &value()?)?,
                "--idle" => o.idle = secs(value()?)?,
                "--starts" => o.starts = number(name, &value()?)?,
                "--big-services" => o.big_services = number(name, &value()?)?,
                "--big-deadline" => o.big_render_deadline = secs(value()?)?,
                "--big-idle" => o.big_idle = secs(value()?)?,
                "--big-changes" => o.big_changes = number(name, &value()?)?,
                "--outage" => o.outage = secs(value()?)?,
                "--outages" => o.outages = number(name, &value()?)?,
                "--consul-render" => o.consul_render = value()?.into(),
                "--consul-template" => o.consul_template = value()?.into(),
                "--report" => o.report = value()?.into(),
                "--json" => o.json = value()?.into(),
                "--samples" => o.samples = value()?.into(),
                "--logs" => o.logs = value()?.into(),
                _ => return Err(format!("unknown argument {arg:?}\n\n{USAGE}").into()),
            }
        }
        o.validate()?;
        Ok(o)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, n) in [
            ("--changes", self.changes),
            ("--b2b-changes", self.b2b_changes),
            ("--b2b-block", self.b2b_block),
            ("--nonews-changes", self.nonews_changes),
            ("--services", self.services),
            ("--instances", self.instances),
            ("--big-services", self.big_services),
            ("--starts", self.starts),
            ("--outages", self.outages),
        ] {
            if n == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.services * self.instances > Catalog::max_instances()
            || self.big_services > Catalog::max_instances()
        {
            return Err(format!(
                "at most {} instances: each gets a port of its own",
                Catalog::max_instances()
            ));
        }
        for (name, d) in [
            ("--idle", self.idle),
            ("--big-idle", self.big_idle),
            ("--big-deadline", self.big_render_deadline),
            ("--outage", self.outage),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be at least 1 second"));
            }
        }
        if self.outage < Duration::from_secs(3) {
            return Err(
                "--outage must be at least 3 seconds (a change is made 1 s into it)".into(),
            );
        }
        for (what, path) in [
            ("consul-render", &self.consul_render),
            ("consul-template", &self.consul_template),
        ] {
            if !path.is_file() {
                return Err(format!(
                    "no {what} binary at {:?} (build it, or pass --{what} PATH)",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    /// Whether `phase` is part of this run.
    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

/// `--only`'s list.
fn phases(list: &str) -> Result<Vec<Phase>, String> {
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            Phase::ALL
                .into_iter()
                .find(|phase| phase.name() == p.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
                    format!("--only: no phase {p:?} (phases: {})", names.join(", "))
                })
        })
        .collect()
}

/// The repository root: the bench crate's parent directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The first `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} takes a whole number, not {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, NoRun> {
        // Point both binaries at something that exists.
        let me = env::current_exe().expect("test binary path");
        let mut all = vec![
            "--consul-render".to_string(),
            me.display().to_string(),
            format!("--consul-template={}", me.display()),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        Options::parse(all)
    }

    #[test]
    fn quick_shrinks_the_run_and_flags_override_it() {
        let o = parse(&["--quick", "--changes=7"]).expect("parses");
        assert!(o.quick);
        assert_eq!(o.changes, 7);
        assert_eq!(o.idle, Duration::from_secs(10));
        let o = parse(&[]).expect("parses");
        assert_eq!((o.changes, o.services, o.instances), (300, 10, 3));
    }

    #[test]
    fn rejects_zero_unknown_and_missing_values() {
        assert!(parse(&["--services", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--changes"]).is_err());
        assert!(parse(&["--changes", "many"]).is_err());
        assert!(matches!(parse(&["--help"]), Err(NoRun::Help)));
        assert!(parse(&["--only", "spread,nope"]).is_err());
        assert!(parse(&["--outage", "1"]).is_err());
    }

    #[test]
    fn only_picks_phases() {
        let o = parse(&["--only=b2b,recovery"]).expect("parses");
        assert!(o.runs(Phase::BackToBack) && o.runs(Phase::Recovery));
        assert!(!o.runs(Phase::Spread));
        assert!(parse(&[]).expect("parses").runs(Phase::Big));
    }

    #[test]
    fn a_missing_binary_is_named() {
        let err =
            Options::parse(["--consul-render=/nonexistent".to_string()]).expect_err("no binary");
        assert!(
            matches!(&err, NoRun::Invalid(m) if m.contains("consul-render")),
            "{err:?}"
        );
    }
}
