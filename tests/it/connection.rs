//! Reaching Consul every way users configure it: HTTPS with a CA (flags
//! and env), server-name and verify overrides, a unix socket, and ACL
//! tokens, which travel in a header and never appear in a URL or a log.

use std::time::Duration;

use testbed::{AgentOptions, ConsulAgent, Instance, TlsFiles};

use crate::support::{
    Daemon, Render, read_only_token, run, token_with_rules, wait_for_file, write,
};

const T: Duration = Duration::from_secs(20);

/// Environment variables for one run.
type Env<'a> = Vec<(&'a str, &'a str)>;

/// Renders `service(name="web")` once against the given flags and env;
/// returns the exit code, the output and the log.
fn render_once(args: &[String], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}\n",
    );
    let dest = dir.path().join("out");
    let mut all: Vec<String> = vec![
        "-once".into(),
        format!("-template={}:{}", src.display(), dest.display()),
    ];
    all.extend(args.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let done = run(&all, env, T);
    (
        done.code,
        std::fs::read_to_string(&dest).unwrap_or_default(),
        done.stderr,
    )
}

fn web(agent: &ConsulAgent) {
    agent.register(&Instance::new("web", "w1").address("10.0.0.1").port(80));
}

#[test]
fn https_with_a_ca_certificate_from_flags_or_environment() {
    let tls = TlsFiles::generate();
    let agent = ConsulAgent::dev_with(AgentOptions::new().https(&tls));
    web(&agent);
    let https = format!("127.0.0.1:{}", agent.https_port().expect("https port"));
    let ca = tls.ca_file().display().to_string();
    let cases: Vec<(Vec<String>, Env)> = vec![
        (
            vec![
                format!("-consul-addr=https://{https}"),
                format!("-consul-ssl-ca-cert={ca}"),
            ],
            vec![],
        ),
        (
            vec![
                format!("-consul-addr={https}"),
                "-consul-ssl".into(),
                format!("-consul-ssl-ca-cert={ca}"),
            ],
            vec![],
        ),
        (
            vec![
                format!("-consul-addr=https://{https}"),
                format!("-consul-ssl-ca-cert={ca}"),
                "-consul-ssl-server-name=localhost".into(),
            ],
            vec![],
        ),
        (
            vec![
                format!("-consul-addr=https://{https}"),
                "-consul-ssl-verify=false".into(),
            ],
            vec![],
        ),
    ];
    for (args, env) in cases {
        let (code, out, log) = render_once(&args, &env);
        assert_eq!(
            (code, out.as_str()),
            (0, "10.0.0.1:80\n"),
            "{args:?}\n{log}"
        );
    }
    let env_https = format!("https://{https}");
    let (code, out, log) = render_once(
        &[],
        &[("CONSUL_HTTP_ADDR", &env_https), ("CONSUL_CACERT", &ca)],
    );
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "env: {log}");
}

#[test]
fn an_agent_verifying_incoming_certificates_gets_ours_and_refuses_none() {
    let tls = TlsFiles::generate();
    let agent = ConsulAgent::dev_with(
        AgentOptions::new()
            .https(&tls)
            .hcl("tls { https { verify_incoming = true } }"),
    );
    web(&agent);
    let https = format!(
        "-consul-addr=https://127.0.0.1:{}",
        agent.https_port().unwrap()
    );
    let ca = format!("-consul-ssl-ca-cert={}", tls.ca_file().display());
    let with_cert = [
        https.clone(),
        ca.clone(),
        format!("-consul-ssl-cert={}", tls.client_cert_file().display()),
        format!("-consul-ssl-key={}", tls.client_key_file().display()),
    ];
    let (code, out, log) = render_once(&with_cert, &[]);
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "{log}");
    let without = [https, ca, "-consul-retry-attempts=1".to_owned()];
    let (code, out, log) = render_once(&without, &[]);
    assert_eq!((code, out.as_str()), (14, ""), "{log}");
    assert!(
        log.contains("consul asked for a client certificate and none is configured"),
        "the log says why: {log}"
    );
}

