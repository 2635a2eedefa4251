//! [`ConsulAgent`]: a real `consul agent -dev` on free loopback ports, and
//! the writes tests make to it (service instances with TTL checks, health
//! changes, maintenance, KV), each returning once the catalog shows it.
//! Also the pieces the three-server cluster shares: the port set and the
//! leader query.

use crate::http::{Response, call, call_ok, try_call};
use crate::process::Process;
use crate::{free_ports, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// How long an agent gets to become ready, and a write to show in the catalog.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The TTL of an [`Instance`]'s check: long enough never to lapse in a test.
const CHECK_TTL: &str = "10m";

/// The ports one Consul agent listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) http: u16,
    pub(crate) dns: u16,
    pub(crate) serf_lan: u16,
    pub(crate) serf_wan: u16,
    pub(crate) server: u16,
    pub(crate) grpc: u16,
}

impl Ports {
    /// A fresh set of free ports.
    pub(crate) fn free() -> Ports {
        let p = free_ports(6);
        Ports {
            http: p[0],
            dns: p[1],
            serf_lan: p[2],
            serf_wan: p[3],
            server: p[4],
            grpc: p[5],
        }
    }

    /// The command-line flags that bind the agent to loopback on these ports
    /// (gRPC-TLS, on by default for servers, is turned off).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-bind", "127.0.0.1", "-client", "127.0.0.1"]
            .map(String::from)
            .to_vec();
        for (flag, port) in [
            ("-http-port", self.http),
            ("-dns-port", self.dns),
            ("-serf-lan-port", self.serf_lan),
            ("-serf-wan-port", self.serf_wan),
            ("-server-port", self.server),
            ("-grpc-port", self.grpc),
        ] {
            args.push(flag.to_string());
            args.push(port.to_string());
        }
        args.push("-hcl".into());
        args.push("ports { grpc_tls = -1 }".into());
        args
    }
}

/// The leader an agent at `url` reports ("127.0.0.1:PORT"), or `None` if it
/// reports none or does not answer.
pub(crate) fn leader(url: &str) -> Option<String> {
    let response = try_call("GET", &format!("{url}/v1/status/leader"), None).ok()?;
    if response.status != 200 {
        return None;
    }
    match serde_json::from_str::<Value>(&response.body) {
        Ok(Value::String(leader)) if !leader.is_empty() => Some(leader),
        _ => None,
    }
}

/// Runs `program args` in `dir`, panicking with its output unless it
/// succeeds.
fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} exited with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The agent configuration for ACLs with a default policy of deny, with
/// `management` as the bootstrap token and the agents' own token.
pub(crate) fn acl_deny_hcl(management: &str) -> String {
    format!(
        "acl {{ enabled = true default_policy = \"deny\" tokens {{ initial_management = \"{management}\" agent = \"{management}\" }} }}"
    )
}

/// `base` + API `path`, carrying `token` if there is one (as a query
/// parameter, which Consul hides in its logs).
pub(crate) fn api_url(base: &str, path: &str, token: Option<&str>) -> String {
    let url = format!("{base}{path}");
    match token {
        None => url,
        Some(token) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{url}{sep}token={token}")
        }
    }
}

/// A name no other agent started by this process has.
pub(crate) fn unique_node_name(kind: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("testbed-{kind}-{}-{n}", std::process::id())
}

