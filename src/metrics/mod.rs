//! What consul-render did and how it stands, for people and for Prometheus:
//! the counters every module bumps (renders, writes, checks, reloads,
//! Consul requests), the gauges read when scraped, and the health of each
//! template (rendered? last check passed? nginx took the last reload?).
//!
//! The runner, the apply task and the transport share one [`Metrics`];
//! [`server`] serves it as `/metrics` and `/health` when `-metrics-addr`
//! asks for it, and [`Metrics::log`] writes the counters on SIGUSR1 and at
//! exit either way.

pub mod server;

use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// A Consul request's endpoint (`health/service`, never the service name:
/// the label's values stay few) and how it ended (`200`, `404`, `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

/// One template, as metrics and `/health` tell it: its name (the source
/// path, or `(dynamic)` for inline text) and its destination, which two
/// templates never share while two may share a name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateLabels {
    pub template: String,
    pub destination: String,
}

/// How a reload is made: a command, or the supervised child's signal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub via: String,
}

/// A part that reports its live state (connections, outage) when metrics
/// or health are read, rather than on every change.
pub trait Sampled: Send + Sync {
    fn sample(&self, metrics: &Metrics);
}

/// The shared counters and the health they add up to.
pub struct Metrics {
    registry: Registry,
    pub renders: Counter,
    pub writes: Counter,
    /// Complete renders whose text the destination already held.
    pub unchanged: Counter,
    pub check_failures: Counter,
    pub write_failures: Counter,
    pub reloads: Family<ReloadLabels, Counter>,
    pub reload_failures: Family<ReloadLabels, Counter>,
    pub reload_seconds: Histogram,
    /// Reloads nginx did not take (it logged `[emerg]`, or kept its old
    /// workers).
    pub reload_rollbacks: Counter,
    /// Values from Consul that validation kept out of the data.
    pub rejected_values: Counter,
    /// Times data that lost entries after an outage or reset was held back.
    pub holds: Counter,
    pub consul_requests: Family<RequestLabels, Counter>,
    /// Requests that found the agent unreachable and will be retried.
    pub consul_retries: Family<EndpointLabels, Counter>,
    pub watched_dependencies: Gauge,
    /// Blocking queries and reads on HTTP/1.1 connections right now.
    pub http1_connections: Gauge,
    pub http2_lanes: Gauge,
    /// 1 while the agent answers, 0 during an outage.
    pub consul_reachable: Gauge,
    pub consul_unreachable_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while service watches share catalog-wide signals.
    pub signal_mode: Gauge,
    /// How far behind Consul a rendered template's destination may be:
    /// since its earliest change not applied yet (held by `-wait`, refused
    /// by its check) or since reads of the data it uses began failing; 0
    /// when it shows the latest data of live watches.
    pub template_data_age_seconds: Family<TemplateLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub template_last_good_render: Family<TemplateLabels, Gauge>,
    health: Mutex<Health>,
    samplers: Mutex<Vec<Weak<dyn Sampled>>>,
}

/// What `/health` answers from.
#[derive(Default)]
struct Health {
    templates: Vec<TemplateHealth>,
    /// Why nginx did not take the last reload; cleared when one works.
    reload_rejected: Option<String>,
    consul_unreachable: Option<Duration>,
}

#[derive(Clone, Serialize)]
pub struct TemplateHealth {
    pub template: String,
    pub destination: String,
    /// A complete render has reached the destination.
    pub rendered: bool,
    /// The last check's failure; `None` when it passed or none ran.
    pub check_failed: Option<String>,
    #[serde(skip)]
    pub last_good: Option<SystemTime>,
    /// See [`Metrics::template_data_age_seconds`]; 0 until rendered.
    pub data_age_seconds: f64,
    #[serde(skip)]
    behind: Behind,
}

/// Since when a template's destination may be behind Consul.
#[derive(Clone, Copy, Default)]
pub struct Behind {
    pub since: Option<Instant>,
    /// Why data it uses cannot be taken as current; `None` when it is only
    /// a change on its way.
    pub unconfirmed: Option<Unconfirmed>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unconfirmed {
    /// Reads of it fail (Consul unreachable, refused, garbled).
    ReadsFail,
    /// Consul came back from an outage or reset with fewer entries; the
    /// last good data is kept for `-reset-grace`.
    HeldBack,
}

impl TemplateHealth {
    fn labels(&self) -> TemplateLabels {
        TemplateLabels {
            template: self.template.clone(),
            destination: self.destination.clone(),
        }
    }

