//! `-log-file`: the log copied to files that rotate and are pruned as
//! consul-template's are, run offline (a catalog file, no Consul).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Finished, repo, run};

const T: Duration = Duration::from_secs(20);

/// Renders the shipped template from the example catalog into `dir`, with
/// `-log-file` and any `extra` flags.
fn render(dir: &Path, log_file: &Path, extra: &[&str]) -> Finished {
    let catalog = repo().join("examples/catalog.json").display().to_string();
    let template = format!(
        "{}:{}",
        repo().join("templates/default.conf.tera").display(),
        dir.join("out.conf").display()
    );
    let log_file = log_file.display().to_string();
    let mut args = vec![
        "-catalog-file",
        &catalog,
        "-template",
        &template,
        "-log-level",
        "debug",
        "-log-file",
        &log_file,
    ];
    args.extend_from_slice(extra);
    run(&args, &[("APP_NAME", "tutum-nodejs-redis")], T)
}

/// The `ct-<digits>.log` files in `dir`, oldest first, and nothing else
/// there.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let stamp = name
            .strip_prefix("ct-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .unwrap_or_default();
        assert!(
            !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()),
            "unexpected file {name} in {files:?}"
        );
    }
    files
}

/// All the files' lines, oldest file first; each file holds whole lines.
fn contents(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{file:?}: {text:?}"
            );
            text
        })
        .collect()
}

#[test]
fn the_log_file_gets_the_same_lines_as_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let done = render(dir.path(), &logs.join("ct.log"), &[]);
    assert_eq!(done.code, 0, "{done:?}");
    let files = log_files(&logs);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(done.stderr.contains("rendered; written"), "{done:?}");
    assert!(
        done.stderr.contains("copying the log to a file"),
        "{done:?}"
    );
    assert_eq!(contents(&files), done.stderr);
}

#[test]
fn json_lines_go_to_the_file_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // No extension: the files get `.log`.
    let done = render(dir.path(), &logs.join("ct"), &["-log-format", "json"]);
    assert_eq!(done.code, 0, "{done:?}");
    let text = contents(&log_files(&logs));
    assert_eq!(text, done.stderr);
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn rotating_by_size_keeps_max_files_old_files_and_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Enough files kept that nothing of the first run is pruned, however
    // much it logs: every line is in them, none split.
    let done = render(
        dir.path(),
        &logs.join("ct.log"),
        &["-log-rotate-bytes", "200", "-log-rotate-max-files", "1000"],
    );
    assert_eq!(done.code, 0, "{done:?}");
    let files = log_files(&logs);
    assert!(files.len() >= 2, "{files:?}\n{done:?}");
    assert_eq!(contents(&files), done.stderr, "{files:?}");

    // A second run prunes the first run's files down to two before it
    // starts its own, and keeps pruning as it rotates: three files remain,
    // ending with all of its lines.
    let again = render(
        dir.path(),
        &logs.join("ct.log"),
        &["-log-rotate-bytes", "200", "-log-rotate-max-files", "2"],
    );
    assert_eq!(again.code, 0, "{again:?}");
    let files = log_files(&logs);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(contents(&files).ends_with(&again.stderr), "{files:?}");
}

#[test]
fn a_missing_log_directory_stops_before_anything_is_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let done = render(dir.path(), &missing.join("ct.log"), &[]);
    // The config-error exit code, as for any unusable setting.
    assert_eq!(done.code, 15, "{done:?}");
    assert!(
        done.stderr.contains(&missing.display().to_string()),
        "{done:?}"
    );
    assert!(!dir.path().join("out.conf").exists(), "{done:?}");
    assert!(!missing.exists());
}
