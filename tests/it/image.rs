//! What the Docker image runs, exercised on the host: `start.sh` execs
//! consul-render with the seed's flags, which starts nginx as its child and
//! passes the image's stop signal on to it; the binary also answers to
//! `consul-template`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use testbed::{Backend, ConsulAgent, Instance, NginxPrefix, free_port, http_get, wait_until};

use crate::support::{BIN, Daemon, proc_stat, repo};

const T: Duration = Duration::from_secs(20);

fn answered_by(port: u16, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| http_get(&format!("http://127.0.0.1:{port}/")).ok())
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect()
}

#[test]
fn start_sh_runs_the_seed_load_balancer() {
    start_sh_balances(|_| repo().join("templates/default.conf.tera"));
}

/// The image ships the seed's `default.ctmpl` too: `TEMPLATE` pointing at
/// it runs consul-template's dialect, picked by the `.ctmpl` extension.
#[test]
fn start_sh_runs_the_seed_default_ctmpl() {
    let seed = std::fs::read_to_string(repo().join("templates/default.ctmpl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("default.ctmpl");
    start_sh_balances(|listen| {
        // This host's tests cannot take port 80.
        let source = seed.replace("listen 80 default;", &format!("listen {listen} default;"));
        assert_ne!(source, seed, "the seed template listens on port 80");
        std::fs::write(&template, source).unwrap();
        template.clone()
    });
}

/// Runs `start.sh` with `template` (made for the address nginx listens on)
/// against real Consul and nginx: traffic follows a second instance, nginx
/// is consul-render's child, and SIGQUIT drains both.
fn start_sh_balances(template: impl FnOnce(&str) -> std::path::PathBuf) {
    let consul = ConsulAgent::dev();
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    consul.register(
        &Instance::new("tutum-nodejs-redis", "h:web_1:4000")
            .address("127.0.0.1")
            .port(a.port()),
    );
    let port = free_port();
    let prefix = NginxPrefix::new(&format!(
        "server {{ listen 127.0.0.1:{port}; return 503; }}\n"
    ));
    let bin_dir = Path::new(BIN).parent().expect("binary has a directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let listen = format!("127.0.0.1:{port}");
    let template = template(&listen).display().to_string();
    let destination = prefix.conf_d().join("default.conf").display().to_string();
    let mut daemon = Daemon::start_program(
        &repo().join("start.sh"),
        &[],
        &[
            ("APP_NAME", "tutum-nodejs-redis"),
            ("CONSUL_URL", &consul.http_addr()),
            ("TEMPLATE", &template),
            ("DESTINATION", &destination),
            ("NGINX_ARGS", &prefix.args().join(" ")),
            ("LISTEN", &listen),
            ("WAIT", "20ms:200ms"),
            ("PATH", &path),
        ],
    );
    let want_a = BTreeSet::from(["web-a".to_owned()]);
    wait_until("traffic to reach web-a", T, || {
        answered_by(port, 4) == want_a
    });
    consul.register(
        &Instance::new("tutum-nodejs-redis", "h:web_2:4000")
            .address("127.0.0.1")
            .port(b.port()),
    );
    let want_both = BTreeSet::from(["web-a".to_owned(), "web-b".to_owned()]);
    wait_until("traffic to reach both", T, || {
        answered_by(port, 8) == want_both
    });
    // start.sh execs consul-render, which runs nginx as its own child.
    let master = prefix.master_pid().expect("nginx wrote its pid file");
    let parent = proc_stat(master).expect("nginx's master is running").ppid;
    assert_eq!(parent, daemon.pid(), "{}", daemon.log());
    // The image's stop signal (SIGQUIT, nginx's graceful stop) reaches
    // nginx, and the container exits with nginx's code.
    daemon.signal(libc::SIGQUIT);
    assert_eq!(daemon.wait_exit(T), 0, "{}", daemon.log());
    assert!(
        !Path::new(&format!("/proc/{master}")).exists(),
        "nginx stopped with consul-render"
    );
}

#[test]
fn start_sh_refuses_to_start_without_app_name() {
    let done = std::process::Command::new(repo().join("start.sh"))
        .env_remove("APP_NAME")
        .output()
        .expect("running start.sh");
    assert!(!done.status.success());
    assert!(String::from_utf8_lossy(&done.stderr).contains("APP_NAME"));
}

#[test]
fn the_binary_answers_to_consul_template() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("consul-template");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let done = std::process::Command::new(&link)
        .arg("-v")
        .output()
        .unwrap();
    assert!(done.status.success());
    assert!(String::from_utf8_lossy(&done.stdout).starts_with("consul-render v"));
}