    fn data_age(&self) -> Duration {
        match self.behind.since {
            Some(since) if self.rendered => since.elapsed(),
            _ => Duration::ZERO,
        }
    }
}

/// The body of `/health`.
#[derive(Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    /// Why it is not healthy, one sentence each.
    pub reasons: Vec<String>,
    pub templates: Vec<TemplateHealth>,
}

impl Metrics {
    pub fn new(templates: &[TemplateLabels]) -> Metrics {
        let mut registry = Registry::with_prefix("consul_render");
        let metrics = Metrics {
            renders: Counter::default(),
            writes: Counter::default(),
            unchanged: Counter::default(),
            check_failures: Counter::default(),
            write_failures: Counter::default(),
            reloads: Family::default(),
            reload_failures: Family::default(),
            // 5 ms to about 20 s.
            reload_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            reload_rollbacks: Counter::default(),
            rejected_values: Counter::default(),
            holds: Counter::default(),
            consul_requests: Family::default(),
            consul_retries: Family::default(),
            watched_dependencies: Gauge::default(),
            http1_connections: Gauge::default(),
            http2_lanes: Gauge::default(),
            consul_reachable: Gauge::default(),
            consul_unreachable_seconds: Gauge::default(),
            signal_mode: Gauge::default(),
            template_data_age_seconds: Family::default(),
            template_last_good_render: Family::default(),
            health: Mutex::new(Health {
                templates: templates
                    .iter()
                    .map(|labels| TemplateHealth {
                        template: labels.template.clone(),
                        destination: labels.destination.clone(),
                        rendered: false,
                        check_failed: None,
                        last_good: None,
                        data_age_seconds: 0.0,
                        behind: Behind::default(),
                    })
                    .collect(),
                ..Health::default()
            }),
            samplers: Mutex::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        let r = &mut registry;
        r.register("renders", "Template renders", m.renders.clone());
        r.register(
            "writes",
            "Rendered files written (after their check passed)",
            m.writes.clone(),
        );
        r.register(
            "unchanged_renders",
            "Complete renders skipped because the file already held them",
            m.unchanged.clone(),
        );
        r.register(
            "check_failures",
            "Rendered files the check refused (the last good file stayed)",
            m.check_failures.clone(),
        );
        r.register(
            "write_failures",
            "Rendered files that could not be written (the last good file stayed)",
            m.write_failures.clone(),
        );
        r.register(
            "reloads",
            "Reloads: commands run, or signals sent to the supervised child",
            m.reloads.clone(),
        );
        r.register(
            "reload_failures",
            "Reload commands that failed or timed out",
            m.reload_failures.clone(),
        );
        r.register(
            "reload_duration_seconds",
            "How long reload commands ran",
            m.reload_seconds.clone(),
        );
        r.register(
            "reload_rollbacks",
            "Reloads nginx did not take (it kept its old configuration)",
            m.reload_rollbacks.clone(),
        );
        r.register(
            "rejected_values",
            "Values from Consul refused as unsafe for the config",
            m.rejected_values.clone(),
        );
        r.register(
            "holds",
            "Times data that lost entries after an outage was held back",
            m.holds.clone(),
        );
        r.register(
            "consul_requests",
            "Requests to Consul by endpoint and HTTP status (or error)",
            m.consul_requests.clone(),
        );
        r.register(
            "consul_retries",
            "Requests that found Consul unreachable and are retried with backoff",
            m.consul_retries.clone(),
        );
        r.register(
            "watched_dependencies",
            "Consul queries the templates depend on",
            m.watched_dependencies.clone(),
        );
        r.register(
            "http1_connections",
            "HTTP/1.1 connections to Consul in use",
            m.http1_connections.clone(),
        );
        r.register(
            "http2_lanes",
            "HTTP/2 connections to Consul open",
            m.http2_lanes.clone(),
        );
        r.register(
            "consul_reachable",
            "1 while the Consul agent answers, 0 during an outage",
            m.consul_reachable.clone(),
        );
        r.register(
            "consul_unreachable_seconds",
            "How long the current Consul outage has lasted (0: none)",
            m.consul_unreachable_seconds.clone(),
        );
        r.register(
            "signal_mode",
            "1 while service watches share catalog-wide signals",
            m.signal_mode.clone(),
        );
        r.register(
            "template_data_age_seconds",
            "How far behind Consul a rendered template's destination may be",
            m.template_data_age_seconds.clone(),
        );
        r.register(
            "template_last_good_render_timestamp_seconds",
            "When a template last reached its destination complete (Unix time)",
            m.template_last_good_render.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Adds one to `counter` and returns the new total, for log lines.
    pub fn bump(counter: &Counter) -> u64 {
        counter.inc() + 1
    }

    /// Has `part` report its live state before each read.
    pub fn sample_with(&self, part: Weak<dyn Sampled>) {
        self.samplers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(part);
    }

    fn sample(&self) {
        let parts: Vec<_> = self
            .samplers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for part in parts {
            part.sample(self);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.sample();
        self.refresh_ages();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn refresh_ages(&self) {
        let health = self.health();
        for t in health.templates.iter().filter(|t| t.rendered) {
            self.template_data_age_seconds
                .get_or_create(&t.labels())
                .set(t.data_age().as_secs_f64());
        }
    }

    /// Since when template `index`'s destination may be behind Consul.
    pub fn template_behind(&self, index: usize, behind: Behind) {
        if let Some(t) = self.health().templates.get_mut(index) {
            t.behind = behind;
        }
    }

    /// The outage in progress, if any, as the transport's gate sees it.
    pub fn set_consul_unreachable(&self, for_: Option<Duration>) {
        self.consul_reachable.set(i64::from(for_.is_none()));
        self.consul_unreachable_seconds
            .set(for_.unwrap_or_default().as_secs_f64());
        self.health().consul_unreachable = for_;
    }

    /// A complete render reached template `index`'s destination.
    pub fn template_rendered(&self, index: usize) {
        let now = SystemTime::now();
        let mut health = self.health();
        let Some(t) = health.templates.get_mut(index) else {
            return;
        };
        t.rendered = true;
        t.check_failed = None;
        t.last_good = Some(now);
        let labels = t.labels();
        let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.template_last_good_render
            .get_or_create(&labels)
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// Template `index`'s latest render was refused by its check or could
    /// not be written.
    pub fn template_failed(&self, index: usize, error: &str) {
        if let Some(t) = self.health().templates.get_mut(index) {
            t.check_failed = Some(error.to_owned());
        }
    }

    /// nginx did (`None`) or did not take the last reload.
    pub fn reload_verified(&self, rejected: Option<String>) {
        if rejected.is_some() {
            self.reload_rollbacks.inc();
        }
        self.health().reload_rejected = rejected;
    }

    pub fn health_report(&self) -> HealthReport {
        self.sample();
        let health = self.health();
        let mut reasons = Vec::new();
        for t in &health.templates {
            let why = match t.behind.unconfirmed {
                _ if !t.rendered => None,
                Some(Unconfirmed::ReadsFail) => Some("reads from Consul fail"),
                Some(Unconfirmed::HeldBack) => {
                    Some("Consul came back with fewer entries and they are held back")
                }
                None => None,
            };
            if let Some(why) = why {
                reasons.push(format!(
                    "{}: its data may be {} s old: {why}; serving what it had",
                    t.template,
                    t.data_age().as_secs()
                ));
            }
            match (&t.check_failed, t.rendered) {
                (Some(error), true) => reasons.push(format!(
                    "{}: the latest render was not applied; serving the last good config: {error}",
                    t.template
                )),
                (Some(error), false) => reasons.push(format!(
                    "{}: no render could be applied yet: {error}",
                    t.template
                )),
                (None, false) => reasons.push(format!(
                    "{}: not rendered yet (waiting for data from Consul)",
                    t.template
                )),
                (None, true) => {}
            }
        }
        if let Some(for_) = health.consul_unreachable {
            reasons.push(format!(
                "serving the last good config, Consul unreachable for {} s",
                for_.as_secs()
            ));
        }
        if let Some(why) = &health.reload_rejected {
            reasons.push(format!(
                "nginx did not take the last reload and serves the config before it: {why}"
            ));
        }
        HealthReport {
            healthy: reasons.is_empty(),
            reasons,
            templates: health
                .templates
                .iter()
                .map(|t| TemplateHealth {
                    data_age_seconds: t.data_age().as_secs_f64(),
                    ..t.clone()
                })
                .collect(),
        }
    }

    /// Logs every counter on one line.
    pub fn log(&self) {
        let sum = |family: &Family<ReloadLabels, Counter>| {
            ["command", "signal"]
                .iter()
                .map(|via| {
                    family
                        .get_or_create(&ReloadLabels {
                            via: (*via).to_owned(),
                        })
                        .get()
                })
                .sum::<u64>()
        };
        tracing::info!(
            renders = self.renders.get(),
            writes = self.writes.get(),
            unchanged = self.unchanged.get(),
            check_failures = self.check_failures.get(),
            write_failures = self.write_failures.get(),
            reloads = sum(&self.reloads),
            reload_failures = sum(&self.reload_failures),
            reload_rollbacks = self.reload_rollbacks.get(),
            rejected_values = self.rejected_values.get(),
            holds = self.holds.get(),
            "stats"
        );
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        // Every update leaves it consistent, even one cut short by a panic.
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The label for a Consul path: its first two segments after `/v1/`
/// (`health/service`, `kv`, `catalog/services`).
pub fn endpoint_of(path_and_query: &str) -> String {
    let path = path_and_query.split('?').next().unwrap_or("");
    let path = path.strip_prefix("/v1/").unwrap_or(path);
    let mut parts = path.split('/');
    match (parts.next(), parts.next()) {
        (Some("kv"), _) => "kv".to_owned(),
        (Some(first), Some(second)) => format!("{first}/{second}"),
        (Some(first), None) => first.to_owned(),
        (None, _) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_never_carry_names() {
        assert_eq!(
            endpoint_of("/v1/health/service/web?passing=1"),
            "health/service"
        );
        assert_eq!(endpoint_of("/v1/kv/app/config?recurse"), "kv");
        assert_eq!(endpoint_of("/v1/catalog/services"), "catalog/services");
        assert_eq!(endpoint_of("/v1/status/leader"), "status/leader");
    }

    /// Templates `names`, each rendered to its stem with `.conf`.
    fn labels(names: &[&str]) -> Vec<TemplateLabels> {
        names
            .iter()
            .map(|name| TemplateLabels {
                template: (*name).to_owned(),
                destination: name.replace(".tera", ".conf"),
            })
            .collect()
    }

    #[test]
    fn health_names_every_reason_and_clears_when_they_pass() {
        let metrics = Metrics::new(&labels(&["a.tera", "b.tera"]));
        let report = metrics.health_report();
        assert!(!report.healthy);
        assert_eq!(report.reasons.len(), 2, "{:?}", report.reasons);
        metrics.template_rendered(0);
        metrics.template_rendered(1);
        assert!(metrics.health_report().healthy);
        metrics.set_consul_unreachable(Some(Duration::from_secs(42)));
        assert_eq!(
            metrics.health_report().reasons,
            ["serving the last good config, Consul unreachable for 42 s"]
        );
        metrics.set_consul_unreachable(None);
        metrics.template_failed(1, "nginx: [emerg] bad");
        let reasons = metrics.health_report().reasons;
        assert!(
            reasons[0].starts_with("b.tera: the latest render was not applied"),
            "{reasons:?}"
        );
        metrics.template_rendered(1);
        metrics.reload_verified(Some("kept the old workers".to_owned()));
        assert_eq!(metrics.reload_rollbacks.get(), 1);
        assert!(!metrics.health_report().healthy);
        metrics.reload_verified(None);
        assert!(metrics.health_report().healthy);
    }

    #[test]
    fn data_age_counts_once_rendered_and_unconfirmed_data_is_a_reason() {
        let metrics = Metrics::new(&labels(&["a.tera", "b.tera"]));
        let an_hour_ago = Instant::now() - Duration::from_secs(3600);
        let behind = |unconfirmed| Behind {
            since: Some(an_hour_ago),
            unconfirmed,
        };
        metrics.template_behind(0, behind(Some(Unconfirmed::ReadsFail)));
        let report = metrics.health_report();
        assert_eq!(
            report.templates[0].data_age_seconds, 0.0,
            "not rendered yet"
        );
        metrics.template_rendered(0);
        metrics.template_rendered(1);
        metrics.template_behind(1, behind(None));
        let report = metrics.health_report();
        for t in &report.templates {
            assert!(t.data_age_seconds >= 3600.0, "{}", t.template);
        }
        assert_eq!(
            report.reasons,
            ["a.tera: its data may be 3600 s old: reads from Consul fail; serving what it had"],
            "a change on its way (b) is not a reason"
        );
        let text = metrics.encode();
        assert!(
            text.contains("consul_render_template_data_age_seconds{template=\"a.tera\",destination=\"a.conf\"} 3600."),
            "{text}"
        );
        metrics.template_behind(0, Behind::default());
        assert!(metrics.health_report().healthy);
        assert!(
            metrics
                .encode()
                .contains("consul_render_template_data_age_seconds{template=\"a.tera\",destination=\"a.conf\"} 0.0\n")
        );
    }

    #[test]
    fn the_exposition_names_metrics_with_the_prefix() {
        let metrics = Metrics::new(&labels(&["a.tera"]));
        Metrics::bump(&metrics.writes);
        metrics
            .consul_requests
            .get_or_create(&RequestLabels {
                endpoint: "health/service".to_owned(),
                status: "200".to_owned(),
            })
            .inc();
        let text = metrics.encode();
        assert!(text.contains("consul_render_writes_total 1\n"), "{text}");
        assert!(
            text.contains(
                "consul_render_consul_requests_total{endpoint=\"health/service\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
    }
}