#[test]
fn an_expired_certificate_or_a_plain_http_port_fails_and_never_downgrades() {
    let tls = TlsFiles::generate();
    let (cert, key) = tls.expired_server();
    let agent = ConsulAgent::dev_with(AgentOptions::new().https_with(&tls, cert, key));
    web(&agent);
    let ca = format!("-consul-ssl-ca-cert={}", tls.ca_file().display());
    let expired = format!(
        "-consul-addr=https://127.0.0.1:{}",
        agent.https_port().unwrap()
    );
    let retry_once = "-consul-retry-attempts=1".to_owned();
    let (code, out, log) = render_once(&[expired.clone(), ca.clone(), retry_once.clone()], &[]);
    assert_eq!((code, out.as_str()), (14, ""), "{log}");
    assert!(
        log.to_lowercase().contains("expired"),
        "the log says why: {log}"
    );

    // HTTPS asked of a port that speaks plain HTTP: an error, not a
    // quiet switch to http:// (which would have worked).
    let plain = format!("-consul-addr=https://{}", agent.http_addr());
    let (code, out, log) = render_once(&[plain, ca, retry_once], &[]);
    assert_eq!((code, out.as_str()), (14, ""), "{log}");
    assert!(
        log.contains("the server's first bytes were not TLS: is this a plain-HTTP port?"),
        "the log says why: {log}"
    );

    // Verification off is honoured only when asked, and warned about.
    let (code, out, log) = render_once(&[expired, "-consul-ssl-verify=false".to_owned()], &[]);
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "{log}");
    assert!(log.contains("TLS certificate verification is off"), "{log}");
}

#[test]
fn an_https_agent_restarted_gets_a_new_http2_connection_and_changes_flow_again() {
    let tls = TlsFiles::generate();
    let mut agent = ConsulAgent::dev_with(AgentOptions::new().https(&tls));
    web(&agent);
    let https = format!(
        "https://127.0.0.1:{}",
        agent.https_port().expect("https port")
    );
    let render = Render::new(
        &https,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}\n{% endfor %}",
    )
    .flag(&format!("-consul-ssl-ca-cert={}", tls.ca_file().display()));
    let mut daemon = render.start();
    let out = render.out();
    wait_for_file(&out, "w1", T, |c| c == "10.0.0.1:80\n");
    agent.restart();
    daemon.wait_for_log("consul unreachable", 1, T);
    web(&agent);
    agent.register(&Instance::new("web", "w2").address("10.0.0.2").port(80));
    wait_for_file(&out, "w1 and w2", T, |c| c == "10.0.0.1:80\n10.0.0.2:80\n");
    daemon.assert_running();
}

/// A TLS proxy in front of the agent's plain HTTP listener at `upstream`
/// that offers only HTTP/1.1 in its handshake, as some TLS terminators do.
/// Returns its port; it serves until the test process ends.
fn http1_only_tls_proxy(tls: &TlsFiles, upstream: String) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(tls.cert_file())
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .expect("the agent's certificate");
    let key = PrivateKeyDer::from_pem_file(tls.key_file()).expect("the agent's key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .expect("a TLS server configuration");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut agent) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
                });
            }
        });
    });
    port
}

