//! Supervise mode (`-exec`): real nginx as consul-render's child, started
//! after the first render, reloaded by signal after a change, followed when
//! it dies, sent the stop signals consul-render gets, and, as PID 1 of a PID
//! namespace, zombies reaped.

use std::path::Path;
use std::time::Duration;

use testbed::{Backend, ConsulAgent, Instance, NginxPrefix, free_port, http_get, wait_until};

use crate::metrics::sample;
use crate::support::{
    BIN, Daemon, Render, assert_rollback_reported, proc_stat, repo, upstream_servers, wait_for_file,
};

const SERVICE: &str = "web";
const T: Duration = Duration::from_secs(20);

/// consul-render supervising nginx, its Consul, and the nginx prefix.
struct Supervised {
    consul: ConsulAgent,
    /// A copy of the shipped template, for tests to edit.
    template: std::path::PathBuf,
    _dir: tempfile::TempDir,
    nginx: NginxPrefix,
    port: u16,
    /// Where consul-render serves `/metrics` and `/health`.
    metrics_port: u16,
    daemon: Daemon,
}

impl Supervised {
    /// Starts consul-render with `-exec` of a foreground nginx (run through
    /// `wrapper`, e.g. `unshare`, when given), with one instance of `first`
    /// registered so the first render is complete.
    fn start(first: &Backend, wrapper: &[&str]) -> Supervised {
        Supervised::start_with(first, wrapper, &[])
    }

    /// As [`Supervised::start`], with `flags` added.
    fn start_with(first: &Backend, wrapper: &[&str], flags: &[&str]) -> Supervised {
        Supervised::launch(first, wrapper, |setup| {
            let mut args = vec![
                format!("-consul-addr={}", setup.consul_addr),
                format!(
                    "-template={}:{}",
                    setup.template.display(),
                    setup.destination.display()
                ),
                format!("-check=nginx {} -t -q", setup.nginx_args),
                format!("-exec=nginx {} -g 'daemon off;'", setup.nginx_args),
                "-exec-kill-timeout=10s".to_owned(),
                format!("-metrics-addr=127.0.0.1:{}", setup.metrics_port),
            ];
            args.extend(flags.iter().map(|f| (*f).to_owned()));
            args
        })
    }

    /// As [`Supervised::start`], told everything by a config file whose
    /// `consul {}` and `exec {}` blocks have `consul_settings` and
    /// `exec_settings` besides the address and the command.
    fn start_from_config_file(
        first: &Backend,
        consul_settings: &str,
        exec_settings: &str,
    ) -> Supervised {
        Supervised::launch(first, &[], |setup| {
            let config = setup.template.with_file_name("config.hcl");
            let mut nginx = vec!["nginx".to_owned()];
            nginx.extend(setup.nginx_args.split(' ').map(str::to_owned));
            let exec_command = [&nginx[..], &["-g".to_owned(), "daemon off;".to_owned()]].concat();
            let text = format!(
                "consul {{\n  address = {address:?}\n  {consul_settings}\n}}\n\
                 template {{\n  source = {source:?}\n  destination = {destination:?}\n  check = {check:?}\n}}\n\
                 exec {{\n  command = {exec_command:?}\n  {exec_settings}\n}}\n",
                address = setup.consul_addr,
                source = setup.template.display().to_string(),
                destination = setup.destination.display().to_string(),
                check = format!("nginx {} -t -q", setup.nginx_args),
            );
            std::fs::write(&config, text).unwrap();
            vec![
                format!("-config={}", config.display()),
                format!("-metrics-addr=127.0.0.1:{}", setup.metrics_port),
            ]
        })
    }

