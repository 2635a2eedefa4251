//! Hostile instances through the shipped template: health entries built
//! from fuzzer input (and the input itself, when it is a health reply) are
//! decoded with `decode`, rendered with `templates/default.conf.tera`, and
//! the output must still be exactly the nginx config the template means:
//! the upstream block holds only `server <address>:<port> …;` lines with a
//! valid address and port (or the `down` placeholder), and the rest of the
//! file is unchanged. An injected directive, brace or line break fails.

#![no_main]

use std::sync::{Arc, LazyLock};

use consul_render::consul::change::decode;
use consul_render::consul::data::Instance;
use consul_render::consul::transport::Reply;
use consul_render::consul::{Data, Dependency, HealthQuery};
use consul_render::template::{Snapshot, Template};
use consul_render_fuzz::{HostileEntry, health_body, is_address};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// What the template's `service(name=app)` asks for with `APP_NAME=web`.
static HEALTH: LazyLock<Dependency> =
    LazyLock::new(|| Dependency::Health(HealthQuery::new("web", &[], None, true)));

static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    Template::parse(
        "templates/default.conf.tera",
        include_str!("../../templates/default.conf.tera"),
    )
    .expect("the shipped template parses")
});

const HEAD: [&str; 2] = ["upstream web {", "    least_conn;"];
const PLACEHOLDER: [&str; 2] = [
    "    # no healthy instance of web in Consul",
    "    server 127.0.0.1:1 down;",
];
/// Everything after the upstream block's closing brace.
const TAIL: &str = "
server {
    listen 80 default;

    location / {
        proxy_pass http://web;
    }
}
";

/// Checks one `server` line of the upstream block and returns its endpoint.
fn check_server_line(line: &str) -> &str {
    let endpoint = line
        .strip_prefix("    server ")
        .and_then(|rest| rest.strip_suffix(" max_fails=3 fail_timeout=60 weight=1;"))
        .unwrap_or_else(|| panic!("not a server line: {line:?}"));
    let (address, port) = endpoint
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let port_ok = port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port >= 1)
        && !port.starts_with('0');
    assert!(port_ok, "bad port in {line:?}");
    let address_ok = match address.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => !address.contains(':') && is_address(address),
    };
    assert!(address_ok, "bad address in {line:?}");
    endpoint
}

/// Renders `instances` and checks the output, line by line.
fn render_and_check(instances: &[Instance]) {
    let mut snapshot = Snapshot::default();
    snapshot.insert(HEALTH.clone(), Data::Instances(instances.to_vec()));
    let rendered = TEMPLATE
        .render(&Arc::new(snapshot))
        .unwrap_or_else(|e| panic!("render failed: {e}"));
    let text = rendered.text;
    assert!(rendered.missing.is_empty(), "{:?}", rendered.missing);

    let (upstream, tail) = text
        .split_once("\n}\n")
        .unwrap_or_else(|| panic!("no end of the upstream block in {text:?}"));
    assert_eq!(tail, TAIL, "the server block changed");
    let lines: Vec<&str> = upstream.split('\n').collect();
    assert_eq!(lines[..2], HEAD, "upstream head in {text:?}");
    let body = &lines[2..];

    // The query asks Consul for passing instances only (`?passing`), and
    // the template trusts that filter: every instance of the reply is served.
    let expected: Vec<String> = instances.iter().map(Instance::endpoint).collect();
    if expected.is_empty() {
        assert_eq!(body, PLACEHOLDER, "placeholder in {text:?}");
    } else {
        let endpoints: Vec<&str> = body.iter().map(|line| check_server_line(line)).collect();
        assert_eq!(endpoints, expected, "one server line per instance");
    }
}

fn decode_health(body: Vec<u8>) -> Option<Vec<Instance>> {
    let reply = Reply {
        status: 200,
        index: None,
        body,
        filtered_by_acls: false,
    };
    match decode(&HEALTH, &reply) {
        Ok((Data::Instances(list), _)) => Some(list),
        _ => None,
    }
}

fuzz_target!(
    init: {
        // SAFETY: runs once, before any fuzz input, while libFuzzer's one
        // thread is the only one; the template reads these at render time.
        unsafe {
            std::env::set_var("APP_NAME", "web");
            std::env::remove_var("LISTEN");
        }
        LazyLock::force(&TEMPLATE);
    },
    |data: &[u8]| {
        if let Some(instances) = decode_health(data.to_vec()) {
            render_and_check(&instances);
        }
        if let Ok(entries) = Vec::<HostileEntry>::arbitrary_take_rest(Unstructured::new(data)) {
            let instances = decode_health(health_body(&entries)).expect("a well-formed reply decodes");
            render_and_check(&instances);
        }
    }
);
