//! Proves each test-bed helper against the real programs: Consul (dev agent
//! and three-server cluster), nginx, the HTTP backend, toxiproxy, and the
//! process guard. One binary, so cargo runs all of these in parallel.

use serde_json::json;
use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testbed::{
    AgentOptions, Backend, ConsulAgent, ConsulCluster, FaultProxy, Instance, Nginx, Process,
    TlsFiles, free_port, free_ports, http_get, wait_until,
};

/// The service IDs in a /v1/health/service answer.
fn health_ids(agent: &ConsulAgent, query: &str) -> BTreeSet<String> {
    let response = agent.get(&format!("/v1/health/service/{query}"));
    assert_eq!(response.status, 200, "{query}: {}", response.body);
    response
        .json()
        .as_array()
        .expect("health answer is an array")
        .iter()
        .map(|entry| {
            entry["Service"]["ID"]
                .as_str()
                .expect("service ID")
                .to_string()
        })
        .collect()
}

/// A set of IDs, for comparisons.
fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports = free_ports(20);
    assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 20, "{ports:?}");
    let port = free_port();
    assert!(!ports.contains(&port), "{port} was handed out twice");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("a free port can be bound");
}

#[test]
#[should_panic(expected = "timed out after 50ms waiting for the impossible")]
fn wait_until_panics_with_what_it_waited_for() {
    wait_until("the impossible", Duration::from_millis(50), || false);
}

#[test]
fn process_logs_output_and_is_reaped_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "echo hello from sh; echo to stderr >&2; exec sleep 60",
    ]);
    let mut process = Process::spawn("sh", cmd, &dir.path().join("sh.log"));
    let pid = process.pid();
    wait_until("sh to write both lines", Duration::from_secs(5), || {
        process.log().contains("hello from sh\n") && process.log().contains("to stderr\n")
    });
    process.assert_running();
    drop(process);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists after drop"
    );
}

#[test]
fn health_follows_ttl_checks_maintenance_and_deregistration() {
    let agent = ConsulAgent::dev();
    let instances: Vec<Instance> = (1..=3)
        .map(|i| {
            Instance::new("web", &format!("web-{i}"))
                .address("127.0.0.1")
                .port(8000 + i)
                .tags(&["v1", "blue"])
                .meta("zone", "a")
        })
        .collect();
    for instance in &instances {
        agent.register(instance);
    }
    assert_eq!(
        health_ids(&agent, "web?passing"),
        ids(&["web-1", "web-2", "web-3"])
    );

    let entry = &agent
        .get("/v1/health/service/web?filter=Service.ID%3D%3D%22web-2%22")
        .json()[0];
    assert_eq!(entry["Service"]["Address"], "127.0.0.1");
    assert_eq!(entry["Service"]["Port"], 8002);
    assert_eq!(entry["Service"]["Tags"], json!(["v1", "blue"]));
    assert_eq!(entry["Service"]["Meta"]["zone"], "a");

    let before = agent.get("/v1/health/service/web");
    let index = |r: &testbed::Response| -> u64 {
        let value = r.header("X-Consul-Index").expect("X-Consul-Index header");
        value.parse().expect("numeric index")
    };
    assert_eq!(before.headers["x-consul-index"], index(&before).to_string());

    agent.fail(&instances[1].check_id());
    let after = agent.get("/v1/health/service/web");
    assert!(index(&after) > index(&before), "health index did not move");
    assert_eq!(health_ids(&agent, "web?passing"), ids(&["web-1", "web-3"]));
    assert_eq!(agent.healthy_count("web"), 2);

    agent.warn(&instances[2].check_id());
    assert_eq!(health_ids(&agent, "web?passing"), ids(&["web-1"]));
    assert_eq!(
        health_ids(&agent, "web"),
        ids(&["web-1", "web-2", "web-3"]),
        "unfiltered health lists every instance"
    );

    agent.pass(&instances[1].check_id());
    agent.pass(&instances[2].check_id());
    assert_eq!(agent.healthy_count("web"), 3);

    agent.maintenance("web-1", true);
    assert_eq!(health_ids(&agent, "web?passing"), ids(&["web-2", "web-3"]));
    agent.maintenance("web-1", false);
    assert_eq!(agent.healthy_count("web"), 3);

    agent.deregister("web-2");
    assert_eq!(health_ids(&agent, "web"), ids(&["web-1", "web-3"]));

    agent.register(&Instance::new("api", "api-1").no_check());
    assert_eq!(health_ids(&agent, "api?passing"), ids(&["api-1"]));
    let checks = agent.get("/v1/health/checks/api").json();
    assert_eq!(checks, json!([]), "a no_check instance has no checks");
}

