//! consul-template's Go template dialect, proven against consul-template
//! itself: every template in `tests/go_dialect/` (plus the shipped
//! `templates/default.ctmpl`) is rendered by the real `consul-template
//! -once` and by `consul-render -once` from the same real Consul agent, and
//! the outputs must be the same bytes. Then the dialect's edges that a
//! byte comparison cannot show: waiting on a missing key, bad templates
//! failing with a located error and nothing written, and the one intended
//! difference, a hostile address refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::{ConsulAgent, Instance, wait_until};

use crate::support::{Render, repo, run, wait_for_file};

const T: Duration = Duration::from_secs(30);

/// The corpus: `(name, template text)`, sorted by name.
fn corpus() -> Vec<(String, String)> {
    let dir = repo().join("tests/go_dialect");
    let mut templates: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/go_dialect exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "ctmpl"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&path).expect("readable template"),
            )
        })
        .collect();
    let seed = std::fs::read_to_string(repo().join("templates/default.ctmpl")).unwrap();
    templates.push(("00_shipped_default".to_owned(), seed));
    templates.sort();
    templates
}

/// Registers a service instance on a node other than the agent's, through
/// the catalog, with one check in `status`.
fn register_external(
    consul: &ConsulAgent,
    node: &str,
    address: &str,
    service: serde_json::Value,
    status: &str,
) {
    let id = service["ID"].as_str().unwrap().to_owned();
    let body = serde_json::json!({
        "Node": node,
        "Address": address,
        "NodeMeta": {"rack": format!("rack-{node}")},
        "Service": service,
        "Check": {"CheckID": format!("check:{id}"), "Name": "external", "Status": status, "ServiceID": id},
    });
    consul.put("/v1/catalog/register", Some(&body.to_string()));
}