#[test]
fn an_https_endpoint_without_http2_is_read_over_http_1_1() {
    let tls = TlsFiles::generate();
    let agent = ConsulAgent::dev();
    web(&agent);
    let port = http1_only_tls_proxy(&tls, agent.http_addr());
    let (code, out, log) = render_once(
        &[
            format!("-consul-addr=https://127.0.0.1:{port}"),
            format!("-consul-ssl-ca-cert={}", tls.ca_file().display()),
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "{log}");
    assert!(log.contains("does not speak HTTP/2"), "{log}");
}

#[test]
fn an_untrusted_certificate_is_refused_and_named_in_the_log() {
    let tls = TlsFiles::generate();
    let agent = ConsulAgent::dev_with(AgentOptions::new().https(&tls));
    let https = format!(
        "https://127.0.0.1:{}",
        agent.https_port().expect("https port")
    );
    let ca = tls.ca_file().display().to_string();
    // Another `consul tls ca create`: a CA, just not the one that signed.
    let other = TlsFiles::generate();
    let wrong_ca = other.ca_file().display().to_string();
    // Each refusal says which check failed: an issuer nobody trusts, or a
    // certificate for another name.
    for (args, why) in [
        (vec![format!("-consul-addr={https}")], "UnknownIssuer"),
        (
            vec![
                format!("-consul-addr={https}"),
                format!("-consul-ssl-ca-cert={wrong_ca}"),
            ],
            "UnknownIssuer",
        ),
        (
            vec![
                format!("-consul-addr={https}"),
                format!("-consul-ssl-ca-cert={ca}"),
                "-consul-ssl-server-name=wrong.example".into(),
            ],
            "not valid for name \"wrong.example\"",
        ),
    ] {
        let mut with_retry = args.clone();
        with_retry.push("-consul-retry-attempts=1".into());
        let (code, out, log) = render_once(&with_retry, &[]);
        assert_eq!(code, 14, "{args:?} gives up after its retries: {log}");
        assert!(out.is_empty());
        assert!(
            log.contains("invalid peer certificate") && log.contains(why),
            "{args:?}: the log says why ({why}): {log}"
        );
    }
}

#[test]
fn a_unix_socket_address_works() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("consul.sock");
    let agent = ConsulAgent::dev_with(AgentOptions::new().hcl(&format!(
        "addresses {{ http = \"127.0.0.1 unix://{}\" }}",
        socket.display()
    )));
    web(&agent);
    let (code, out, log) = render_once(&[format!("-consul-addr=unix://{}", socket.display())], &[]);
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "{log}");
}

const MANAGEMENT: &str = "4a1c6f0e-7d2b-4c39-9f5e-management00";
const BOGUS: &str = "0b9d3e52-bogus-token-never-in-logs-11";

fn acl_agent() -> ConsulAgent {
    let agent = ConsulAgent::dev_with(AgentOptions::new().hcl(&format!(
        "acl {{ enabled = true default_policy = \"allow\" tokens {{ initial_management = \"{MANAGEMENT}\" }} }}"
    )));
    web(&agent);
    agent
}

/// Against default deny a render only succeeds when the token arrives, so
/// each source is proven to be sent, not merely accepted.
#[test]
fn tokens_from_flag_file_or_environment_are_sent() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    web(&agent);
    let (_, token) = token_for_templates(&agent);
    let addr = format!("-consul-addr={}", agent.http_addr());
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write(&token_file, &format!("{token}\n"));
    let token_path = token_file.display().to_string();
    let cases: Vec<(Vec<String>, Env)> = vec![
        (vec![addr.clone(), format!("-consul-token={token}")], vec![]),
        (
            vec![addr.clone(), format!("-consul-token-file={token_path}")],
            vec![],
        ),
        (
            vec![addr.clone()],
            vec![("CONSUL_HTTP_TOKEN", token.as_str())],
        ),
        (
            vec![addr.clone()],
            vec![("CONSUL_HTTP_TOKEN_FILE", token_path.as_str())],
        ),
    ];
    for (args, env) in cases {
        let (code, out, log) = render_once(&args, &env);
        assert_eq!(
            (code, out.as_str()),
            (0, "10.0.0.1:80\n"),
            "{args:?} {env:?}\n{log}"
        );
        assert!(!log.contains(&token), "the token is in the log:\n{log}");
    }
}

