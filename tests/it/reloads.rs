//! One reload per burst: templates that change in one pass share their
//! reload command, which runs once after every check (all three passing,
//! or one refused); a template whose check fails keeps its last good file
//! without holding the others back; and a check that flaps within the
//! quiescence window reloads nothing.
//! Real Consul, real nginx, reloads counted in nginx's own error log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testbed::{Backend, ConsulAgent, Instance, Nginx, free_port, wait_until};

use crate::support::{Daemon, assert_rollback_reported, write};

const T: Duration = Duration::from_secs(20);

/// An upstream named `name` of the healthy `web` instances.
fn upstream_template(name: &str) -> String {
    format!(
        "upstream {name} {{\n{{% for s in service(name=\"web\") %}}    server {{{{ s.endpoint }}}};\n{{% else %}}    server 127.0.0.1:1 down;\n{{% endfor %}}}}\n"
    )
}

struct Bed {
    consul: ConsulAgent,
    nginx: Nginx,
    daemon: Daemon,
    outputs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

/// Three templates into nginx's conf.d sharing `nginx -s reload`; the
/// third's check is `third_check`.
fn start(third_check: &str, wait: &str) -> Bed {
    let consul = ConsulAgent::dev();
    let nginx = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:{}; return 503; }}\n",
        free_port()
    ));
    let dir = tempfile::tempdir().unwrap();
    let nginx_args = nginx.args().join(" ");
    let mut config = String::new();
    let mut outputs = Vec::new();
    for (name, check) in [
        ("a", format!("nginx {nginx_args} -t -q")),
        ("b", format!("nginx {nginx_args} -t -q")),
        ("c", third_check.to_owned()),
    ] {
        let source = dir.path().join(format!("{name}.tera"));
        write(&source, &upstream_template(name));
        let destination = nginx.conf_d().join(format!("{name}.conf"));
        config.push_str(&format!(
            "template {{\n  source = {source:?}\n  destination = {destination:?}\n  command = \"nginx {nginx_args} -s reload\"\n  check = {check:?}\n}}\n",
            source = source.display().to_string(),
            destination = destination.display().to_string(),
        ));
        outputs.push(destination);
    }
    let config_file = dir.path().join("render.hcl");
    write(&config_file, &config);
    let daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-config={}", config_file.display()),
            &format!("-wait={wait}"),
            "-log-level=debug",
        ],
        &[],
    );
    Bed {
        consul,
        nginx,
        daemon,
        outputs,
        _dir: dir,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn register(consul: &ConsulAgent, backend: &Backend, id: &str) -> Instance {
    let instance = Instance::new("web", id)
        .address("127.0.0.1")
        .port(backend.port());
    consul.register(&instance);
    instance
}

/// The reloads nginx has handled and the reload commands run so far, once
/// nginx has handled every command that succeeded: `nginx -s reload` only
/// signals the master, which logs the reload a moment later.
fn settled_reloads(bed: &Bed) -> (usize, usize) {
    let log = bed.daemon.log();
    bed.nginx
        .wait_for_reloads(log.matches("command succeeded").count(), T);
    (
        bed.nginx.reload_count(),
        log.matches("running command").count(),
    )
}

/// Registers a new instance, then waits until the first `listing`
/// outputs list it, the reload command has succeeded once more than
/// `commands` times and nginx has reloaded once more than `reloads`.
fn add_instance(bed: &mut Bed, listing: usize, commands: usize, reloads: usize) -> Backend {
    let backend = Backend::start("web-1");
    register(&bed.consul, &backend, "web-1");
    let endpoint = format!("127.0.0.1:{}", backend.port());
    wait_until("the files to list the new instance", T, || {
        bed.outputs[..listing]
            .iter()
            .all(|o| read(o).contains(&endpoint))
    });
    bed.daemon
        .wait_for_log("command succeeded", commands + 1, T);
    bed.nginx.wait_for_reloads(reloads + 1, T);
    backend
}

#[test]
fn three_changed_templates_reload_nginx_once_and_a_failing_check_holds_back_only_its_own() {
    // The third template's check refuses everything: its file must keep
    // what it held, and the other two must still land and reload nginx.
    let mut bed = start("echo 'refused by policy' >&2; exit 1", "100ms:1s");
    let kept = "upstream c { server 127.0.0.1:1 down; }\n";
    write(&bed.outputs[2], kept);
    bed.daemon.wait_for_log("check failed", 1, T);
    wait_until("a and b to be written", T, || {
        bed.outputs[..2].iter().all(|o| read(o).contains("down;"))
    });
    bed.daemon.wait_for_log("command succeeded", 1, T);
    let (reloads, commands) = settled_reloads(&bed);

    let _backend = add_instance(&mut bed, 2, commands, reloads);
    bed.daemon.wait_for_log("check failed", 2, T);
    // Let anything still queued show itself before counting: one more
    // quiescence period and then some.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        bed.nginx.reload_count(),
        reloads + 1,
        "{}",
        bed.daemon.log()
    );
    assert_eq!(
        bed.daemon.log().matches("running command").count(),
        commands + 1,
        "{}",
        bed.daemon.log()
    );
    assert_eq!(
        read(&bed.outputs[2]),
        kept,
        "the refused template's file changed"
    );
    bed.daemon.assert_running();
}

