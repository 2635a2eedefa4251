//! Watching a live agent: KV functions, tag/status/datacenter filters,
//! dependencies discovered by the template itself, quiescence, unchanged
//! output, `-once` and `-dry`.
//!
//! "Nothing else happened" is asserted with a barrier: a later change whose
//! effect is awaited, after which the counts must have moved by exactly one.

use std::time::Duration;

use testbed::{ConsulAgent, Instance};

use crate::support::{Daemon, Render, run, wait_for_file, write};

const T: Duration = Duration::from_secs(20);

/// consul-render on one template whose command appends a line to `runs`
/// next to it, so tests can count command runs.
fn watch(consul: &ConsulAgent, template: &str, extra: &[&str]) -> (Render, Daemon) {
    let mut render = Render::new(&consul.http_addr(), template).flag("-log-level=debug");
    let runs = render.dir().join("runs");
    render = render.command(&format!("echo run >> {}", runs.display()));
    for flag in extra {
        render = render.flag(flag);
    }
    let daemon = render.start();
    (render, daemon)
}

fn runs(render: &Render) -> usize {
    std::fs::read_to_string(render.dir().join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn kv_functions_follow_puts_and_deletes() {
    let consul = ConsulAgent::dev();
    consul.kv_put("app/name", "shop");
    let (r, _daemon) = watch(
        &consul,
        "name={{ key(path=\"app/name\") }} size={{ key_or_default(path=\"app/size\", default=\"small\") }}\n\
         {% for e in tree(prefix=\"app/upstreams\") %}{{ e.key }}={{ e.value }};{% endfor %}\n\
         keys={{ keys(prefix=\"app/upstreams/\") | join(sep=\",\") }}\n",
        &[],
    );
    let f = r.out();
    wait_for_file(&f, "the first render", T, |c| {
        c.starts_with("name=shop size=small\n\nkeys=\n")
    });
    consul.kv_put("app/size", "large");
    consul.kv_put("app/upstreams/a", "1");
    consul.kv_put("app/upstreams/b", "2");
    wait_for_file(&f, "the puts", T, |c| {
        c == "name=shop size=large\na=1;b=2;\nkeys=app/upstreams/a,app/upstreams/b\n"
    });
    consul.kv_delete("app/size");
    consul.kv_delete("app/upstreams/a");
    wait_for_file(&f, "the deletes", T, |c| {
        c == "name=shop size=small\nb=2;\nkeys=app/upstreams/b\n"
    });
}

#[test]
fn a_missing_key_holds_the_render_back_until_it_exists() {
    let consul = ConsulAgent::dev();
    let (r, mut daemon) = watch(&consul, "v={{ key(path=\"late\") }}\n", &[]);
    daemon.wait_for_log("waiting for data", 1, T);
    assert!(
        !r.out().exists(),
        "nothing is written while a key is missing"
    );
    consul.kv_put("late", "here");
    wait_for_file(&r.out(), "the key", T, |c| c == "v=here\n");
}

#[test]
fn tag_and_status_filters_choose_the_instances() {
    let consul = ConsulAgent::dev();
    let (r, _daemon) = watch(
        &consul,
        "passing:{% for i in service(name=\"web\") %} {{ i.id }}{% endfor %}\n\
         v1:{% for i in service(name=\"web\", tag=\"v1\") %} {{ i.id }}{% endfor %}\n\
         ok:{% for i in service(name=\"web\", status=[\"passing\", \"warning\"]) %} {{ i.id }}{% endfor %}\n\
         any:{% for i in service(name=\"web\", status=\"any\") %} {{ i.id }}={{ i.status }}{% endfor %}\n\
         dc1:{% for i in service(name=\"web\", dc=\"dc1\") %} {{ i.id }}{% endfor %}\n",
        &[],
    );
    for (id, tag) in [("w1", "v1"), ("w2", "v2"), ("w3", "v1"), ("w4", "v2")] {
        consul.register(
            &Instance::new("web", id)
                .address("10.0.0.1")
                .port(80)
                .tags(&[tag]),
        );
    }
    consul.warn(&Instance::new("web", "w3").check_id());
    consul.fail(&Instance::new("web", "w4").check_id());
    wait_for_file(&r.out(), "filtered lists", T, |c| {
        c == "passing: w1 w2\nv1: w1\nok: w1 w2 w3\nany: w1=passing w2=passing w3=warning w4=critical\ndc1: w1 w2\n"
    });
    consul.maintenance("w1", true);
    wait_for_file(&r.out(), "w1 in maintenance", T, |c| {
        c.starts_with("passing: w2\n") && c.contains("w1=maintenance")
    });
}

#[test]
fn templates_discover_their_dependencies_as_data_arrives() {
    let consul = ConsulAgent::dev();
    let (r, _daemon) = watch(
        &consul,
        "{% for s in services() %}{% if s.name != \"consul\" %}{{ s.name }}:{% for i in service(name=s.name) %} {{ i.endpoint }}{% endfor %}\n{% endif %}{% endfor %}",
        &[],
    );
    consul.register(&Instance::new("api", "api-1").address("10.0.0.1").port(81));
    wait_for_file(&r.out(), "api", T, |c| c == "api: 10.0.0.1:81\n");
    consul.register(&Instance::new("db", "db-1").address("10.0.0.2").port(5432));
    consul.register(&Instance::new("api", "api-2").address("10.0.0.3").port(81));
    wait_for_file(&r.out(), "api and db", T, |c| {
        c == "api: 10.0.0.1:81 10.0.0.3:81\ndb: 10.0.0.2:5432\n"
    });
    consul.deregister("db-1");
    wait_for_file(&r.out(), "db gone", T, |c| {
        c == "api: 10.0.0.1:81 10.0.0.3:81\n"
    });
}

#[test]
fn quiescence_turns_a_burst_of_changes_into_one_write_and_one_command() {
    let consul = ConsulAgent::dev();
    let (r, mut daemon) = watch(
        &consul,
        "{% for i in service(name=\"web\") %}{{ i.id }} {% endfor %}\n",
        &["-wait=700ms:10s"],
    );
    wait_for_file(&r.out(), "the empty list", T, |c| c == "\n");
    testbed::wait_until("the first command run", T, || runs(&r) == 1);
    for i in 1..=6 {
        consul.register(
            &Instance::new("web", &format!("w{i}"))
                .address("10.0.0.1")
                .port(80),
        );
    }
    wait_for_file(&r.out(), "all six", T, |c| c == "w1 w2 w3 w4 w5 w6 \n");
    testbed::wait_until("the second command run", T, || runs(&r) == 2);
    // Barrier: one more change, one more run; nothing in between.
    consul.deregister("w6");
    wait_for_file(&r.out(), "five", T, |c| c == "w1 w2 w3 w4 w5 \n");
    testbed::wait_until("the third command run", T, || runs(&r) >= 3);
    assert_eq!(runs(&r), 3, "{}", daemon.log());
    assert_eq!(
        daemon.log().matches("rendered; written").count(),
        3,
        "{}",
        daemon.log()
    );
    daemon.assert_running();
}

#[test]
fn unchanged_output_writes_nothing_and_runs_nothing() {
    let consul = ConsulAgent::dev();
    consul.register(&Instance::new("web", "w1").address("10.0.0.1").port(80));
    let (r, mut daemon) = watch(
        &consul,
        "{% for i in service(name=\"web\", status=\"any\") %}{{ i.id }} {% endfor %}\n",
        &[],
    );
    wait_for_file(&r.out(), "w1", T, |c| c == "w1 \n");
    testbed::wait_until("the first run", T, || runs(&r) == 1);
    // The data changes (w1's status), the text does not.
    consul.warn(&Instance::new("web", "w1").check_id());
    daemon.wait_for_log("rendered; unchanged", 1, T);
    consul.register(&Instance::new("web", "w2").address("10.0.0.1").port(81));
    wait_for_file(&r.out(), "w2", T, |c| c == "w1 w2 \n");
    testbed::wait_until("the second run", T, || runs(&r) >= 2);
    assert_eq!(
        runs(&r),
        2,
        "the unchanged render ran nothing:\n{}",
        daemon.log()
    );
}

#[test]
fn once_renders_runs_the_command_and_exits() {
    let consul = ConsulAgent::dev();
    consul.register(&Instance::new("web", "w1").address("10.0.0.1").port(80));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}\n",
    );
    let dest = dir.path().join("sub/dir/out.conf");
    let marker = dir.path().join("ran");
    let done = run(
        &[
            "-once",
            &format!("-consul-addr={}", consul.http_addr()),
            &format!(
                "-template={}:{}:touch {}",
                src.display(),
                dest.display(),
                marker.display()
            ),
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "10.0.0.1:80\n");
    assert!(marker.exists(), "the command ran before exit");
}

#[test]
fn dry_prints_the_destination_and_text_and_writes_nothing() {
    let consul = ConsulAgent::dev();
    consul.register(&Instance::new("web", "w1").address("10.0.0.1").port(80));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}\n",
    );
    let dest = dir.path().join("out.conf");
    let marker = dir.path().join("ran");
    let done = run(
        &[
            "-once",
            "-dry",
            &format!("-consul-addr={}", consul.http_addr()),
            &format!(
                "-template={}:{}:touch {}",
                src.display(),
                dest.display(),
                marker.display()
            ),
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, format!("> {}\n10.0.0.1:80\n", dest.display()));
    assert!(
        !dest.exists() && !marker.exists(),
        "dry writes and runs nothing"
    );
}