#[test]
fn a_rejected_token_is_reported_without_ever_being_printed() {
    let agent = acl_agent();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.tera");
    write(
        &src,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}\n",
    );
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", agent.http_addr()),
            &format!("-consul-token={BOGUS}"),
            &format!(
                "-template={}:{}",
                src.display(),
                dir.path().join("out").display()
            ),
            "-log-level=trace",
        ],
        &[],
    );
    // The agent refuses the (sent) token: proof it travelled.
    daemon.wait_for_log("403", 1, T);
    let log = daemon.log();
    assert!(log.contains("ACL not found"), "{log}");
    assert!(
        !log.contains(BOGUS),
        "our log must not contain the token:\n{log}"
    );
    assert!(
        !agent.log().contains(BOGUS),
        "the agent logged a URL with the token in it"
    );
    daemon.assert_running();
}

/// A read-only token of `agent`: (accessor, secret).
fn token_for_templates(agent: &ConsulAgent) -> (String, String) {
    read_only_token(&|path, body| agent.put(path, Some(body)).json())
}

#[test]
fn against_default_deny_a_read_only_token_renders_and_a_revoked_one_waits_for_the_next() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    web(&agent);
    agent.kv_put("app/config", "v1");
    let (accessor, first) = token_for_templates(&agent);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write(&token_file, &format!("{first}\n"));
    let (tera, go) = (dir.path().join("t.tera"), dir.path().join("t.ctmpl"));
    write(
        &tera,
        "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %} {{ key(path=\"app/config\") }}\n",
    );
    write(
        &go,
        &format!(
            "{{{{ range service \"web\" }}}}{{{{ .Address }}}}:{{{{ .Port }}}}{{{{ end }}}} {{{{ key \"app/config\" }}}} {{{{ with node \"{}\" }}}}{{{{ len .Services }}}}{{{{ end }}}}\n",
            agent.node_name()
        ),
    );
    let (tera_out, go_out) = (dir.path().join("tera.out"), dir.path().join("go.out"));
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", agent.http_addr()),
            &format!("-consul-token-file={}", token_file.display()),
            "-consul-retry-max-backoff=500ms",
            // Consul answers a blocking query with the rights its token
            // had when the query began: short waits let a revocation bite.
            "-block-wait=1s",
            "-log-level=trace",
            &format!("-template={}:{}", tera.display(), tera_out.display()),
            &format!("-template={}:{}", go.display(), go_out.display()),
        ],
        &[],
    );
    wait_for_file(&tera_out, "the Tera render", T, |t| t == "10.0.0.1:80 v1\n");
    wait_for_file(&go_out, "the Go render", T, |t| t == "10.0.0.1:80 v1 2\n");

    // Revoked: every read (service, key, node) is refused with Consul's
    // reason; then the data changes, and the files keep their last good text.
    agent.delete(&format!("/v1/acl/token/{accessor}"));
    daemon.wait_for_log(
        "dependency=kv.key(app/config) error=consul answered 403: ACL not found",
        1,
        T,
    );
    agent.kv_put("app/config", "v2");
    daemon.assert_running();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(&tera_out).unwrap(),
        "10.0.0.1:80 v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(&go_out).unwrap(),
        "10.0.0.1:80 v1 2\n"
    );
    // Refusals are paced by the backoff, up to its cap.
    let delays = retries_of(&daemon.log(), "kv.key(app/config)");
    assert!(
        !delays.is_empty() && delays.iter().all(|&d| d <= 500.0),
        "no retries, or past the backoff's cap: {delays:?}"
    );

    // A new token in the file: it is read again and the changes land.
    let (_, second) = token_for_templates(&agent);
    write(&token_file, &format!("{second}\n"));
    daemon.wait_for_log("the token file changed", 1, T);
    wait_for_file(&tera_out, "the render after the new token", T, |t| {
        t == "10.0.0.1:80 v2\n"
    });
    wait_for_file(&go_out, "the Go render after the new token", T, |t| {
        t == "10.0.0.1:80 v2 2\n"
    });

    // Neither secret is anywhere in what consul-render wrote.
    let log = daemon.log();
    for output in [
        log.clone(),
        std::fs::read_to_string(&tera_out).unwrap(),
        std::fs::read_to_string(&go_out).unwrap(),
    ] {
        for secret in [&first, &second, &MANAGEMENT.to_owned()] {
            assert!(
                !output.contains(secret.as_str()),
                "a token leaked:\n{output}"
            );
        }
    }
    assert!(log.contains("403"), "{log}");
}