    /// Starts consul-render (through `wrapper` when given) with the
    /// arguments `args` makes for this test's Consul, nginx and template,
    /// and waits until its nginx serves `first`.
    fn launch(
        first: &Backend,
        wrapper: &[&str],
        args: impl FnOnce(&Setup) -> Vec<String>,
    ) -> Supervised {
        let consul = ConsulAgent::dev();
        register(&consul, first, "1");
        // What the image ships: a placeholder the first render replaces.
        let nginx = NginxPrefix::new("# replaced by consul-render\n");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("default.conf.tera");
        std::fs::copy(repo().join("templates/default.conf.tera"), &template).unwrap();
        let setup = Setup {
            consul_addr: consul.http_addr(),
            template,
            destination: nginx.conf_d().join("default.conf"),
            nginx_args: nginx.args().join(" "),
            metrics_port: free_port(),
        };
        let args = args(&setup);
        let mut argv: Vec<&str> = wrapper.to_vec();
        argv.extend(args.iter().map(String::as_str));
        let listen = format!("127.0.0.1:{port}");
        let env = [("APP_NAME", SERVICE), ("LISTEN", listen.as_str())];
        let daemon = match wrapper.split_first() {
            Some((program, _)) => Daemon::start_program(Path::new(program), &argv[1..], &env),
            None => Daemon::start(&argv, &env),
        };
        let supervised = Supervised {
            consul,
            template: setup.template,
            _dir: dir,
            nginx,
            port,
            metrics_port: setup.metrics_port,
            daemon,
        };
        supervised.wait_for_traffic(&[first]);
        supervised
    }

    fn master(&self) -> u32 {
        self.nginx.master_pid().expect("nginx wrote its pid file")
    }

    /// Waits until requests through nginx reach exactly `backends`.
    fn wait_for_traffic(&self, backends: &[&Backend]) {
        let want: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        wait_until(&format!("traffic to reach {want:?}"), T, || {
            let mut seen: Vec<String> = (0..4 * backends.len())
                .filter_map(
                    |_| match http_get(&format!("http://127.0.0.1:{}/", self.port)) {
                        Ok((200, body)) => Some(body),
                        _ => None,
                    },
                )
                .collect();
            seen.sort();
            seen.dedup();
            seen == want
        });
    }
}

/// What a test's consul-render arguments are made from.
struct Setup {
    consul_addr: String,
    template: std::path::PathBuf,
    destination: std::path::PathBuf,
    /// `-p PREFIX -c CONF`: nginx's arguments for this test's prefix.
    nginx_args: String,
    metrics_port: u16,
}

fn register(consul: &ConsulAgent, backend: &Backend, id: &str) {
    consul.register(
        &Instance::new(SERVICE, &format!("{SERVICE}-{id}"))
            .address("127.0.0.1")
            .port(backend.port()),
    );
}

fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|stat| !matches!(stat.state.as_str(), "Z" | "X"))
}

#[test]
fn nginx_is_started_after_the_first_render_and_reloaded_by_signal_on_change() {
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let mut s = Supervised::start(&a, &[]);
    let master = s.master();
    assert_eq!(s.nginx.reload_count(), 0, "{}", s.nginx.error_log());

    register(&s.consul, &b, "2");
    let conf = s.nginx.conf_d().join("default.conf");
    let want = vec![
        format!("127.0.0.1:{}", a.port()),
        format!("127.0.0.1:{}", b.port()),
    ];
    let mut want_sorted = want.clone();
    want_sorted.sort();
    wait_for_file(&conf, "both instances", T, |c| {
        upstream_servers(c) == want_sorted
    });
    wait_until("nginx to reload", T, || s.nginx.reload_count() >= 1);
    s.wait_for_traffic(&[&a, &b]);
    // Reloaded in place, not restarted.
    assert_eq!(s.master(), master);
    let log = s.daemon.log();
    assert!(log.contains("started the child"), "{log}");
    assert!(log.contains("signalled the child to reload"), "{log}");
    // Each signal is a reload counted `via="signal"`, one nginx handled;
    // none by command, none failed, and signals are not timed.
    let metrics = format!("http://127.0.0.1:{}/metrics", s.metrics_port);
    let mut text = String::new();
    wait_until("every reload signal counted to reach nginx", T, || {
        text = http_get(&metrics).expect("GET /metrics").1;
        let signals = sample(&text, "consul_render_reloads_total", "via=\"signal\"");
        signals >= Some(1.0) && signals == Some(s.nginx.reload_count() as f64)
    });
    assert_eq!(
        sample(&text, "consul_render_reloads_total", "via=\"command\""),
        None,
        "{text}"
    );
    assert_eq!(
        sample(&text, "consul_render_reload_failures_total", ""),
        None,
        "{text}"
    );
    assert_eq!(
        sample(&text, "consul_render_reload_duration_seconds_count", ""),
        Some(0.0),
        "{text}"
    );

    // The child dies: consul-render follows with the shell's code for it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(s.daemon.wait_exit(T), 128 + 9, "{}", s.daemon.log());
}

