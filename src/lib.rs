//! consul-render keeps nginx configuration in step with Consul's service
//! catalog, as a drop-in replacement for consul-template that never breaks
//! nginx.
//!
//! # How it works
//! - [`cli`] turns argv, the environment and any `-config` files
//!   ([`config_file`]) into one validated [`config::Config`].
//! - The [`runner`] owns all mutable state. It renders every [`template`]
//!   against a [`template::Snapshot`] of Consul data; each render records the
//!   dependencies it looked up, and the runner keeps exactly those watched
//!   ([`consul::watcher`]). A template is written only when none of its data
//!   is missing.
//! - Watchers run Consul's blocking-query loop through one shared
//!   [`consul::transport`] and report changes; the runner batches them
//!   (quiescence), re-renders the affected templates, and hands changed text
//!   to the [`output`] stage (stage, check, atomic swap) and then runs each
//!   distinct reload [`command`] once.

pub mod cli;
pub mod command;
pub mod config;
pub mod config_file;
pub mod consul;
pub mod duration;
pub mod env_pattern;
pub mod exit;
pub mod file_edits;
pub mod local_file;
pub mod log_file;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod process;
pub mod reload_check;
pub mod runner;
pub mod supervise;
pub mod template;
pub mod token_file;

use std::ffi::OsString;

use anyhow::Context;
use cli::Invocation;

/// The whole program: parses `args` (argv, including argv\[0\]) and the
/// environment, runs, and returns the exit code. Every outcome is mapped to
/// an exit code here, in one place.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let config = match cli::parse(args, &|name| std::env::var(name).ok()) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help(text)) => {
            print!("{text}");
            return exit::OK;
        }
        Ok(Invocation::Version(text)) => {
            println!("{text}");
            return exit::OK;
        }
        Err(error) => {
            eprintln!("consul-render: {error}");
            return error.exit_code();
        }
    };
    if let Err(error) = logging::init(
        config.log_level,
        config.log_format,
        config.log_file.as_ref(),
    ) {
        eprintln!("consul-render: {error}");
        return exit::CONFIG_ERROR;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("consul-render: {error:#}");
            return exit::ERROR;
        }
    };
    let pid_file = config.pid_file.clone();
    if let Some(path) = &pid_file
        && let Err(error) = write_pid_file(path)
    {
        eprintln!("consul-render: {error:#}");
        return exit::CONFIG_ERROR;
    }
    let code = match runtime.block_on(runner::run(config)) {
        Ok(()) => exit::OK,
        Err(error) => {
            let clean = match &error {
                runner::RunError::Interrupted => true,
                runner::RunError::ChildExited(status) => status.success(),
                _ => false,
            };
            if clean {
                tracing::info!("stopped: {error}");
            } else {
                tracing::error!("{error}");
            }
            error.exit_code()
        }
    };
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    code
}

/// Errors that are only reported, never matched on, carry their context
/// through anyhow: `could not write pid file …: Permission denied`.
fn write_pid_file(path: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("could not write pid file {}", path.display()))
}