/// CA, server certificate and key made by `consul tls`, for an agent's HTTPS
/// listener (the certificate is valid for 127.0.0.1 and localhost), and a
/// client certificate signed by the same CA.
pub struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    /// Generates a CA and a `dc1` server certificate in a temp dir.
    pub fn generate() -> TlsFiles {
        let dir = tempfile::Builder::new()
            .prefix("testbed-tls-")
            .tempdir()
            .expect("creating a temp dir for TLS files");
        for args in [
            &["tls", "ca", "create"][..],
            &["tls", "cert", "create", "-server", "-dc", "dc1"][..],
            &["tls", "cert", "create", "-client", "-dc", "dc1"][..],
        ] {
            run_in(dir.path(), "consul", args);
        }
        TlsFiles { dir }
    }

    /// The CA certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("consul-agent-ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("dc1-server-consul-0.pem")
    }

    /// The server certificate's private key (PEM).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("dc1-server-consul-0-key.pem")
    }

    /// A client certificate from the same CA (PEM).
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("dc1-client-consul-0.pem")
    }

    /// The client certificate's private key (PEM).
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("dc1-client-consul-0-key.pem")
    }

    /// A server certificate from the same CA, for the same names, that
    /// expired in 2020 (made with `openssl ca`, which takes any dates);
    /// returns its certificate and key files.
    pub fn expired_server(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let db = dir.join("expired-db");
        std::fs::create_dir_all(&db).expect("creating the openssl ca database");
        std::fs::write(db.join("index"), "").expect("openssl ca index");
        std::fs::write(db.join("serial"), "01\n").expect("openssl ca serial");
        std::fs::write(
            dir.join("expired-ca.cnf"),
            "[ca]\ndefault_ca = expired\n[expired]\ndatabase = expired-db/index\n\
             new_certs_dir = expired-db\nserial = expired-db/serial\ndefault_md = sha256\n\
             policy = any\nx509_extensions = ext\n[any]\ncommonName = supplied\n[ext]\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:server.dc1.consul\n\
             extendedKeyUsage = serverAuth,clientAuth\n",
        )
        .expect("openssl ca config");
        let (cert, key) = (dir.join("expired.pem"), dir.join("expired-key.pem"));
        let steps: [&[&str]; 2] = [
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "expired-key.pem",
                "-subj",
                "/CN=server.dc1.consul",
                "-out",
                "expired.csr",
            ],
            &[
                "ca",
                "-batch",
                "-config",
                "expired-ca.cnf",
                "-cert",
                "consul-agent-ca.pem",
                "-keyfile",
                "consul-agent-ca-key.pem",
                "-in",
                "expired.csr",
                "-out",
                "expired.pem",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
            ],
        ];
        for args in steps {
            run_in(dir, "openssl", args);
        }
        (cert, key)
    }
}

/// Extra configuration for [`ConsulAgent::dev_with`].
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    hcl: Vec<String>,
    https: Option<[PathBuf; 3]>,
    /// The management token the test bed's own requests carry.
    token: Option<String>,
}

impl AgentOptions {
    /// No extras: what [`ConsulAgent::dev`] uses.
    pub fn new() -> AgentOptions {
        AgentOptions::default()
    }

    /// Adds an `-hcl` config fragment.
    pub fn hcl(mut self, fragment: &str) -> AgentOptions {
        self.hcl.push(fragment.to_string());
        self
    }

    /// Turns ACLs on with a default policy of deny, as production runs
    /// them: `management` is the bootstrap token, which the test bed's own
    /// requests (registrations, KV writes, reads) carry.
    pub fn acl_deny(mut self, management: &str) -> AgentOptions {
        self.hcl.push(acl_deny_hcl(management));
        self.token = Some(management.to_owned());
        self
    }

    /// Also serves the HTTP API over HTTPS on an extra free port (see
    /// [`ConsulAgent::https_port`]) with `tls.defaults` from `tls`, which
    /// must outlive the agent. Incoming client certificates are not verified.
    pub fn https(self, tls: &TlsFiles) -> AgentOptions {
        self.https_with(tls, tls.cert_file(), tls.key_file())
    }

    /// Like [`AgentOptions::https`], serving `cert` and `key` instead of
    /// the usual server certificate.
    pub fn https_with(mut self, tls: &TlsFiles, cert: PathBuf, key: PathBuf) -> AgentOptions {
        self.https = Some([tls.ca_file(), cert, key]);
        self
    }
}

/// A service instance to register with [`ConsulAgent::register`]. By default
/// it carries a passing TTL check with id [`Instance::check_id`], which
/// [`ConsulAgent::pass`], [`ConsulAgent::warn`] and [`ConsulAgent::fail`] set.
#[derive(Debug, Clone)]
pub struct Instance {
    service: String,
    id: String,
    address: Option<String>,
    port: Option<u16>,
    tags: Vec<String>,
    meta: BTreeMap<String, String>,
    check: bool,
}

