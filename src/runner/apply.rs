//! One apply pass: puts the changed texts of a render pass on disk, each
//! through stage → check → swap (or rollback), then runs each distinct
//! command of the templates that changed, once. Runs as its own task so the
//! runner keeps answering signals while a check or reload takes its time;
//! the runner never starts a second pass while one is in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::command::{self, CommandError};
use crate::metrics::{Metrics, ReloadLabels};
use crate::output::{self, OutputError, Staged, Swap, WriteOptions};
use crate::reload_check;

/// What to do for one template.
pub struct Job {
    pub template: usize,
    pub name: String,
    pub destination: PathBuf,
    pub text: String,
    pub check: Option<String>,
    pub command: Option<String>,
    /// Run the command even if the text is unchanged: its last run failed,
    /// so whatever it should have applied (a reload) may not have happened.
    pub rerun_command: bool,
    pub timeout: Duration,
    pub options: WriteOptions,
}

/// How one job ended.
#[derive(Debug)]
pub enum Outcome {
    /// The destination already held this text: nothing written, no command.
    Unchanged,
    Written,
    /// The check rejected the text; the destination holds the last good one.
    CheckFailed(CommandError),
    /// Staging or swapping failed (full disk, permissions); the destination
    /// holds the last good text.
    WriteFailed(OutputError),
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<(usize, Outcome)>,
    /// Every command run, and the error (output included) if it failed or
    /// timed out.
    pub commands: Vec<(String, Result<(), CommandError>)>,
}

/// Runs one pass. With `dry`, prints each text to stdout after `> dest`
/// instead of writing it, and runs nothing. With `nginx_pid_file`, a
/// command that succeeds is followed by a check that the nginx master
/// took the reload (in the background: the pass does not wait for it).
pub async fn apply(
    jobs: Vec<Job>,
    dry: bool,
    nginx_pid_file: Option<PathBuf>,
    metrics: Arc<Metrics>,
) -> Report {
    let mut report = Report::default();
    let mut commands: Vec<(String, Duration)> = Vec::new();
    for job in jobs {
        let outcome = if dry {
            print(&job)
        } else {
            write(&job, &metrics).await
        };
        let wants_command = match outcome {
            Outcome::Written => true,
            Outcome::Unchanged => job.rerun_command,
            Outcome::CheckFailed(_) | Outcome::WriteFailed(_) => false,
        };
        if wants_command
            && let Some(command) = &job.command
            && !dry
            && !commands.iter().any(|(c, _)| c == command)
        {
            commands.push((command.clone(), job.timeout));
        }
        report.outcomes.push((job.template, outcome));
    }
    for (command, timeout) in commands {
        tracing::info!(command, "running command");
        let via = ReloadLabels {
            via: "command".to_owned(),
        };
        metrics.reloads.get_or_create(&via).inc();
        let master = nginx_pid_file
            .as_deref()
            .and_then(reload_check::master_from)
            .map(reload_check::Before::take);
        let result = match command::run(&command, &[], timeout).await {
            Ok(done) => {
                metrics.reload_seconds.observe(done.elapsed.as_secs_f64());
                tracing::info!(command, elapsed = ?done.elapsed, "command succeeded");
                if let Some(before) = master {
                    tokio::spawn(reload_check::verify("nginx", before, metrics.clone()));
                }
                Ok(())
            }
            Err(error) => {
                let failures = Metrics::bump(&metrics.reload_failures.get_or_create(&via));
                tracing::error!(
                    command_failures = failures,
                    "command failed (it runs again on the next change): {error}"
                );
                Err(error)
            }
        };
        report.commands.push((command, result));
    }
    report
}

fn print(job: &Job) -> Outcome {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is not worth failing the run over.
    let _ = write!(out, "> {}\n{}", job.destination.display(), job.text);
    let _ = out.flush();
    Outcome::Written
}

