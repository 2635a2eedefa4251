//! The seed's load balancer, end to end: instances registered the way
//! registrator does, the shipped template, real nginx reloaded through a
//! check, and requests through nginx reaching exactly the healthy instances.

use std::collections::BTreeSet;
use std::time::Duration;

use testbed::{Backend, ConsulAgent, Instance, Nginx, free_port, http_get, wait_until};

use crate::support::{Daemon, repo, upstream_servers, wait_for_file};

const SERVICE: &str = "tutum-nodejs-redis";
const T: Duration = Duration::from_secs(20);

/// Registers `backend` as registrator would: ID `host:container:port`.
fn register(consul: &ConsulAgent, container: &str, backend: &Backend) -> Instance {
    let instance = Instance::new(SERVICE, &format!("127.0.0.1:{container}:4000"))
        .address("127.0.0.1")
        .port(backend.port());
    consul.register(&instance);
    instance
}

/// Sends `n` requests through nginx and returns which backends answered;
/// `None` if any request was not answered by a backend.
fn answered_by(port: u16, n: usize) -> Option<BTreeSet<String>> {
    (0..n)
        .map(|_| match http_get(&format!("http://127.0.0.1:{port}/")) {
            Ok((200, body)) => Some(body),
            _ => None,
        })
        .collect()
}

fn names(list: &[&Backend]) -> BTreeSet<String> {
    list.iter().map(|b| b.name().to_owned()).collect()
}

fn endpoints(list: &[&Backend]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|b| format!("127.0.0.1:{}", b.port()))
        .collect();
    v.sort();
    v
}

#[test]
fn load_balancer_follows_scaling_and_health_through_real_nginx() {
    let template = repo().join("templates/default.conf.tera");
    scale_through_nginx(|_| template.clone(), true);
}

/// The seed's own `default.ctmpl`, unchanged but for the port it listens
/// on (this host's tests cannot take port 80), run with the seed's
/// `start.sh` command line: `-consul` and `-template`, no check.
#[test]
fn the_seed_default_ctmpl_runs_with_the_seed_command_line() {
    let seed = std::fs::read_to_string(repo().join("templates/default.ctmpl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("default.ctmpl");
    scale_through_nginx(
        |listen| {
            let source = seed.replace("listen 80 default;", &format!("listen {listen} default;"));
            assert_ne!(source, seed, "the seed template listens on port 80");
            std::fs::write(&template, source).unwrap();
            template.clone()
        },
        false,
    );
}

/// Runs consul-render with `template` (made for the address nginx listens
/// on) against real Consul and nginx, and scales the service 1 → 3 → 2,
/// then fails one instance's check, following traffic through nginx.
fn scale_through_nginx(template: impl FnOnce(&str) -> std::path::PathBuf, check: bool) {
    let consul = ConsulAgent::dev();
    let port = free_port();
    // nginx starts with a placeholder, as the image's default config.
    let nginx = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:{port}; return 503; }}\n"
    ));
    let nginx_args = format!(
        "-p {} -c {}",
        nginx.prefix().display(),
        nginx.main_conf().display()
    );
    let destination = nginx.conf_d().join("default.conf");
    let listen = format!("127.0.0.1:{port}");
    let template = template(&listen);
    let mut args = vec![
        format!("-consul={}", consul.http_addr()),
        format!(
            "-template={}:{}:nginx {nginx_args} -s reload",
            template.display(),
            destination.display()
        ),
    ];
    if check {
        args.push(format!("-check=nginx {nginx_args} -t -q"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start(&args, &[("APP_NAME", SERVICE), ("LISTEN", &listen)]);

    let (a, b, c) = (
        Backend::start("web-a"),
        Backend::start("web-b"),
        Backend::start("web-c"),
    );
    // After a step: the file lists exactly `live`, nginx has reloaded since
    // the step began, traffic reaches every listed instance (once the old
    // workers have drained), and from then on never a removed one.
    let expect =
        |reloads_before: usize, live: &[&Backend], gone: &[&Backend], daemon: &mut Daemon| {
            let want = endpoints(live);
            let conf = wait_for_file(&destination, &format!("servers {want:?}"), T, |c| {
                upstream_servers(c) == want
            });
            assert!(conf.contains("least_conn;"), "{conf}");
            wait_until("nginx to reload", T, || {
                nginx.reload_count() > reloads_before
            });
            wait_until(
                &format!("traffic to reach exactly {:?}", names(live)),
                T,
                || {
                    // Old workers keep serving until they drain: wait for them first.
                    nginx.wait_for_reloads(nginx.reload_count(), T);
                    answered_by(port, 4 * live.len()) == Some(names(live))
                },
            );
            let gone_hits: Vec<usize> = gone.iter().map(|g| g.hits()).collect();
            assert_eq!(
                answered_by(port, 12 * live.len()),
                Some(names(live)),
                "requests reach every listed instance"
            );
            for (g, before) in gone.iter().zip(gone_hits) {
                assert_eq!(
                    g.hits(),
                    before,
                    "{} was removed but still got requests",
                    g.name()
                );
            }
            daemon.assert_running();
        };

    // Scale 1 → 3 → 2, then one instance fails its check.
    let r = nginx.reload_count();
    register(&consul, "web_1", &a);
    expect(r, &[&a], &[], &mut daemon);
    let r = nginx.reload_count();
    register(&consul, "web_2", &b);
    let third = register(&consul, "web_3", &c);
    expect(r, &[&a, &b, &c], &[], &mut daemon);
    let r = nginx.reload_count();
    consul.deregister(third.id());
    expect(r, &[&a, &b], &[&c], &mut daemon);
    let r = nginx.reload_count();
    let second = Instance::new(SERVICE, "127.0.0.1:web_2:4000");
    consul.fail(&second.check_id());
    expect(r, &[&a], &[&b, &c], &mut daemon);

    // Every write was reloaded; nothing was rejected along the way.
    let log = daemon.log();
    assert!(!log.contains("check failed"), "{log}");
    assert!(log.contains("rendered; written"), "{log}");
}