/// The dataset every corpus template reads.
fn populate(consul: &ConsulAgent) {
    consul.register(
        &Instance::new("web", "web-1")
            .address("127.0.0.1")
            .port(8081)
            .tags(&["prod", "blue"])
            .meta("version", "1.2")
            .meta("zone", "a")
            .meta("weight", "3"),
    );
    let in_maintenance = Instance::new("web", "web-5")
        .address("127.0.0.5")
        .port(8085)
        .tags(&["prod"])
        .meta("zone", "b");
    consul.register(&in_maintenance);
    consul.maintenance(in_maintenance.id(), true);
    let web = |id: &str, port: u16, tags: &[&str], meta: serde_json::Value| serde_json::json!({"ID": id, "Service": "web", "Port": port, "Tags": tags, "Meta": meta});
    register_external(
        consul,
        "node-a",
        "10.0.0.1",
        web(
            "web-2",
            8082,
            &["prod", "green"],
            serde_json::json!({"version": "1.3", "weight": "10", "zone-name": "x-y"}),
        ),
        "passing",
    );
    register_external(
        consul,
        "node-b",
        "10.0.0.2",
        web("web-3", 8083, &["canary"], serde_json::json!({"zone": "a"})),
        "warning",
    );
    register_external(
        consul,
        "node-a",
        "10.0.0.1",
        web("web-4", 8084, &["prod"], serde_json::json!({})),
        "critical",
    );
    register_external(
        consul,
        "node-b",
        "10.0.0.2",
        serde_json::json!({"ID": "api-1", "Service": "api", "Port": 9000, "Address": "10.0.1.1"}),
        "critical",
    );
    // Consul lists instances by node name case-insensitively; consul-template
    // sorts by node name, then ID, as bytes: Node-Z first, s-10 before s-9.
    for (node, id) in [
        ("node-b", "s-9"),
        ("node-b", "s-10"),
        ("Node-Z", "s-2"),
        ("node-a", "s-1"),
    ] {
        let instance = serde_json::json!({"ID": id, "Service": "sorted", "Port": 7000});
        let address = if node == "Node-Z" {
            "10.0.0.26"
        } else if node == "node-a" {
            "10.0.0.1"
        } else {
            "10.0.0.2"
        };
        register_external(consul, node, address, instance, "passing");
    }
    // Ports of different lengths, one shared: byPort orders them as numbers.
    for (id, port) in [("p-1", 8080), ("p-2", 443), ("p-3", 80), ("p-4", 443)] {
        let instance = serde_json::json!({"ID": id, "Service": "ports", "Port": port});
        register_external(consul, "node-a", "10.0.0.1", instance, "passing");
    }
    for (id, port) in [("host1:app_1:4000", 32768), ("host2:app_2:4000", 32769)] {
        consul.register(
            &Instance::new("tutum-nodejs-redis", id)
                .address("127.0.0.1")
                .port(port),
        );
    }
    for (key, value) in [
        ("app/config/port", "8080"),
        ("app/config/name", "demo"),
        ("app/config/empty", ""),
        ("app/folder/", ""),
        ("app/folder/nested", "n"),
        ("app/json", r#"{"a":1,"b":[1,2],"c":"<x>","d":1.5}"#),
        ("flags/enabled", "true"),
        ("numbers/n", "42"),
    ] {
        consul.kv_put(key, value);
    }
    // Everything registered above, in the health it was given.
    wait_until("the dataset to settle in Consul", T, || {
        let reply = consul.get("/v1/health/service/web");
        reply.status == 200 && reply.json().as_array().is_some_and(|a| a.len() == 5)
    });
}

/// `program -once` against `consul`, in the environment the corpus reads,
/// killed if it runs past a minute.
fn once(program: &Path, consul: &ConsulAgent) -> Command {
    let mut command = Command::new("timeout");
    command
        .arg("--signal=KILL")
        .arg("60")
        .arg(program)
        .arg(format!("-consul-addr={}", consul.http_addr()))
        .arg("-once")
        // Templates name the files they read relative to the repository.
        .current_dir(repo())
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env("APP_NAME", "web")
        .env("CR_ENV", "production")
        .env_remove("CR_UNSET_VAR");
    command
}

/// Runs `command` (which runs `program`) to its end; returns what it
/// printed, headed by how it exited.
fn run_logged(program: &Path, mut command: Command) -> String {
    let done = command.output().expect("running the renderer");
    format!(
        "{} exited {:?}\n{}{}",
        program.display(),
        done.status.code(),
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    )
}

/// Runs `program -once` with the config file `config`; returns what it
/// printed, headed by how it exited.
fn run_with_config(program: &Path, consul: &ConsulAgent, config: &Path) -> String {
    let mut command = once(program, consul);
    command.arg(format!("-config={}", config.display()));
    run_logged(program, command)
}

/// Each template's output by name (`None`: not written).
type Outputs = BTreeMap<String, Option<String>>;

/// Runs `program` with one `-template` per corpus entry; returns each
/// entry's output (`None`: not written).
fn render_all(
    program: &Path,
    consul: &ConsulAgent,
    templates: &[(String, PathBuf)],
    out: &Path,
) -> (Outputs, String) {
    std::fs::create_dir_all(out).unwrap();
    let mut command = once(program, consul);
    for (name, source) in templates {
        command.arg(format!(
            "-template={}:{}",
            source.display(),
            out.join(name).display()
        ));
    }
    let log = run_logged(program, command);
    let outputs = templates
        .iter()
        .map(|(name, _)| (name.clone(), std::fs::read_to_string(out.join(name)).ok()))
        .collect();
    (outputs, log)
}

/// One template, `name` from `source`, rendered by consul-template and by
/// consul-render into their own directories under `dir`: each output and
/// log, consul-template's first.
fn render_both(
    consul: &ConsulAgent,
    name: &str,
    source: PathBuf,
    dir: &Path,
) -> (Outputs, String, Outputs, String) {
    let template = [(name.to_owned(), source)];
    let (want, ct_log) = render_all(&consul_template(), consul, &template, &dir.join("ct"));
    let bin = PathBuf::from(crate::support::BIN);
    let (got, cr_log) = render_all(&bin, consul, &template, &dir.join("cr"));
    (want, ct_log, got, cr_log)
}

/// Where `consul-template` is: on PATH, as the test bed installs it.
fn consul_template() -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", "command -v consul-template"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "consul-template is not on PATH: run scripts/install-testbed"
    );
    PathBuf::from(path)
}

/// A line-by-line view of where two outputs part.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) =
        (expected.split('\n').collect(), actual.split('\n').collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            out.push_str(&format!(
                "  line {}:\n    consul-template: {:?}\n    consul-render:   {:?}\n",
                i + 1,
                x.unwrap_or(&"<none>"),
                y.unwrap_or(&"<none>")
            ));
        }
    }
    out
}