/// Writes one job and counts and logs how it ended.
async fn write(job: &Job, metrics: &Metrics) -> Outcome {
    let outcome = write_checked(job).await;
    match &outcome {
        Outcome::Written => {
            Metrics::bump(&metrics.writes);
        }
        Outcome::Unchanged => {
            Metrics::bump(&metrics.unchanged);
        }
        Outcome::CheckFailed(error) => {
            let failures = Metrics::bump(&metrics.check_failures);
            tracing::error!(
                template = job.name,
                destination = %job.destination.display(),
                check_failures = failures,
                "check failed; kept the last good file, no reload: {error}"
            );
        }
        Outcome::WriteFailed(error) => {
            let failures = Metrics::bump(&metrics.write_failures);
            tracing::error!(
                template = job.name,
                write_failures = failures,
                "{error}; the destination keeps its last good contents"
            );
        }
    }
    outcome
}

/// Stage, check, swap (or roll back) one job.
async fn write_checked(job: &Job) -> Outcome {
    let dest = job.destination.display().to_string();
    match output::read_current(&job.destination) {
        Ok(Some(current)) if current == job.text.as_bytes() => {
            // The owner is looked up on every pass, as consul-template does:
            // an unknown one fails the template even when nothing changed.
            match output::has_owner(&job.destination, &job.options.owner) {
                Ok(true) => {
                    tracing::info!(
                        template = job.name,
                        destination = dest,
                        "rendered; unchanged"
                    );
                    return Outcome::Unchanged;
                }
                Ok(false) => tracing::info!(
                    template = job.name,
                    destination = dest,
                    "rendered; unchanged, but not owned as asked: writing it again"
                ),
                Err(error) => return Outcome::WriteFailed(error),
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(destination = dest, "{error}; writing anew"),
    }
    let staged = match Staged::stage(&job.destination, job.text.as_bytes(), &job.options) {
        Ok(staged) => staged,
        Err(error) => return Outcome::WriteFailed(error),
    };
    let Some(check) = &job.check else {
        // Nothing can fail after the swap, so no way back is kept.
        return match staged.replace() {
            Ok(swap) => written(job, swap),
            Err(error) => Outcome::WriteFailed(error),
        };
    };
    if check.contains(STAGED_PLACEHOLDER) {
        // confd-style: the check reads the staged file; nothing is swapped
        // unless it passes.
        let check = check.replace(
            STAGED_PLACEHOLDER,
            &shell_quote(&staged.path().display().to_string()),
        );
        if let Err(failure) = run_check(job, &check).await {
            return failure;
        }
        return match staged.commit() {
            Ok((committed, swap)) => {
                committed.finish();
                written(job, swap)
            }
            Err(error) => Outcome::WriteFailed(error),
        };
    }
    // The check reads the destination in place (e.g. `nginx -t` of the main
    // config that includes it): swap, check, and swap back on failure.
    let (committed, swap) = match staged.commit() {
        Ok(done) => done,
        Err(error) => return Outcome::WriteFailed(error),
    };
    match run_check(job, check).await {
        Ok(()) => {
            committed.finish();
            written(job, swap)
        }
        Err(failure) => {
            if let Err(error) = committed.rollback() {
                tracing::error!(
                    destination = dest,
                    "could not restore the last good file: {error}"
                );
            }
            failure
        }
    }
}

/// In a check command, replaced by the staged file's path (shell-quoted).
pub const STAGED_PLACEHOLDER: &str = "{{staged}}";

async fn run_check(job: &Job, check: &str) -> Result<(), Outcome> {
    match command::run(check, &[], job.timeout).await {
        Ok(done) => {
            tracing::debug!(template = job.name, check, elapsed = ?done.elapsed, "check passed");
            Ok(())
        }
        Err(error) => Err(Outcome::CheckFailed(error)),
    }
}

fn written(job: &Job, swap: Swap) -> Outcome {
    if swap == Swap::InPlace {
        tracing::warn!(
            destination = %job.destination.display(),
            "could not rename over the destination (a bind-mounted file?); wrote it in place, which is not atomic"
        );
    }
    tracing::info!(template = job.name, destination = %job.destination.display(), bytes = job.text.len(), "rendered; written");
    Outcome::Written
}

/// Quotes `value` for `sh`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::output::Owner;

    fn job(template: usize, destination: PathBuf, command: String, user: &str) -> Job {
        Job {
            template,
            name: format!("t{template}"),
            destination,
            text: "same\n".to_owned(),
            check: None,
            command: Some(command),
            rerun_command: false,
            timeout: Duration::from_secs(10),
            options: WriteOptions {
                owner: Owner {
                    user: Some(user.to_owned()),
                    group: Some("4322".to_owned()),
                },
                ..WriteOptions::default()
            },
        }
    }

    #[tokio::test]
    async fn the_same_text_owned_by_someone_else_is_written_again_and_runs_the_command() {
        // (owner of the file on disk, outcome as printed, whether the command ran)
        let cases = [
            ((1000, 1001), "Written", true),
            ((4321, 1001), "Written", true),
            ((4321, 4322), "Unchanged", false),
        ];
        for (on_disk, want, ran) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            std::fs::write(&dest, "same\n").unwrap();
            std::os::unix::fs::chown(&dest, Some(on_disk.0), Some(on_disk.1)).unwrap();
            let marker = dir.path().join("ran");
            let command = format!("touch {}", shell_quote(&marker.display().to_string()));

            let report = apply(
                vec![job(0, dest.clone(), command, "4321")],
                false,
                None,
                Arc::new(Metrics::new(&[])),
            )
            .await;

            assert_eq!(
                format!("{:?}", report.outcomes),
                format!("[(0, {want})]"),
                "{on_disk:?}"
            );
            assert_eq!(marker.exists(), ran, "{on_disk:?}");
            let meta = std::fs::metadata(&dest).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4321, 4322), "{on_disk:?}");
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), "same\n");
        }
    }

    #[tokio::test]
    async fn an_unknown_user_fails_only_its_own_template_and_keeps_its_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = |name: &str| dir.path().join(name);
        // Unchanged and changed text alike: the owner is looked up every pass.
        std::fs::write(dest("same.conf"), "same\n").unwrap();
        std::fs::write(dest("old.conf"), "old\n").unwrap();
        let marker = dir.path().join("ran");
        let command = format!("touch {}", shell_quote(&marker.display().to_string()));
        let jobs = vec![
            job(
                0,
                dest("same.conf"),
                "false".to_owned(),
                "no-such-user-here",
            ),
            job(1, dest("old.conf"), "false".to_owned(), "no-such-user-here"),
            job(2, dest("new.conf"), command, "4321"),
        ];

        let report = apply(jobs, false, None, Arc::new(Metrics::new(&[]))).await;

        let unknown = |name: &str| {
            format!(
                "could not write {}: unknown user \"no-such-user-here\"",
                dest(name).display()
            )
        };
        let [
            (0, Outcome::WriteFailed(same)),
            (1, Outcome::WriteFailed(old)),
            (2, Outcome::Written),
        ] = &report.outcomes[..]
        else {
            panic!("{:?}", report.outcomes);
        };
        assert_eq!(same.to_string(), unknown("same.conf"));
        assert_eq!(old.to_string(), unknown("old.conf"));
        assert_eq!(report.commands.len(), 1, "{:?}", report.commands);
        assert!(marker.exists());
        assert_eq!(std::fs::read_to_string(dest("old.conf")).unwrap(), "old\n");
        assert_eq!(std::fs::read_to_string(dest("new.conf")).unwrap(), "same\n");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["new.conf", "old.conf", "ran", "same.conf"]);
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/c'd"), r"'/a b/c'\''d'");
    }
}