#[test]
fn sigint_and_sigterm_both_stop_cleanly_with_exit_12() {
    let consul = ConsulAgent::dev();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let pid_dir = tempfile::tempdir().unwrap();
        let pid_file = pid_dir.path().join("pid");
        let (r, mut daemon) = watch(
            &consul,
            "x\n",
            &[&format!("-pid-file={}", pid_file.display())],
        );
        wait_for_file(&r.out(), "the render", T, |c| c == "x\n");
        assert_eq!(
            std::fs::read_to_string(&pid_file).unwrap().trim(),
            daemon.pid().to_string()
        );
        daemon.signal(signal);
        assert_eq!(daemon.wait_exit(T), 12, "signal {signal}: {}", daemon.log());
        assert!(!pid_file.exists(), "the pid file is removed on exit");
    }
}

#[test]
fn reload_and_kill_signals_can_be_other_signals_and_sighup_then_changes_nothing() {
    let consul = ConsulAgent::dev();
    let (r, mut daemon) = watch(
        &consul,
        "x\n",
        &["-reload-signal=SIGUSR2", "-kill-signal=SIGUSR1"],
    );
    wait_for_file(&r.out(), "the render", T, |c| c == "x\n");
    // SIGHUP would end a process that does not catch it.
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("SIGHUP ignored", 1, T);
    daemon.assert_running();
    assert!(
        !daemon.log().contains("template reloaded"),
        "{}",
        daemon.log()
    );
    daemon.signal(libc::SIGUSR2);
    daemon.wait_for_log("template reloaded", 1, T);
    daemon.signal(libc::SIGUSR1);
    assert_eq!(daemon.wait_exit(T), 12, "{}", daemon.log());
}

#[test]
fn sighup_rereads_every_template() {
    let consul = ConsulAgent::dev();
    let (r, mut daemon) = watch(&consul, "before\n", &[]);
    wait_for_file(&r.out(), "the first render", T, |c| c == "before\n");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("template reloaded", 1, T);
    // A reload re-renders; the text is the same, so nothing is written.
    daemon.wait_for_log("rendered; unchanged", 1, T);
    daemon.assert_running();
}
