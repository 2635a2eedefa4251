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

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use apply::STAGED_PLACEHOLDER;

use crate::config::{Config, TemplateConfig, Wait};
use crate::consul::catalog_file::{CatalogFile, CatalogFileError};
use crate::consul::transport::{Transport, TransportError};
use crate::consul::watcher::{Event, Watchers};
use crate::consul::{Data, Dependency};
use crate::output::WriteOptions;
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
    GaveUp(String),
    #[error("{0}")]
    Failed(String),
    #[error("could not install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("interrupted")]
    Interrupted,
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Interrupted => crate::exit::INTERRUPTED,
            RunError::Transport(_) => crate::exit::CONFIG_ERROR,
            _ => crate::exit::RUNNER_ERROR,
        }
    }
}

/// Runs until interrupted, or in `-once` (and offline) mode until every
/// template has been rendered completely and its commands have run.
pub async fn run(config: Config) -> Result<(), RunError> {
    let mut runner = Runner::new(config)?;
    let mut signals = Signals::new().map_err(RunError::Signals)?;
    runner.render_due();
    loop {
        runner.start_pass();
        if runner.finished() {
            return runner.once_result();
        }
        let deadline = runner.next_deadline();
        let wake = tokio::select! {
            event = next_event(&mut runner.source) => Wake::Event(event),
            () = sleep_until(deadline), if deadline.is_some() => Wake::Due,
            report = wait_for(&mut runner.applying), if runner.applying.is_some() => Wake::Applied(report),
            stop = stop_requested(&mut signals.interrupt, &mut signals.terminate) => Wake::Stop(stop),
            _ = signals.hangup.recv() => Wake::Reload,
        };
        match wake {
            Wake::Event(Some(event)) => {
                let mut next = Some(event);
                // Take everything already queued before rendering: one
                // render for a burst of changes.
                while let Some(event) = next {
                    match event {
                        Event::Changed(change) => {
                            runner.apply_change(change.dependency, change.data)
                        }
                        Event::GaveUp(error) => return Err(RunError::GaveUp(error)),
                    }
                    next = runner.try_next_event();
                }
                runner.render_due();
            }
            Wake::Event(None) => {}
            Wake::Due => runner.render_due(),
            Wake::Applied(report) => {
                runner.applying = None;
                runner.finish_pass(report);
            }
            Wake::Stop(signal) => {
                tracing::info!(signal, "stopping");
                runner.finish_in_flight_pass().await;
                return Err(RunError::Interrupted);
            }
            Wake::Reload => {
                runner.reload_templates();
                runner.render_due();
            }
        }
    }
}

