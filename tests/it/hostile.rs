//! Values from Consul are untrusted (promise 4): whoever registers a service
//! writes its name, id, tags, meta, node name and addresses, and none of it
//! may reach nginx config as syntax.
//!
//! Each test plants every hostile value in one field, each next to a good
//! instance, through `/v1/catalog/register` (which takes node names,
//! addresses and node meta the agent API would refuse), then renders a
//! template a user might plausibly write, one that echoes every field
//! (upstream names, `server` lines, comments naming ids and nodes, tags and
//! meta in `add_header`), into a real nginx with `-check "nginx -t"`. The
//! rendered file must be exactly what the good data alone gives, nginx
//! must accept it, and every hostile value must be warned about and counted
//! in `rejected_values`. Where Consul itself refuses a value, the test
//! asserts the refusal instead. A last test renders the shipped template
//! among hostile instances and sends traffic through nginx.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::{Backend, ConsulAgent, Instance, Nginx, free_port, http_get, wait_until};

use crate::support::{Daemon, repo, upstream_servers, write};

const T: Duration = Duration::from_secs(30);

/// Directive text the hostile values try to smuggle into the config.
const INJECTED: [&str; 2] = ["return 200", "listen 9"];

/// Values that try to break out of wherever a template puts them. Most
/// break exactly one rule, so that relaxing any one rule shows.
fn hostile_strings() -> Vec<String> {
    [
        "10.9.9.9:80; return 200 x",
        "x } server { listen 9 }",
        "\"",
        "'",
        "\\",
        "a\nreturn 200 x;",
        "a b",
        "#",
        "$host",
        "`reboot`",
        "é",
        "名",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["a".repeat(100_000)])
    .collect()
}

fn hostile_values() -> Vec<Value> {
    hostile_strings().into_iter().map(Value::String).collect()
}

/// Where a hostile value is planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    ServiceAddress,
    /// The node's address, next to a good service address.
    NodeAddress,
    /// The node's address, with no service address, so that the instance's
    /// address falls back to it.
    FallbackAddress,
    ServiceName,
    ServiceId,
    NodeName,
    Port,
    Tag,
    MetaValue,
    MetaKey,
    NodeMetaValue,
    NodeMetaKey,
}

impl Field {
    /// Whether a bad value costs the whole instance; otherwise only the tag
    /// or meta entry is dropped and the instance stays.
    fn skips_instance(self) -> bool {
        use Field::*;
        matches!(
            self,
            ServiceAddress
                | NodeAddress
                | FallbackAddress
                | ServiceName
                | ServiceId
                | NodeName
                | Port
        )
    }

    /// Whether Consul (1.16.3) itself refuses `value` here, as found by
    /// trying: service meta keys must match `[A-Za-z0-9_-]+` and service meta
    /// values may be at most 512 bytes. Catalog registration checks nothing
    /// else, node meta included.
    fn consul_refuses(self, value: &Value) -> bool {
        match self {
            Field::MetaKey => true,
            Field::MetaValue => value.as_str().is_some_and(|v| v.len() > 512),
            _ => false,
        }
    }

    /// Whether the node of the hostile instance is itself rejected.
    fn skips_node(self) -> bool {
        matches!(
            self,
            Field::NodeName | Field::NodeAddress | Field::FallbackAddress
        )
    }
}

/// One planted value: service `case-NN` holds a good instance and one that
/// is good except for `value` in the field under test.
struct Case {
    index: usize,
    value: Value,
    /// Consul took the hostile registration.
    accepted: bool,
}

impl Case {
    fn service(&self) -> String {
        format!("case-{:02}", self.index)
    }

    fn bad_node(&self) -> String {
        format!("bad-node-{:02}", self.index)
    }
}

/// The catalog registration of a good instance of `service` on node
/// `good-node`.
fn good_registration(service: &str, port: u16) -> Value {
    json!({
        "Node": "good-node",
        "Address": "10.0.0.1",
        "NodeMeta": {"rack": "r1"},
        "Service": {
            "ID": format!("{service}-good"),
            "Service": service,
            "Address": "10.0.0.1",
            "Port": port,
            "Tags": ["good"],
            "Meta": {"owner": "team"},
        },
    })
}

