//! "Never break nginx", under fire: checks that fail, reload commands that
//! fail or hang, Consul answering errors and garbage, Consul down, restarted
//! empty, or losing its leader, slow and broken connections, edited
//! templates and deleted directories. In every case the process keeps
//! running and the destination never changes for the worse.

use std::path::PathBuf;
use std::time::Duration;

use testbed::{
    ConsulAgent, ConsulCluster, Fault, FaultProxy, HttpFaultProxy, Instance, Nginx, free_port,
    wait_until,
};

use crate::support::{Daemon, FileHistory, Render, read_only_token, wait_for_file, write};

const T: Duration = Duration::from_secs(30);

fn web(id: &str, port: u16) -> Instance {
    Instance::new("web", id).address("10.0.0.1").port(port)
}

/// `server` endpoints of the `web` upstream in a rendered file.
fn endpoints(text: &str) -> Vec<String> {
    crate::support::upstream_servers(text)
}

/// The `web` upstream, with a `down` placeholder when it has no instance.
const WEB_UPSTREAM: &str = "upstream web {\n{% for i in service(name=\"web\") %}    server {{ i.endpoint }};\n{% else %}    server 127.0.0.1:1 down;\n{% endfor %}}\n";

/// Nginx plus a daemon rendering a server block whose extra directives come
/// from the KV key `lb/extra` (operator-controlled, so unvalidated), checked
/// with `nginx -t` and reloaded with `nginx -s reload`.
struct CheckedNginx {
    nginx: Nginx,
    daemon: Daemon,
    destination: PathBuf,
}

fn checked_nginx(consul: &ConsulAgent, extra_flags: &[&str]) -> CheckedNginx {
    let port = free_port();
    let nginx = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:{port}; return 503; }}\n"
    ));
    let args = nginx.args().join(" ");
    let dir = nginx.prefix().join("templates");
    let src = dir.join("lb.tera");
    write(
        &src,
        &format!(
            "upstream web {{\n{{% for i in service(name=\"web\") %}}    server {{{{ i.endpoint }}}};\n{{% else %}}    server 127.0.0.1:1 down;\n{{% endfor %}}}}\n\
             server {{\n    listen 127.0.0.1:{port};\n    {{{{ key_or_default(path=\"lb/extra\", default=\"\") }}}}\n    location / {{ proxy_pass http://web; }}\n}}\n"
        ),
    );
    let destination = nginx.conf_d().join("default.conf");
    let mut flags = vec![
        format!("-consul-addr={}", consul.http_addr()),
        format!(
            "-template={}:{}:nginx {args} -s reload",
            src.display(),
            destination.display()
        ),
        format!("-check=nginx {args} -t -q"),
    ];
    flags.extend(extra_flags.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&flags, &[]);
    CheckedNginx {
        nginx,
        daemon,
        destination,
    }
}

#[test]
fn a_failing_check_keeps_the_last_good_file_and_the_next_change_is_tried_again() {
    let consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    let mut lb = checked_nginx(&consul, &[]);
    let good = wait_for_file(&lb.destination, "w1", T, |c| {
        endpoints(c) == ["10.0.0.1:81"]
    });
    lb.nginx.wait_for_reloads(1, T);
    let reloads = lb.nginx.reload_count();

    consul.kv_put("lb/extra", "bogus_directive on;");
    lb.daemon.wait_for_log("check failed", 1, T);
    let log = lb.daemon.log();
    assert!(
        log.contains("unknown directive \"bogus_directive\""),
        "the check's output is logged:\n{log}"
    );
    assert!(log.contains("check_failures=1"), "and counted:\n{log}");
    assert_eq!(
        std::fs::read_to_string(&lb.destination).unwrap(),
        good,
        "the last good file is back"
    );
    assert_eq!(
        lb.nginx.reload_count(),
        reloads,
        "no reload after a failed check"
    );
    lb.nginx
        .config_test()
        .expect("nginx still accepts what is on disk");

    // The next change is tried again; this one passes.
    consul.kv_put("lb/extra", "add_header X-Checked yes;");
    wait_for_file(&lb.destination, "the good extra", T, |c| {
        c.contains("add_header X-Checked yes;")
    });
    wait_until("nginx to reload", T, || lb.nginx.reload_count() > reloads);
    lb.daemon.assert_running();
}