#[test]
fn a_missing_permission_is_named_and_no_token_is_warned_about() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    web(&agent);
    agent.kv_put("secret/db", "x");
    let (_, token) = token_for_templates(&agent);
    let render = Render::new(&agent.http_addr(), "{{ key(path=\"secret/db\") }}\n")
        .flag(&format!("-consul-token={token}"))
        .flag("-consul-retry-backoff=50ms")
        .flag("-consul-retry-max-backoff=800ms");
    let mut daemon = render.start();
    // Consul's own words: which permission, on what.
    daemon.wait_for_log("lacks permission 'key:read' on \"secret/db\"", 1, T);
    daemon.wait_for_log("kv.key(secret/db)", 1, T);
    // The refusals back off: retry n waits between half and all of
    // min(50 ms · 2ⁿ⁻¹, 800 ms), so they double up to the cap.
    daemon.wait_for_log("retry_in=", 7, T);
    let delays = retries_of(&daemon.log(), "kv.key(secret/db)");
    for (n, delay) in delays.iter().enumerate() {
        let nominal = (50.0 * 2f64.powi(n as i32)).min(800.0);
        assert!(
            (nominal / 2.0..=nominal).contains(delay),
            "retry {} waited {delay} ms, not within [{}, {nominal}] ms: {delays:?}",
            n + 1,
            nominal / 2.0
        );
    }
    assert!(!render.out().exists());
    assert!(!daemon.log().contains(&token));
    daemon.assert_running();
}

/// The `retry_in` of every refused query of `dependency` in `log`, in ms.
fn retries_of(log: &str, dependency: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(dependency) && l.contains("retry_in="))
        .filter_map(|l| {
            let value = l.split("retry_in=").nth(1)?.split_whitespace().next()?;
            let (number, scale) = match value.strip_suffix("ms") {
                Some(ms) => (ms, 1.0),
                None => (value.strip_suffix('s')?, 1000.0),
            };
            Some(number.parse::<f64>().ok()? * scale)
        })
        .collect()
}

