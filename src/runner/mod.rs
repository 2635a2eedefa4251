//! The runner: one task that owns all mutable state (templates, the data
//! snapshot, the watchers, the apply pass in flight) and reacts to events,
//! watchexec/nextest style. It decides *when* to render and write; *how* is
//! the template, output and command modules' business.
//!
//! The loop `select!`s over watcher events, the earliest quiescence
//! deadline, the apply pass in flight, and signals:
//! - a change marks the templates that used that dependency dirty;
//! - a dirty template renders once its quiescence (`-wait min:max`) allows;
//! - a complete render whose text differs from the destination becomes a job
//!   of the next apply pass; an incomplete one (data still missing) writes
//!   nothing, and the watchers are set to exactly what the renders used.

mod apply;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal as Sig;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

pub use apply::STAGED_PLACEHOLDER;

use crate::config::{Config, ProcessSignal, TemplateConfig, TemplateSource, Wait};
use crate::consul::catalog_file::{CatalogFile, CatalogFileError};
use crate::consul::change::{Change, Event};
use crate::consul::transport::{GaveUp, Transport, TransportError};
use crate::consul::watcher::Watchers;
use crate::consul::{Data, Dependency};
use crate::file_edits::{self, FileEdits};
use crate::metrics::{Behind, Metrics, TemplateLabels, Unconfirmed};
use crate::output::{OutputError, Owner, WriteOptions};
use crate::supervise::{ChildEvent, ChildState, Supervisor};
use crate::template::{Snapshot, Template, TemplateError};

/// Why a run ended other than as asked.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not read template {path}: {source}")]
    ReadTemplate {
        path: String,
        source: std::io::Error,
    },
    #[error("template error at {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    CatalogFile(#[from] CatalogFileError),
    #[error("{0}")]
    GaveUp(GaveUp),
    #[error("{0}")]
    Failed(String),
    /// A template that asked for it (`error_fatal`) could not be written.
    #[error("{template}: {source}")]
    WriteTemplate {
        template: String,
        source: OutputError,
    },
    #[error("write and reload pass crashed: {0}")]
    PassCrashed(#[source] JoinError),
    #[error("could not install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("interrupted")]
    Interrupted,
    #[error("could not serve metrics on {addr}: {source}")]
    MetricsAddr {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("could not start the child `{command}`: {source}")]
    ExecStart {
        command: String,
        source: std::io::Error,
    },
    /// The supervised child exited; consul-render exits with its code.
    #[error("the child exited with {}", crate::process::describe(*.0))]
    ChildExited(std::process::ExitStatus),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Interrupted => crate::exit::INTERRUPTED,
            RunError::Transport(_) => crate::exit::CONFIG_ERROR,
            RunError::ChildExited(status) => crate::process::exit_code(*status),
            _ => crate::exit::RUNNER_ERROR,
        }
    }
}

