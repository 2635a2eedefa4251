//! [`FaultProxy`]: a real `toxiproxy-server` on a free port running one TCP
//! proxy in front of an upstream (typically a Consul agent), with toxics
//! (latency, resets, timeouts...) and enable/disable driven via its HTTP API.

use crate::http::{call, try_call};
use crate::process::Process;
use crate::{free_ports, wait_until};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long toxiproxy gets to start answering its API.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The name of the one proxy each server runs.
const PROXY: &str = "testbed";

/// A toxiproxy server with one proxy `listen_addr() -> upstream`.
/// Stopped when dropped.
pub struct FaultProxy {
    process: Process,
    api_port: u16,
    listen_port: u16,
    _dir: TempDir,
}

impl FaultProxy {
    /// Starts toxiproxy and a proxy from a free port to `upstream`
    /// ("127.0.0.1:8500"), enabled and without toxics.
    pub fn start(upstream: &str) -> FaultProxy {
        let dir = tempfile::Builder::new()
            .prefix("testbed-toxiproxy-")
            .tempdir()
            .expect("creating a temp dir for toxiproxy");
        let ports = free_ports(2);
        let (api_port, listen_port) = (ports[0], ports[1]);
        let mut cmd = Command::new("toxiproxy-server");
        cmd.args(["-host", "127.0.0.1", "-port", &api_port.to_string()]);
        let mut process =
            Process::spawn("toxiproxy-server", cmd, &dir.path().join("toxiproxy.log"));
        let version_url = format!("http://127.0.0.1:{api_port}/version");
        wait_until("toxiproxy-server to answer /version", START_TIMEOUT, || {
            process.assert_running();
            try_call("GET", &version_url, None).is_ok_and(|r| r.status == 200)
        });
        let proxy = FaultProxy {
            process,
            api_port,
            listen_port,
            _dir: dir,
        };
        let body = json!({
            "name": PROXY,
            "listen": proxy.listen_addr(),
            "upstream": upstream,
            "enabled": true,
        });
        proxy.api("POST", "/proxies", Some(&body));
        proxy
    }

    /// "127.0.0.1:PORT" clients connect to instead of the upstream.
    pub fn listen_addr(&self) -> String {
        format!("127.0.0.1:{}", self.listen_port)
    }

    /// "http://127.0.0.1:PORT" of the proxy's listen address.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen_addr())
    }

    /// Adds toxic `name` of `kind` (latency, bandwidth, slow_close, timeout,
    /// reset_peer, slicer, limit_data) on `stream` ("upstream": client to
    /// server, or "downstream") with toxicity 1 and `attributes` such as
    /// `json!({"latency": 300})` (see toxiproxy's README for each kind's).
    pub fn add_toxic(&self, name: &str, kind: &str, stream: &str, attributes: Value) {
        let body = json!({
            "name": name,
            "type": kind,
            "stream": stream,
            "toxicity": 1.0,
            "attributes": attributes,
        });
        self.api("POST", &format!("/proxies/{PROXY}/toxics"), Some(&body));
    }

    /// Removes toxic `name`.
    pub fn remove_toxic(&self, name: &str) {
        self.api("DELETE", &format!("/proxies/{PROXY}/toxics/{name}"), None);
    }

    /// Enables or disables the proxy. Disabled, it closes its connections and
    /// refuses new ones; enabled again, it listens on the same address.
    pub fn set_enabled(&self, enabled: bool) {
        let body = json!({ "enabled": enabled });
        self.api("POST", &format!("/proxies/{PROXY}"), Some(&body));
    }

    /// toxiproxy-server's log.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Calls toxiproxy's API, panicking (with its log) unless it answers 2xx.
    fn api(&self, method: &str, path: &str, body: Option<&Value>) {
        let url = format!("http://127.0.0.1:{}{path}", self.api_port);
        let body = body.map(Value::to_string);
        let response = call(method, &url, body.as_deref());
        if !(200..300).contains(&response.status) {
            panic!(
                "toxiproxy {method} {path} with {body:?} answered {}: {}\ntoxiproxy log:\n{}",
                response.status,
                response.body,
                self.log()
            );
        }
    }
}