/// Consul does not refuse a service or node read the token may not make:
/// it answers 200 with nothing in it, which rendered would empty the
/// upstream. With no token (the anonymous one) and then a token without
/// `node:read`, such replies are refused by name, retried with backoff,
/// and the file on disk is left as it was; a token that may read them
/// renders at once.
#[test]
fn results_hidden_by_acls_are_refused_and_never_empty_the_file() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    web(&agent);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write(&token_file, "");
    let (tera, go) = (dir.path().join("t.tera"), dir.path().join("t.ctmpl"));
    write(
        &tera,
        "upstream web {\n{% for i in service(name=\"web\") %}  server {{ i.endpoint }};\n{% endfor %}}\n",
    );
    write(
        &go,
        "upstream web {\n{{ range service \"web\" }}  server {{ .Address }}:{{ .Port }};\n{{ end }}}\n",
    );
    let (tera_out, go_out) = (dir.path().join("tera.conf"), dir.path().join("go.conf"));
    let last_good = "upstream web {\n  server 10.9.9.9:80;\n}\n";
    write(&tera_out, last_good);
    write(&go_out, last_good);
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", agent.http_addr()),
            &format!("-consul-token-file={}", token_file.display()),
            "-consul-retry-max-backoff=400ms",
            &format!("-template={}:{}", tera.display(), tera_out.display()),
            &format!("-template={}:{}", go.display(), go_out.display()),
        ],
        &[],
    );
    let hidden = "consul hid every result of GET /v1/health/service/web?passing from this token";
    let permission = "it lacks service:read on \"web\" and node:read";
    daemon.wait_for_log("default ACL policy is deny and no token is set", 1, T);
    daemon.wait_for_log(hidden, 4, T);
    assert!(daemon.log().contains(permission), "{}", daemon.log());
    // Paced: the delays grow to the cap (jittered within its upper half).
    let delays = retries_of(&daemon.log(), "health.service(web|passing)");
    assert!(delays.len() >= 4, "{delays:?}");
    assert!(
        delays.iter().skip(3).all(|&d| (200.0..=400.0).contains(&d)),
        "{delays:?}"
    );
    assert!(delays[0] <= 400.0, "{delays:?}");

    // A token that may read services but no node: still hidden, still kept.
    let put = |path: &str, body: &str| agent.put(path, Some(body)).json();
    let (_, services_only) = token_with_rules(&put, r#"service_prefix "" { policy = "read" }"#);
    let before = daemon.log().matches(hidden).count();
    write(&token_file, &format!("{services_only}\n"));
    daemon.wait_for_log("the token file changed", 1, T);
    daemon.wait_for_log(hidden, before + 2, T);
    daemon.assert_running();
    for out in [&tera_out, &go_out] {
        assert_eq!(std::fs::read_to_string(out).unwrap(), last_good);
    }

    // A token that may read both: the live instances land in both files.
    let (_, token) = token_for_templates(&agent);
    write(&token_file, &format!("{token}\n"));
    let live = "upstream web {\n  server 10.0.0.1:80;\n}\n";
    wait_for_file(&tera_out, "the Tera render", T, |t| t == live);
    wait_for_file(&go_out, "the Go render", T, |t| t == live);
    let log = daemon.log();
    assert!(
        !log.contains(&token) && !log.contains(&services_only),
        "{log}"
    );
}

/// In signal mode (few connections, many services) the catalog-wide
/// signals are filtered by the token too: a service the token may not read
/// never shows in them, and its own read comes back hidden. That read is
/// refused and rechecked with backoff, the file keeps its last good text,
/// the services the token may read still follow their changes, and when
/// the token file gains the missing permission everything lands.
#[test]
fn in_signal_mode_a_service_hidden_by_acls_is_rechecked_and_never_empties_the_file() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    for (i, service) in ["a", "b", "c"].iter().enumerate() {
        agent.register(
            &Instance::new(service, &format!("{service}1"))
                .address(&format!("10.0.0.{}", i + 1))
                .port(80),
        );
    }
    let put = |path: &str, body: &str| agent.put(path, Some(body)).json();
    let (_, without_c) = token_with_rules(
        &put,
        r#"service "a" { policy = "read" }
service "b" { policy = "read" }
node_prefix "" { policy = "read" }"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write(&token_file, &format!("{without_c}\n"));
    let source = dir.path().join("t.tera");
    write(
        &source,
        "{% for s in [\"a\", \"b\", \"c\"] %}{% for i in service(name=s) %}{{ s }} {{ i.endpoint }}\n{% endfor %}{% endfor %}",
    );
    let out = dir.path().join("out");
    let last_good = "a 10.0.0.1:80\nb 10.0.0.2:80\nc 10.0.0.3:80\n";
    write(&out, last_good);
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", agent.http_addr()),
            &format!("-consul-token-file={}", token_file.display()),
            // Room for two long polls: the three services go through the signals.
            "-consul-max-connections=4",
            "-consul-retry-max-backoff=400ms",
            &format!("-template={}:{}", source.display(), out.display()),
        ],
        &[],
    );
    daemon.wait_for_log("catalog-wide signals", 1, T);
    let hidden = "consul hid every result of GET /v1/health/service/c?passing from this token";
    daemon.wait_for_log(hidden, 3, T);
    assert!(
        daemon.log().contains("it lacks service:read on \"c\""),
        "{}",
        daemon.log()
    );
    // A change to a readable service while c is hidden: the render still
    // waits for c, so the file keeps its last good text.
    agent.register(&Instance::new("b", "b2").address("10.0.0.9").port(80));
    std::thread::sleep(Duration::from_millis(500));
    daemon.assert_running();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), last_good);

    let (_, with_c) = token_with_rules(
        &put,
        r#"service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }"#,
    );
    write(&token_file, &format!("{with_c}\n"));
    let live = "a 10.0.0.1:80\nb 10.0.0.2:80\nb 10.0.0.9:80\nc 10.0.0.3:80\n";
    wait_for_file(&out, "every service once c may be read", T, |t| t == live);
    // And signals still carry changes after the recovery.
    agent.register(&Instance::new("c", "c2").address("10.0.0.10").port(80));
    wait_for_file(&out, "a change to c through the signals", T, |t| {
        t.contains("c 10.0.0.10:80")
    });
    let log = daemon.log();
    assert!(!log.contains(&without_c) && !log.contains(&with_c), "{log}");
}