/// The catalog registration of an instance of `service` on its own node
/// `node` that is good except for `value` in `field`.
fn hostile_registration(
    field: Field,
    service: &str,
    node: &str,
    port: u16,
    value: &Value,
) -> Value {
    let mut registration = json!({
        "Node": node,
        "Address": "10.0.0.2",
        "NodeMeta": {"rack": "r2"},
    });
    let mut instance = json!({
        "ID": format!("{service}-bad"),
        "Service": service,
        "Address": "10.0.0.2",
        "Port": port,
        "Tags": ["good"],
        "Meta": {"owner": "team"},
    });
    let text = || value.as_str().expect("a string value").to_owned();
    match field {
        Field::ServiceAddress => instance["Address"] = value.clone(),
        Field::NodeAddress => registration["Address"] = value.clone(),
        Field::FallbackAddress => {
            registration["Address"] = value.clone();
            instance["Address"] = json!("");
        }
        Field::ServiceName => instance["Service"] = value.clone(),
        Field::ServiceId => instance["ID"] = value.clone(),
        Field::NodeName => registration["Node"] = value.clone(),
        Field::Port => instance["Port"] = value.clone(),
        Field::Tag => instance["Tags"] = json!(["good", value]),
        Field::MetaValue => instance["Meta"]["note"] = value.clone(),
        Field::MetaKey => instance["Meta"][text()] = json!("x"),
        Field::NodeMetaValue => registration["NodeMeta"]["note"] = value.clone(),
        Field::NodeMetaKey => registration["NodeMeta"][text()] = json!("x"),
    }
    registration["Service"] = instance;
    registration
}

/// PUTs a catalog registration; `Err` with Consul's answer if it refuses
/// (the test bed's `put` panics on a refusal, and refusals are expected
/// here).
fn try_register(consul: &ConsulAgent, registration: &Value) -> Result<(), String> {
    let body = registration.to_string();
    let addr = consul.http_addr();
    let mut stream =
        TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.set_read_timeout(Some(T)).expect("setting a timeout");
    write!(
        stream,
        "PUT /v1/catalog/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sending a registration");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("reading consul's answer");
    let response = String::from_utf8_lossy(&response).into_owned();
    if response.starts_with("HTTP/1.1 200 ") && response.ends_with("true\n") {
        Ok(())
    } else {
        Err(response)
    }
}

/// The quoted, escaped excerpt a warning shows of `value`: at most 60
/// characters, then `…`.
fn excerpt(value: &str) -> String {
    let escaped: String = value
        .chars()
        .take(60)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > 60 {
        format!("\"{escaped}…\"")
    } else {
        format!("\"{escaped}\"")
    }
}

/// What the warning about `value` in `field` says of it: its excerpt, or for
/// a tag or meta entry that is only too long, its length; for a port, the
/// number.
fn warning_needle(field: Field, value: &Value) -> String {
    match value {
        Value::String(s) if s.len() > 512 && !field.skips_instance() => {
            format!("{} bytes long", s.len())
        }
        Value::String(s) => excerpt(s),
        other => format!("port {other} is not 1-65535"),
    }
}

/// A template that echoes every field of every service into nginx config.
/// Only the agent's own `consul` service is left out.
const ECHO_EVERYTHING: &str = r#"
{%- for s in services() %}{% if s.name != "consul" %}
upstream {{ s.name }} {
{%- for i in service(name=s.name) %}
    # {{ i.id }} on {{ i.node }} at {{ i.node_address }}{% for k, v in i.node_meta %} {{ k }}={{ v }}{% endfor %}
    server {{ i.endpoint }};
{%- endfor %}
}
{%- endif %}{% endfor %}

server {
    listen 127.0.0.1:{{ env(name="PORT") }};
{%- for s in services() %}{% if s.name != "consul" %}
    location /{{ s.name }}/ {
        proxy_pass http://{{ s.name }};
        add_header X-Tags "{{ s.tags | join(sep=",") }}";
{%- for i in service(name=s.name) %}
        add_header X-{{ i.id }}-Tags "{{ i.tags | join(sep=",") }}";
{%- for k, v in i.meta %}
        add_header X-{{ i.id }}-{{ k }} "{{ v }}";
{%- endfor %}
{%- endfor %}
    }
{%- endif %}{% endfor %}
}
{%- for n in nodes() %}
# node {{ n.name }} at {{ n.address }}{% for k, v in n.meta %} {{ k }}={{ v }}{% endfor %}
{%- endfor %}
"#;

