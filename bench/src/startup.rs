//! Time from start to the first complete file: the clock starts just before
//! the tool is spawned (its destination removed first) and stops when the
//! destination holds the whole expected config. Also used to bring up the
//! long-running tools and for the 1,000-service first render.

use crate::consul::BenchAgent;
use crate::filewatch::DirWatch;
use crate::tools::{Endpoint, ToolRun, ToolSetup};
use std::time::{Duration, Instant};

/// How often the wait looks up from the file to see if the tool has died.
const EXIT_CHECK: Duration = Duration::from_millis(250);

/// Start-up times of one tool.
#[derive(Debug, Clone)]
pub struct Startup {
    /// One per start, in order; `None` if the file was not complete in time.
    pub times: Vec<Option<Duration>>,
}

/// Starts `setup`'s tool against `endpoint` and waits up to `deadline` for
/// `expected` in its destination. Returns the running tool (or the dead
/// one: see [`ToolRun::exit`]) and the time to the first complete file.
pub fn first_file(
    setup: &mut ToolSetup,
    endpoint: &Endpoint,
    expected: &str,
    deadline: Duration,
) -> (ToolRun, Option<Duration>) {
    setup.clear_destination();
    let dir = setup.destination_dir();
    let watch = DirWatch::new(&dir).unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
    let dest = setup.destination();
    let mut run = setup.spawn(endpoint);
    let end = run.started + deadline;
    loop {
        let slice_end = (Instant::now() + EXIT_CHECK).min(end);
        let arrival = watch.wait_for(&dest, "", expected, slice_end);
        if let Some(at) = arrival.at {
            let took = at - run.started;
            return (run, Some(took));
        }
        if Instant::now() >= end || run.exit().is_some() {
            return (run, None);
        }
    }
}

/// Measures `starts` start-ups of each tool, alternating (A B A B …), each
/// against its own agent; every run is stopped before the next begins.
pub fn measure(
    setups: &mut [ToolSetup; 2],
    agents: &[BenchAgent; 2],
    expected: &str,
    starts: usize,
    deadline: Duration,
) -> [Startup; 2] {
    let mut results = [(); 2].map(|()| Startup { times: Vec::new() });
    for round in 0..starts {
        for ((setup, agent), result) in setups.iter_mut().zip(agents).zip(&mut results) {
            let (run, took) = first_file(setup, &agent.endpoint(), expected, deadline);
            eprintln!(
                "bench: start {}/{starts} of {}: {}",
                round + 1,
                setup.tool.name(),
                took.map_or("no complete file".to_string(), |t| format!("{t:.1?}"))
            );
            if took.is_none() {
                eprintln!("bench: {} log:\n{}", setup.tool.name(), run.log());
            }
            result.times.push(took);
            drop(run);
        }
    }
    results
}