/// `-exec-splay`: the reload signal comes a random while (under the
/// splay) after the change, and still comes; stopping the child for a
/// reason of consul-render's own waits a splay too, a forwarded SIGTERM
/// does not.
#[test]
fn a_splayed_reload_still_reaches_nginx() {
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let mut s = Supervised::start_with(&a, &[], &["-exec-splay=1s", "-log-level=debug"]);
    let master = s.master();
    register(&s.consul, &b, "2");
    wait_until("nginx to reload", T, || s.nginx.reload_count() >= 1);
    s.wait_for_traffic(&[&a, &b]);
    assert_eq!(s.master(), master);
    let log = s.daemon.log();
    let splayed = log
        .find("signalling the child to reload after a splay")
        .unwrap_or_else(|| panic!("no splay logged:\n{log}"));
    let signalled = log
        .find("signalled the child to reload")
        .unwrap_or_else(|| panic!("no reload signal:\n{log}"));
    assert!(splayed < signalled, "{log}");
    s.daemon.signal(libc::SIGTERM);
    assert_eq!(s.daemon.wait_exit(T), 0, "{}", s.daemon.log());
    assert!(!s.daemon.log().contains("stopping the child after a splay"));

    // Consul gone for good (a retry limit is set): consul-render stops the
    // child itself, after a splay, and exits with the child's code.
    let mut s = Supervised::start_with(
        &a,
        &[],
        &[
            "-exec-splay=1s",
            "-log-level=debug",
            "-consul-retry-attempts=2",
            "-consul-retry-backoff=50ms",
        ],
    );
    s.consul.stop();
    s.daemon.wait_exit(T);
    let log = s.daemon.log();
    let splayed = log
        .find("stopping the child after a splay")
        .unwrap_or_else(|| panic!("no splay before the stop:\n{log}"));
    assert!(
        log[splayed..].contains("stopping the child signal=SIGINT"),
        "{log}"
    );
}

/// Signals that are nginx's, not consul-render's, are passed on to it:
/// SIGUSR1 makes nginx reopen its logs (how log rotation reaches a
/// supervised nginx), and SIGHUP, with another signal reloading
/// consul-render's templates, reloads nginx, as consul-template passes on
/// every signal that is not its own.
#[test]
fn nginx_s_own_signals_are_passed_on_to_it() {
    let a = Backend::start("web-a");
    let mut s = Supervised::start_with(&a, &[], &["-reload-signal=SIGUSR2"]);
    let master = s.master();
    s.daemon.signal(libc::SIGUSR1);
    wait_until("nginx to reopen its logs", T, || {
        s.nginx.error_log().contains("reopening logs")
    });
    // consul-render still logs its counters on SIGUSR1.
    s.daemon.wait_for_log("stats renders=", 1, T);
    assert_eq!(s.nginx.reload_count(), 0);
    s.daemon.signal(libc::SIGHUP);
    wait_until("nginx to reload", T, || s.nginx.reload_count() == 1);
    s.wait_for_traffic(&[&a]);
    assert_eq!(s.master(), master);
    s.daemon.assert_running();
    let log = s.daemon.log();
    assert!(
        log.contains("passed the signal on to the child signal=SIGHUP"),
        "{log}"
    );
}

#[test]
fn a_render_nginx_rejects_is_never_signalled_and_nginx_keeps_serving() {
    let a = Backend::start("web-a");
    let mut s = Supervised::start(&a, &[]);
    let good = std::fs::read_to_string(&s.template).unwrap();
    // An edit that makes nginx's config invalid: the check refuses it.
    std::fs::write(&s.template, format!("not_a_directive on;\n{good}")).unwrap();
    s.daemon.wait_for_log("check failed", 1, T);
    assert_eq!(s.nginx.reload_count(), 0, "{}", s.nginx.error_log());
    let conf = std::fs::read_to_string(s.nginx.conf_d().join("default.conf")).unwrap();
    assert!(!conf.contains("not_a_directive"), "{conf}");
    s.wait_for_traffic(&[&a]);
    s.daemon.assert_running();
}

