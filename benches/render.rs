//! Render cost: the shipped-style nginx template over 1,000 services x 10
//! instances (target: at most 5 ms) in each engine — Tera and the Go
//! dialect, whose target is within 1.5x of Tera — the seed's own
//! `default.ctmpl` beside the Tera `default.conf.tera` the image ships with
//! it, and decoding one service's health reply as it arrives from Consul.
//! Tera's first render, which converts every instance, is measured apart
//! from the later ones, which reuse the conversions. Last, the two engines
//! are timed in turns in this one run and their ratio is printed and
//! written to `target/criterion/engine-ratio.txt`.

use std::hint::black_box;
use std::sync::Arc;

use consul_render::consul::change::decode;
use consul_render::consul::data::{Data, Instance, Status};
use consul_render::consul::model::Weights;
use consul_render::consul::transport::Reply;
use consul_render::consul::{Dependency, HealthQuery};
use consul_render::template::{Snapshot, Template};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const SERVICES: usize = 1_000;
const INSTANCES: usize = 10;

const TEMPLATE: &str = r#"{% for s in services() %}
upstream {{ s.name }} {
    least_conn;
{%- for i in service(name=s.name) %}
    server {{ i.endpoint }} max_fails=3 fail_timeout=60 weight=1;
{%- else %}
    server 127.0.0.1:1 down;
{%- endfor %}
}
{% endfor %}"#;

/// The same template in consul-template's dialect.
const GO_TEMPLATE: &str = r#"{{range services}}
upstream {{.Name}} {
    least_conn;
{{- range service .Name}}
    server {{.Address}}:{{.Port}} max_fails=3 fail_timeout=60 weight=1;
{{- else}}
    server 127.0.0.1:1 down;
{{- end}}
}
{{end}}"#;

const SEED_TEMPLATE: &str = include_str!("../templates/default.ctmpl");
const SEED_TERA_TEMPLATE: &str = include_str!("../templates/default.conf.tera");

fn instance(service: usize, n: usize) -> Instance {
    Instance {
        id: format!("svc-{service}-{n}"),
        name: format!("svc-{service}"),
        address: format!("10.{}.{}.{}", service / 250, service % 250, n + 1),
        port: 8000 + n as u16,
        tags: vec!["v1".into(), "primary".into()],
        meta: [("version".to_owned(), "1.2.3".to_owned())].into(),
        node: format!("node-{n}"),
        node_address: format!("192.168.0.{}", n + 1),
        node_meta: Default::default(),
        datacenter: "dc1".into(),
        status: Status::Passing,
        weights: Weights {
            passing: 1,
            warning: 1,
        },
        ..Instance::default()
    }
}

fn snapshot() -> Arc<Snapshot> {
    let mut snapshot = Snapshot::default();
    let services = (0..SERVICES)
        .map(|s| consul_render::consul::data::ServiceSummary {
            name: format!("svc-{s}"),
            tags: vec![],
        })
        .collect();
    snapshot.insert(
        Dependency::CatalogServices { dc: None },
        Data::Services(services),
    );
    for s in 0..SERVICES {
        let instances = (0..INSTANCES).map(|n| instance(s, n)).collect();
        let query = HealthQuery::new(&format!("svc-{s}"), &[], None, true);
        snapshot.insert(Dependency::Health(query), Data::Instances(instances));
    }
    Arc::new(snapshot)
}

fn render(c: &mut Criterion) {
    let snapshot = snapshot();
    for (name, source, label) in [
        (
            "bench.tera",
            TEMPLATE,
            "render 1000 services x 10 instances (tera)",
        ),
        (
            "bench.ctmpl",
            GO_TEMPLATE,
            "render 1000 services x 10 instances (go)",
        ),
    ] {
        let template = Template::parse(name, source).expect("template parses");
        let rendered = template.render(&snapshot).expect("renders");
        assert!(rendered.missing.is_empty());
        assert_eq!(
            rendered.text.matches("server 10.").count(),
            SERVICES * INSTANCES
        );
        c.bench_function(label, |b| {
            b.iter(|| template.render(black_box(&snapshot)).expect("renders"))
        });
    }
}

/// A freshly parsed Tera template has converted nothing: its first render
/// converts all 10,000 instances, as at startup.
fn first_render(c: &mut Criterion) {
    let snapshot = snapshot();
    c.bench_function("first render 1000 services x 10 instances (tera)", |b| {
        b.iter_batched(
            || Template::parse("bench.tera", TEMPLATE).expect("template parses"),
            |template| template.render(black_box(&snapshot)).expect("renders"),
            BatchSize::LargeInput,
        )
    });
}