/// Runs until interrupted, or in `-once` (and offline) mode until every
/// template has been rendered completely and its commands have run.
pub async fn run(config: Config) -> Result<(), RunError> {
    let (metrics_addr, reload_signal, kill_signal) = (
        config.metrics_addr,
        config.reload_signal,
        config.kill_signal,
    );
    let mut runner = Runner::new(config)?;
    if let Some(addr) = metrics_addr {
        crate::metrics::server::serve(addr, runner.metrics.clone())
            .await
            .map_err(|source| RunError::MetricsAddr { addr, source })?;
    }
    let supervising = runner.child.is_some();
    let mut signals =
        Signals::new(reload_signal, kill_signal, supervising).map_err(RunError::Signals)?;
    // Inline templates have no file to watch.
    let sources: Vec<_> = runner
        .templates
        .iter()
        .filter_map(|t| t.config.source.path().map(Path::to_path_buf))
        .collect();
    let mut edits = (!runner.once && !sources.is_empty())
        .then(|| FileEdits::watch(&sources, "send SIGHUP after editing a template"));
    runner.render_due();
    let result = 'run: loop {
        if let Some(error) = runner.fatal.take() {
            runner.finish_in_flight_pass().await;
            break Err(error);
        }
        runner.start_pass();
        if runner.finished() {
            break runner.once_result();
        }
        let deadline = runner.next_deadline();
        let wake = tokio::select! {
            event = next_event(&mut runner.source) => Wake::Event(event),
            () = sleep_until(deadline), if deadline.is_some() => Wake::Due,
            report = wait_for(&mut runner.applying), if runner.applying.is_some() => Wake::Applied(report),
            stop = signals.stop.requested() => Wake::Stop(stop),
            event = child_event(&mut runner.child) => match event {
                ChildEvent::Exited(status) => Wake::ChildExited(status),
                ChildEvent::ReloadDue => Wake::ChildReloadDue,
            },
            () = received(&mut signals.child) => Wake::Orphans,
            () = received(&mut signals.reload) => Wake::Reload,
            () = received(&mut signals.ignored_hangup) => Wake::IgnoredHangup,
            () = received(&mut signals.stats) => Wake::Stats,
            signal = received_any(&mut signals.passed_on) => Wake::PassOn(signal),
            path = next_edit(&mut edits) => Wake::Edited(path),
        };
        match wake {
            Wake::Event(Some(event)) => {
                let mut next = Some(event);
                // Take everything already queued before rendering: one
                // render for a burst of changes.
                while let Some(event) = next {
                    match event {
                        Event::Changed(change) => runner.apply_change(change),
                        Event::Stale { dependency, since } => {
                            runner.stale.entry(dependency).or_insert(since);
                        }
                        Event::Current(dependency) => {
                            runner.stale.remove(&dependency);
                        }
                        Event::GaveUp(error) => break 'run Err(RunError::GaveUp(error)),
                    }
                    next = runner.try_next_event();
                }
                runner.render_due();
            }
            Wake::Event(None) => {}
            Wake::Due => {
                runner.release_expired_holds();
                runner.render_due();
            }
            Wake::Applied(Ok(report)) => {
                runner.applying = None;
                if let Err(error) = runner.finish_pass(report) {
                    break Err(error);
                }
            }
            Wake::Applied(Err(error)) => {
                runner.applying = None;
                let error = RunError::PassCrashed(error);
                tracing::error!("{error}");
                if runner.once {
                    break Err(error);
                }
            }
            Wake::Stop(signal) => {
                // The child decides when it is done; consul-render follows.
                if runner
                    .child
                    .as_mut()
                    .is_some_and(|child| child.forward(signal))
                {
                    continue;
                }
                tracing::info!(signal = signal.as_str(), "stopping");
                runner.finish_in_flight_pass().await;
                break Err(RunError::Interrupted);
            }
            Wake::ChildExited(status) => {
                runner.finish_in_flight_pass().await;
                break Err(RunError::ChildExited(status));
            }
            Wake::ChildReloadDue => {
                if let Some(child) = runner.child.as_mut() {
                    child.reload_now(&runner.metrics);
                }
            }
            Wake::Orphans => {
                let reaped = crate::process::reap_orphans();
                tracing::debug!(reaped, "reaped orphaned processes");
            }
            Wake::Reload => {
                runner.reload_templates(|_| true);
                runner.render_due();
            }
            Wake::Edited(path) => {
                runner.reload_templates(|source| file_edits::absolute(source) == path);
                runner.render_due();
            }
            Wake::Stats => runner.metrics.log(),
            Wake::IgnoredHangup => {
                tracing::info!("SIGHUP ignored: another signal reloads (-reload-signal)");
            }
            Wake::PassOn(signal) => {
                if let Some(child) = runner.child.as_ref() {
                    child.pass_on(signal);
                }
            }
        }
        runner.publish_data_ages();
    };
    runner.metrics.log();
    // Leaving for a reason of our own (Consul gave up, a failure): the
    // child goes first.
    if let Some(child) = runner.child.as_mut()
        && child.stop().await
    {
        let status = child.exited().await;
        if result.is_ok() {
            return Err(RunError::ChildExited(status));
        }
    }
    result
}