#[test]
fn sigterm_is_passed_to_nginx_and_consul_render_exits_with_its_code() {
    let a = Backend::start("web-a");
    let mut s = Supervised::start(&a, &[]);
    let master = s.master();
    s.daemon.signal(libc::SIGTERM);
    // nginx's fast shutdown exits 0, and so does consul-render after it.
    assert_eq!(s.daemon.wait_exit(T), 0, "{}", s.daemon.log());
    assert!(!alive(master), "nginx outlived consul-render");
    let log = s.daemon.log();
    assert!(log.contains("stopping the child"), "{log}");
}

/// The config file's `exec {}` block, in consul-template's list form,
/// supervises nginx as the flags do: started after the first render,
/// reloaded by its `reload_signal` on a change, and, when consul-render
/// leaves for a reason of its own (here: Consul gone past the config's
/// retry attempts), stopped with its `kill_signal` (SIGQUIT, nginx's
/// graceful stop) before consul-render exits with its own failure.
#[test]
fn the_config_file_s_exec_block_supervises_nginx_with_its_signals() {
    let (a, b) = (Backend::start("web-a"), Backend::start("web-b"));
    let mut s = Supervised::start_from_config_file(
        &a,
        "retry {\n    attempts = 2\n    backoff = \"50ms\"\n    max_backoff = \"100ms\"\n  }",
        "reload_signal = \"SIGHUP\"\n  kill_signal = \"SIGQUIT\"\n  kill_timeout = \"10s\"",
    );
    let master = s.master();
    register(&s.consul, &b, "2");
    wait_until("nginx to reload", T, || s.nginx.reload_count() >= 1);
    s.wait_for_traffic(&[&a, &b]);
    assert_eq!(s.master(), master, "nginx was restarted, not reloaded");

    s.consul.stop();
    assert_eq!(s.daemon.wait_exit(T), 14, "{}", s.daemon.log());
    assert!(!alive(master), "nginx outlived consul-render");
    let errors = s.nginx.error_log();
    assert!(errors.contains("signal 3 (SIGQUIT) received"), "{errors}");
    assert!(!errors.contains("(SIGTERM) received"), "{errors}");
}

/// As PID 1 of a new PID namespace (where the machine allows one), orphans
/// the child leaves become consul-render's, and it reaps them; SIGTERM
/// still reaches the child.
#[test]
fn as_pid_1_it_reaps_orphans_and_passes_sigterm_on() {
    if std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .map_or(true, |status| !status.success())
    {
        panic!("this machine cannot create a PID namespace (unshare --pid failed)");
    }
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("orphan-done");
    let template = dir.path().join("in.tera");
    std::fs::write(&template, "x\n").unwrap();
    let consul = ConsulAgent::dev();
    // The outer subshell exits at once, so the inner one is orphaned to
    // PID 1 (consul-render), exits after a moment and must be reaped.
    let child = format!(
        "sh -c '( (sleep 0.2; touch {}) & ); exec sleep 600'",
        done.display()
    );
    let args = [
        "--pid".to_owned(),
        "--fork".to_owned(),
        "--mount-proc".to_owned(),
        BIN.to_owned(),
        format!("-consul-addr={}", consul.http_addr()),
        format!(
            "-template={}:{}",
            template.display(),
            dir.path().join("out").display()
        ),
        format!("-exec={child}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start_program(Path::new("unshare"), &args, &[]);
    let pid_1 = host_pid_of_namespace_init(daemon.pid());
    wait_until("the orphan to finish", T, || done.exists());
    // Reaped, it is gone; not reaped, it stays a zombie child for ever.
    wait_until("consul-render to reap the orphan", T, || {
        let children = children_of(pid_1);
        children.len() == 1 && !children[0].1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid_1 as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // `sleep` dies of the SIGTERM; consul-render exits as a shell would.
    assert_eq!(daemon.wait_exit(T), 128 + 15, "{}", daemon.log());
}

/// The host pid of the process `unshare --fork` (running as `unshare_pid`)
/// started as PID 1 of the new namespace.
fn host_pid_of_namespace_init(unshare_pid: u32) -> u32 {
    let mut pid = None;
    wait_until("unshare to start consul-render", T, || {
        pid = std::fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
            .ok()
            .and_then(|children| children.split_whitespace().next()?.parse().ok());
        pid.is_some()
    });
    let pid = pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.trim_end().ends_with("\t1"),
        "not PID 1 in its namespace: {nspid}"
    );
    pid
}

/// The children of `parent`, each with whether it is a zombie.
fn children_of(parent: u32) -> Vec<(u32, bool)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = proc_stat(pid)?;
            (stat.ppid == parent).then_some((pid, stat.state == "Z"))
        })
        .collect()
}

