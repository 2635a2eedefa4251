//! consul-render's whole-system benchmark: real Consul dev agents, consul-render
//! and consul-template side by side, and BENCHMARKS.md from what they did.
//!
//! How it works: each tool gets an agent of its own with the same catalog
//! (`consul`, `catalog`), and the bench checks that both write the same nginx
//! config (`equivalence`). It then measures, alternating between the tools:
//! start-up (`startup`), change-to-file latency next to the blocking-query
//! floor in two scenarios, spread and back-to-back (`series`, `latency`,
//! `filewatch`), CPU and Consul requests over those changes (`resources`,
//! `requests`, and `agentlog` for which change each request followed), a
//! quiet window (`idle`), recovery after outages through a proxy of its own
//! (`recovery`, `proxy`), and 1,000 services over HTTP and HTTPS (`scale`,
//! `tls`). `run` sets the order; `report` writes the results. Every wait has
//! a deadline, and every process is stopped on the way out (testbed's
//! process guards).

mod agentlog;
mod catalog;
mod consul;
mod equivalence;
mod filewatch;
mod http;
mod idle;
mod latency;
mod machine;
mod options;
mod proxy;
mod recovery;
mod report;
mod requests;
mod resources;
mod run;
mod scale;
mod series;
mod startup;
mod tools;
mod writefloor;

use options::{NoRun, Options, USAGE};
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(NoRun::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(NoRun::Invalid(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let results = run::run(options);
    report::write(&results);
    ExitCode::SUCCESS
}