#[test]
fn three_templates_that_change_and_pass_in_one_pass_reload_nginx_once() {
    let mut bed = start("true", "300ms:2s");
    bed.daemon.wait_for_log("command succeeded", 1, T);
    let (reloads, commands) = settled_reloads(&bed);

    let _backend = add_instance(&mut bed, 3, commands, reloads);
    // Anything still queued shows itself within a quiescence period.
    std::thread::sleep(Duration::from_secs(3));
    let log = bed.daemon.log();
    assert_eq!(
        log.matches("running command").count(),
        commands + 1,
        "{log}"
    );
    assert_eq!(bed.nginx.reload_count(), reloads + 1, "{log}");
    assert_eq!(log.matches("check failed").count(), 0, "{log}");
    bed.daemon.assert_running();
}

#[test]
fn a_check_that_flaps_within_the_quiescence_window_reloads_nothing() {
    let mut bed = start("true", "5s:20s");
    let backends = [Backend::start("web-1"), Backend::start("web-2")];
    let instances: Vec<Instance> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| register(&bed.consul, b, &format!("web-{i}")))
        .collect();
    let endpoint = format!("127.0.0.1:{}", backends[1].port());
    wait_until("every file to list both instances", T, || {
        bed.outputs.iter().all(|o| read(o).contains(&endpoint))
    });
    bed.daemon.wait_for_log("command succeeded", 1, T);
    let before: Vec<String> = bed.outputs.iter().map(|o| read(o)).collect();
    let (reloads, _) = settled_reloads(&bed);
    let unchanged = bed.daemon.log().matches("rendered; unchanged").count();

    // passing → critical → passing, well inside the 5 s of calm asked
    // for; consul-render sees each state.
    let changes = bed.daemon.log().matches("data changed").count();
    bed.consul.fail(&instances[1].check_id());
    bed.daemon.wait_for_log("data changed", changes + 1, T);
    bed.consul.pass(&instances[1].check_id());
    bed.daemon.wait_for_log("data changed", changes + 2, T);
    // The renders after the window find every file as it was.
    bed.daemon
        .wait_for_log("rendered; unchanged", unchanged + 3, T);
    let after: Vec<String> = bed.outputs.iter().map(|o| read(o)).collect();
    assert_eq!(after, before);
    assert_eq!(bed.nginx.reload_count(), reloads, "{}", bed.daemon.log());
}

#[test]
fn with_nginx_pid_file_a_reload_command_nginx_rolls_back_is_reported() {
    let consul = ConsulAgent::dev();
    consul.kv_put("app/port", "0");
    let nginx = Nginx::start("");
    let nginx_args = nginx.args().join(" ");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("extra.tera");
    // `nginx -t` binds nothing, so a port another process holds passes the
    // check; only the reload finds out, and nginx keeps its old workers.
    write(
        &source,
        "{% set port = key(path=\"app/port\") %}{% if port != \"0\" %}server { listen 127.0.0.1:{{ port }}; return 204; }{% endif %}\n",
    );
    let metrics_port = free_port();
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!(
                "-template={}:{}:nginx {nginx_args} -s reload",
                source.display(),
                nginx.conf_d().join("extra.conf").display()
            ),
            &format!("-check=nginx {nginx_args} -t -q"),
            &format!(
                "-nginx-pid-file={}",
                nginx.prefix().join("nginx.pid").display()
            ),
            &format!("-metrics-addr=127.0.0.1:{metrics_port}"),
            "-log-level=debug",
        ],
        &[],
    );
    // The first render's reload takes: new workers.
    daemon.wait_for_log("nginx took the reload", 1, T);
    let health = format!("http://127.0.0.1:{metrics_port}/health");
    wait_until("/health 200", T, || {
        testbed::http_get(&health).is_ok_and(|(status, _)| status == 200)
    });

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    consul.kv_put("app/port", &held.local_addr().unwrap().port().to_string());
    daemon.wait_for_log("nginx did not take the reload", 1, T);
    assert_rollback_reported(metrics_port, &nginx.error_log());
    daemon.assert_running();
}
