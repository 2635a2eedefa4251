//! `/metrics` and `/health` over real HTTP, read after real events: a key
//! that does not exist yet, a check that refuses a render, Consul
//! dropping out behind a fault-injecting proxy, and an ACL policy that
//! stops covering one template's key. Each step is checked in both: the
//! health answer an orchestrator acts on, and the counters an operator
//! graphs.

use std::time::Duration;

use testbed::{AgentOptions, ConsulAgent, FaultProxy, Instance, free_port, http_get, wait_until};

use crate::support::{Daemon, Render, wait_for_file, write};

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

    // Consul drops out: still serving, but unhealthy and counted, and
    // the data behind the template ages from the moment its watch failed.
    let age = || endpoints.metric("consul_render_template_data_age_seconds", "");
    assert_eq!(age(), 0.0);
    proxy.set_enabled(false);
    endpoints.wait_for_health(503, "Consul unreachable");
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 0.0);
    assert!(endpoints.metric("consul_render_consul_retries_total", "") >= 1.0);
    endpoints.wait_for_health(503, "its data may be");
    let first = age();
    wait_until("the data age to grow", T, || age() > first);
    proxy.set_enabled(true);
    endpoints.wait_for_health(200, "");
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 1.0);
    assert_eq!(age(), 0.0, "nothing changed meanwhile: current again");
    daemon.assert_running();
}

#[test]
fn in_signal_mode_an_outage_ages_every_signalled_service_and_recovery_ends_it() {
    let consul = ConsulAgent::dev();
    for (i, service) in ["a", "b", "c"].iter().enumerate() {
        consul.register(
            &Instance::new(service, &format!("{service}1"))
                .address(&format!("10.0.0.{}", i + 1))
                .port(80),
        );
    }
    let proxy = FaultProxy::start(&consul.http_addr());
    let port = free_port();
    let render = Render::new(
        &proxy.listen_addr(),
        "{% for s in [\"a\", \"b\", \"c\"] %}{% for i in service(name=s) %}{{ i.endpoint }}\n{% endfor %}{% endfor %}",
    )
    .flag(&format!("-metrics-addr=127.0.0.1:{port}"))
    // Room for two long polls: three services go through the signals.
    .flag("-consul-max-connections=4")
    .flag("-block-wait=2s");
    let mut daemon = render.start();
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    let age = || endpoints.metric("consul_render_template_data_age_seconds", "");
    wait_for_file(&render.out(), "three services", T, |c| {
        c.lines().count() == 3
    });
    daemon.wait_for_log("catalog-wide signals", 1, T);
    endpoints.wait_for_health(200, "");
    assert_eq!(endpoints.metric("consul_render_signal_mode", ""), 1.0);
    assert_eq!(age(), 0.0);

    proxy.set_enabled(false);
    endpoints.wait_for_health(503, "its data may be");
    let first = age();
    wait_until("the data age to grow", T, || age() > first);

    // Back, with a change made meanwhile: it lands, and the age ends.
    consul.register(&Instance::new("b", "b2").address("10.0.0.9").port(80));
    proxy.set_enabled(true);
    wait_for_file(&render.out(), "the change made during the outage", T, |c| {
        c.contains("10.0.0.9:80")
    });
    endpoints.wait_for_health(200, "");
    wait_until("the data age to end", T, || age() == 0.0);
    daemon.assert_running();
}

const MANAGEMENT: &str = "9b7e2d41-5c3a-4f08-8e6d-management01";