impl Instance {
    /// Instance `id` of `service`, with a passing TTL check.
    pub fn new(service: &str, id: &str) -> Instance {
        Instance {
            service: service.to_string(),
            id: id.to_string(),
            address: None,
            port: None,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            check: true,
        }
    }

    /// Sets the instance's address.
    pub fn address(mut self, address: &str) -> Instance {
        self.address = Some(address.to_string());
        self
    }

    /// Sets the instance's port.
    pub fn port(mut self, port: u16) -> Instance {
        self.port = Some(port);
        self
    }

    /// Sets the instance's tags.
    pub fn tags(mut self, tags: &[&str]) -> Instance {
        self.tags = tags.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Adds one meta key/value.
    pub fn meta(mut self, key: &str, value: &str) -> Instance {
        self.meta.insert(key.to_string(), value.to_string());
        self
    }

    /// Registers the instance without any check (always healthy).
    pub fn no_check(mut self) -> Instance {
        self.check = false;
        self
    }

    /// The service id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id of its TTL check: `check:<id>`.
    pub fn check_id(&self) -> String {
        format!("check:{}", self.id)
    }

    /// The body of PUT /v1/agent/service/register.
    fn registration(&self) -> Value {
        let mut body = json!({
            "ID": self.id,
            "Name": self.service,
            "Tags": self.tags,
            "Meta": self.meta,
        });
        if let Some(address) = &self.address {
            body["Address"] = json!(address);
        }
        if let Some(port) = self.port {
            body["Port"] = json!(port);
        }
        if self.check {
            body["Check"] = json!({
                "CheckID": self.check_id(),
                "Name": format!("TTL check of {}", self.id),
                "TTL": CHECK_TTL,
                "Status": "passing",
            });
        }
        body
    }
}

/// A running `consul agent -dev` (a single server holding its state in
/// memory) on free ports of 127.0.0.1. Stopped when dropped.
pub struct ConsulAgent {
    process: Option<Process>,
    ports: Ports,
    https_port: Option<u16>,
    node: String,
    options: AgentOptions,
    dir: TempDir,
}

impl ConsulAgent {
    /// Starts a dev agent and waits until it is ready: it knows a leader and
    /// its own node's `serfHealth` check is passing.
    pub fn dev() -> ConsulAgent {
        ConsulAgent::dev_with(AgentOptions::new())
    }

    /// Like [`ConsulAgent::dev`], with extra configuration.
    pub fn dev_with(options: AgentOptions) -> ConsulAgent {
        let dir = tempfile::Builder::new()
            .prefix("testbed-consul-")
            .tempdir()
            .expect("creating a temp dir for a consul agent");
        let https_port = options.https.as_ref().map(|_| free_ports(1)[0]);
        let mut agent = ConsulAgent {
            process: None,
            ports: Ports::free(),
            https_port,
            node: unique_node_name("agent"),
            options,
            dir,
        };
        agent.start();
        agent
    }

    /// "127.0.0.1:PORT" of the HTTP API.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.http)
    }

    /// "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// The HTTPS API port, if started with [`AgentOptions::https`].
    pub fn https_port(&self) -> Option<u16> {
        self.https_port
    }

    /// The agent's node name (unique per agent).
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The agent's pid; panics if it is stopped.
    pub fn pid(&self) -> u32 {
        self.running().pid()
    }

    /// The agent's log (all runs, across restarts).
    pub fn log(&self) -> String {
        crate::process::read_log(&self.log_path())
    }