#[test]
fn kv_round_trip() {
    let agent = ConsulAgent::dev();
    assert_eq!(agent.kv_get("app/config"), None);
    agent.kv_put("app/config", "listen 80;\nserver_name a b;");
    assert_eq!(
        agent.kv_get("app/config").as_deref(),
        Some("listen 80;\nserver_name a b;")
    );
    agent.kv_put("app/config", "v2");
    assert_eq!(agent.kv_get("app/config").as_deref(), Some("v2"));
    agent.kv_delete("app/config");
    assert_eq!(agent.kv_get("app/config"), None);
    assert_eq!(agent.get("/v1/kv/app/config").status, 404);
}

#[test]
fn agent_restarts_on_the_same_port_with_empty_state() {
    let mut agent = ConsulAgent::dev();
    agent.register(&Instance::new("web", "web-1"));
    agent.kv_put("k", "v");
    let (url, pid) = (agent.url(), agent.pid());
    agent.restart();
    assert_eq!(agent.url(), url);
    assert_ne!(agent.pid(), pid, "restart started a new process");
    assert_eq!(agent.healthy_count("web"), 0, "state survived the restart");
    assert_eq!(agent.kv_get("k"), None, "KV survived the restart");

    agent.stop();
    let refused = http_get(&format!("{url}/v1/status/leader"));
    assert!(refused.is_err(), "a stopped agent answered: {refused:?}");
    agent.start();
    let (status, body) = http_get(&format!("{url}/v1/status/leader")).expect("agent is back");
    assert_eq!(status, 200, "{body}");
    assert!(
        agent.log().contains("Consul agent running!"),
        "{}",
        agent.log()
    );
}

#[test]
fn agent_options_apply_hcl_and_serve_https() {
    let tls = TlsFiles::generate();
    for file in [tls.ca_file(), tls.cert_file(), tls.key_file()] {
        assert!(file.exists(), "{} missing", file.display());
    }
    let options = AgentOptions::new()
        .https(&tls)
        .hcl(r#"node_meta { rack = "r7" }"#);
    let agent = ConsulAgent::dev_with(options);
    assert_eq!(agent.get("/v1/agent/self").json()["Meta"]["rack"], "r7");

    let https_port = agent.https_port().expect("https port");
    assert_ne!(agent.url(), format!("http://127.0.0.1:{https_port}"));
    TcpStream::connect(("127.0.0.1", https_port)).expect("the HTTPS listener accepts");
    let started = format!("address=127.0.0.1:{https_port} network=tcp protocol=https");
    assert!(agent.log().contains(&started), "{}", agent.log());
    assert_eq!(ConsulAgent::dev().https_port(), None);
}

/// An nginx server block proxying `listen` to the given backends.
fn proxy_conf(listen: u16, backends: &[&Backend]) -> String {
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {};\n", b.addr()))
        .collect();
    format!(
        "upstream backends {{\n{servers}    }}\n\
         server {{\n    listen 127.0.0.1:{listen};\n    location / {{ proxy_pass http://backends; }}\n}}\n"
    )
}

#[test]
fn nginx_proxies_reloads_and_rejects_broken_config() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let port = free_port();
    let nginx = Nginx::start(&proxy_conf(port, &[&a, &b]));
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..10 {
        let (status, body) = http_get(&url).expect("request through nginx");
        assert_eq!(status, 200);
        assert!(body == "a" || body == "b", "unexpected body {body:?}");
    }
    assert!(
        a.hits() > 0 && b.hits() > 0,
        "a: {}, b: {}",
        a.hits(),
        b.hits()
    );
    assert_eq!(a.hits() + b.hits(), 10);
    assert_eq!(c.hits(), 0);
    assert_eq!(nginx.reload_count(), 0);

    std::fs::write(nginx.conf_d().join("default.conf"), proxy_conf(port, &[&c])).unwrap();
    nginx.config_test().expect("the new config is valid");
    nginx.reload().expect("reload");
    nginx.wait_for_reloads(1, Duration::from_secs(10));
    for _ in 0..10 {
        assert_eq!(http_get(&url).expect("request after reload").1, "c");
    }
    assert_eq!(c.hits(), 10);
    assert_eq!(nginx.reload_count(), 1);

    // Passes `nginx -t` (which binds nothing) but the master cannot bind c's
    // port: the master rejects the reload and the old workers keep serving.
    let clash = format!(
        "{}server {{ listen {}; }}\n",
        proxy_conf(port, &[&a]),
        c.addr()
    );
    std::fs::write(nginx.conf_d().join("default.conf"), clash).unwrap();
    nginx.config_test().expect("nginx -t does not bind");
    nginx.reload().expect("reload of a config that passes -t");
    nginx.wait_for_reloads(2, Duration::from_secs(20));
    // The master retries the bind for a few seconds before it gives up.
    wait_until(
        "nginx to give up binding the clashing port",
        Duration::from_secs(20),
        || nginx.error_log().contains("still could not bind()"),
    );
    assert_eq!(http_get(&url).expect("old workers still serve").1, "c");

    let broken = format!("server {{ listen 127.0.0.1:{port}; bogus_directive on; }}");
    std::fs::write(nginx.conf_d().join("default.conf"), broken).unwrap();
    let err = nginx
        .config_test()
        .expect_err("broken config passes nginx -t");
    assert!(
        err.contains("unknown directive \"bogus_directive\""),
        "{err}"
    );
    let err = nginx.reload().expect_err("broken config reloads");
    assert!(err.contains("unknown directive"), "{err}");
    assert_eq!(
        nginx.reload_count(),
        2,
        "a refused reload reached the master"
    );
    assert_eq!(http_get(&url).expect("old config still serves").1, "c");
    assert!(nginx.main_conf().starts_with(nginx.prefix()));
    assert!(
        nginx.error_log().contains("start worker process"),
        "{}",
        nginx.error_log()
    );
    assert!(Path::new(&format!("/proc/{}", nginx.pid())).exists());
}