#[test]
fn a_reload_nginx_refuses_after_its_check_passed_is_reported_as_a_rollback() {
    // `nginx -t` binds nothing, so a port another process holds passes the
    // check; only the reload finds out, and nginx keeps its old workers.
    let a = Backend::start("web-a");
    let mut s = Supervised::start(&a, &[]);
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let health = format!("http://127.0.0.1:{}/health", s.metrics_port);
    wait_until("/health 200", T, || {
        http_get(&health).is_ok_and(|(status, _)| status == 200)
    });
    let mut text = std::fs::read_to_string(&s.template).unwrap();
    text.push_str(&format!(
        "server {{ listen 127.0.0.1:{held_port}; return 204; }}\n"
    ));
    std::fs::write(&s.template, text).unwrap();

    s.daemon
        .wait_for_log("the child did not take the reload", 1, T);
    assert_rollback_reported(s.metrics_port, &s.nginx.error_log());
    // nginx still serves the config before the refused one.
    s.wait_for_traffic(&[&a]);
    s.daemon.assert_running();
    drop(held);
}

/// What the child inherits: `-exec-env-allowlist` and `-denylist` patterns
/// over consul-render's variables, `-exec-env-custom` added whatever they
/// say, `-exec-env-pristine` inheriting nothing; Consul's token never,
/// even when a list would let it through.
#[test]
fn the_child_gets_the_environment_the_exec_env_flags_describe() {
    let consul = ConsulAgent::dev();
    let env = [
        ("KEEP_ME", "1"),
        ("KEEP_TOO", "2"),
        ("KEEP_NOT", "3"),
        ("OTHER", "4"),
        ("CONSUL_HTTP_TOKEN", "tok-never-passed"),
    ];
    let cases: [(&[&str], &[&str], &[&str]); 3] = [
        (
            &[
                "-exec-env-allowlist=KEEP_*",
                "-exec-env-allowlist=CONSUL_*",
                "-exec-env-denylist=KEEP_[N]OT",
                "-exec-env-custom=ADDED=a=b",
                "-exec-env-custom=OTHER=custom wins",
            ],
            &["KEEP_ME=1", "KEEP_TOO=2", "ADDED=a=b", "OTHER=custom wins"],
            &["KEEP_NOT", "OTHER=4", "PATH=", "tok-never-passed"],
        ),
        (
            &["-exec-env-pristine", "-exec-env-custom=ONLY=this"],
            &["ONLY=this"],
            &["KEEP_ME", "OTHER", "PATH=", "tok-never-passed"],
        ),
        (
            &[],
            &["KEEP_ME=1", "KEEP_NOT=3", "OTHER=4", "PATH="],
            &["tok-never-passed"],
        ),
    ];
    for (flags, present, absent) in cases {
        let mut render = Render::new(&consul.http_addr(), "static\n");
        let dump = render.dir().join("env");
        // The child's `env` lists what it got; then it stays alive for
        // consul-render to supervise.
        render = render.flag(&format!(
            "-exec=/bin/sh -c 'env > {0}.part && mv {0}.part {0}; exec sleep 600'",
            dump.display()
        ));
        for flag in flags {
            render = render.flag(flag);
        }
        let mut daemon = render.start_with(&env);
        let text = wait_for_file(&dump, "the child's environment", T, |t| t.contains('\n'));
        for entry in present {
            assert!(
                text.lines().any(|line| line.starts_with(entry)),
                "{flags:?}: {entry} missing from\n{text}"
            );
        }
        for entry in absent {
            assert!(
                !text.lines().any(|line| line.contains(entry)),
                "{flags:?}: {entry} passed in\n{text}"
            );
        }
        daemon.assert_running();
    }
}