/// What [`ECHO_EVERYTHING`] renders from the good data alone: each case's
/// good instance, plus its hostile one where only a tag or meta entry was
/// dropped; every node but the rejected ones.
fn expected_conf(field: Field, cases: &[Case], port: u16, agent: (&str, &str, &str)) -> String {
    let kept_bad = |case: &Case| case.accepted && !field.skips_instance();
    let mut out = String::new();
    for case in cases {
        let service = case.service();
        out += &format!("\nupstream {service} {{");
        if kept_bad(case) {
            out += &format!(
                "\n    # {service}-bad on {} at 10.0.0.2 rack=r2\n    server 10.0.0.2:{};",
                case.bad_node(),
                20_000 + case.index
            );
        }
        out += &format!(
            "\n    # {service}-good on good-node at 10.0.0.1 rack=r1\n    server 10.0.0.1:{};\n}}",
            10_000 + case.index
        );
    }
    out += &format!("\n\nserver {{\n    listen 127.0.0.1:{port};");
    for case in cases {
        let service = case.service();
        out += &format!(
            "\n    location /{service}/ {{\n        proxy_pass http://{service};\n        add_header X-Tags \"good\";"
        );
        let ids = if kept_bad(case) {
            vec!["bad", "good"]
        } else {
            vec!["good"]
        };
        for id in ids {
            out += &format!(
                "\n        add_header X-{service}-{id}-Tags \"good\";\n        add_header X-{service}-{id}-owner \"team\";"
            );
        }
        out += "\n    }";
    }
    out += "\n}";
    let mut nodes: Vec<(String, String, String)> = cases
        .iter()
        .filter(|case| case.accepted && !field.skips_node())
        .map(|case| (case.bad_node(), "10.0.0.2".into(), " rack=r2".into()))
        .collect();
    nodes.push(("good-node".into(), "10.0.0.1".into(), " rack=r1".into()));
    nodes.push((agent.0.into(), agent.1.into(), agent.2.into()));
    nodes.sort();
    for (name, address, meta) in nodes {
        out += &format!("\n# node {name} at {address}{meta}");
    }
    out + "\n"
}

/// The agent's own node as the template renders it: name, address, and its
/// meta as ` k=v` pairs.
fn agent_node(consul: &ConsulAgent) -> (String, String, String) {
    let node = consul
        .get(&format!("/v1/catalog/node/{}", consul.node_name()))
        .json();
    let meta: BTreeMap<String, String> =
        serde_json::from_value(node["Node"]["Meta"].clone()).expect("node meta");
    let meta: String = meta.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    let address = node["Node"]["Address"]
        .as_str()
        .expect("address")
        .to_owned();
    (consul.node_name().to_owned(), address, meta)
}

/// Starts consul-render on `template` with a real nginx behind it: every
/// write is checked with `nginx -t` and followed by a reload.
fn render_into_nginx(
    consul: &ConsulAgent,
    nginx: &Nginx,
    template: &Path,
    env: &[(&str, &str)],
) -> Daemon {
    let nginx_args = nginx.args().join(" ");
    let destination = nginx.conf_d().join("rendered.conf");
    Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!(
                "-template={}:{}:nginx {nginx_args} -s reload",
                template.display(),
                destination.display()
            ),
            &format!("-check=nginx {nginx_args} -t -q"),
        ],
        env,
    )
}

/// Waits until the first write (or check failure) and returns the
/// rendered file.
fn first_outcome(daemon: &mut Daemon, nginx: &Nginx) -> String {
    wait_until("consul-render to write or fail its check", T, || {
        daemon.assert_running();
        let log = daemon.log();
        log.contains("rendered; written") || log.contains("check failed")
    });
    let log = daemon.log();
    assert!(
        !log.contains("check failed"),
        "nginx -t refused the rendered config:\n{log}"
    );
    std::fs::read_to_string(nginx.conf_d().join("rendered.conf")).expect("the rendered file")
}

