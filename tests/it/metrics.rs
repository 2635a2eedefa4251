//! `/metrics` and `/health` over real HTTP, read after real events: a key
//! that does not exist yet, a check that refuses a render, Consul
//! dropping out behind a fault-injecting proxy, and an ACL policy that
//! stops covering one template's key. Each step is checked in both: the
//! health answer an orchestrator acts on, and the counters an operator
//! graphs. Every counter and gauge is asserted after the event it counts:
//! renders, writes and reloads against a real nginx, Consul's requests
//! and retries against faults an HTTP proxy injects and refused
//! connections. (Reloads by signal: `supervise.rs`; rollbacks:
//! `reloads.rs`.)

use std::time::Duration;

use testbed::{
    AgentOptions, ConsulAgent, Fault, FaultProxy, HttpFaultProxy, Instance, Nginx, TlsFiles,
    free_port, http_get, wait_until,
};

use crate::support::{Daemon, Render, wait_for_answer, wait_for_file, write};

const T: Duration = Duration::from_secs(20);

/// The sum of every sample of `name` whose labels contain `labels`
/// (`""` for all); `None` if there is no such sample.
pub(crate) fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
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
        let (_, json) = wait_for_answer(
            &format!("/health {status} {reason:?}"),
            T,
            || self.health(),
            |(got, json)| *got == status && json["reasons"].to_string().contains(reason),
        );
        json
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

/// What the apply passes so far add up to, from one scrape.
#[derive(Debug, PartialEq)]
struct Passes {
    renders: f64,
    writes: f64,
    unchanged: f64,
    write_failures: f64,
    reloads: f64,
    /// `None` until a reload has failed: a family has no series before.
    reload_failures: Option<f64>,
    /// Reloads timed by `reload_duration_seconds` (`_count`).
    timed: f64,
}

impl Passes {
    fn scrape(endpoints: &Endpoints) -> Passes {
        let text = endpoints.metrics();
        let get = |name: &str, labels: &str| {
            sample(&text, name, labels)
                .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
        };
        Passes {
            renders: get("consul_render_renders_total", ""),
            writes: get("consul_render_writes_total", ""),
            unchanged: get("consul_render_unchanged_renders_total", ""),
            write_failures: get("consul_render_write_failures_total", ""),
            reloads: get("consul_render_reloads_total", "via=\"command\""),
            reload_failures: sample(
                &text,
                "consul_render_reload_failures_total",
                "via=\"command\"",
            ),
            timed: get("consul_render_reload_duration_seconds_count", ""),
        }
    }

    /// Waits until `done` holds for a scrape and returns that scrape.
    fn wait_for(endpoints: &Endpoints, what: &str, done: impl Fn(&Passes) -> bool) -> Passes {
        wait_for_answer(what, T, || Passes::scrape(endpoints), done)
    }
}