#[test]
fn a_staged_check_judges_the_new_text_before_anything_is_swapped() {
    let consul = ConsulAgent::dev();
    consul.kv_put("v", "good");
    let render = Render::new(&consul.http_addr(), "value={{ key(path=\"v\") }}\n")
        .flag("-check=! grep -q bad {{staged}}");
    let out = render.out();
    let mut daemon = render.start();
    wait_for_file(&out, "good", T, |c| c == "value=good\n");
    let history = FileHistory::record(&out);
    consul.kv_put("v", "bad");
    daemon.wait_for_log("check failed", 1, T);
    consul.kv_put("v", "better");
    wait_for_file(&out, "better", T, |c| c == "value=better\n");
    assert!(
        history.versions().iter().all(|v| !v.contains("bad")),
        "{:?}",
        history.versions()
    );
    // The pass that wrote "better" drops its way back just after the swap.
    wait_until("no staged or previous-contents file left behind", T, || {
        std::fs::read_dir(render.dir()).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".consul-render.")
        })
    });
}

#[test]
fn once_mode_fails_with_the_checks_output() {
    let consul = ConsulAgent::dev();
    let render =
        Render::new(&consul.http_addr(), "x\n").flag("-check=echo the check said no >&2; exit 3");
    let done = render.once(&[]);
    assert_eq!(done.code, 14, "{done:?}");
    assert!(done.stderr.contains("the check said no"), "{done:?}");
    assert!(
        !render.out().exists(),
        "a file that failed its check is not left in place"
    );
}

#[test]
fn a_failing_reload_is_retried_on_the_next_change_and_never_stops_the_process() {
    let consul = ConsulAgent::dev();
    consul.kv_put("v", "1");
    // `noise` changes data without changing the text.
    let render = Render::new(
        &consul.http_addr(),
        "v={{ key(path=\"v\") }}{% set n = key_or_default(path=\"noise\", default=\"\") %}\n",
    );
    let (fail, runs, out) = (
        render.dir().join("FAIL"),
        render.dir().join("runs"),
        render.out(),
    );
    write(&fail, "");
    let render = render.command(&format!(
        "test ! -e {} && echo ran >> {}",
        fail.display(),
        runs.display()
    ));
    let mut daemon = render.start();
    wait_for_file(&out, "v=1", T, |c| c == "v=1\n");
    daemon.wait_for_log("command failed", 1, T);
    daemon.assert_running();
    std::fs::remove_file(&fail).unwrap();
    // The text does not change, but the failed reload is owed.
    consul.kv_put("noise", "1");
    wait_until("the command to run again", T, || {
        std::fs::read_to_string(&runs).is_ok_and(|r| r == "ran\n")
    });
    // Paid: the next unchanged render runs nothing.
    consul.kv_put("noise", "2");
    daemon.wait_for_log("rendered; unchanged", 2, T);
    consul.kv_put("v", "2");
    wait_until("the next change's run", T, || {
        std::fs::read_to_string(&runs).is_ok_and(|r| r.lines().count() >= 2)
    });
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "ran\nran\n",
        "{}",
        daemon.log()
    );
}