/// Sends SIGUSR1 and returns `rejected_values` from the stats line it logs.
fn rejected_values(daemon: &mut Daemon) -> u64 {
    daemon.signal(libc::SIGUSR1);
    daemon.wait_for_log("rejected_values=", 1, T);
    let log = daemon.log();
    let line = log
        .lines()
        .rfind(|l| l.contains(" stats "))
        .expect("a stats line");
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("rejected_values="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rejected_values in {line:?}"))
}

/// Asserts the rendered file carries nothing of the hostile values: no
/// injected directive, one `server` block, no byte outside printable ASCII
/// and newlines.
fn assert_no_injection(conf: &str) {
    for injected in INJECTED {
        assert!(
            !conf.contains(injected),
            "{injected:?} reached nginx:\n{conf}"
        );
    }
    assert_eq!(
        conf.matches("server {").count(),
        1,
        "a server block was injected:\n{conf}"
    );
    let stray = conf
        .chars()
        .find(|&c| !(c.is_ascii_graphic() || c == ' ' || c == '\n'));
    assert_eq!(stray, None, "a stray character reached nginx:\n{conf}");
}

/// Plants every value in `values` in `field` next to good instances,
/// renders [`ECHO_EVERYTHING`] into a real nginx, and asserts: Consul took
/// exactly what it is known to take; the file is what the good data alone
/// renders; nginx accepts it and reloaded; each planted value was warned
/// about; `rejected_values` counts at least one per planted value; the
/// process is still running.
fn plant_and_render(field: Field, values: Vec<Value>) {
    let consul = ConsulAgent::dev();
    let nginx = Nginx::start("");
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let service = format!("case-{index:02}");
        consul.put(
            "/v1/catalog/register",
            Some(&good_registration(&service, 10_000 + index as u16).to_string()),
        );
        let bad = hostile_registration(
            field,
            &service,
            &format!("bad-node-{index:02}"),
            20_000 + index as u16,
            &value,
        );
        let outcome = try_register(&consul, &bad);
        let short = warning_needle(field, &value);
        match (&outcome, field.consul_refuses(&value)) {
            (Ok(()), false) | (Err(_), true) => {}
            (Ok(()), true) => panic!("consul now accepts {field:?} {short}: expect it dropped"),
            (Err(answer), false) => panic!("consul refused {field:?} {short}: {answer}"),
        }
        cases.push(Case {
            index,
            value,
            accepted: outcome.is_ok(),
        });
    }
    let refused: Vec<String> = cases
        .iter()
        .filter(|c| !c.accepted)
        .map(|c| warning_needle(field, &c.value))
        .collect();
    if !refused.is_empty() {
        eprintln!("consul refused {field:?}: {refused:?}");
    }

    let template = dir.path().join("echo.conf.tera");
    write(&template, ECHO_EVERYTHING);
    let port = free_port();
    let mut daemon = render_into_nginx(&consul, &nginx, &template, &[("PORT", &port.to_string())]);
    first_outcome(&mut daemon, &nginx);
    // The agent's own node gains meta a moment after it starts, which
    // rewrites the file: compare against the catalog as it is now, until
    // they agree or the deadline passes, then show the difference.
    let expected = || {
        let (name, address, meta) = agent_node(&consul);
        expected_conf(field, &cases, port, (&name, &address, &meta))
    };
    let destination = nginx.conf_d().join("rendered.conf");
    let (mut conf, mut want) = (String::new(), String::new());
    let start = Instant::now();
    wait_until("the render of the good data", T + T, || {
        want = expected();
        conf = std::fs::read_to_string(&destination).unwrap();
        conf == want || start.elapsed() > T
    });
    assert_no_injection(&conf);
    assert_eq!(conf, want, "the render differs from the good data's");
    nginx
        .config_test()
        .expect("nginx accepts the rendered config");
    nginx.wait_for_reloads(1, T);

    let log = daemon.log();
    assert!(!log.contains("check failed"), "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(" skipped: "))
        .collect();
    for case in cases.iter().filter(|c| c.accepted) {
        let needle = warning_needle(field, &case.value);
        assert!(
            warnings.iter().any(|w| w.contains(&needle)),
            "no warning names {field:?} {needle} of {}:\n{log}",
            case.service()
        );
    }
    let planted = cases.iter().filter(|c| c.accepted).count() as u64;
    let counted = rejected_values(&mut daemon);
    assert!(
        counted >= planted,
        "rejected_values={counted}, but {planted} hostile values were planted"
    );
    daemon.assert_running();
}

#[test]
fn hostile_service_addresses_skip_the_instance_and_never_reach_nginx() {
    plant_and_render(Field::ServiceAddress, hostile_values());
}

#[test]
fn hostile_node_addresses_skip_the_instance_and_the_node() {
    plant_and_render(Field::NodeAddress, hostile_values());
}

#[test]
fn a_hostile_node_address_never_becomes_the_endpoint_of_a_service_without_one() {
    plant_and_render(Field::FallbackAddress, hostile_values());
}

#[test]
fn hostile_service_names_skip_the_service() {
    plant_and_render(Field::ServiceName, hostile_values());
}

#[test]
fn hostile_service_ids_skip_the_instance() {
    plant_and_render(Field::ServiceId, hostile_values());
}

#[test]
fn hostile_node_names_skip_the_instance_and_the_node() {
    plant_and_render(Field::NodeName, hostile_values());
}

#[test]
fn ports_outside_1_to_65535_skip_the_instance() {
    plant_and_render(
        Field::Port,
        vec![json!(0), json!(-1), json!(65_536), json!(99_999)],
    );
}

#[test]
fn hostile_tags_are_dropped_and_the_instance_stays() {
    plant_and_render(Field::Tag, hostile_values());
}

#[test]
fn hostile_meta_values_are_dropped_or_refused_by_consul_when_too_long() {
    plant_and_render(Field::MetaValue, hostile_values());
}

#[test]
fn consul_refuses_every_hostile_meta_key() {
    plant_and_render(Field::MetaKey, hostile_values());
}

#[test]
fn hostile_node_meta_values_are_dropped_and_the_instance_stays() {
    plant_and_render(Field::NodeMetaValue, hostile_values());
}

#[test]
fn hostile_node_meta_keys_are_dropped_and_the_instance_stays() {
    plant_and_render(Field::NodeMetaKey, hostile_values());
}

#[test]
fn the_shipped_template_serves_only_the_good_instance_among_hostile_ones() {
    const APP: &str = "web";
    let consul = ConsulAgent::dev();
    let backend = Backend::start("good");
    consul.register(
        &Instance::new(APP, "web-good")
            .address("127.0.0.1")
            .port(backend.port()),
    );
    // Every hostile value in every field that reaches the shipped
    // template's `server` lines, each instance on its own node.
    let mut planted = 0;
    let fields = [
        Field::ServiceAddress,
        Field::FallbackAddress,
        Field::ServiceId,
        Field::NodeName,
    ];
    let values = hostile_values()
        .into_iter()
        .flat_map(|value| fields.map(|field| (field, value.clone())))
        .chain([0, -1, 65_536].map(|port| (Field::Port, json!(port))));
    for (n, (field, value)) in values.enumerate() {
        let registration = hostile_registration(field, APP, &format!("bad-node-{n}"), 80, &value);
        try_register(&consul, &registration)
            .unwrap_or_else(|answer| panic!("consul refused {field:?}: {answer}"));
        planted += 1;
    }

    let nginx = Nginx::start("");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut daemon = render_into_nginx(
        &consul,
        &nginx,
        &repo().join("templates/default.conf.tera"),
        &[("APP_NAME", APP), ("LISTEN", &listen)],
    );
    let conf = first_outcome(&mut daemon, &nginx);

    assert_eq!(upstream_servers(&conf), [backend.addr()], "{conf}");
    assert_no_injection(&conf);
    nginx
        .config_test()
        .expect("nginx accepts the rendered config");
    wait_until(
        "traffic through nginx to reach the good instance",
        T,
        || http_get(&format!("http://{listen}/")) == Ok((200, "good".to_owned())),
    );
    let log = daemon.log();
    let warnings = log.lines().filter(|l| l.contains(" skipped: ")).count();
    assert!(
        warnings >= planted,
        "{warnings} warnings for {planted} hostile instances:\n{log}"
    );
    assert!(rejected_values(&mut daemon) >= planted as u64);
    daemon.assert_running();
}
