//! The command line as users meet it: help, version, flag errors and their
//! exit codes, template errors located in their source.

use std::time::Duration;

use crate::support::{repo, run, write};

const T: Duration = Duration::from_secs(20);

#[test]
fn help_lists_flags_and_examples_and_exits_zero() {
    for flag in ["-h", "-help", "--help"] {
        let done = run(&[flag], &[], T);
        assert_eq!(done.code, 0, "{flag}: {done:?}");
        for needle in [
            "-consul-addr",
            "-template",
            "-wait",
            "-once",
            "-dry",
            "-catalog-file",
            "examples",
        ] {
            assert!(
                done.stdout.to_lowercase().contains(needle),
                "{flag} help lacks {needle}: {done:?}"
            );
        }
    }
}

#[test]
fn version_prints_and_exits_zero() {
    for flag in ["-v", "-version", "--version"] {
        let done = run(&[flag], &[], T);
        assert_eq!(done.code, 0, "{done:?}");
        assert!(done.stdout.starts_with("consul-render v"), "{done:?}");
    }
}

#[test]
fn bad_flags_exit_13_with_a_message_naming_them() {
    let cases: &[(&[&str], &str)] = &[
        (&["-bogus"], "flag provided but not defined: -bogus"),
        (&["-wait=abc", "-template=a:b"], "-wait"),
        (&["-template"], "-template"),
        (&["-once", "false", "-template=a:b"], "false"),
    ];
    for (args, needle) in cases {
        let done = run(args, &[], T);
        assert_eq!(done.code, 13, "{args:?}: {done:?}");
        assert!(
            done.stderr.contains(needle),
            "{args:?} should mention {needle}: {done:?}"
        );
    }
}

#[test]
fn contradictory_configuration_exits_15() {
    let done = run(&["-template=a:b", "-wait=10s:5s"], &[], T);
    assert_eq!(done.code, 15, "{done:?}");
    let done = run(&[], &[], T);
    assert_eq!(done.code, 15, "no template: {done:?}");
}

#[test]
fn an_unwritable_pid_file_exits_15_naming_the_file_and_the_reason() {
    let done = run(&["-template=a:b", "-pid-file=/nonexistent/cr.pid"], &[], T);
    assert_eq!(done.code, 15, "{done:?}");
    assert!(
        done.stderr
            .contains("could not write pid file /nonexistent/cr.pid: No such file or directory"),
        "{done:?}"
    );
}

#[test]
fn a_broken_template_exits_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("broken.tera");
    write(
        &src,
        "upstream a {\n  {% for i in service(name=\"web\") %}\n    server {{ i.endpoint };\n",
    );
    let catalog = repo().join("examples/catalog.json");
    let done = run(
        &[
            &format!("-catalog-file={}", catalog.display()),
            &format!(
                "-template={}:{}",
                src.display(),
                dir.path().join("out").display()
            ),
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 14, "{done:?}");
    let location = format!("{}:3:", src.display());
    assert!(
        done.stderr.contains(&location),
        "expected {location} in {done:?}"
    );
    assert!(
        done.stderr.contains("server {{ i.endpoint };"),
        "shows the line: {done:?}"
    );
}

#[test]
fn a_missing_template_file_is_named() {
    let done = run(
        &["-catalog-file=/dev/null", "-template=/no/such.tera:/tmp/x"],
        &[],
        T,
    );
    assert_eq!(done.code, 14, "{done:?}");
    assert!(done.stderr.contains("/no/such.tera"), "{done:?}");
}