/// Every file under `dir`, recursively, with its bytes.
fn every_file(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path, bytes));
        }
    }
    files
}

/// From each place a token can come from (flag, file, either environment
/// variable, config file), with every output turned on (trace logs to
/// stderr and a log file, a pid file, a backup, a saved catalog, metrics
/// and health, a command's environment) and a query Consul refuses, no
/// byte consul-render writes holds the token.
#[test]
fn the_token_is_in_nothing_consul_render_writes_or_hands_to_a_child() {
    let agent = ConsulAgent::dev_with(AgentOptions::new().acl_deny(MANAGEMENT));
    web(&agent);
    agent.kv_put("secret/db", "x");
    let (_, token) = token_for_templates(&agent);
    let sources = [
        "flag",
        "file",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE",
        "config",
    ];
    for source in sources {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).display().to_string();
        write(&dir.path().join("token"), &format!("{token}\n"));
        write(
            &dir.path().join("t.tera"),
            "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}\n",
        );
        write(&dir.path().join("out"), "the last good text\n");
        let mut config = format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n  command = \"env > {}\"\n  backup = true\n}}\n",
            at("t.tera"),
            at("out"),
            at("env"),
        );
        let port = testbed::free_port();
        let mut args = vec![
            format!("-consul-addr={}", agent.http_addr()),
            format!("-config={}", at("config.hcl")),
            "-log-level=trace".to_owned(),
            format!("-log-file={}", at("render.log")),
            format!("-pid-file={}", at("render.pid")),
            format!("-metrics-addr=127.0.0.1:{port}"),
            format!("-save-catalog={}", at("catalog.json")),
            "-consul-retry-max-backoff=500ms".to_owned(),
        ];
        let token_file = at("token");
        let mut env: Env = vec![];
        match source {
            "flag" => args.push(format!("-consul-token={token}")),
            "file" => args.push(format!("-consul-token-file={token_file}")),
            "CONSUL_HTTP_TOKEN" => env.push(("CONSUL_HTTP_TOKEN", token.as_str())),
            "CONSUL_HTTP_TOKEN_FILE" => env.push(("CONSUL_HTTP_TOKEN_FILE", token_file.as_str())),
            _ => config.push_str(&format!("consul {{\n  token = \"{token}\"\n}}\n")),
        }
        write(&dir.path().join("config.hcl"), &config);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut daemon = Daemon::start(&args, &env);
        let out = dir.path().join("out");
        wait_for_file(&out, "the render", T, |t| t == "10.0.0.1:80\n");
        wait_for_file(
            &dir.path().join("env"),
            "the command's environment",
            T,
            |t| t.contains("PATH="),
        );
        wait_for_file(
            &dir.path().join("catalog.json"),
            "the saved catalog",
            T,
            |t| t.contains("10.0.0.1"),
        );
        // Then an edit makes the template read a key the token may not:
        // Consul's refusal, and the retries, are logged at every level.
        write(
            &dir.path().join("t.tera"),
            "{% for i in service(name=\"web\") %}{{ i.endpoint }}{% endfor %}{{ key(path=\"secret/db\") }}\n",
        );
        daemon.wait_for_log("lacks permission 'key:read' on \"secret/db\"", 2, T);
        let base = format!("http://127.0.0.1:{port}");
        let (status, metrics) = testbed::http_get(&format!("{base}/metrics")).expect("/metrics");
        assert_eq!(status, 200);
        let (_, health) = testbed::http_get(&format!("{base}/health")).expect("/health");
        daemon.assert_running();
        let running = every_file(dir.path());
        let names: Vec<String> = running
            .iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for made in ["out.bak", "render-", "render.pid", "catalog.json", "env"] {
            assert!(
                names.iter().any(|n| n.starts_with(made)),
                "{source}: no {made} in {names:?}"
            );
        }
        // Stopped (SIGTERM), so that its last words are in too.
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.wait_exit(T), 12, "{source}: interrupted");

        let mut written: Vec<(String, Vec<u8>)> = vec![
            ("stdout and stderr".into(), daemon.log().into_bytes()),
            ("/metrics".into(), metrics.into_bytes()),
            ("/health".into(), health.into_bytes()),
        ];
        let mut files = running;
        files.extend(every_file(dir.path()));
        for (path, bytes) in files {
            // The token file and the config file are the test's own.
            if path.ends_with("token") || path.ends_with("config.hcl") {
                continue;
            }
            written.push((path.display().to_string(), bytes));
        }
        // -log-file names its files render-<start time>.log.
        let log_file = written
            .iter()
            .find(|(what, _)| what.contains("/render-") && what.ends_with(".log"))
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .unwrap();
        assert!(
            log_file.contains("403"),
            "{source}: the refusal is in the log file:\n{log_file}"
        );
        for (what, bytes) in written {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&token),
                "{source}: the token is in {what}:\n{text}"
            );
            assert!(
                !text.contains(MANAGEMENT),
                "{source}: the management token is in {what}"
            );
        }
    }
}

