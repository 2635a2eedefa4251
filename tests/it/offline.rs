//! Offline mode: rendering from a catalog file, with no Consul, as CI does.

use std::time::Duration;

use testbed::Nginx;

use crate::support::{repo, run, upstream_servers, write};

const T: Duration = Duration::from_secs(20);

#[test]
fn the_readme_example_renders_the_seeds_config_to_stdout() {
    let done = run(
        &[
            "-catalog-file",
            &repo().join("examples/catalog.json").display().to_string(),
            "-dry",
            "-template",
            &format!(
                "{}:/etc/nginx/conf.d/default.conf",
                repo().join("templates/default.conf.tera").display()
            ),
        ],
        &[("APP_NAME", "tutum-nodejs-redis")],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        done.stdout.starts_with(
            "> /etc/nginx/conf.d/default.conf\nupstream tutum-nodejs-redis {\n    least_conn;\n"
        ),
        "{done:?}"
    );
    assert_eq!(
        upstream_servers(&done.stdout),
        [
            "10.132.1.191:32777",
            "10.132.1.191:32778",
            "10.132.14.17:32772"
        ],
        "{done:?}"
    );
    assert!(
        done.stdout
            .contains("server 10.132.1.191:32777 max_fails=3 fail_timeout=60 weight=1;")
    );
    assert!(
        done.stdout.contains("listen 80 default;")
            && done
                .stdout
                .contains("proxy_pass http://tutum-nodejs-redis;")
    );
}

#[test]
fn tera_templates_read_a_node_and_a_local_file_from_a_catalog_file() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.json");
    write(
        &catalog,
        r#"{"services": {"web": [
             {"Node": {"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1"},
              "Service": {"ID": "web-2", "Service": "web", "Port": 8082}},
             {"Node": {"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc1"},
              "Service": {"ID": "api-1", "Service": "api", "Port": 9000, "Address": "10.0.1.1"}}]},
           "agent_node": "n1"}"#,
    );
    let included = dir.path().join("extra.conf");
    write(&included, "keepalive 16;");
    let template = dir.path().join("t.tera");
    write(
        &template,
        &format!(
            "{{% set n = node(name=\"n1\") %}}{{{{ n.name }}}} {{{{ n.address }}}}:\
             {{% for s in n.services %}} {{{{ s.name }}}}/{{{{ s.id }}}}={{{{ s.port }}}}{{% endfor %}}\n\
             {{% set local = node() %}}{{% set gone = node(name=\"nope\") %}}\
             local={{{{ local.name }}}} missing={{{{ gone is none }}}}\n\
             {{{{ file(path=\"{}\") }}}}\n",
            included.display()
        ),
    );
    let done = run(
        &[
            &format!("-catalog-file={}", catalog.display()),
            "-dry",
            &format!("-template={}:/out.conf", template.display()),
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(
        done.stdout,
        "> /out.conf\nn1 10.0.0.1: api/api-1=9000 web/web-2=8082\nlocal=n1 missing=true\nkeepalive 16;\n",
        "{done:?}"
    );
}

/// Renders the shipped template from `catalog` into a running nginx's
/// conf.d and returns nginx's verdict on the result.
fn render_and_test(catalog: &str, app: &str) -> (String, Result<(), String>) {
    let nginx = Nginx::start("");
    let dir = tempfile::tempdir().unwrap();
    let catalog_path = dir.path().join("catalog.json");
    write(&catalog_path, catalog);
    let dest = nginx.conf_d().join("default.conf");
    let port = testbed::free_port().to_string();
    let done = run(
        &[
            &format!("-catalog-file={}", catalog_path.display()),
            &format!(
                "-template={}:{}",
                repo().join("templates/default.conf.tera").display(),
                dest.display()
            ),
        ],
        &[("APP_NAME", app), ("LISTEN", &format!("127.0.0.1:{port}"))],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    (std::fs::read_to_string(&dest).unwrap(), nginx.config_test())
}

#[test]
fn the_shipped_template_passes_nginx_t() {
    let catalog = std::fs::read_to_string(repo().join("examples/catalog.json")).unwrap();
    let (conf, verdict) = render_and_test(&catalog, "tutum-nodejs-redis");
    assert_eq!(upstream_servers(&conf).len(), 3, "{conf}");
    verdict.unwrap_or_else(|e| panic!("nginx -t rejected:\n{conf}\n{e}"));
}

#[test]
fn a_service_without_healthy_instances_still_gives_valid_nginx() {
    let (conf, verdict) = render_and_test(r#"{"services": {}}"#, "tutum-nodejs-redis");
    assert!(upstream_servers(&conf).is_empty(), "{conf}");
    assert!(conf.contains("down;"), "{conf}");
    verdict.unwrap_or_else(|e| panic!("nginx -t rejected the empty upstream:\n{conf}\n{e}"));
}

#[test]
fn a_captured_catalog_renders_offline_exactly_as_live() {
    use testbed::{ConsulAgent, Instance};
    let consul = ConsulAgent::dev();
    for (id, port, tag) in [("w1", 81, "v1"), ("w2", 82, "v2"), ("w3", 83, "v1")] {
        consul.register(
            &Instance::new("web", id)
                .address("10.0.0.1")
                .port(port)
                .tags(&[tag])
                .meta("zone", "a"),
        );
    }
    consul.register(&Instance::new("api", "a1").address("10.0.0.2").port(90));
    consul.warn(&Instance::new("web", "w3").check_id());
    consul.kv_put("lb/timeout", "30s");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for s in services() %}{{ s.name }}:{% for i in service(name=s.name, status=\"any\") %} {{ i.id }}/{{ i.status }}/{{ i.meta.zone | default(value=\"-\") }}{% endfor %}\n{% endfor %}\
         v1:{% for i in service(name=\"web\", tag=\"v1\") %} {{ i.endpoint }}{% endfor %}\n\
         timeout={{ key(path=\"lb/timeout\") }}\n",
    );
    let catalog = dir.path().join("captured.json");
    let live = run(
        &[
            "-once",
            "-dry",
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-template={}:/out", src.display()),
            &format!("-save-catalog={}", catalog.display()),
        ],
        &[],
        T,
    );
    assert_eq!(live.code, 0, "{live:?}");
    assert!(
        live.stdout
            .contains("web: w1/passing/a w2/passing/a w3/warning/a"),
        "{live:?}"
    );
    drop(consul);
    let offline = run(
        &[
            &format!("-catalog-file={}", catalog.display()),
            "-dry",
            &format!("-template={}:/out", src.display()),
        ],
        &[],
        T,
    );
    assert_eq!(offline.code, 0, "{offline:?}");
    assert_eq!(offline.stdout, live.stdout);
}
