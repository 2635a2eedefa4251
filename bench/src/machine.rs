//! Where and with what a run happened: the machine (cores, CPU model,
//! kernel, load), the programs' versions and consul-render's git commit, the
//! date, and the binaries' sizes on disk.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Facts about the machine and the programs.
#[derive(Debug, Clone)]
pub struct Environment {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// /proc/loadavg's 1, 5 and 15 minute averages.
    pub load_at_start: String,
    pub consul_version: String,
    /// `git rev-parse HEAD`, with `+dirty` if src/ or the manifests differ
    /// from it (the measured binary was built from the work tree).
    pub commit: String,
    pub date: String,
}

impl Environment {
    /// Reads everything; a fact that cannot be read says so.
    pub fn read(repo: &Path) -> Environment {
        Environment {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("model name"))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, model)| model.trim().to_string())
                })
                .unwrap_or_else(|| "unknown".into()),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            load_at_start: load_average(),
            consul_version: first_line("consul", &["version"]),
            commit: commit(repo),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }
}

/// /proc/loadavg's first three fields.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The size of a file in bytes, following symlinks.
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("reading the size of {}: {e}", path.display()))
        .len()
}

/// The size `path` would have stripped of symbols and debug info, if
/// `strip` is installed (a Go binary built by `go install` carries both).
pub fn stripped_size(path: &Path) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let out = dir.path().join("stripped");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .output()
        .ok()?
        .status;
    status
        .success()
        .then(|| fs::metadata(&out).ok().map(|m| m.len()))
        .flatten()
}

/// HEAD's commit, marked dirty if the code that goes into the binary has
/// uncommitted changes.
fn commit(repo: &Path) -> String {
    let repo_arg = repo.display().to_string();
    let head = first_line("git", &["-C", &repo_arg, "rev-parse", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "-C",
            &repo_arg,
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty { format!("{head}+dirty") } else { head }
}

/// The first line a command prints, or a note that it could not run.
fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("<{program} failed: {e}>"),
    }
}