#[test]
fn every_corpus_template_renders_byte_for_byte_as_consul_template_does() {
    let consul = ConsulAgent::dev();
    populate(&consul);
    let dir = tempfile::tempdir().unwrap();
    let templates: Vec<(String, PathBuf)> = corpus()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.path().join(format!("{name}.ctmpl"));
            std::fs::write(&path, text).unwrap();
            (name, path)
        })
        .collect();
    assert!(
        templates.len() >= 45,
        "the corpus has {} templates",
        templates.len()
    );

    // One run per template: consul-template stops at the first failing one.
    let (mut expected, mut actual) = (BTreeMap::new(), BTreeMap::new());
    let (mut ct_log, mut cr_log) = (String::new(), String::new());
    let bin = PathBuf::from(crate::support::BIN);
    for template in &templates {
        let one = std::slice::from_ref(template);
        let (want, log) = render_all(&consul_template(), &consul, one, &dir.path().join("ct"));
        expected.extend(want);
        ct_log.push_str(&log);
        let (got, log) = render_all(&bin, &consul, one, &dir.path().join("cr"));
        actual.extend(got);
        cr_log.push_str(&log);
    }

    let mut failures = Vec::new();
    for (name, want) in &expected {
        let Some(want) = want else {
            failures.push(format!("{name}: consul-template wrote nothing\n{ct_log}"));
            continue;
        };
        // The corpus must exercise something: an empty file proves nothing.
        if want.trim().is_empty() {
            failures.push(format!("{name}: consul-template rendered only white space"));
        }
        match &actual[name] {
            None => failures.push(format!("{name}: consul-render wrote nothing")),
            Some(got) if got != want => {
                failures.push(format!("{name}: outputs differ\n{}", diff(want, got)))
            }
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} templates differ:\n\n{}\n\n--- consul-render ---\n{cr_log}",
        failures.len(),
        templates.len(),
        failures.join("\n")
    );
}

#[test]
fn a_missing_key_holds_the_render_until_it_exists() {
    let consul = ConsulAgent::dev();
    // consul-template's blocking reads: `key` on a missing key, and the
    // safe listings on an empty prefix, hold the render back (where `ls`
    // and `tree` render an empty list).
    let cases = [
        ("value={{ key \"late/key\" }}\n", "late/key", "value=here\n"),
        (
            "{{ range safeLs \"late/dir\" }}{{ .Key }}={{ .Value }}\n{{ end }}",
            "late/dir/a",
            "a=here\n",
        ),
        (
            "{{ range safeTree \"late/tree\" }}{{ .Key }}={{ .Value }}\n{{ end }}",
            "late/tree/a",
            "a=here\n",
        ),
    ];
    for (source, key, want) in cases {
        let render = Render::new(&consul.http_addr(), "")
            .flag("-template-engine=go")
            .flag("-log-level=debug");
        std::fs::write(render.source(), source).unwrap();
        let mut daemon = render.start();
        let started = Instant::now();
        // It asks for the data and, while there is none, writes nothing.
        let prefix = key.rsplit_once('/').map_or(key, |(p, _)| p);
        daemon.wait_for_log(prefix, 1, T);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !render.out().exists(),
            "{source}: wrote before {key} existed"
        );
        consul.kv_put(key, "here");
        let text = wait_for_file(&render.out(), "the rendered key", T, |t| t == want);
        assert_eq!(text, want, "{source}");
        assert!(started.elapsed() < T);
    }
}

#[test]
fn a_file_is_read_when_it_appears_and_again_after_each_edit() {
    let consul = ConsulAgent::dev();
    let render = Render::new(&consul.http_addr(), "").flag("-template-engine=go");
    let data = render.dir().join("data").join("backends.txt");
    std::fs::write(
        render.source(),
        format!("from file: {{{{ file \"{}\" }}}}\n", data.display()),
    )
    .unwrap();
    let mut daemon = render.start();
    // The file's directory does not even exist: the render waits for it.
    daemon.wait_for_log("cannot read the file", 1, T);
    assert!(!render.out().exists(), "wrote before the file existed");
    std::fs::create_dir(data.parent().unwrap()).unwrap();
    std::fs::write(&data, "one").unwrap();
    wait_for_file(&render.out(), "the file's first text", T, |t| {
        t == "from file: one\n"
    });
    // Edited in place, then replaced by a rename, as config management does.
    std::fs::write(&data, "two").unwrap();
    wait_for_file(&render.out(), "the edit in place", T, |t| {
        t == "from file: two\n"
    });
    let replacement = data.with_extension("new");
    std::fs::write(&replacement, "three").unwrap();
    std::fs::rename(&replacement, &data).unwrap();
    wait_for_file(&render.out(), "the replacement", T, |t| {
        t == "from file: three\n"
    });
    // Gone: the last good output stays.
    std::fs::remove_file(&data).unwrap();
    daemon.wait_for_log("cannot read the file", 2, T);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(render.out()).unwrap(),
        "from file: three\n"
    );
    daemon.assert_running();
}