/// The ACL rules of the templates' token: `app/`, and `extra/` if `extra`.
fn rules(extra: bool) -> String {
    let mut rules = r#"key_prefix "app/" { policy = "read" }"#.to_owned();
    if extra {
        rules.push_str(r#" key_prefix "extra/" { policy = "read" }"#);
    }
    rules
}

#[test]
fn data_age_is_per_template_and_counts_from_a_refused_check_or_a_refused_read() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    agent.kv_put("app/a", "1");
    agent.kv_put("extra/b", "1");
    let policy = serde_json::json!({"Name": "templates", "Rules": rules(true)});
    let policy_id = agent
        .put("/v1/acl/policy", Some(&policy.to_string()))
        .json()["ID"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = serde_json::json!({"Policies": [{"Name": "templates"}]});
    let token = agent.put("/v1/acl/token", Some(&token.to_string())).json()["SecretID"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let refuse = dir.path().join("refuse");
    let (a, b) = (dir.path().join("a.tera"), dir.path().join("b.tera"));
    write(&a, "a={{ key(path=\"app/a\") }}\n");
    write(&b, "b={{ key(path=\"extra/b\") }}\n");
    let (a_out, b_out) = (dir.path().join("a.out"), dir.path().join("b.out"));
    let port = free_port();
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", agent.http_addr()),
            &format!("-metrics-addr=127.0.0.1:{port}"),
            &format!("-check=test ! -e {}", refuse.display()),
            // Consul answers a blocking query with the rights its token
            // had when the query began: short waits let a policy change bite.
            "-block-wait=1s",
            "-consul-retry-max-backoff=500ms",
            &format!("-template={}:{}", a.display(), a_out.display()),
            &format!("-template={}:{}", b.display(), b_out.display()),
        ],
        &[("CONSUL_HTTP_TOKEN", &token)],
    );
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    let age = |template: &std::path::Path| {
        endpoints.metric(
            "consul_render_template_data_age_seconds",
            &format!("template=\"{}\"", template.display()),
        )
    };
    wait_for_file(&a_out, "a", T, |c| c == "a=1\n");
    wait_for_file(&b_out, "b", T, |c| c == "b=1\n");
    endpoints.wait_for_health(200, "");
    assert_eq!(age(&a), 0.0, "live watches, everything applied");
    assert_eq!(age(&b), 0.0);

    // a's check refuses its next change: a's destination falls behind
    // from that change on, b's does not.
    std::fs::write(&refuse, "").unwrap();
    agent.kv_put("app/a", "2");
    daemon.wait_for_log("check failed", 1, T);
    let first = age(&a);
    assert!(first > 0.0, "a holds a change it could not apply");
    assert_eq!(age(&b), 0.0, "b shows the latest data");
    wait_until("a's data age to grow", T, || age(&a) > first);
    let (_, health) = endpoints.health();
    assert!(
        health["templates"][0]["data_age_seconds"].as_f64().unwrap() > 0.0,
        "{health}"
    );
    assert_eq!(health["templates"][1]["data_age_seconds"], 0.0, "{health}");
    std::fs::remove_file(&refuse).unwrap();
    agent.kv_put("app/a", "3");
    wait_for_file(&a_out, "a's next change", T, |c| c == "a=3\n");
    wait_until("a to be current again", T, || age(&a) == 0.0);

    // The policy stops covering `extra/`: b's reads are refused, so its
    // data can no longer be confirmed. /health names it; a stays current.
    let narrowed = serde_json::json!({"Name": "templates", "Rules": rules(false)});
    agent.put(
        &format!("/v1/acl/policy/{policy_id}"),
        Some(&narrowed.to_string()),
    );
    daemon.wait_for_log("dependency=kv.key(extra/b)", 1, T);
    let health = endpoints.wait_for_health(503, "its data may be");
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains(&format!("{}: its data may be", b.display())),
        "{health}"
    );
    assert!(!reasons.contains(&a.display().to_string()), "{health}");
    let first = age(&b);
    assert!(first > 0.0);
    wait_until("b's data age to grow", T, || age(&b) > first);
    assert_eq!(age(&a), 0.0);
    assert_eq!(std::fs::read_to_string(&b_out).unwrap(), "b=1\n");

    // Covered again: b is current without any change to apply.
    let widened = serde_json::json!({"Name": "templates", "Rules": rules(true)});
    agent.put(
        &format!("/v1/acl/policy/{policy_id}"),
        Some(&widened.to_string()),
    );
    wait_until("b to be current again", T, || age(&b) == 0.0);
    endpoints.wait_for_health(200, "");
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

/// Two templates of one name (two inline ones, both `(dynamic)`, as
/// consul-template names them) are two series and two `/health` entries,
/// told apart by their destinations.
#[test]
fn templates_that_share_a_name_are_told_apart_by_destination() {
    let consul = ConsulAgent::dev();
    consul.kv_put("k", "v");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let config = dir.path().join("c.hcl");
    std::fs::write(
        &config,
        format!(
            "template {{\n  contents = \"1={{{{ key \\\"k\\\" }}}}\"\n  destination = \"{}\"\n}}\n\
             template {{\n  contents = \"2={{{{ key \\\"k\\\" }}}}\"\n  destination = \"{}\"\n}}\n",
            one.display(),
            two.display()
        ),
    )
    .unwrap();
    let _daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-config={}", config.display()),
            &format!("-metrics-addr=127.0.0.1:{port}"),
        ],
        &[],
    );
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_for_file(&two, "the second template", T, |c| c == "2=v");
    let health = endpoints.wait_for_health(200, "");
    let destinations: Vec<&str> = health["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["template"], "(dynamic)", "{health}");
            t["destination"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        destinations,
        [one.display().to_string(), two.display().to_string()]
    );
    for destination in [&one, &two] {
        let labels = format!(
            "template=\"(dynamic)\",destination=\"{}\"",
            destination.display()
        );
        assert!(
            endpoints.metric(
                "consul_render_template_last_good_render_timestamp_seconds",
                &labels
            ) > 1.7e9
        );
        assert_eq!(
            endpoints.metric("consul_render_template_data_age_seconds", &labels),
            0.0
        );
    }
}