    /// Starts the agent again on the same ports after [`ConsulAgent::stop`]
    /// (with empty state: a dev agent keeps it in memory) and waits until it
    /// is ready. Panics if it is running.
    pub fn start(&mut self) {
        assert!(
            self.process.is_none(),
            "consul agent {} is already running",
            self.node
        );
        let mut cmd = Command::new("consul");
        cmd.args(["agent", "-dev", "-node", &self.node])
            .args(self.ports.args());
        if let (Some(port), Some([ca, cert, key])) = (self.https_port, &self.options.https) {
            cmd.arg("-hcl").arg(format!("ports {{ https = {port} }}"));
            cmd.arg("-hcl").arg(format!(
                "tls {{ defaults {{ ca_file = {ca:?} cert_file = {cert:?} key_file = {key:?} }} }}"
            ));
        }
        for fragment in &self.options.hcl {
            cmd.arg("-hcl").arg(fragment);
        }
        let label = format!("consul agent {}", self.node);
        let health = self.api(&format!("/v1/health/node/{}", self.node));
        let process = self
            .process
            .insert(Process::spawn(&label, cmd, &self.log_path()));
        let url = format!("http://127.0.0.1:{}", self.ports.http);
        wait_until(&format!("{label} to be ready"), READY_TIMEOUT, || {
            process.assert_running();
            leader(&url).is_some()
                && try_call("GET", &health, None).is_ok_and(|r| {
                    r.status == 200 && check_status(&r.json(), "serfHealth") == Some("passing")
                })
        });
    }

    /// Kills the agent (SIGKILL) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Stops the agent and starts a fresh one on the same ports.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// Raw GET of `path` (e.g. "/v1/health/service/web?passing").
    pub fn get(&self, path: &str) -> Response {
        call("GET", &self.api(path), None)
    }

    /// Registers `instance` with the agent; returns once the catalog has it
    /// (and its check, if any).
    pub fn register(&self, instance: &Instance) {
        register_with(&|path| self.api(path), &self.node, instance);
    }

    /// Deregisters service instance `service_id`; returns once it has left
    /// the catalog.
    pub fn deregister(&self, service_id: &str) {
        deregister_with(&|path| self.api(path), &self.node, service_id);
    }

    /// Sets TTL check `check_id` passing; returns once the catalog shows it.
    pub fn pass(&self, check_id: &str) {
        self.update_check("pass", check_id, "passing");
    }

    /// Sets TTL check `check_id` warning; returns once the catalog shows it.
    pub fn warn(&self, check_id: &str) {
        self.update_check("warn", check_id, "warning");
    }

    /// Sets TTL check `check_id` critical; returns once the catalog shows it.
    pub fn fail(&self, check_id: &str) {
        self.update_check("fail", check_id, "critical");
    }

    /// Puts service instance `service_id` into (or out of) maintenance mode,
    /// which adds (or removes) a critical check; returns once the catalog
    /// shows it.
    pub fn maintenance(&self, service_id: &str, enable: bool) {
        let path =
            format!("/v1/agent/service/maintenance/{service_id}?enable={enable}&reason=testbed");
        self.put(&path, None);
        let check_id = format!("_service_maintenance:{service_id}");
        let what = format!("maintenance={enable} of {service_id} to reach the catalog");
        wait_until(&what, READY_TIMEOUT, || {
            self.check_status(&check_id).is_some() == enable
        });
    }

    /// How many instances of `service` are passing all their checks.
    pub fn healthy_count(&self, service: &str) -> usize {
        let response = self.get(&format!("/v1/health/service/{service}?passing"));
        assert_eq!(
            response.status, 200,
            "health of {service}: {}",
            response.body
        );
        response.json().as_array().map_or(0, Vec::len)
    }

    /// Sets KV `key` to `value`.
    pub fn kv_put(&self, key: &str, value: &str) {
        let response = self.put(&format!("/v1/kv/{key}"), Some(value));
        assert_eq!(response.body.trim(), "true", "PUT /v1/kv/{key} was refused");
    }