#[test]
fn a_bad_template_names_file_line_and_column_and_writes_nothing() {
    let consul = ConsulAgent::dev();
    // (source, `:LINE:COL:` as consul-render reports it, Go's message, the
    // line shown under the error). Go's parse errors carry only the line;
    // consul-render adds the column to them too, counted as Go counts it
    // (bytes before the token), and shows the line with a caret.
    let cases = [
        (
            "upstream x {\n  {{ range service \"web\" }}\n  server {{ .Address }:{{ .Port }};\n{{ end }}\n",
            ":3:21:",
            "unexpected \"}\" in operand",
            "3 |   server {{ .Address }:{{ .Port }};",
        ),
        (
            "{{ nosuch \"web\" }}\n",
            ":1:3:",
            "function \"nosuch\" not defined",
            "1 | {{ nosuch \"web\" }}",
        ),
        ("{{ if true }}\nno end\n", ":3:0:", "unexpected EOF", "3 | "),
        (
            "{{ $x }}\n",
            ":1:3:",
            "undefined variable \"$x\"",
            "1 | {{ $x }}",
        ),
        (
            "ok\n{{ printf \"%d\" (len 3) }}\n",
            ":2:16:",
            "error calling len: len of type int",
            "2 | {{ printf \"%d\" (len 3) }}",
        ),
        (
            "{{ key \"a\" \"b\" }}\n",
            ":1:3:",
            "wrong number of args for key: want 1 got 2",
            "1 | {{ key \"a\" \"b\" }}",
        ),
        // A field of a missing key of a `map[string]interface{}` is a nil
        // interface to Go, and an error, not `<no value>`.
        (
            "{{ $m := parseJSON `{\"a\":1}` }}\n  {{ $m.x.y }}\n",
            ":2:7:",
            "at <$m.x.y>: nil pointer evaluating interface {}.y",
            "2 |   {{ $m.x.y }}",
        ),
    ];
    for (source, location, message, excerpt) in cases {
        let render = Render::new(&consul.http_addr(), "").flag("-template-engine=go");
        std::fs::write(render.source(), source).unwrap();
        let done = render.once(&[]);
        assert_ne!(done.code, 0, "{source}\n{done:?}");
        let name = render.source().display().to_string();
        assert!(
            done.stderr.contains(&format!("template: {name}{location}"))
                && done.stderr.contains(message)
                && done.stderr.lines().any(|line| line == excerpt),
            "{source}\nwanted {location}, {message:?} and {excerpt:?}\n{done:?}"
        );
        assert_eq!(
            done.stderr.matches(message).count(),
            1,
            "{source}: the error is reported once\n{done:?}"
        );
        assert!(!render.out().exists(), "{source}: wrote a file");
    }
}

#[test]
fn custom_delimiters_come_from_the_config_file() {
    let consul = ConsulAgent::dev();
    consul.kv_put("greeting", "hello");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("t.ctmpl");
    let out = dir.path().join("out");
    std::fs::write(&source, "[[ key \"greeting\" ]] {{ not a template }}\n").unwrap();
    let config = dir.path().join("c.hcl");
    std::fs::write(
        &config,
        format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n  left_delimiter = \"[[\"\n  right_delimiter = \"]]\"\n}}\n",
            source.display(),
            out.display()
        ),
    )
    .unwrap();
    let done = run(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-config={}", config.display()),
            "-once",
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "hello {{ not a template }}\n"
    );
}