#[test]
fn a_hanging_reload_is_killed_at_its_timeout_and_the_next_change_still_works() {
    let consul = ConsulAgent::dev();
    consul.kv_put("v", "1");
    let render =
        Render::new(&consul.http_addr(), "v={{ key(path=\"v\") }}\n").flag("-command-timeout=1s");
    let (out, pid_file) = (render.out(), render.dir().join("sleeper"));
    let render = render.command(&format!(
        "sleep 300 & echo $! > {}; wait",
        pid_file.display()
    ));
    let mut daemon = render.start();
    wait_for_file(&out, "v=1", T, |c| c == "v=1\n");
    daemon.wait_for_log("timed out after 1s and was killed", 1, T);
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    wait_until(
        "the command's whole process group to be gone",
        T,
        || unsafe { libc::kill(sleeper, 0) } != 0,
    );
    consul.kv_put("v", "2");
    wait_for_file(&out, "v=2", T, |c| c == "v=2\n");
    daemon.wait_for_log("timed out after 1s and was killed", 2, T);
    daemon.assert_running();
}

#[test]
fn a_restarted_empty_agent_does_not_drain_the_upstream_while_services_come_back() {
    let mut consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    consul.register(&web("w2", 82));
    let port = free_port();
    let render = Render::new(&consul.http_addr(), WEB_UPSTREAM)
        .flag("-reset-grace=60s")
        .flag(&format!("-metrics-addr=127.0.0.1:{port}"));
    let mut daemon = render.start();
    let out = render.out();
    let both = wait_for_file(&out, "both", T, |c| endpoints(c).len() == 2);
    let history = FileHistory::record(&out);
    let health = || testbed::http_get(&format!("http://127.0.0.1:{port}/health")).unwrap();

    consul.restart();
    daemon.wait_for_log("keeping the last good data", 1, T);
    // Serving held data is reported while it lasts.
    wait_until("/health to report the held data", T, || {
        let (status, body) = health();
        status == 503 && body.contains("fewer entries and they are held back")
    });
    consul.register(&web("w1", 81));
    consul.register(&web("w2", 82));
    daemon.wait_for_log("consul has caught up", 1, T);
    // Barrier: a real change after the recovery goes through.
    consul.register(&web("w3", 83));
    wait_for_file(&out, "three", T, |c| endpoints(c).len() == 3);
    wait_until("/health to be healthy again", T, || health().0 == 200);
    let versions = history.versions();
    assert_eq!(versions[0], both);
    assert_eq!(
        versions.len(),
        2,
        "the file went straight from two to three: {versions:?}"
    );
    daemon.assert_running();
}

#[test]
fn an_agent_that_stays_empty_is_believed_after_the_grace_period() {
    let mut consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    let render = Render::new(&consul.http_addr(), WEB_UPSTREAM).flag("-reset-grace=2s");
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| endpoints(c).len() == 1);
    consul.restart();
    daemon.wait_for_log("keeping the last good data", 1, T);
    wait_for_file(&out, "the placeholder", T, |c| {
        c.contains("server 127.0.0.1:1 down;")
    });
    assert!(
        daemon.log().contains("grace period over"),
        "{}",
        daemon.log()
    );
}