/// `consul.ssl.ca_cert_bytes`: the CA as PEM text in the config file,
/// which consul-template parses but, for Consul, never uses. Here it is
/// trusted (and turns TLS on, as any ssl setting does); text that holds
/// no certificate is refused before anything is asked of Consul.
#[test]
fn a_ca_given_as_pem_text_in_a_config_file_is_trusted() {
    let tls = TlsFiles::generate();
    let agent = ConsulAgent::dev_with(AgentOptions::new().https(&tls));
    web(&agent);
    let https = format!("127.0.0.1:{}", agent.https_port().expect("https port"));
    let dir = tempfile::tempdir().unwrap();
    let pem = std::fs::read_to_string(tls.ca_file()).unwrap();
    let config = |name: &str, bytes: &str| {
        let path = dir.path().join(name);
        let json =
            serde_json::json!({"consul": {"address": https, "ssl": {"ca_cert_bytes": bytes}}});
        write(&path, &json.to_string());
        format!("-config={}", path.display())
    };
    let (code, out, log) = render_once(&[config("ca.json", &pem)], &[]);
    assert_eq!((code, out.as_str()), (0, "10.0.0.1:80\n"), "{log}");

    let (code, out, log) = render_once(&[config("junk.json", "not a certificate")], &[]);
    assert_eq!((code, out.as_str()), (15, ""), "{log}");
    assert!(
        log.contains("consul.ssl.ca_cert_bytes in a -config file holds no PEM certificate"),
        "{log}"
    );
}