#[test]
fn backend_counts_hits_and_stops_on_drop() {
    let backend = Backend::start("solo");
    assert_eq!(backend.addr(), format!("127.0.0.1:{}", backend.port()));
    assert_eq!(backend.name(), "solo");
    for n in 1..=3 {
        let (status, body) = http_get(&format!("http://{}/any", backend.addr())).unwrap();
        assert_eq!((status, body.as_str()), (200, "solo"));
        assert_eq!(backend.hits(), n);
    }
    let addr = backend.addr();
    drop(backend);
    assert!(TcpStream::connect(&addr).is_err(), "{addr} still accepts");
}

#[test]
fn cluster_elects_fails_over_and_rejoins() {
    let mut cluster = ConsulCluster::three();
    let old = cluster.leader_index();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    for i in 0..3 {
        let leader = http_get(&format!("{}/v1/status/leader", cluster.member(i).url())).unwrap();
        assert_eq!(
            leader.1,
            format!("\"{}\"", cluster.member(old).server_addr())
        );
    }

    cluster.kill(old);
    assert!(!cluster.member(old).is_running());
    let new = cluster.wait_for_new_leader(old);
    assert!(others.contains(&new), "new leader {new}, old {old}");
    assert_eq!(cluster.leader_index(), new);

    cluster.restart(old);
    assert!(cluster.member(old).is_running());
    let members = http_get(&format!("{}/v1/agent/members", cluster.member(old).url())).unwrap();
    let members: serde_json::Value = serde_json::from_str(&members.1).unwrap();
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
    let peers = http_get(&format!("{}/v1/status/peers", cluster.member(new).url())).unwrap();
    let peers: serde_json::Value = serde_json::from_str(&peers.1).unwrap();
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers}");
    let log = cluster.member(old).log();
    assert_eq!(log.matches("Join cluster completed").count(), 2, "{log}");
}

/// The shortest of three timed GETs of `url`.
fn fastest_get(url: &str) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let (status, body) = http_get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
            assert_eq!(status, 200, "{body}");
            start.elapsed()
        })
        .min()
        .expect("three timings")
}

#[test]
fn fault_proxy_delays_resets_and_disables() {
    let agent = ConsulAgent::dev();
    let proxy = FaultProxy::start(&agent.http_addr());
    assert_eq!(proxy.url(), format!("http://{}", proxy.listen_addr()));
    let url = format!("{}/v1/status/leader", proxy.url());
    let baseline = fastest_get(&url);

    proxy.add_toxic("slow", "latency", "downstream", json!({"latency": 300}));
    let slowed = fastest_get(&url);
    assert!(
        slowed >= Duration::from_millis(290),
        "with latency: {slowed:?}"
    );
    proxy.remove_toxic("slow");
    let restored = fastest_get(&url);
    assert!(
        restored < Duration::from_millis(250),
        "after removing latency: {restored:?} (baseline {baseline:?})"
    );

    proxy.add_toxic("reset", "reset_peer", "upstream", json!({"timeout": 0}));
    let reset = http_get(&url);
    assert!(
        reset.is_err(),
        "reset_peer let a request through: {reset:?}"
    );
    proxy.remove_toxic("reset");

    proxy.set_enabled(false);
    let refused = http_get(&url);
    assert!(refused.is_err(), "a disabled proxy answered: {refused:?}");
    proxy.set_enabled(true);
    fastest_get(&url);
    assert!(proxy.log().contains("slow"), "{}", proxy.log());
}