#[test]
fn consul_answering_errors_or_garbage_never_stops_the_process_nor_changes_the_file() {
    let consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    let proxy = HttpFaultProxy::start(&consul.http_addr());
    let render = Render::new(proxy.addr(), WEB_UPSTREAM);
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| endpoints(c).len() == 1);
    let history = FileHistory::record(&out);
    let faults = [
        Fault::Status(500, "No cluster leader".into()),
        Fault::Status(
            429,
            "Your IP is issuing too many concurrent connections".into(),
        ),
        Fault::Status(503, "rate limit exceeded".into()),
        Fault::Body("[{\"Node\": {\"Node\": 5}}]".into()),
        Fault::Body("<html>502 Bad Gateway</html>".into()),
        Fault::Truncate,
        Fault::Drop,
    ];
    for (n, fault) in faults.iter().enumerate() {
        let before = proxy.requests();
        proxy.set_fault(Some(fault.clone()));
        // The watch in flight returns with this change, through the fault.
        consul.register(&web(&format!("x{n}"), 90 + n as u16));
        wait_until(&format!("{fault:?} to be served"), T, || {
            proxy.requests() > before + 1
        });
        daemon.assert_running();
        proxy.set_fault(None);
        let want = n + 2;
        wait_for_file(&out, &format!("{want} servers after {fault:?}"), T, |c| {
            endpoints(c).len() == want
        });
    }
    // A well-formed but empty answer right after a failure is suspect: it is
    // held, re-read shortly, and the truth replaces it.
    let before = proxy.requests();
    proxy.set_fault(Some(Fault::Drop));
    consul.register(&web("y", 99));
    wait_until("a dropped connection", T, || proxy.requests() > before);
    proxy.set_fault(Some(Fault::Body("[]".into())));
    wait_until("an empty answer after it", T, || {
        proxy.requests() > before + 1
    });
    proxy.set_fault(None);
    let want = faults.len() + 2;
    wait_for_file(&out, "the truth after the empty answer", T, |c| {
        endpoints(c).len() == want
    });
    for version in history.versions() {
        assert!(
            !endpoints(&version).is_empty(),
            "the upstream was emptied: {version}"
        );
        assert!(version.contains("10.0.0.1:81"), "w1 was lost: {version}");
    }
    daemon.assert_running();
}

#[test]
fn replies_without_an_index_are_polled_not_spun_on() {
    let consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    let proxy = HttpFaultProxy::start(&consul.http_addr());
    proxy.set_fault(Some(Fault::NoIndex));
    let render = Render::new(proxy.addr(), WEB_UPSTREAM);
    let (mut daemon, out) = (render.start(), render.out());
    wait_for_file(&out, "w1", T, |c| endpoints(c).len() == 1);
    daemon.wait_for_log("no X-Consul-Index; polling", 1, T);
    let start = proxy.requests();
    let window = std::time::Instant::now();
    wait_until("a 3 s window", Duration::from_secs(10), || {
        window.elapsed() >= Duration::from_secs(3)
    });
    // Spinning would be thousands; the token bucket alone, 60.
    let during = proxy.requests() - start;
    assert!(during <= 3, "{during} requests in 3 s without an index");
    // Changes still arrive, by polling.
    consul.register(&web("w2", 82));
    wait_for_file(&out, "w2", T, |c| endpoints(c).len() == 2);
    daemon.assert_running();
}

#[test]
fn a_dead_agent_sees_about_one_request_per_backoff_interval_however_many_watches() {
    let mut consul = ConsulAgent::dev();
    let services: Vec<String> = (0..20).map(|i| format!("svc{i}")).collect();
    for (i, s) in services.iter().enumerate() {
        consul.register(
            &Instance::new(s, &format!("{s}-1"))
                .address("10.0.0.1")
                .port(1000 + i as u16),
        );
    }
    let proxy = HttpFaultProxy::start(&consul.http_addr());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for s in services() %}{% for i in service(name=s.name) %}{{ i.id }}\n{% endfor %}{% endfor %}",
    );
    let out = dir.path().join("out");
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", proxy.addr()),
            &format!("-template={}:{}", src.display(), out.display()),
        ],
        &[],
    );
    wait_for_file(&out, "all 20 services", T, |c| {
        c.lines().filter(|l| l.starts_with("svc")).count() == 20
    });
    let rendered = std::fs::read_to_string(&out).unwrap();

    consul.stop();
    daemon.wait_for_log("consul unreachable", 1, T);
    let start = proxy.requests();
    // Count over a 5 s window of the outage (measured by the proxy).
    let window = std::time::Instant::now();
    wait_until("a 5 s outage window", Duration::from_secs(10), || {
        window.elapsed() >= Duration::from_secs(5)
    });
    let during = proxy.requests() - start;
    // 21 watches retrying on their own at the 1 s cap would send >= 100;
    // the gate's single probe sends about 6 (0.25 + 0.5 + 1 + 1 + 1 + ...).
    assert!(
        during <= 12,
        "{during} requests in 5 s against a dead agent"
    );
    assert!(during >= 2, "it kept probing: {during}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        rendered,
        "files stay while Consul is down"
    );
    daemon.assert_running();

    consul.start();
    for (i, s) in services.iter().enumerate() {
        consul.register(
            &Instance::new(s, &format!("{s}-1"))
                .address("10.0.0.1")
                .port(1000 + i as u16),
        );
    }
    consul.register(
        &Instance::new("svc0", "svc0-2")
            .address("10.0.0.2")
            .port(2000),
    );
    wait_for_file(&out, "the first change after the agent returned", T, |c| {
        c.contains("svc0-2")
    });
}

