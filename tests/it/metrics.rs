//! `/metrics` and `/health` over real HTTP, read after real events: a key
//! that does not exist yet, a check that refuses a render, and Consul
//! dropping out behind a fault-injecting proxy. Each step is checked in
//! both: the health answer an orchestrator acts on, and the counters an
//! operator graphs.

use std::time::Duration;

use testbed::{ConsulAgent, FaultProxy, free_port, http_get, wait_until};

use crate::support::{Render, wait_for_file};

const T: Duration = Duration::from_secs(20);

/// The sum of every sample of `name` whose labels contain `labels`
/// (`""` for all); `None` if there is no such sample.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_set, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            label_set.contains(labels).then(|| value.parse().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

struct Endpoints {
    base: String,
}

impl Endpoints {
    fn metrics(&self) -> String {
        let (status, body) = http_get(&format!("{}/metrics", self.base)).expect("GET /metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.metrics();
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    }

    /// `(status, body)` of `/health`.
    fn health(&self) -> (u16, serde_json::Value) {
        let (status, body) = http_get(&format!("{}/health", self.base)).expect("GET /health");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }

    /// Waits until `/health` answers `status` with a reason containing
    /// `reason` (any answer when `reason` is empty).
    fn wait_for_health(&self, status: u16, reason: &str) -> serde_json::Value {
        let mut last = None;
        wait_until(&format!("/health {status} {reason:?}"), T, || {
            let (got, json) = self.health();
            let reasons = json["reasons"].to_string();
            let matched = got == status && reasons.contains(reason);
            last = Some(json);
            matched
        });
        last.expect("one answer at least")
    }
}

#[test]
fn health_and_metrics_follow_a_missing_key_a_refused_check_and_an_outage() {
    let consul = ConsulAgent::dev();
    let proxy = FaultProxy::start(&consul.http_addr());
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let refuse = dir.path().join("refuse");
    let render = Render::new(&proxy.listen_addr(), "v={{ key(path=\"late\") }}\n")
        .flag(&format!("-metrics-addr=127.0.0.1:{port}"))
        .flag(&format!("-check=test ! -e {}", refuse.display()))
        .flag("-block-wait=2s");
    let mut daemon = render.start();
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_until("the metrics server to answer", T, || {
        http_get(&format!("{}/metrics", endpoints.base)).is_ok()
    });

    // Nothing rendered yet: unhealthy, and says why.
    let health = endpoints.wait_for_health(503, "not rendered yet");
    assert_eq!(health["healthy"], false, "{health}");
    assert_eq!(endpoints.metric("consul_render_writes_total", ""), 0.0);
    assert_eq!(
        endpoints.metric("consul_render_watched_dependencies", ""),
        1.0
    );

    // The key arrives: written once, healthy.
    consul.kv_put("late", "here");
    wait_for_file(&render.out(), "the key", T, |c| c == "v=here\n");
    let health = endpoints.wait_for_health(200, "");
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["reasons"], serde_json::json!([]), "{health}");
    assert_eq!(endpoints.metric("consul_render_writes_total", ""), 1.0);
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 1.0);
    assert!(
        endpoints.metric(
            "consul_render_consul_requests_total",
            "endpoint=\"kv\",status=\"200\""
        ) >= 1.0
    );
    assert!(
        endpoints.metric(
            "consul_render_template_last_good_render_timestamp_seconds",
            ""
        ) > 1.7e9
    );

    // The check refuses the next render: the last good file stays, and
    // health says which template and why.
    std::fs::write(&refuse, "").unwrap();
    consul.kv_put("late", "there");
    daemon.wait_for_log("check failed", 1, T);
    endpoints.wait_for_health(503, "the latest render was not applied");
    assert_eq!(
        endpoints.metric("consul_render_check_failures_total", ""),
        1.0
    );
    assert_eq!(std::fs::read_to_string(render.out()).unwrap(), "v=here\n");

    // The check passes again with the next change.
    std::fs::remove_file(&refuse).unwrap();
    consul.kv_put("late", "back");
    wait_for_file(&render.out(), "the next key", T, |c| c == "v=back\n");
    endpoints.wait_for_health(200, "");
    assert_eq!(endpoints.metric("consul_render_writes_total", ""), 2.0);

    // Consul drops out: still serving, but unhealthy and counted.
    proxy.set_enabled(false);
    endpoints.wait_for_health(503, "Consul unreachable");
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 0.0);
    assert!(endpoints.metric("consul_render_consul_retries_total", "") >= 1.0);
    proxy.set_enabled(true);
    endpoints.wait_for_health(200, "");
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 1.0);
    daemon.assert_running();
}

#[test]
fn the_sample_reader_sums_labelled_series_and_skips_comments() {
    let text = "# HELP x_total X\n# TYPE x_total counter\nx_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"2\"} 4\nxy_total 9\ng 1.5\n";
    assert_eq!(sample(text, "x_total", ""), Some(7.0));
    assert_eq!(sample(text, "x_total", "a=\"1\""), Some(3.0));
    assert_eq!(sample(text, "g", ""), Some(1.5));
    assert_eq!(sample(text, "x_total", "c=\"1\""), None);
}
