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

/// A destination that is a relative symbolic link, as config management
/// lays out `conf.d`: it stays a link, and the file it names gets the new
/// text in place of its old, keeping that file's mode and owner, with no
/// staging file left beside it.
#[test]
fn a_symlinked_destination_stays_a_link_and_its_file_keeps_mode_and_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let target = real.join("target.conf");
    write(&target, "old\n");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&target, Some(1), Some(1)).unwrap();
    let link = dir.path().join("out.conf");
    std::os::unix::fs::symlink("real/target.conf", &link).unwrap();

    let done = render(dir.path(), "");
    assert_eq!(done.code, 0, "{done:?}");
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link became a file");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("real/target.conf")
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("upstream tutum-nodejs-redis"), "{text}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(owner(&target), (1, 1));
    assert_eq!(names(&real), ["target.conf"]);
    assert_eq!(names(dir.path()), ["consul-render.hcl", "out.conf", "real"]);
}
