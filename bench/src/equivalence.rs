//! Before anything is measured: both tools must write byte-identical nginx
//! config for the same catalog, equal to the bench's own rendering of its
//! model, both with every service healthy and with one service that has no
//! passing instance (the `down` placeholder), and nginx must accept it.
//! Any difference stops the bench with both files shown: numbers comparing
//! tools that render different things would mean nothing.

use crate::catalog::Catalog;
use crate::consul::BenchAgent;
use crate::filewatch::DirWatch;
use crate::tools::ToolSetup;
use std::fs;
use std::time::{Duration, Instant};
use testbed::Nginx;

/// How long each tool gets to follow the check's changes.
const DEADLINE: Duration = Duration::from_secs(15);

/// One tool as the check sees it.
pub struct Rendered<'a> {
    pub setup: &'a ToolSetup,
    pub agent: &'a BenchAgent,
    pub catalog: &'a mut Catalog,
}

/// Checks both tools' files against each other and the model, empties
/// service 0 (every check critical), checks again and runs `nginx -t` on the
/// result, then restores the service and checks once more. Panics on any
/// difference. Both catalogs must hold the same model.
pub fn check(tools: &mut [Rendered<'_>; 2]) {
    compare(tools, "every instance passing");
    for passing in [false, true] {
        for t in tools.iter_mut() {
            for change in t.catalog.set_service_passing(0, passing) {
                t.agent.apply(&change);
            }
        }
        let what = if passing {
            "the service restored"
        } else {
            "one service without a passing instance"
        };
        compare(tools, what);
        if !passing {
            nginx_accepts(&tools[0].catalog.render());
        }
    }
}

/// Waits for both files to match their models, then compares all three.
fn compare(tools: &[Rendered<'_>; 2], what: &str) {
    let contents = tools.each_ref().map(|t| {
        let expected = t.catalog.render();
        let dir = t.setup.destination_dir();
        let watch =
            DirWatch::new(&dir).unwrap_or_else(|e| panic!("watching {}: {e}", dir.display()));
        let dest = t.setup.destination();
        watch.wait_for(&dest, "", &expected, Instant::now() + DEADLINE);
        let actual = fs::read_to_string(&dest).unwrap_or_default();
        if actual != expected {
            panic!(
                "{} did not render the expected config ({what}) within {DEADLINE:?}.\n\
                 --- expected ---\n{expected}--- {} wrote ---\n{actual}--- end ---",
                t.setup.tool.name(),
                t.setup.tool.name()
            );
        }
        actual
    });
    assert!(
        contents[0] == contents[1],
        "the tools' files differ ({what}):\n--- {} ---\n{}--- {} ---\n{}--- end ---",
        tools[0].setup.tool.name(),
        contents[0],
        tools[1].setup.tool.name(),
        contents[1]
    );
    eprintln!(
        "bench: both tools wrote the same {} bytes ({what})",
        contents[0].len()
    );
}

/// Starts nginx with `config` inside `http {}` and runs `nginx -t` on it.
fn nginx_accepts(config: &str) {
    let nginx = Nginx::start(config);
    if let Err(e) = nginx.config_test() {
        panic!("nginx rejects the rendered config: {e}\n--- config ---\n{config}");
    }
    eprintln!("bench: nginx -t accepts the rendered config");
}