/// Each counter of an apply pass after the event it counts, with a real
/// nginx reloaded by `nginx -s reload` and Consul over HTTPS (so one
/// HTTP/2 lane and no HTTP/1.1 connection): the first write and its
/// reload, a change under the watched prefix that renders the same bytes,
/// a reload nginx refuses (its pid file is gone) that the next, unchanged,
/// render runs again, and a destination whose directory became a file.
/// nginx's own log confirms every reload counted as done.
#[test]
fn counters_follow_writes_unchanged_renders_reloads_and_a_destination_that_cannot_be_written() {
    let tls = TlsFiles::generate();
    let consul = ConsulAgent::dev_with(AgentOptions::new().https(&tls));
    consul.kv_put("app/a", "1");
    consul.kv_put("app/b", "1");
    let nginx = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:{}; return 204; }}\n",
        free_port()
    ));
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.tera");
    // The whole prefix is watched; only app/a reaches the file, as an
    // nginx comment.
    write(
        &template,
        "{% for p in tree(prefix=\"app\") %}{% if p.key == \"a\" %}# a={{ p.value }}\n{% endif %}{% endfor %}",
    );
    // The destination sits in a directory of its own (so that it can be
    // made a file), included by nginx.
    let conf = dir.path().join("conf");
    let out = conf.join("app.conf");
    write(
        &nginx.conf_d().join("app.conf"),
        &format!("include {};\n", out.display()),
    );
    let pid_file = nginx.prefix().join("nginx.pid");
    let pid_file_away = nginx.prefix().join("nginx.pid.away");
    // The sleep puts every reload past the histogram's 0.16 s bucket.
    let reload = format!("sleep 0.2 && nginx {} -s reload", nginx.args().join(" "));
    let port = free_port();
    let mut daemon = Daemon::start(
        &[
            &format!(
                "-consul-addr=https://127.0.0.1:{}",
                consul.https_port().expect("https port")
            ),
            &format!("-consul-ssl-ca-cert={}", tls.ca_file().display()),
            &format!("-metrics-addr=127.0.0.1:{port}"),
            &format!(
                "-template={}:{}:{reload}",
                template.display(),
                out.display()
            ),
        ],
        &[],
    );
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };

    // The first write, and its reload. Two renders: one that found the
    // data missing, one with it.
    wait_for_file(&out, "a=1", T, |c| c == "# a=1\n");
    let passes = Passes::wait_for(&endpoints, "the first reload to end", |p| p.timed == 1.0);
    assert_eq!(
        passes,
        Passes {
            renders: 2.0,
            writes: 1.0,
            unchanged: 0.0,
            write_failures: 0.0,
            reloads: 1.0,
            reload_failures: None,
            timed: 1.0,
        }
    );
    nginx.wait_for_reloads(1, T);
    assert_eq!(endpoints.metric("consul_render_http2_lanes", ""), 1.0);
    assert_eq!(endpoints.metric("consul_render_http1_connections", ""), 0.0);
    assert_eq!(
        endpoints.metric("consul_render_watched_dependencies", ""),
        1.0
    );
    assert_eq!(endpoints.metric("consul_render_signal_mode", ""), 0.0);

    // A key the file does not show changes: rendered, nothing written,
    // no reload.
    consul.kv_put("app/b", "2");
    let passes = Passes::wait_for(&endpoints, "an unchanged render", |p| p.unchanged == 1.0);
    assert_eq!(
        passes,
        Passes {
            renders: 3.0,
            writes: 1.0,
            unchanged: 1.0,
            write_failures: 0.0,
            reloads: 1.0,
            reload_failures: None,
            timed: 1.0,
        }
    );

    // nginx's pid file is gone, so `nginx -s reload` fails: counted as a
    // reload and a failure, not timed, and nginx reloaded nothing.
    std::fs::rename(&pid_file, &pid_file_away).unwrap();
    consul.kv_put("app/a", "2");
    wait_for_file(&out, "a=2", T, |c| c == "# a=2\n");
    let passes = Passes::wait_for(&endpoints, "the reload to fail", |p| {
        p.reload_failures.is_some()
    });
    assert_eq!(
        passes,
        Passes {
            renders: 4.0,
            writes: 2.0,
            unchanged: 1.0,
            write_failures: 0.0,
            reloads: 2.0,
            reload_failures: Some(1.0),
            timed: 1.0,
        }
    );
    daemon.wait_for_log("command failed", 1, T);
    assert_eq!(nginx.reload_count(), 1, "{}", nginx.error_log());

    // The next render is unchanged, but the failed reload is run again,
    // and now nginx takes it.
    std::fs::rename(&pid_file_away, &pid_file).unwrap();
    consul.kv_put("app/b", "3");
    let passes = Passes::wait_for(&endpoints, "the reload run again", |p| p.timed == 2.0);
    assert_eq!(
        passes,
        Passes {
            renders: 5.0,
            writes: 2.0,
            unchanged: 2.0,
            write_failures: 0.0,
            reloads: 3.0,
            reload_failures: Some(1.0),
            timed: 2.0,
        }
    );
    nginx.wait_for_reloads(2, T);
    let text = endpoints.metrics();
    let bucket = |le: &str| {
        sample(
            &text,
            "consul_render_reload_duration_seconds_bucket",
            &format!("le=\"{le}\""),
        )
        .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
    };
    assert_eq!(bucket("0.16"), 0.0, "each reload slept 0.2 s");
    assert_eq!(bucket("+Inf"), 2.0);
    let sum = sample(&text, "consul_render_reload_duration_seconds_sum", "").unwrap();
    assert!(sum >= 0.4, "two reloads of 0.2 s at least: {sum}");

    // The destination's directory is now a file: the write fails, nothing
    // is reloaded, and health says the latest render was not applied.
    std::fs::remove_dir_all(&conf).unwrap();
    std::fs::write(&conf, "").unwrap();
    consul.kv_put("app/a", "3");
    let passes = Passes::wait_for(&endpoints, "the write to fail", |p| p.write_failures == 1.0);
    assert_eq!(
        passes,
        Passes {
            renders: 6.0,
            writes: 2.0,
            unchanged: 2.0,
            write_failures: 1.0,
            reloads: 3.0,
            reload_failures: Some(1.0),
            timed: 2.0,
        }
    );
    endpoints.wait_for_health(503, "the latest render was not applied");

    // A directory again: the next change is written and reloaded.
    std::fs::remove_file(&conf).unwrap();
    std::fs::create_dir(&conf).unwrap();
    consul.kv_put("app/a", "4");
    wait_for_file(&out, "a=4", T, |c| c == "# a=4\n");
    let passes = Passes::wait_for(&endpoints, "the last reload to end", |p| p.timed == 3.0);
    assert_eq!(
        passes,
        Passes {
            renders: 7.0,
            writes: 3.0,
            unchanged: 2.0,
            write_failures: 1.0,
            reloads: 4.0,
            reload_failures: Some(1.0),
            timed: 3.0,
        }
    );
    // Three reloads succeeded, and nginx handled exactly three.
    nginx.wait_for_reloads(3, T);
    assert_eq!(nginx.reload_count(), 3, "{}", nginx.error_log());
    endpoints.wait_for_health(200, "");
    // The first read, then one answer per change: six, all over the one lane.
    assert_eq!(
        endpoints.metric(
            "consul_render_consul_requests_total",
            "endpoint=\"kv\",status=\"200\""
        ),
        6.0
    );
    assert_eq!(
        endpoints.metric("consul_render_consul_requests_total", ""),
        6.0
    );
    assert_eq!(endpoints.metric("consul_render_http2_lanes", ""), 1.0);
    assert_eq!(endpoints.metric("consul_render_http1_connections", ""), 0.0);
    daemon.assert_running();
}

