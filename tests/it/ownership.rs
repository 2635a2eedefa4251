//! A template's `user` and `group` (and consul-template's older `uid` and
//! `gid`): who owns the file it renders, rendered offline from a config
//! file. These tests chown for real, so they run as root (as CI does).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{Finished, repo, run, write};

const T: Duration = Duration::from_secs(20);

/// Renders the shipped template to `dir/out.conf` offline, through a config
/// file whose template block also holds `settings`.
fn render(dir: &Path, settings: &str) -> Finished {
    let config = dir.join("consul-render.hcl");
    write(
        &config,
        &format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n{settings}}}\n",
            repo().join("templates/default.conf.tera").display(),
            dir.join("out.conf").display(),
        ),
    );
    run(
        &[
            &format!("-config={}", config.display()),
            "-catalog-file",
            &repo().join("examples/catalog.json").display().to_string(),
        ],
        &[("APP_NAME", "tutum-nodejs-redis")],
        T,
    )
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn the_rendered_file_belongs_to_the_user_and_group_named_by_name_or_id() {
    let testbed::Nobody { uid, group, gid } = testbed::nobody();
    let cases = [
        (
            format!("  user = \"nobody\"\n  group = \"{group}\"\n"),
            (uid, gid),
        ),
        (
            "  user = \"4321\"\n  group = \"4322\"\n".to_owned(),
            (4321, 4322),
        ),
        ("  uid = 4321\n  gid = 4322\n".to_owned(), (4321, 4322)),
    ];
    for (settings, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.conf");

        let done = render(dir.path(), &settings);

        assert_eq!(done.code, 0, "{settings}{done:?}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("upstream tutum-nodejs-redis {"), "{text}");
        assert_eq!(owner(&out), want, "{settings}");
        assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o7777, 0o644);

        // The same text owned by someone else is written again.
        std::os::unix::fs::chown(&out, Some(0), Some(0)).unwrap();
        let again = render(dir.path(), &settings);
        assert_eq!(again.code, 0, "{settings}{again:?}");
        assert!(again.stderr.contains("rendered; written"), "{again:?}");
        assert_eq!(owner(&out), want, "{settings}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
        assert_eq!(names(dir.path()), ["consul-render.hcl", "out.conf"]);
    }
}

#[test]
fn an_unknown_user_or_group_fails_the_template_and_writes_nothing() {
    let cases = [
        ("user", "  user = \"no-such-user-here\"\n"),
        ("group", "  group = \"no-such-group-here\"\n"),
    ];
    for (what, settings) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.conf");

        let done = render(dir.path(), settings);

        assert_ne!(done.code, 0, "{done:?}");
        let message = format!(
            "could not write {}: unknown {what} \"no-such-{what}-here\"",
            out.display()
        );
        assert!(done.stderr.contains(&message), "{message}\n{done:?}");
        assert_eq!(names(dir.path()), ["consul-render.hcl"], "{done:?}");
    }
}