/// The seed's templates as the image ships them: one service of 10
/// instances, in each engine.
fn render_seed(c: &mut Criterion) {
    let snapshot = snapshot();
    for (name, source, label) in [
        (
            "default.ctmpl",
            SEED_TEMPLATE,
            "render the seed's default.ctmpl (10 instances, go)",
        ),
        (
            "default.conf.tera",
            SEED_TERA_TEMPLATE,
            "render the seed's default.conf.tera (10 instances, tera)",
        ),
    ] {
        let template = Template::parse(name, &seed_for_svc0(source)).expect("template parses");
        let rendered = template.render(&snapshot).expect("renders");
        assert!(rendered.missing.is_empty());
        assert_eq!(rendered.text.matches("server 10.").count(), INSTANCES);
        c.bench_function(label, |b| {
            b.iter(|| template.render(black_box(&snapshot)).expect("renders"))
        });
    }
}

/// The seed template reads the service from `$APP_NAME`; name it in place
/// rather than set the bench's environment.
fn seed_for_svc0(source: &str) -> String {
    let named = source
        .replace(r#"env "APP_NAME""#, r#""svc-0""#)
        .replace(r#"env(name="APP_NAME")"#, r#""svc-0""#);
    assert_ne!(named, source, "the seed template reads APP_NAME");
    named
}

/// One render of `(name, source)`, timed.
fn timer<'a>(
    snapshot: &'a Arc<Snapshot>,
    (name, source): (&str, &str),
) -> impl Fn() -> std::time::Duration + 'a {
    let template = Template::parse(name, source).expect("template parses");
    move || {
        let start = std::time::Instant::now();
        black_box(template.render(snapshot).expect("renders"));
        start.elapsed()
    }
}

/// The Go engine's cost over Tera's (target: at most 1.5x), both timed in
/// turns in this run so that the machine's noise falls on both alike: the
/// median of 31 rounds of each, for the 1,000-service and seed templates.
fn engine_ratio(_: &mut Criterion) {
    let snapshot = snapshot();
    let mut lines = Vec::new();
    let seed_go = seed_for_svc0(SEED_TEMPLATE);
    let seed_tera = seed_for_svc0(SEED_TERA_TEMPLATE);
    for (what, go, tera) in [
        (
            "1000 services x 10 instances",
            ("bench.ctmpl", GO_TEMPLATE),
            ("bench.tera", TEMPLATE),
        ),
        (
            "the seed template",
            ("default.ctmpl", seed_go.as_str()),
            ("default.conf.tera", seed_tera.as_str()),
        ),
    ] {
        let (go_run, tera_run) = (timer(&snapshot, go), timer(&snapshot, tera));
        let (mut go_times, mut tera_times) = (Vec::new(), Vec::new());
        for _ in 0..31 {
            go_times.push(go_run());
            tera_times.push(tera_run());
        }
        go_times.sort();
        tera_times.sort();
        let (g, t) = (go_times[15], tera_times[15]);
        lines.push(format!(
            "{what}: go {g:?}, tera {t:?}: go/tera {:.2}x (target at most 1.5x)",
            g.as_secs_f64() / t.as_secs_f64()
        ));
    }
    let text = lines.join("\n") + "\n";
    print!("{text}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
    std::fs::create_dir_all(&out).expect("target/criterion");
    std::fs::write(out.join("engine-ratio.txt"), text).expect("writing the ratio");
}

fn decode_reply(c: &mut Criterion) {
    let entries: Vec<serde_json::Value> = (0..INSTANCES)
        .map(|n| {
            serde_json::json!({
                "Node": {"ID": "x", "Node": format!("node-{n}"), "Address": format!("192.168.0.{}", n + 1),
                         "Datacenter": "dc1", "TaggedAddresses": {"lan": "192.168.0.1"}, "Meta": {},
                         "CreateIndex": 5, "ModifyIndex": 5},
                "Service": {"ID": format!("web-{n}"), "Service": "web", "Tags": ["v1"], "Address": "10.0.0.1",
                            "Port": 8000 + n, "Meta": {"version": "1"}, "Weights": {"Passing": 1, "Warning": 1},
                            "EnableTagOverride": false, "CreateIndex": 9, "ModifyIndex": 9},
                "Checks": [{"Node": "n", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
                            "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "",
                            "ServiceTags": [], "Type": "", "CreateIndex": 5, "ModifyIndex": 5}]
            })
        })
        .collect();
    let reply = Reply {
        status: 200,
        index: None,
        body: serde_json::to_vec(&entries).expect("json"),
        filtered_by_acls: false,
    };
    let dependency = Dependency::Health(HealthQuery::new("web", &[], None, true));
    c.bench_function("decode a 10-instance health reply", |b| {
        b.iter(|| decode(black_box(&dependency), black_box(&reply)).expect("decodes"))
    });
}

criterion_group!(
    benches,
    render,
    first_render,
    render_seed,
    decode_reply,
    engine_ratio
);
criterion_main!(benches);
