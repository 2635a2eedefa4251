//! More services than the agent's connection limit allows one query each:
//! Consul refuses a client address past 200 connections
//! (`http_max_conns_per_client`). Over plain HTTP consul-render switches to
//! catalog-wide signals; over HTTPS it multiplexes queries on a few HTTP/2
//! connections. Either way: a complete first render, changes of every kind
//! reach the file, few connections are held, and another client on the
//! same address never sees a 429. Both run against default-deny ACLs with
//! a read-only token, and the HTTPS agent also verifies client
//! certificates: the figures hold in production's configuration.

use std::collections::BTreeSet;
use std::time::Duration;

use testbed::{AgentOptions, ConsulAgent, Instance, TlsFiles, wait_until};

use crate::support::{Render, read_only_token, wait_for_file};

const T: Duration = Duration::from_secs(60);
const SERVICES: usize = 250;
/// Both agents run the way production does: ACLs on with default deny,
/// consul-render holding a read-only token.
const MANAGEMENT: &str = "5e2b7c19-3a4d-4e8f-9b61-scale0000mgmt";

/// A read-only token of `consul`'s, as a flag.
fn token_flag(consul: &ConsulAgent) -> String {
    let (_, token) = read_only_token(&|path, body| consul.put(path, Some(body)).json());
    format!("-consul-token={token}")
}

fn service(i: usize) -> String {
    format!("svc-{i:03}")
}

/// Registers `SERVICES` services with one checked instance each, from a
/// few threads (each registration waits for the catalog).
fn register_many(consul: &ConsulAgent) {
    std::thread::scope(|scope| {
        for part in 0..5 {
            scope.spawn(move || {
                for i in (part..SERVICES).step_by(5) {
                    let name = service(i);
                    consul.register(
                        &Instance::new(&name, &format!("{name}-1"))
                            .address("10.0.0.1")
                            .port(1000 + i as u16),
                    );
                }
            });
        }
    });
}

/// The instance ids in a rendered file.
fn ids(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("svc-"))
        .map(str::to_owned)
        .collect()
}

/// consul-render's established TCP connections to `port`, from /proc.
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|r| r.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 01 is ESTABLISHED.
            cols.get(3) == Some(&"01")
                && remote_port == Some(port)
                && cols.get(9).is_some_and(|i| inodes.contains(*i))
        })
        .count()
}

/// Another client on the same address holds `n` blocking queries open at
/// once; returns the statuses it got.
fn another_client_holds(addr: &str, n: usize) -> Vec<u16> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(move || {
                    let url = format!("http://{addr}/v1/catalog/datacenters");
                    testbed::http_get(&url)
                        .map(|(status, _)| status)
                        .unwrap_or(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    })
}

/// Every instance id of every service.
const ALL_INSTANCES: &str = "{% for s in services() %}{% for i in service(name=s.name) %}{{ i.id }}\n{% endfor %}{% endfor %}";

/// The changes every mode must deliver: a new checked instance, a failed
/// check, a removal, and an instance without a check (which only the index
/// sweep finds over plain HTTP).
fn changes_reach_the_file(consul: &ConsulAgent, out: &std::path::Path) {
    consul.register(
        &Instance::new(&service(100), "svc-100-2")
            .address("10.0.0.2")
            .port(2000),
    );
    wait_for_file(out, "a new instance", T, |c| ids(c).contains("svc-100-2"));
    consul.fail(&Instance::new(&service(7), "svc-007-1").check_id());
    wait_for_file(out, "a failed instance gone", T, |c| {
        !ids(c).contains("svc-007-1")
    });
    consul.deregister("svc-100-2");
    wait_for_file(out, "a removed instance gone", T, |c| {
        !ids(c).contains("svc-100-2")
    });
    consul.register(
        &Instance::new(&service(200), "svc-200-nocheck")
            .address("10.0.0.3")
            .port(3000)
            .no_check(),
    );
    wait_for_file(out, "an instance without checks", T, |c| {
        ids(c).contains("svc-200-nocheck")
    });
}

#[test]
fn more_services_than_the_connection_limit_over_plain_http() {
    let consul = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    register_many(&consul);
    let render = Render::new(&consul.http_addr(), ALL_INSTANCES)
        .flag("-log-level=debug")
        .flag(&token_flag(&consul));
    let (mut daemon, out) = (render.start(), render.out());
    wait_for_file(&out, "all services", T, |c| ids(c).len() == SERVICES);
    daemon.wait_for_log("catalog-wide signals", 1, T);
    let port: u16 = consul
        .http_addr()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let held = connections_to(daemon.pid(), port);
    assert!(held <= 32, "consul-render holds {held} connections");
    let statuses = another_client_holds(&consul.http_addr(), 150);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "another client got {:?}",
        statuses.iter().collect::<BTreeSet<_>>()
    );
    changes_reach_the_file(&consul, &out);
    assert!(!daemon.log().contains("HTTP 429"), "{}", daemon.log());
    daemon.assert_running();
}

#[test]
fn more_services_than_the_connection_limit_over_https_share_a_few_connections() {
    let tls = TlsFiles::generate();
    // Verifying client certificates too, as a locked-down agent does.
    let consul = ConsulAgent::dev_with(
        AgentOptions::new()
            .https(&tls)
            .hcl("tls { https { verify_incoming = true } }")
            .acl_deny(MANAGEMENT),
    );
    register_many(&consul);
    let https = consul.https_port().expect("https port");
    let render = Render::new(&format!("https://127.0.0.1:{https}"), ALL_INSTANCES)
        .flag(&format!("-consul-ssl-ca-cert={}", tls.ca_file().display()))
        .flag(&format!(
            "-consul-ssl-cert={}",
            tls.client_cert_file().display()
        ))
        .flag(&format!(
            "-consul-ssl-key={}",
            tls.client_key_file().display()
        ))
        .flag(&token_flag(&consul));
    let (mut daemon, out) = (render.start(), render.out());
    // While it starts (the moment a fresh HTTP/2 client could open a
    // connection per request), count its connections and let another
    // client keep asking Consul.
    let mut peak = 0;
    let mut refused = Vec::new();
    wait_until("the first complete render", T, || {
        peak = peak.max(connections_to(daemon.pid(), https));
        match testbed::http_get(&format!("http://{}/v1/status/leader", consul.http_addr())) {
            Ok((200, _)) => {}
            other => refused.push(format!("{other:?}")),
        }
        std::fs::read_to_string(&out).is_ok_and(|c| ids(&c).len() == SERVICES)
    });
    assert!(peak <= 4, "{peak} connections at the start");
    assert!(
        refused.is_empty(),
        "another client was refused during the start: {refused:?}"
    );
    // One long-poll per service, multiplexed: 250 queries on 2 connections.
    wait_until("the connections to settle", T, || {
        connections_to(daemon.pid(), https) <= 4
    });
    assert!(
        !daemon.log().contains("catalog-wide signals"),
        "{}",
        daemon.log()
    );
    changes_reach_the_file(&consul, &out);
    daemon.assert_running();
}