    /// The value of KV `key`, or `None` if it does not exist.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        let response = self.get(&format!("/v1/kv/{key}?raw"));
        match response.status {
            200 => Some(response.body),
            404 => None,
            status => panic!("GET /v1/kv/{key}?raw answered {status}: {}", response.body),
        }
    }

    /// Deletes KV `key`.
    pub fn kv_delete(&self, key: &str) {
        self.delete(&format!("/v1/kv/{key}"));
    }

    /// DELETE of API `path` (e.g. `/v1/acl/token/:id`), panicking unless
    /// it answers 2xx.
    pub fn delete(&self, path: &str) -> Response {
        call_ok("DELETE", &self.api(path), None)
    }

    /// The running process; panics if the agent is stopped.
    fn running(&self) -> &Process {
        self.process
            .as_ref()
            .unwrap_or_else(|| panic!("consul agent {} is stopped", self.node))
    }

    /// Where the agent's output goes.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("consul.log")
    }

    /// PUT to the agent's API (e.g. `/v1/catalog/register`, which accepts
    /// node names and addresses the agent API would not), panicking unless
    /// it answers 2xx.
    pub fn put(&self, path: &str, body: Option<&str>) -> Response {
        call_ok("PUT", &self.api(path), body)
    }

    /// The URL of API `path`, with the management token of an
    /// [`AgentOptions::acl_deny`] agent (Consul hides it in its logs).
    fn api(&self, path: &str) -> String {
        api_url(&self.url(), path, self.options.token.as_deref())
    }

    /// Sets a TTL check and waits for the catalog to show `status`.
    fn update_check(&self, verb: &str, check_id: &str, status: &str) {
        update_check_with(&|path| self.api(path), &self.node, verb, check_id, status);
    }

    /// The catalog's status of check `check_id` on this node.
    fn check_status(&self, check_id: &str) -> Option<String> {
        let checks = self.get(&format!("/v1/health/node/{}", self.node)).json();
        check_status(&checks, check_id).map(String::from)
    }
}

/// Registers `instance` with the agent whose API `api` addresses (whose
/// node is `node`); returns once the catalog has it (and its check, if any).
pub(crate) fn register_with(api: &dyn Fn(&str) -> String, node: &str, instance: &Instance) {
    let body = instance.registration().to_string();
    call_ok("PUT", &api("/v1/agent/service/register"), Some(&body));
    let what = format!("service instance {} to reach the catalog", instance.id);
    wait_until(&what, READY_TIMEOUT, || {
        let (Some(services), Some(checks)) = (
            read_catalog(api, &format!("/v1/catalog/node/{node}")),
            read_catalog(api, &format!("/v1/health/node/{node}")),
        ) else {
            return false;
        };
        services["Services"].get(&instance.id).is_some()
            && (!instance.check || check_status(&checks, &instance.check_id()).is_some())
    });
}

/// Deregisters service instance `service_id` from the agent whose API `api`
/// addresses (whose node is `node`); returns once it has left the catalog.
pub(crate) fn deregister_with(api: &dyn Fn(&str) -> String, node: &str, service_id: &str) {
    let path = format!("/v1/agent/service/deregister/{service_id}");
    call_ok("PUT", &api(&path), None);
    let what = format!("service instance {service_id} to leave the catalog");
    wait_until(&what, READY_TIMEOUT, || {
        read_catalog(api, &format!("/v1/catalog/node/{node}"))
            .is_some_and(|n| n["Services"].get(service_id).is_none())
    });
}

/// Sets TTL check `check_id` (`verb` is `pass`, `warn` or `fail`) on the
/// agent whose API `api` addresses (whose node is `node`); returns once the
/// catalog shows `status`.
pub(crate) fn update_check_with(
    api: &dyn Fn(&str) -> String,
    node: &str,
    verb: &str,
    check_id: &str,
    status: &str,
) {
    call_ok(
        "PUT",
        &api(&format!("/v1/agent/check/{verb}/{check_id}")),
        None,
    );
    let what = format!("check {check_id} to be {status} in the catalog");
    wait_until(&what, READY_TIMEOUT, || {
        read_catalog(api, &format!("/v1/health/node/{node}"))
            .is_some_and(|checks| check_status(&checks, check_id) == Some(status))
    });
}

/// A catalog read through `api`, or `None` while it cannot answer: without
/// a leader (a cluster electing one) reads answer 500.
fn read_catalog(api: &dyn Fn(&str) -> String, path: &str) -> Option<Value> {
    try_call("GET", &api(path), None)
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.json())
}

/// The status of check `check_id` in a /v1/health/node answer.
fn check_status<'a>(checks: &'a Value, check_id: &str) -> Option<&'a str> {
    checks
        .as_array()?
        .iter()
        .find(|c| c["CheckID"] == check_id)?["Status"]
        .as_str()
}