/// consul-template's `sandbox_path`, side by side with consul-template.
/// `-template` flags cannot set it, so the corpus cannot hold it: each case
/// is a config file run by both. A file inside the sandbox, through a link
/// or a `..` that stays inside, renders the same bytes; one that a link or
/// a `..` leads out of fails both, with nothing written.
#[test]
fn sandbox_path_confines_file_as_consul_template_does() {
    let consul = ConsulAgent::dev();
    let dir = tempfile::tempdir().unwrap();
    // consul-template resolves the file's links but not the sandbox's.
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let sandbox = root.join("snippets");
    std::fs::create_dir_all(sandbox.join("sub")).unwrap();
    std::fs::write(sandbox.join("upstreams.conf"), "server 10.0.0.1:80;\n").unwrap();
    std::fs::write(root.join("secret.txt"), "not for nginx\n").unwrap();
    std::os::unix::fs::symlink("upstreams.conf", sandbox.join("current")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), sandbox.join("escape")).unwrap();
    let s = sandbox.display();
    // (case, the path `file` reads, whether it is inside)
    let cases = [
        ("plain", format!("{s}/upstreams.conf"), true),
        ("link_inside", format!("{s}/current"), true),
        ("dotdot_inside", format!("{s}/sub/../upstreams.conf"), true),
        ("link_outside", format!("{s}/escape"), false),
        ("dotdot_outside", format!("{s}/../secret.txt"), false),
    ];
    let bin = PathBuf::from(crate::support::BIN);
    let mut failures = Vec::new();
    for (case, path, inside) in &cases {
        let source = root.join(format!("{case}.ctmpl"));
        std::fs::write(
            &source,
            format!("upstream x {{\n  {{{{ file \"{path}\" }}}}}}\n"),
        )
        .unwrap();
        let mut results = Vec::new();
        for (who, program) in [
            ("consul-template", consul_template()),
            ("consul-render", bin.clone()),
        ] {
            let out = root.join(who).join(case);
            let config = root.join(format!("{who}-{case}.hcl"));
            std::fs::write(
                &config,
                format!(
                    "template {{\n  source = \"{}\"\n  destination = \"{}\"\n  sandbox_path = \"{s}\"\n}}\n",
                    source.display(),
                    out.display()
                ),
            )
            .unwrap();
            let log = run_with_config(&program, &consul, &config);
            results.push((who, std::fs::read_to_string(&out).ok(), log));
        }
        let [(_, want, ct_log), (_, got, cr_log)] = &results[..] else {
            unreachable!("two programs ran")
        };
        let refusal = format!("'{path}' is outside of sandbox");
        let fine = if *inside {
            want.as_deref() == Some("upstream x {\n  server 10.0.0.1:80;\n}\n") && got == want
        } else {
            want.is_none()
                && got.is_none()
                && ct_log.contains(&refusal)
                && cr_log.contains(&refusal)
                && !cr_log.contains("not for nginx")
        };
        if !fine {
            failures.push(format!(
                "{case} ({path}):\n  consul-template wrote {want:?}\n  consul-render wrote {got:?}\n{ct_log}\n{cr_log}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Where the outputs are meant to differ, each by name: consul-template
/// writes hostile values verbatim into nginx config; consul-render's Go
/// engine, like its Tera engine, refuses them (`consul::data`) and logs
/// each refusal, keeping the rest of the instance where that is safe.
#[test]
fn hostile_values_are_refused_where_consul_template_writes_them_verbatim() {
    let consul = ConsulAgent::dev();
    let good = serde_json::json!({
        "ID": "web-good", "Service": "web", "Address": "10.0.0.1", "Port": 8080,
        // Repeated tags are no hostility: both programs keep them, sorted.
        "Tags": ["z", "bad tag;", "a", "a"],
        "Meta": {"ok": "v", "evil": "x;y\nz"},
        "TaggedAddresses": {"lan": {"Address": "10.1.1.1", "Port": 1}, "wan": {"Address": "1.2.3.4; x", "Port": 2}},
    });
    register_external(&consul, "node-good", "10.0.0.1", good, "passing");
    let bad = serde_json::json!({"ID": "web-bad", "Service": "web", "Address": "10.9.9.9:80; return 200 x", "Port": 8081});
    register_external(&consul, "node-bad", "10.0.0.2", bad, "passing");
    // A check named as Consul names its own ("Service 'web' check"): the
    // quotes make the name no safe token, so consul-render leaves it empty.
    let quoted_check = serde_json::json!({
        "Node": "node-good", "Address": "10.0.0.1",
        "Check": {"CheckID": "quoted", "Name": "Service 'web' check", "Status": "passing", "ServiceID": "web-good"},
    });
    consul.put("/v1/catalog/register", Some(&quoted_check.to_string()));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("upstream.ctmpl");
    std::fs::write(
        &source,
        concat!(
            "{{ range service \"web\" }}server {{ .Address }}:{{ .Port }};\n",
            "tags {{ .Tags }} {{ len .Tags }}\n",
            "meta {{ .ServiceMeta }}\n",
            "tagged {{ .ServiceTaggedAddresses.lan.Address }} {{ .ServiceTaggedAddresses.wan.Address }}\n",
            "checks {{ range .Checks }}{{ .CheckID }}={{ .Name }},{{ end }}\n",
            "{{ end }}"
        ),
    )
    .unwrap();
    let (want, ct_log, got, cr_log) = render_both(&consul, "upstream", source, dir.path());
    let verbatim = "server 10.9.9.9:80; return 200 x:8081;\n";
    let good_instance = |tags: &str, meta: &str, wan: &str, name: &str| {
        format!(
            "server 10.0.0.1:8080;\ntags {tags}\nmeta {meta}\ntagged 10.1.1.1 {wan}\n\
             checks check:web-good=external,quoted={name},\n"
        )
    };
    let ct_bad_block =
        format!("{verbatim}tags [] 0\nmeta map[]\ntagged  \nchecks check:web-bad=external,\n");
    let ct_expected = ct_bad_block.clone()
        + &good_instance(
            "[a a bad tag; z] 4",
            "map[evil:x;y\nz ok:v]",
            "1.2.3.4; x",
            "Service 'web' check",
        );
    assert_eq!(
        want["upstream"].as_deref(),
        Some(ct_expected.as_str()),
        "{ct_log}"
    );
    // The address: the instance is left out. A tag, a meta value, a
    // tagged address: that one value is left out. A check's name: empty.
    let cr_expected = good_instance("[a a z] 3", "map[ok:v]", "", "");
    assert_eq!(
        got["upstream"].as_deref(),
        Some(cr_expected.as_str()),
        "{cr_log}"
    );
    for refused in ["web-bad", "bad tag;", "evil", "1.2.3.4; x"] {
        assert!(
            cr_log.contains(refused),
            "the refusal of {refused:?} is not logged:\n{cr_log}"
        );
    }
}

/// The other intended difference: consul-template runs a first pass with
/// no data at all, and a runtime error there is fatal even though the data
/// would have made the template good. consul-render treats a render that
/// fails while its data is still missing as waiting for that data.
#[test]
fn a_render_that_fails_before_its_data_arrives_waits_where_consul_template_exits() {
    let consul = ConsulAgent::dev();
    let web =
        serde_json::json!({"ID": "web-1", "Service": "web", "Address": "10.0.0.1", "Port": 8080});
    register_external(&consul, "node-1", "10.0.0.1", web, "passing");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("first.ctmpl");
    std::fs::write(
        &source,
        "{{ with index (service \"web\") 0 }}server {{ .Address }}:{{ .Port }};{{ end }}\n",
    )
    .unwrap();
    let (want, ct_log, got, cr_log) = render_both(&consul, "first", source, dir.path());
    assert!(
        want["first"].is_none()
            && ct_log.contains("exited Some(14)")
            && ct_log.contains("error calling index"),
        "consul-template no longer fails its first pass:\n{ct_log}"
    );
    assert_eq!(
        got["first"].as_deref(),
        Some("server 10.0.0.1:8080;\n"),
        "{cr_log}"
    );
    assert!(cr_log.contains("exited Some(0)"), "{cr_log}");
}

/// How a template block of [`template_blocks_run_as_in_consul_template`]
/// ends in both programs.
enum Outcome {
    /// Both write these bytes.
    Writes(&'static str),
    /// Both write nothing and log an error with each of these texts;
    /// consul-render exits with the code given (consul-template: 14).
    Fails(Vec<String>, i32),
}

/// consul-template's `contents`, `function_denylist` (and its old name
/// `function_blacklist`) and `error_on_missing_key`, side by side with
/// consul-template. `-template` flags cannot set them, so each case is a
/// config file run by both against the same agent: the same bytes, or the
/// same error (position, failing node and message) and nothing written.
#[test]
fn template_blocks_run_as_in_consul_template() {
    use Outcome::{Fails, Writes};
    let consul = ConsulAgent::dev();
    consul.register(
        &Instance::new("web", "web-1")
            .address("127.0.0.1")
            .port(8081)
            .meta("zone", "a"),
    );
    consul.kv_put("app/port", "8080");
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("file.ctmpl");
    std::fs::write(&source, "from a file\n").unwrap();
    std::fs::write(dir.path().join("nil.ctmpl"), "{{ .foo }}").unwrap();
    let long = "x".repeat(30);
    let keys = |keys: &[&str]| keys.iter().map(|key| key.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, String, Outcome)> = vec![
        (
            "contents",
            r#"contents = "{{ range service \"web\" }}server {{ .Address }}:{{ .Port }} zone={{ .ServiceMeta.zone }};\n{{ end }}port {{ key \"app/port\" }}\n""#.to_owned(),
            Writes("server 127.0.0.1:8081 zone=a;\nport 8080\n"),
        ),
        (
            "contents_heredoc",
            "contents = <<EOT\n{{- with service \"web\" }}{{ len . }} up{{ end }}\n  ${x}\nEOT".to_owned(),
            Writes("1 up\n  ${x}\n"),
        ),
        (
            "contents_and_source",
            format!("source = \"{}\"\n  contents = \"x\"", source.display()),
            Fails(
                keys(&[
                    "cannot specify both 'source' and 'contents'",
                ]),
                15,
            ),
        ),
        (
            "neither",
            "contents = \"\"".to_owned(),
            Fails(
                keys(&[
                    "must specify exactly one of 'source' or 'contents'",
                ]),
                15,
            ),
        ),
        (
            "denied",
            "contents = \"ok\\n{{ env \\\"HOME\\\" }}\"\n  function_denylist = [\"env\"]".to_owned(),
            Fails(
                keys(&[
                    "(dynamic)",
                    ":2:3: executing",
                    r#"at <env "HOME">: error calling env: function is disabled"#,
                ]),
                14,
            ),
        ),
        (
            "denied_by_pattern_under_the_old_name",
            "contents = \"{{ \\\"a\\\" | sprig_upper }}\"\n  function_blacklist = \"sprig_*\"".to_owned(),
            Fails(
                keys(&[
                    "(dynamic)",
                    ":1:9: executing",
                    "at <sprig_upper>: error calling sprig_upper: function is disabled",
                ]),
                14,
            ),
        ),
        (
            // No value in consul-template's data is a function: `call` can
            // only fail, and says why as Go does.
            "call_of_a_non_function",
            "contents = \"{{ call \\\"a\\\" }}|{{ call .x }}\"".to_owned(),
            Fails(
                keys(&[
                    "(dynamic)",
                    ":1:3: executing",
                    r#"at <call "a">: error calling call: non-function "a" of type string"#,
                ]),
                14,
            ),
        ),
        (
            "denied_arguments_still_checked",
            "contents = \"{{ env 1 }}\"\n  function_denylist = [\"env\"]".to_owned(),
            Fails(
                keys(&[
                    "(dynamic)",
                    ":1:7: executing",
                    "at <1>: expected string; found 1",
                ]),
                14,
            ),
        ),
        (
            "builtins_and_uncalled_functions_stay",
            "contents = \"{{ print \\\"ab\\\" | len }}{{ if false }}{{ env \\\"HOME\\\" }}{{ end }}\"\n  function_denylist = [\"print\", \"len\", \"env\"]".to_owned(),
            Writes("2"),
        ),
        (
            "missing_map_key",
            "contents = \"{{ range service \\\"web\\\" }}{{ .ServiceMeta.zone }}{{ .ServiceMeta.nope }}{{ end }}\"\n  error_on_missing_key = true".to_owned(),
            Fails(
                keys(&[
                    "(dynamic)",
                    ":1:63: executing",
                    r#"at <.ServiceMeta.nope>: map has no entry for key "nope""#,
                ]),
                14,
            ),
        ),
        (
            "missing_key_of_no_data",
            format!(
                "source = \"{}\"\n  error_on_missing_key = true",
                dir.path().join("nil.ctmpl").display()
            ),
            Fails(
                keys(&[
                    ":1:3: executing",
                    r#"at <.foo>: nil data; no entry for key "foo""#,
                ]),
                14,
            ),
        ),
        (
            "missing_keys_read_as_no_value_by_default",
            "contents = \"[{{ range service \\\"web\\\" }}{{ .ServiceMeta.nope }}{{ end }}]{{ .foo }}\"\n  error_on_missing_key = false".to_owned(),
            Writes("[]<no value>"),
        ),
        (
            "failed_call_shown_whole",
            format!("contents = \"{{{{ parseInt \\\"{long}\\\" }}}}\""),
            Fails(
                vec![
                    ":1:3: executing".to_owned(),
                    format!(r#"at <parseInt "{long}">: error calling parseInt"#),
                ],
                14,
            ),
        ),
    ];
    let bin = PathBuf::from(crate::support::BIN);
    let mut failures = Vec::new();
    for (case, settings, outcome) in &cases {
        let mut results = Vec::new();
        for (who, program) in [
            ("consul-template", consul_template()),
            ("consul-render", bin.clone()),
        ] {
            let out = dir.path().join(who).join(case);
            let config = dir.path().join(format!("{who}-{case}.hcl"));
            std::fs::write(
                &config,
                format!(
                    "template {{\n  {settings}\n  destination = \"{}\"\n}}\n",
                    out.display()
                ),
            )
            .unwrap();
            let log = run_with_config(&program, &consul, &config);
            results.push((std::fs::read_to_string(&out).ok(), log));
        }
        let [(want, ct_log), (got, cr_log)] = &results[..] else {
            unreachable!("two programs ran")
        };
        let fine = match outcome {
            Writes(text) => want.as_deref() == Some(*text) && got == want,
            Fails(keys, code) => {
                want.is_none()
                    && got.is_none()
                    && ct_log.contains("exited Some(14)")
                    && cr_log.contains(&format!("exited Some({code})"))
                    && keys
                        .iter()
                        .all(|key| ct_log.contains(key.as_str()) && cr_log.contains(key.as_str()))
            }
        };
        if !fine {
            failures.push(format!(
                "{case}:\n  consul-template wrote {want:?}\n  consul-render wrote {got:?}\n{ct_log}\n{cr_log}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Settings a consul-template config file carries over, run by both:
/// `default_delimiters` (each side on its own), the `exec` form of a
/// template's command, and the owner of the written file by name, by id
/// and by the old `uid`/`gid`. Then a user nobody has: both fail and write
/// nothing.
#[test]
fn carried_over_settings_do_what_consul_template_does() {
    use std::os::unix::fs::MetadataExt;
    let consul = ConsulAgent::dev();
    consul.kv_put("cfg/a", "alpha");
    consul.kv_put("cfg/b", "beta");
    let dir = tempfile::tempdir().unwrap();
    let nobody = testbed::nobody().uid;
    let config = |out: &Path| {
        format!(
            r#"
default_delimiters {{
  left = "<%"
  right = "%>"
}}
template {{
  contents = "a=<% key \"cfg/a\" %> {{{{ literal }}}}\n"
  destination = "{out}/defaults"
  user = "nobody"
  exec {{
    command = "echo ran >> {out}/ran"
    timeout = "10s"
  }}
}}
template {{
  contents = "b=[[ key \"cfg/b\" ]] <% literal %>\n"
  destination = "{out}/own"
  left_delimiter = "[["
  right_delimiter = "]]"
  user = "4321"
  group = "4322"
}}
template {{
  contents = "mixed={{{{ key \"cfg/a\" %>\n"
  destination = "{out}/mixed"
  left_delimiter = "{{{{"
  uid = 4323
  gid = 4324
}}
"#,
            out = out.display()
        )
    };
    let bin = PathBuf::from(crate::support::BIN);
    let mut seen = Vec::new();
    for (who, program) in [
        ("consul-template", consul_template()),
        ("consul-render", bin.clone()),
    ] {
        let out = dir.path().join(who);
        std::fs::create_dir_all(&out).unwrap();
        let file = dir.path().join(format!("{who}.hcl"));
        std::fs::write(&file, config(&out)).unwrap();
        let log = run_with_config(&program, &consul, &file);
        assert!(log.contains("exited Some(0)"), "{log}");
        let written: BTreeMap<&str, Option<Written>> = ["defaults", "own", "mixed", "ran"]
            .into_iter()
            .map(|name| {
                let path = out.join(name);
                let found = std::fs::read_to_string(&path).ok().map(|text| {
                    let meta = std::fs::metadata(&path).unwrap();
                    (text, meta.uid(), meta.gid())
                });
                (name, found)
            })
            .collect();
        seen.push(written);
    }
    assert_eq!(seen[0], seen[1], "consul-template, then consul-render");
    let file = |name: &str| seen[1][name].clone().expect(name);
    assert_eq!(file("defaults").0, "a=alpha {{ literal }}\n");
    assert_eq!(file("defaults").1, nobody);
    assert_eq!(
        file("own"),
        ("b=beta <% literal %>\n".to_owned(), 4321, 4322)
    );
    assert_eq!(file("mixed"), ("mixed=alpha\n".to_owned(), 4323, 4324));
    assert_eq!(file("ran").0, "ran\n");

    for (who, program) in [
        ("consul-template", consul_template()),
        ("consul-render", bin),
    ] {
        let out = dir.path().join(format!("{who}-unknown"));
        let file = dir.path().join(format!("{who}-unknown.hcl"));
        std::fs::write(
            &file,
            format!(
                "template {{\n  contents = \"x\"\n  destination = \"{}\"\n  user = \"no-such-user-here\"\n}}\n",
                out.display()
            ),
        )
        .unwrap();
        let log = run_with_config(&program, &consul, &file);
        assert!(!log.contains("exited Some(0)"), "{log}");
        assert!(log.contains("no-such-user-here"), "{log}");
        assert!(!out.exists(), "{who} wrote {}", out.display());
    }
}

/// A written file's text, owner and group.
type Written = (String, u32, u32);

/// With `-once` and a supervised child: a template that fails (with or
/// without `error_fatal`) ends the run with code 14 and the child is never
/// started, as it is only once every template has rendered.
#[test]
fn a_one_shot_run_with_a_failed_template_starts_no_child() {
    let consul = ConsulAgent::dev();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child-ran");
    for fatal in ["true", "false"] {
        let config = dir.path().join(format!("{fatal}.hcl"));
        std::fs::write(
            &config,
            format!(
                "template {{\n  contents = \"{{{{ parseInt \\\"x\\\" }}}}\"\n  destination = \"{}\"\n  error_fatal = {fatal}\n}}\n\
                 template {{\n  contents = \"fine\"\n  destination = \"{}\"\n}}\n\
                 exec {{\n  command = \"touch {} && sleep 100\"\n}}\n",
                dir.path().join("bad").display(),
                dir.path().join("fine").display(),
                marker.display()
            ),
        )
        .unwrap();
        let done = run(
            &[
                &format!("-consul-addr={}", consul.http_addr()),
                &format!("-config={}", config.display()),
                "-once",
            ],
            &[],
            T,
        );
        assert_eq!(done.code, 14, "error_fatal = {fatal}: {done:?}");
        assert!(done.stderr.contains("error calling parseInt"), "{done:?}");
        assert!(!done.stderr.contains("started the child"), "{done:?}");
        assert!(!marker.exists(), "error_fatal = {fatal}: the child ran");
        assert!(!dir.path().join("bad").exists());
    }
    // The failed template alone: no pass writes anything, and the run
    // still ends rather than waiting for a child that never starts.
    let config = dir.path().join("alone.hcl");
    std::fs::write(
        &config,
        format!(
            "template {{\n  contents = \"{{{{ parseInt \\\"x\\\" }}}}\"\n  destination = \"{}\"\n}}\n\
             exec {{\n  command = \"touch {} && sleep 100\"\n}}\n",
            dir.path().join("bad").display(),
            marker.display()
        ),
    )
    .unwrap();
    let done = run(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-config={}", config.display()),
            "-once",
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 14, "{done:?}");
    assert!(!marker.exists(), "the child ran");
}