/// What woke the runner.
enum Wake {
    Event(Option<Event>),
    Due,
    Applied(Result<apply::Report, JoinError>),
    Stop(Sig),
    ChildExited(std::process::ExitStatus),
    /// A reload of the child held back by its splay is due.
    ChildReloadDue,
    /// SIGCHLD as PID 1: an orphan may be waiting to be reaped.
    Orphans,
    Reload,
    /// SIGHUP while another signal is the reload signal.
    IgnoredHangup,
    /// A signal meant for the supervised child (nginx's SIGUSR1 reopens
    /// its logs).
    PassOn(Sig),
    Edited(std::path::PathBuf),
    Stats,
}

struct TemplateState {
    config: TemplateConfig,
    name: String,
    template: Template,
    /// What the last render looked up.
    used: BTreeSet<Dependency>,
    /// Set while a change waits to be rendered.
    dirty: Option<Dirty>,
    /// A complete render has reached the destination (written or unchanged).
    done: bool,
    /// The earliest change the destination does not show yet.
    behind_since: Option<Instant>,
    /// The earliest change no queued or applied render includes yet.
    unqueued_since: Option<Instant>,
    /// The earliest change the queued render includes and the one in
    /// flight does not.
    queued_since: Option<Instant>,
    /// The template's command failed last time: run it again next pass,
    /// even if the text is unchanged.
    command_pending: bool,
}

#[derive(Clone, Copy)]
struct Dirty {
    first: Instant,
    last: Instant,
}

/// Data held back because Consul came back from an outage or a reset with
/// less than before: the snapshot keeps the last good data until the
/// catalog recovers or `until` passes.
struct Held {
    latest: Arc<Data>,
    until: Instant,
    /// When the held change may have happened.
    since: Instant,
}

/// Where data comes from.
enum Source {
    Consul {
        watchers: Watchers,
        events: mpsc::UnboundedReceiver<Event>,
    },
    File(CatalogFile),
}

struct Runner {
    templates: Vec<TemplateState>,
    snapshot: Arc<Snapshot>,
    source: Source,
    wait: Option<Wait>,
    reset_grace: Duration,
    held: BTreeMap<Dependency, Held>,
    /// Watched dependencies whose reads fail, and since when.
    stale: BTreeMap<Dependency, Instant>,
    once: bool,
    dry: bool,
    /// The nginx master whose new workers prove a reload command took.
    nginx_pid_file: Option<std::path::PathBuf>,
    save_catalog: Option<std::path::PathBuf>,
    applying: Option<JoinHandle<apply::Report>>,
    /// Jobs waiting for the pass in flight, latest text per template.
    queued: BTreeMap<usize, apply::Job>,
    metrics: Arc<Metrics>,
    /// `-once`: what failed so far.
    failures: Vec<String>,
    /// Why a template that asked for it (`error_fatal`) stops the run.
    fatal: Option<RunError>,
    /// Supervise mode's child.
    child: Option<Supervisor>,
    /// A render read a different set of dependencies than the template's
    /// last one: what is watched must follow.
    used_changed: bool,
}