#[test]
fn losing_the_cluster_leader_changes_nothing_for_the_worse() {
    let mut cluster = ConsulCluster::three();
    let leader = cluster.leader_index();
    let follower = (leader + 1) % 3;
    let survivor = (leader + 2) % 3;
    let member = cluster.member(follower);
    member.register(&web("w1", 81));
    let render = Render::new(&member.http_addr(), WEB_UPSTREAM);
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| endpoints(c) == ["10.0.0.1:81"]);
    let history = FileHistory::record(&out);
    cluster.kill(leader);
    cluster.wait_for_new_leader(leader);
    cluster.member(survivor).register(&web("w2", 82));
    wait_for_file(&out, "w2", T, |c| endpoints(c).len() == 2);
    assert!(
        history.versions().iter().all(|v| v.contains("10.0.0.1:81")),
        "{:?}",
        history.versions()
    );
    daemon.assert_running();
}

#[test]
fn with_acls_a_leader_lost_in_a_burst_of_changes_loses_none_of_them() {
    const MANAGEMENT: &str = "7d0c2a41-9b3e-4f6a-8c5d-cluster00mgmt";
    let mut cluster = ConsulCluster::three_with_acls(MANAGEMENT);
    let leader = cluster.leader_index();
    let (follower, survivor) = ((leader + 1) % 3, (leader + 2) % 3);
    let member = cluster.member(follower);
    let (_, token) = read_only_token(&|path, body| member.put(path, Some(body)).json());
    member.register(&web("w1", 81));
    let render = Render::new(&member.http_addr(), WEB_UPSTREAM)
        .flag(&format!("-consul-token={token}"))
        .flag("-consul-retry-max-backoff=500ms");
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| endpoints(c) == ["10.0.0.1:81"]);
    let history = FileHistory::record(&out);

    // A burst of changes, 40 ms apart on both surviving members, with the
    // leader killed in the middle of it: six registrations, one of them
    // then failing its check and one leaving again. The ones made while
    // there is no leader wait in their agents for the next one.
    let registrars = [
        cluster.member(survivor).registrar(),
        cluster.member(follower).registrar(),
    ];
    let burst = std::thread::spawn(move || {
        let changing: Vec<_> = (2..=7u16)
            .map(|n| {
                let registrar = registrars[usize::from(n) % 2].clone();
                let handle = std::thread::spawn(move || {
                    let instance = web(&format!("w{n}"), 80 + n);
                    registrar.register(&instance);
                    match n {
                        3 => registrar.fail(&instance.check_id()),
                        4 => registrar.deregister(instance.id()),
                        _ => {}
                    }
                });
                std::thread::sleep(Duration::from_millis(40));
                handle
            })
            .collect();
        for handle in changing {
            handle.join().expect("a change of the burst");
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    cluster.kill(leader);
    cluster.wait_for_new_leader(leader);
    burst.join().expect("the burst");
    let landed = ["81", "82", "85", "86", "87"].map(|port| format!("10.0.0.1:{port}"));
    wait_for_file(&out, "every change of the burst", T, |c| {
        endpoints(c) == landed
    });
    assert!(
        history
            .versions()
            .iter()
            .all(|v| v.contains("10.0.0.1:81") && !v.contains("down")),
        "an upstream lost its servers: {:?}",
        history.versions()
    );
    assert!(!daemon.log().contains(&token));
    daemon.assert_running();
}

#[test]
fn slow_and_broken_connections_delay_changes_but_lose_none() {
    let consul = ConsulAgent::dev();
    consul.register(&web("w1", 81));
    let toxi = FaultProxy::start(&consul.http_addr());
    let render = Render::new(&toxi.listen_addr(), WEB_UPSTREAM).flag("-block-wait=2s");
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| endpoints(c).len() == 1);
    let history = FileHistory::record(&out);

    toxi.add_toxic(
        "slow",
        "latency",
        "downstream",
        serde_json::json!({"latency": 400}),
    );
    consul.register(&web("w2", 82));
    wait_for_file(&out, "w2 through a slow link", T, |c| {
        endpoints(c).len() == 2
    });
    toxi.remove_toxic("slow");

    toxi.add_toxic(
        "reset",
        "reset_peer",
        "downstream",
        serde_json::json!({"timeout": 50}),
    );
    consul.register(&web("w3", 83));
    daemon.wait_for_log("consul unreachable", 1, T);
    toxi.remove_toxic("reset");
    wait_for_file(&out, "w3 after the resets stop", T, |c| {
        endpoints(c).len() == 3
    });

    toxi.set_enabled(false);
    consul.register(&web("w4", 84));
    daemon.wait_for_log("consul unreachable", 2, T);
    toxi.set_enabled(true);
    wait_for_file(&out, "w4 after the link returns", T, |c| {
        endpoints(c).len() == 4
    });

    assert!(
        history.versions().iter().all(|v| v.contains("10.0.0.1:81")),
        "{:?}",
        history.versions()
    );
    daemon.assert_running();
}

#[test]
fn an_edited_template_is_reread_and_a_broken_edit_keeps_the_last_good_one() {
    let consul = ConsulAgent::dev();
    consul.kv_put("v", "1");
    let render = Render::new(&consul.http_addr(), "first {{ key(path=\"v\") }}\n");
    let (src, out) = (render.source(), render.out());
    let mut daemon = render.start();
    wait_for_file(&out, "first", T, |c| c == "first 1\n");
    // Editors replace files: write a new one and rename it over.
    let replace = |text: &str| {
        let tmp = render.dir().join(".t.tera.swp");
        write(&tmp, text);
        std::fs::rename(&tmp, &src).unwrap();
    };
    replace("second {{ key(path=\"v\") }}\n");
    wait_for_file(&out, "second", T, |c| c == "second 1\n");
    replace("broken {{ key(path=\"v\") }\n");
    daemon.wait_for_log(&format!("{}:1:", src.display()), 1, T);
    assert!(
        daemon.log().contains("keeping the previous version"),
        "{}",
        daemon.log()
    );
    consul.kv_put("v", "2");
    wait_for_file(&out, "the previous template with new data", T, |c| {
        c == "second 2\n"
    });
    std::fs::write(&src, "third {{ key(path=\"v\") }}\n").unwrap();
    wait_for_file(&out, "an in-place edit too", T, |c| c == "third 2\n");
    daemon.assert_running();
}

#[test]
fn a_deleted_destination_directory_is_recreated_on_the_next_change() {
    let consul = ConsulAgent::dev();
    consul.kv_put("v", "1");
    let render = Render::new(&consul.http_addr(), "{{ key(path=\"v\") }}\n");
    let dir = render.dir().join("conf.d");
    let out = dir.join("deep/out");
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-template={}:{}", render.source().display(), out.display()),
        ],
        &[],
    );
    wait_for_file(&out, "1", T, |c| c == "1\n");
    std::fs::remove_dir_all(&dir).unwrap();
    consul.kv_put("v", "2");
    wait_for_file(&out, "2 in a recreated directory", T, |c| c == "2\n");
    daemon.assert_running();
}