/// What woke the runner.
enum Wake {
    Event(Option<Event>),
    Due,
    Applied(apply::Report),
    Stop(&'static str),
    Reload,
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
}

#[derive(Clone, Copy)]
struct Dirty {
    first: Instant,
    last: Instant,
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
    once: bool,
    dry: bool,
    save_catalog: Option<std::path::PathBuf>,
    applying: Option<JoinHandle<apply::Report>>,
    /// Jobs waiting for the pass in flight, latest text per template.
    queued: BTreeMap<usize, apply::Job>,
    /// `-once`: what failed so far.
    failures: Vec<String>,
}

impl Runner {
    fn new(config: Config) -> Result<Runner, RunError> {
        let templates = config
            .templates
            .into_iter()
            .map(|tc| {
                let name = tc.source.display().to_string();
                let template = load_template(&tc.source)?;
                Ok(TemplateState {
                    config: tc,
                    name,
                    template,
                    used: BTreeSet::new(),
                    dirty: None,
                    done: false,
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let source = match &config.catalog_file {
            Some(path) => Source::File(CatalogFile::load(path)?),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let transport = Transport::new(&config.consul)?;
                tracing::info!(consul = %config.consul.address, templates = templates.len(), "watching consul");
                Source::Consul {
                    watchers: Watchers::new(transport, tx),
                    events: rx,
                }
            }
        };
        let once = config.once || matches!(source, Source::File(_));
        let now = Instant::now();
        let mut runner = Runner {
            templates,
            snapshot: Arc::new(Snapshot::default()),
            source,
            // consul-template's rule: -once disables quiescence.
            wait: config.wait.filter(|_| !once),
            once,
            dry: config.dry,
            save_catalog: config.save_catalog,
            applying: None,
            queued: BTreeMap::new(),
            failures: Vec::new(),
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

    /// Stores new data and marks the templates that read it dirty.
    fn apply_change(&mut self, dependency: Dependency, data: Data) {
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
        }
    }

    /// When the next dirty template may render.
    fn next_deadline(&self) -> Option<Instant> {
        self.templates
            .iter()
            .filter_map(|t| t.dirty.map(|d| self.due_at(d)))
            .min()
    }

    fn due_at(&self, dirty: Dirty) -> Instant {
        match self.wait {
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
                    .is_some_and(|d| self.due_at(d) <= now);
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
        let t = &mut self.templates[i];
        t.dirty = None;
        let rendered = match t.template.render(&self.snapshot) {
            Ok(rendered) => rendered,
            Err(error) => {
                tracing::error!("template error at {error}");
                if self.once {
                    self.failures.push(format!("template error at {error}"));
                    // Nothing more will come of this template in one-shot mode.
                    t.done = true;
                }
                return;
            }
        };
        t.used = rendered.used;
        if !rendered.missing.is_empty() {
            let waiting: Vec<String> = rendered.missing.iter().map(ToString::to_string).collect();
            tracing::debug!(template = t.name, waiting_for = ?waiting, "rendered; waiting for data");
            return;
        }
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
                timeout: tc.command_timeout,
                options: WriteOptions {
                    perms: tc.perms,
                    backup: tc.backup,
                },
            },
        );
    }

    /// Points the source at the union of what the templates use. Returns
    /// whether that made data available at once (offline source).
    fn want_dependencies(&mut self) -> bool {
        let wanted: BTreeSet<Dependency> = self
            .templates
            .iter()
            .flat_map(|t| t.used.iter().cloned())
            .collect();
        Arc::make_mut(&mut self.snapshot).retain(|d| wanted.contains(d));
        match &mut self.source {
            Source::Consul { watchers, .. } => {
                watchers.set(&wanted);
                false
            }
            Source::File(file) => {
                let mut answered = Vec::new();
                for dependency in wanted.iter().filter(|d| self.snapshot.data(d).is_none()) {
                    match file.answer(dependency) {
                        Ok((data, rejections)) => {
                            for rejection in rejections {
                                tracing::warn!(%dependency, "{rejection}");
                            }
                            answered.push((dependency.clone(), data));
                        }
                        Err(error) => tracing::error!(%dependency, "{error}"),
                    }
                }
                let any = !answered.is_empty();
                for (dependency, data) in answered {
                    self.apply_change(dependency, data);
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
        self.applying = Some(tokio::spawn(apply::apply(jobs, self.dry)));
    }

    fn finish_pass(&mut self, report: apply::Report) {
        for (i, outcome) in &report.outcomes {
            let t = &mut self.templates[*i];
            match outcome {
                apply::Outcome::Written | apply::Outcome::Unchanged => t.done = true,
                apply::Outcome::CheckFailed(error) | apply::Outcome::WriteFailed(error) => {
                    if self.once {
                        t.done = true;
                        self.failures.push(format!("{}: {error}", t.name));
                    }
                }
            }
        }
        if self.once {
            self.failures
                .extend(report.command_failures.iter().cloned());
        }
        if self.templates.iter().all(|t| t.done) {
            self.save_catalog_once();
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

    /// SIGHUP: re-reads every template source. A template that no longer
    /// parses keeps its previous version.
    fn reload_templates(&mut self) {
        let now = Instant::now();
        for t in &mut self.templates {
            match load_template(&t.config.source) {
                Ok(template) => {
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
        tracing::info!("templates reloaded");
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
        self.once
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

fn load_template(path: &Path) -> Result<Template, RunError> {
    let source = std::fs::read_to_string(path).map_err(|source| RunError::ReadTemplate {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Template::parse(&path.display().to_string(), &source)?)
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

async fn wait_for(task: &mut Option<JoinHandle<apply::Report>>) -> apply::Report {
    match task {
        Some(handle) => handle.await.unwrap_or_else(|error| {
            tracing::error!("apply pass failed: {error}");
            apply::Report {
                command_failures: vec![error.to_string()],
                ..apply::Report::default()
            }
        }),
        None => std::future::pending().await,
    }
}

/// The signals the runner reacts to.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

/// SIGINT or SIGTERM: both stop cleanly (consul-template ignores SIGTERM by
/// default; supervisors send it).
async fn stop_requested(interrupt: &mut Signal, terminate: &mut Signal) -> &'static str {
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// How long a stop may wait for an apply pass in flight (a reload command
/// half-way through) before leaving it.
const STOP_GRACE: Duration = Duration::from_secs(5);