/// The sum of every `consul_requests_total` series.
fn requests_total(text: &str) -> f64 {
    sample(text, "consul_render_consul_requests_total", "").unwrap_or(0.0)
}

/// Consul's requests and retries by endpoint and status, refused values and
/// holds, through an HTTP proxy that answers with faults on demand: a
/// hostile tag, a 500, dropped connections while an instance leaves, and a
/// garbled body. Every request the proxy saw is counted once.
#[test]
fn consul_requests_retries_rejected_values_and_holds_follow_faults() {
    let consul = ConsulAgent::dev();
    consul.register(&Instance::new("web", "w1").address("10.0.0.1").port(80));
    // A tag that is no nginx token: dropped from the data, counted. Each
    // reply holds it twice, on the instance and on its check (Consul
    // copies the service's tags to the check), and both are refused.
    consul.register(
        &Instance::new("web", "w2")
            .address("10.0.0.2")
            .port(80)
            .tags(&["a b"]),
    );
    consul.kv_put("app/a", "1");
    let proxy = HttpFaultProxy::start(&consul.http_addr());
    let port = free_port();
    let render = Render::new(
        proxy.addr(),
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}\n{% endfor %}a={{ key(path=\"app/a\") }}\n",
    )
    .flag(&format!("-metrics-addr=127.0.0.1:{port}"))
    .flag("-consul-retry-max-backoff=500ms");
    let mut daemon = render.start();
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    let requests = |endpoint: &str, status: &str| {
        sample(
            &endpoints.metrics(),
            "consul_render_consul_requests_total",
            &format!("endpoint=\"{endpoint}\",status=\"{status}\""),
        )
    };
    let retries = |endpoint: &str| {
        sample(
            &endpoints.metrics(),
            "consul_render_consul_retries_total",
            &format!("endpoint=\"{endpoint}\""),
        )
    };
    // Quiet: both blocking queries wait at the proxy, and every other
    // request it saw has been counted.
    let settled = || {
        wait_until("both watches to block, every request counted", T, || {
            let text = endpoints.metrics();
            sample(&text, "consul_render_http1_connections", "") == Some(2.0)
                && requests_total(&text) + 2.0 == proxy.requests() as f64
        });
    };

    wait_for_file(&render.out(), "both instances and the key", T, |c| {
        c == "10.0.0.1:80\n10.0.0.2:80\na=1\n"
    });
    settled();
    assert_eq!(requests("health/service", "200"), Some(1.0));
    assert_eq!(requests("kv", "200"), Some(1.0));
    assert_eq!(requests_total(&endpoints.metrics()), 2.0);
    assert_eq!(retries("kv"), None);
    assert_eq!(endpoints.metric("consul_render_http2_lanes", ""), 0.0);
    assert_eq!(
        endpoints.metric("consul_render_rejected_values_total", ""),
        2.0,
        "{}",
        daemon.log()
    );
    assert_eq!(endpoints.metric("consul_render_holds_total", ""), 0.0);

    // Another instance: the reply that brings it refuses both copies again.
    consul.register(&Instance::new("web", "w3").address("10.0.0.3").port(80));
    wait_for_file(&render.out(), "the third instance", T, |c| {
        c.contains("10.0.0.3:80")
    });
    settled();
    assert_eq!(requests("health/service", "200"), Some(2.0));
    assert_eq!(
        endpoints.metric("consul_render_rejected_values_total", ""),
        4.0,
        "{}",
        daemon.log()
    );

    // The agent answers 500: every such answer is a retry of its endpoint.
    proxy.set_fault(Some(Fault::Status(500, "boom".to_owned())));
    consul.kv_put("app/a", "2");
    endpoints.wait_for_health(503, "Consul unreachable");
    assert_eq!(endpoints.metric("consul_render_consul_reachable", ""), 0.0);
    proxy.set_fault(None);
    wait_for_file(&render.out(), "a=2", T, |c| c.ends_with("a=2\n"));
    endpoints.wait_for_health(200, "");
    settled();
    let five_hundreds = requests("kv", "500").expect("kv answered 500");
    assert!(five_hundreds >= 1.0);
    assert_eq!(retries("kv"), Some(five_hundreds));
    assert_eq!(requests("kv", "200"), Some(2.0));
    assert_eq!(requests("health/service", "200"), Some(2.0));
    assert_eq!(retries("health/service"), None);

    // Connections dropped while w3 leaves: counted as `error`, retried;
    // back, Consul has fewer entries and they are held back.
    proxy.set_fault(Some(Fault::Drop));
    consul.deregister("w3");
    endpoints.wait_for_health(503, "Consul unreachable");
    proxy.set_fault(None);
    endpoints.wait_for_health(503, "held back");
    settled();
    let errors = requests("health/service", "error").expect("dropped health reads");
    assert!(errors >= 1.0);
    assert_eq!(retries("health/service"), Some(errors));
    assert_eq!(endpoints.metric("consul_render_holds_total", ""), 1.0);
    assert!(
        std::fs::read_to_string(render.out())
            .unwrap()
            .contains("10.0.0.3:80")
    );
    // It comes back: caught up, nothing more held.
    consul.register(&Instance::new("web", "w3").address("10.0.0.3").port(80));
    endpoints.wait_for_health(200, "");
    assert_eq!(endpoints.metric("consul_render_holds_total", ""), 1.0);

    // A garbled body under a 200: a read that fails, yet counted as a 200
    // and no retry; only the data age tells.
    settled();
    let (before_200, before_retries) = (requests("kv", "200"), retries("kv"));
    proxy.set_fault(Some(Fault::Body("not json".to_owned())));
    consul.kv_put("app/a", "3");
    endpoints.wait_for_health(503, "reads from Consul fail");
    daemon.wait_for_log("could not decode consul's reply", 1, T);
    proxy.set_fault(None);
    wait_for_file(&render.out(), "a=3", T, |c| c.ends_with("a=3\n"));
    endpoints.wait_for_health(200, "");
    settled();
    assert!(requests("kv", "200") > before_200.map(|n| n + 1.0));
    assert_eq!(retries("kv"), before_retries);
    assert_eq!(requests("kv", "error"), None);
    daemon.assert_running();
}

/// Nothing listens where Consul is expected (toxiproxy's listener is
/// closed, so each connection is refused): every attempt is a request
/// counted with status `error` and a retry of its endpoint, and the outage
/// gauges say so. Once it listens, the read is a 200 and the errors stop.
#[test]
fn refused_connections_count_as_error_requests_and_retries() {
    let consul = ConsulAgent::dev();
    consul.kv_put("app/a", "1");
    let proxy = FaultProxy::start(&consul.http_addr());
    proxy.set_enabled(false);
    let port = free_port();
    let render = Render::new(&proxy.listen_addr(), "a={{ key(path=\"app/a\") }}\n")
        .flag(&format!("-metrics-addr=127.0.0.1:{port}"))
        .flag("-consul-retry-backoff=50ms")
        .flag("-consul-retry-max-backoff=200ms");
    let mut daemon = render.start();
    let endpoints = Endpoints {
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_until("the metrics server to answer", T, || {
        daemon.assert_running();
        http_get(&format!("{}/metrics", endpoints.base)).is_ok()
    });
    let errors = |text: &str| {
        sample(
            text,
            "consul_render_consul_requests_total",
            "status=\"error\"",
        )
        .unwrap_or(0.0)
    };
    let retries =
        |text: &str| sample(text, "consul_render_consul_retries_total", "").unwrap_or(0.0);

    // Refused, again and again: each attempt an error and a retry, and no
    // other answer. (One scrape may fall between a retry's count and its
    // request's: wait for a scrape that has both.)
    wait_until("refused attempts, each counted twice", T, || {
        let text = endpoints.metrics();
        errors(&text) >= 3.0
            && retries(&text) == errors(&text)
            && requests_total(&text) == errors(&text)
    });
    daemon.wait_for_log("Connection refused", 1, T);
    let text = endpoints.metrics();
    assert_eq!(
        sample(&text, "consul_render_consul_reachable", ""),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "consul_render_consul_requests_total",
            "status=\"200\""
        ),
        None,
        "{text}"
    );
    let outage = || endpoints.metric("consul_render_consul_unreachable_seconds", "");
    let first = outage();
    wait_until("the outage to last longer", T, || outage() > first);
    let seen = errors(&endpoints.metrics());
    wait_until("errors to keep growing", T, || {
        errors(&endpoints.metrics()) > seen
    });
    endpoints.wait_for_health(503, "Consul unreachable");

    // Listening again: the read answers 200 and the file is rendered.
    proxy.set_enabled(true);
    wait_for_file(&render.out(), "a=1", T, |c| c == "a=1\n");
    endpoints.wait_for_health(200, "");
    let text = endpoints.metrics();
    let (errors_then, retries_then) = (errors(&text), retries(&text));
    assert_eq!(retries_then, errors_then, "{text}");
    assert_eq!(
        sample(
            &text,
            "consul_render_consul_requests_total",
            "endpoint=\"kv\",status=\"200\""
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "consul_render_consul_reachable", ""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "consul_render_consul_unreachable_seconds", ""),
        Some(0.0),
        "{text}"
    );
    // A change over the restored connection: one more 200, no error more.
    consul.kv_put("app/a", "2");
    wait_for_file(&render.out(), "a=2", T, |c| c == "a=2\n");
    wait_until("the change's answer to be counted", T, || {
        sample(
            &endpoints.metrics(),
            "consul_render_consul_requests_total",
            "endpoint=\"kv\",status=\"200\"",
        ) == Some(2.0)
    });
    let text = endpoints.metrics();
    assert_eq!(errors(&text), errors_then, "{text}");
    assert_eq!(retries(&text), retries_then, "{text}");
    daemon.assert_running();
}