impl Runner {
    fn new(config: Config) -> Result<Runner, RunError> {
        let templates = config
            .templates
            .into_iter()
            .map(|tc| {
                let name = tc.source.name();
                let template = load_template(&tc)?;
                Ok(TemplateState {
                    config: tc,
                    name,
                    template,
                    used: BTreeSet::new(),
                    dirty: None,
                    done: false,
                    behind_since: None,
                    unqueued_since: None,
                    queued_since: None,
                    command_pending: false,
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let labels: Vec<TemplateLabels> = templates
            .iter()
            .map(|t| TemplateLabels {
                template: t.name.clone(),
                destination: t.config.destination.display().to_string(),
            })
            .collect();
        let metrics = Arc::new(Metrics::new(&labels));
        let source = match &config.catalog_file {
            Some(path) => Source::File(CatalogFile::load(path)?),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let transport = Transport::new(&config.consul, metrics.clone())?;
                tracing::info!(consul = %config.consul.address, templates = templates.len(), "watching consul");
                Source::Consul {
                    watchers: Watchers::new(transport, tx),
                    events: rx,
                }
            }
        };
        if !config.dry {
            for t in &templates {
                let removed = crate::output::remove_leftovers(&t.config.destination);
                if removed > 0 {
                    tracing::info!(destination = %t.config.destination.display(), removed, "removed staged files an earlier run left behind");
                }
            }
        }
        let once = config.once || matches!(source, Source::File(_));
        let now = Instant::now();
        let mut runner = Runner {
            templates,
            snapshot: Arc::new(Snapshot::default()),
            source,
            wait: config.wait,
            reset_grace: config.reset_grace,
            held: BTreeMap::new(),
            stale: BTreeMap::new(),
            once,
            dry: config.dry,
            nginx_pid_file: config.nginx_pid_file.clone(),
            save_catalog: config.save_catalog,
            applying: None,
            queued: BTreeMap::new(),
            metrics,
            failures: Vec::new(),
            fatal: None,
            child: config.exec.map(Supervisor::new),
            used_changed: false,
        };
        for t in &mut runner.templates {
            t.dirty = Some(Dirty {
                first: now,
                last: now,
            });
        }
        Ok(runner)
    }

    fn try_next_event(&mut self) -> Option<Event> {
        match &mut self.source {
            Source::Consul { events, .. } => events.try_recv().ok(),
            Source::File(_) => None,
        }
    }

    /// Takes in new data: holds it back if it looks like a catalog that has
    /// not re-synced after an outage or reset, else stores it.
    fn apply_change(&mut self, change: Change) {
        let Change {
            dependency,
            data,
            after_reset,
            rejected,
            since,
        } = change;
        // A reply came: the watch is current again.
        self.stale.remove(&dependency);
        if rejected > 0 {
            self.metrics.rejected_values.inc_by(rejected as u64);
        }
        let lost = self
            .snapshot
            .data(&dependency)
            .is_some_and(|before| data.lost_entries_since(before));
        if let Some(held) = self.held.get_mut(&dependency) {
            if lost {
                held.latest = data;
                return;
            }
            tracing::info!(%dependency, "consul has caught up; using its data again");
            self.held.remove(&dependency);
        } else if lost && after_reset && !self.reset_grace.is_zero() {
            let holds = Metrics::bump(&self.metrics.holds);
            tracing::warn!(
                %dependency,
                grace = ?self.reset_grace,
                holds,
                "consul came back from an outage or reset with fewer entries; keeping the last good data until it catches up or the grace period ends"
            );
            self.held.insert(
                dependency,
                Held {
                    latest: data,
                    until: Instant::now() + self.reset_grace,
                    since,
                },
            );
            return;
        }
        self.store(dependency, data, since);
    }

    /// Stores data that changed at `since` and marks the templates that
    /// read it dirty.
    fn store(&mut self, dependency: Dependency, data: Arc<Data>, since: Instant) {
        let changed = Arc::make_mut(&mut self.snapshot).insert(dependency.clone(), data);
        if !changed {
            return;
        }
        tracing::debug!(%dependency, "data changed");
        let now = Instant::now();
        for t in self
            .templates
            .iter_mut()
            .filter(|t| t.used.contains(&dependency))
        {
            let first = t.dirty.map_or(now, |d| d.first);
            t.dirty = Some(Dirty { first, last: now });
            t.behind_since = earliest(t.behind_since, Some(since));
            t.unqueued_since = earliest(t.unqueued_since, Some(since));
        }
    }

    /// Applies held data whose grace period has ended.
    fn release_expired_holds(&mut self) {
        let now = Instant::now();
        let expired: Vec<Dependency> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for dependency in expired {
            if let Some(held) = self.held.remove(&dependency) {
                tracing::warn!(%dependency, "grace period over and consul still has fewer entries; applying its data");
                self.store(dependency, held.latest, held.since);
            }
        }
    }

    /// When the runner next has something to do on its own: a dirty
    /// template's quiescence ends, or a hold expires.
    fn next_deadline(&self) -> Option<Instant> {
        let renders = self
            .templates
            .iter()
            .filter_map(|t| t.dirty.map(|d| self.due_at(t, d)));
        let holds = self.held.values().map(|h| h.until);
        renders.chain(holds).min()
    }

    fn due_at(&self, template: &TemplateState, dirty: Dirty) -> Instant {
        // consul-template's rule: -once disables quiescence.
        let wait = if self.once {
            None
        } else {
            template.config.wait.or(self.wait)
        };
        match wait {
            // Quiet for `min` since the last change, but never later than
            // `max` after the first.
            Some(wait) => (dirty.last + wait.min).min(dirty.first + wait.max),
            None => dirty.first,
        }
    }

    /// Renders every template whose quiescence has passed, queues the
    /// complete ones for writing, and points the data source at exactly
    /// what the renders used.
    fn render_due(&mut self) {
        loop {
            let now = Instant::now();
            for i in 0..self.templates.len() {
                let due = self.templates[i]
                    .dirty
                    .is_some_and(|d| self.due_at(&self.templates[i], d) <= now);
                if due {
                    self.render(i);
                }
            }
            // An offline source answers new dependencies at once, which may
            // make templates dirty again: render until nothing is missing.
            if !self.want_dependencies() {
                break;
            }
        }
    }

    fn render(&mut self, i: usize) {
        Metrics::bump(&self.metrics.renders);
        let t = &mut self.templates[i];
        t.dirty = None;
        let rendered = match t.template.render(&self.snapshot) {
            Ok(rendered) => rendered,
            Err(error) => {
                // An error that ends the run is reported once, as it ends.
                if !self.once && !t.config.error_fatal {
                    tracing::error!("template error at {error}");
                }
                if self.once {
                    self.failures.push(format!("template error at {error}"));
                    // Nothing more will come of this template in one-shot mode.
                    t.done = true;
                }
                if t.config.error_fatal {
                    self.fatal.get_or_insert(RunError::Template(error));
                }
                return;
            }
        };
        if t.used != rendered.used {
            t.used = rendered.used;
            self.used_changed = true;
        }
        if !rendered.missing.is_empty() {
            let waiting: Vec<String> = rendered.missing.iter().map(ToString::to_string).collect();
            tracing::debug!(template = t.name, waiting_for = ?waiting, "rendered; waiting for data");
            return;
        }
        t.queued_since = earliest(t.queued_since, t.unqueued_since.take());
        let tc = &t.config;
        self.queued.insert(
            i,
            apply::Job {
                template: i,
                name: t.name.clone(),
                destination: tc.destination.clone(),
                text: rendered.text,
                check: tc.check.clone(),
                command: tc.command.clone(),
                rerun_command: t.command_pending,
                timeout: tc.command_timeout,
                options: WriteOptions {
                    perms: tc.perms,
                    backup: tc.backup,
                    owner: Owner {
                        user: tc.user.clone(),
                        group: tc.group.clone(),
                    },
                },
            },
        );
    }

    /// Points the source at the union of what the templates use. Returns
    /// whether that made data available at once (offline source).
    fn want_dependencies(&mut self) -> bool {
        if !std::mem::take(&mut self.used_changed) {
            // Rebuilding the set costs as much as the render of a large
            // catalog; only the mode of the watches may need a fresh look.
            let current = match &self.source {
                Source::Consul { watchers, .. } => watchers.mode_holds(),
                Source::File(_) => true,
            };
            if current {
                return false;
            }
        }
        let wanted: BTreeSet<Dependency> = self
            .templates
            .iter()
            .flat_map(|t| t.used.iter().cloned())
            .collect();
        self.metrics.watched_dependencies.set(wanted.len() as i64);
        Arc::make_mut(&mut self.snapshot).retain(|d| wanted.contains(d));
        self.held.retain(|d, _| wanted.contains(d));
        self.stale.retain(|d, _| wanted.contains(d));
        match &mut self.source {
            Source::Consul { watchers, .. } => {
                watchers.set(&wanted);
                self.metrics
                    .signal_mode
                    .set(i64::from(watchers.signalling()));
                false
            }
            Source::File(file) => {
                let mut answered = Vec::new();
                for dependency in wanted.iter().filter(|d| self.snapshot.data(d).is_none()) {
                    match file.answer(dependency) {
                        Ok((data, rejections)) => {
                            for rejection in &rejections {
                                tracing::warn!(%dependency, "{rejection}");
                            }
                            self.metrics.rejected_values.inc_by(rejections.len() as u64);
                            answered.push((dependency.clone(), data));
                        }
                        Err(error) => tracing::error!(%dependency, "{error}"),
                    }
                }
                let any = !answered.is_empty();
                let now = Instant::now();
                for (dependency, data) in answered {
                    self.store(dependency, Arc::new(data), now);
                }
                any
            }
        }
    }

    /// Starts an apply pass for the queued jobs, unless one is in flight.
    fn start_pass(&mut self) {
        if self.applying.is_some() || self.queued.is_empty() {
            return;
        }
        let jobs: Vec<apply::Job> = std::mem::take(&mut self.queued).into_values().collect();
        for t in &mut self.templates {
            t.queued_since = None;
        }
        self.applying = Some(tokio::spawn(apply::apply(
            jobs,
            self.dry,
            self.nginx_pid_file.clone(),
            self.metrics.clone(),
        )));
    }

    fn finish_pass(&mut self, report: apply::Report) -> Result<(), RunError> {
        let written = report
            .outcomes
            .iter()
            .any(|(_, outcome)| matches!(outcome, apply::Outcome::Written));
        for (i, outcome) in report.outcomes {
            let t = &mut self.templates[i];
            let error: &dyn std::error::Error = match &outcome {
                apply::Outcome::Written | apply::Outcome::Unchanged => {
                    t.done = true;
                    // It shows every change before its render.
                    t.behind_since = earliest(t.queued_since, t.unqueued_since);
                    self.metrics.template_rendered(i);
                    continue;
                }
                apply::Outcome::CheckFailed(error) => error,
                apply::Outcome::WriteFailed(error) => error,
            };
            self.metrics.template_failed(i, &error.to_string());
            if self.once {
                t.done = true;
                self.failures.push(format!("{}: {error}", t.name));
            }
            // A failed check is not a template error: the last good file
            // stays, as without `error_fatal`.
            if t.config.error_fatal
                && let apply::Outcome::WriteFailed(source) = outcome
            {
                self.fatal.get_or_insert(RunError::WriteTemplate {
                    template: t.name.clone(),
                    source,
                });
            }
        }
        for (command, result) in &report.commands {
            for t in self
                .templates
                .iter_mut()
                .filter(|t| t.config.command.as_ref() == Some(command))
            {
                t.command_pending = result.is_err();
            }
            if let (Err(error), true) = (result, self.once) {
                self.failures.push(error.to_string());
            }
        }
        // A run about to stop over a template that asked for it starts no
        // child and reloads none; nor does a one-shot run with a template
        // that failed (the child starts only once every template has
        // rendered, as in watch mode), which `finished` then ends.
        let failed_once = self.once && !self.failures.is_empty();
        if self.fatal.is_some() || failed_once || !self.templates.iter().all(|t| t.done) {
            return Ok(());
        }
        self.save_catalog_once();
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.state() {
            ChildState::Waiting if !self.dry => {
                child.start().map_err(|source| RunError::ExecStart {
                    command: child.command().to_owned(),
                    source,
                })
            }
            ChildState::Running { .. } if written => {
                child.reload(&self.metrics);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `-save-catalog`: after the first complete render of every template,
    /// writes the data they used.
    fn save_catalog_once(&mut self) {
        let Some(path) = self.save_catalog.take() else {
            return;
        };
        let mut file = CatalogFile::default();
        for dependency in self.templates.iter().flat_map(|t| t.used.iter()) {
            if let Some(data) = self.snapshot.data(dependency) {
                file.record(dependency, data);
            }
        }
        match file.save(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "saved catalog snapshot"),
            Err(error) => {
                tracing::error!("{error}");
                self.failures.push(error.to_string());
            }
        }
    }

    /// Re-reads the template files `which` selects (SIGHUP: all; an
    /// edit: that one); inline templates have none. A template that no
    /// longer parses keeps its previous version, and the error says where.
    fn reload_templates(&mut self, which: impl Fn(&Path) -> bool) {
        let now = Instant::now();
        for t in self
            .templates
            .iter_mut()
            .filter(|t| t.config.source.path().is_some_and(&which))
        {
            match load_template(&t.config) {
                Ok(template) => {
                    tracing::info!(template = t.name, "template reloaded");
                    t.template = template;
                    t.dirty = Some(Dirty {
                        first: now,
                        last: now,
                    });
                }
                Err(error) => {
                    tracing::error!("{error}; keeping the previous version of {}", t.name)
                }
            }
        }
    }

    /// Tells the metrics since when each template's destination may be
    /// behind Consul: its earliest change not applied yet, or the earliest
    /// failure or hold among the dependencies it reads.
    fn publish_data_ages(&self) {
        let affected = !self.stale.is_empty() || !self.held.is_empty();
        for (i, t) in self.templates.iter().enumerate() {
            let (mut since, mut why) = (t.behind_since, None);
            if affected {
                for d in &t.used {
                    if let Some(&stale) = self.stale.get(d) {
                        since = earliest(since, Some(stale));
                        why = Some(Unconfirmed::ReadsFail);
                    } else if let Some(held) = self.held.get(d) {
                        since = earliest(since, Some(held.since));
                        why = why.or(Some(Unconfirmed::HeldBack));
                    }
                }
            }
            let behind = Behind {
                since: since.map(Instant::into_std),
                unconfirmed: why,
            };
            self.metrics.template_behind(i, behind);
        }
    }

    /// On stop, lets a pass in flight finish (a check that passed its swap
    /// must get the chance to roll back), within [`STOP_GRACE`].
    async fn finish_in_flight_pass(&mut self) {
        if let Some(task) = self.applying.as_mut() {
            tracing::info!("waiting for the write and reload in progress");
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                tracing::warn!(grace = ?STOP_GRACE, "write and reload in progress did not finish; leaving it");
            }
        }
    }

    fn finished(&self) -> bool {
        // A supervised child is followed until it exits, even with -once;
        // one that never started because a template failed is not waited
        // for.
        let no_child = self.child.as_ref().is_none_or(|child| {
            !self.failures.is_empty() && matches!(child.state(), ChildState::Waiting)
        });
        self.once
            && no_child
            && self.applying.is_none()
            && self.queued.is_empty()
            && self.templates.iter().all(|t| t.done)
    }

    fn once_result(&self) -> Result<(), RunError> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(RunError::Failed(self.failures.join("\n")))
        }
    }
}

/// Reads (for a file) and parses the template `config` names.
fn load_template(config: &TemplateConfig) -> Result<Template, RunError> {
    let name = config.source.name();
    let text = match &config.source {
        TemplateSource::File(path) => Cow::Owned(std::fs::read_to_string(path).map_err(
            |source| RunError::ReadTemplate {
                path: name.clone(),
                source,
            },
        )?),
        TemplateSource::Inline(text) => Cow::Borrowed(text.as_str()),
    };
    Ok(Template::parse_with(
        &name,
        &text,
        &config.syntax,
        &config.options,
    )?)
}

/// The earlier of two moments, if any.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    a.into_iter().chain(b).min()
}

async fn next_event(source: &mut Source) -> Option<Event> {
    match source {
        Source::Consul { events, .. } => events.recv().await,
        Source::File(_) => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_edit(edits: &mut Option<FileEdits>) -> std::path::PathBuf {
    match edits {
        Some(edits) => edits.next().await,
        None => std::future::pending().await,
    }
}

/// The report of the apply pass in flight; `Err` if it panicked.
async fn wait_for(
    task: &mut Option<JoinHandle<apply::Report>>,
) -> Result<apply::Report, JoinError> {
    match task {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// The signals the runner reacts to: SIGINT, SIGTERM, SIGQUIT and the
/// kill signal stop it; the reload signal (SIGHUP unless configured) re-reads
/// the templates; SIGUSR1 logs the counters. SIGHUP, when another signal
/// reloads, is caught and ignored, so that it does not end the process.
struct Signals {
    stop: StopSignals,
    reload: Option<Signal>,
    ignored_hangup: Option<Signal>,
    stats: Option<Signal>,
    /// In supervise mode, the signals passed on to the child: SIGHUP (when
    /// another signal reloads), SIGUSR1, SIGUSR2 and SIGWINCH, unless they
    /// are the reload or kill signal. consul-template passes on every
    /// signal that is not its own.
    passed_on: Vec<(Signal, Sig)>,
    /// Only as PID 1, where orphans become ours to reap.
    child: Option<Signal>,
}

impl Signals {
    fn new(
        reload: Option<ProcessSignal>,
        kill: ProcessSignal,
        supervising: bool,
    ) -> std::io::Result<Signals> {
        let pid_1 = std::process::id() == 1;
        let listen = |signal_number: i32| signal(SignalKind::from_raw(signal_number));
        let standard_stops = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT];
        let taken = |n: i32| reload.map(|r| r.0) == Some(n) || kill.0 == n;
        let extra_stop = match Sig::try_from(kill.0) {
            Ok(sig) if !standard_stops.contains(&kill.0) => Some((listen(kill.0)?, sig)),
            _ => None,
        };
        Ok(Signals {
            stop: StopSignals {
                interrupt: listen(libc::SIGINT)?,
                terminate: listen(libc::SIGTERM)?,
                quit: listen(libc::SIGQUIT)?,
                extra: extra_stop,
            },
            reload: reload.map(|r| listen(r.0)).transpose()?,
            ignored_hangup: (!taken(libc::SIGHUP) && !supervising)
                .then(|| listen(libc::SIGHUP))
                .transpose()?,
            stats: (!taken(libc::SIGUSR1))
                .then(|| listen(libc::SIGUSR1))
                .transpose()?,
            passed_on: [Sig::SIGHUP, Sig::SIGUSR1, Sig::SIGUSR2, Sig::SIGWINCH]
                .into_iter()
                .filter(|sig| supervising && !taken(*sig as i32))
                // SIGUSR1 also logs the counters: each listener hears it.
                .map(|sig| Ok((listen(sig as i32)?, sig)))
                .collect::<std::io::Result<_>>()?,
            child: pid_1.then(|| signal(SignalKind::child())).transpose()?,
        })
    }
}

struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    quit: Signal,
    /// A `-kill-signal` other than those three.
    extra: Option<(Signal, Sig)>,
}

impl StopSignals {
    /// SIGINT, SIGTERM, SIGQUIT or the kill signal: each stops cleanly
    /// (consul-template stops only on its kill signal and ignores SIGTERM;
    /// supervisors send it), or is passed on to a supervised child.
    async fn requested(&mut self) -> Sig {
        let extra = async {
            match &mut self.extra {
                Some((stream, sig)) => {
                    stream.recv().await;
                    *sig
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => Sig::SIGINT,
            _ = self.terminate.recv() => Sig::SIGTERM,
            _ = self.quit.recv() => Sig::SIGQUIT,
            sig = extra => sig,
        }
    }
}

/// The next delivery of `signal`, if it is listened to.
async fn received(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The next delivery of any of `signals`; never, when there are none.
async fn received_any(signals: &mut [(Signal, Sig)]) -> Sig {
    std::future::poll_fn(|cx| {
        for (stream, sig) in signals.iter_mut() {
            // `None` (the signal driver gone) never comes while the
            // runtime runs.
            if let std::task::Poll::Ready(Some(())) = stream.poll_recv(cx) {
                return std::task::Poll::Ready(*sig);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn child_event(child: &mut Option<Supervisor>) -> ChildEvent {
    match child {
        Some(child) => child.next_event().await,
        None => std::future::pending().await,
    }
}

/// How long a stop may wait for an apply pass in flight (a reload command
/// half-way through) before leaving it.
const STOP_GRACE: Duration = Duration::from_secs(5);
