//! [`ConsulCluster`]: three real Consul servers on one host (not `-dev`), each
//! with its own data dir and free ports, joined over serf; kill a member,
//! restart it on the same ports and data dir, and follow leadership.

use crate::consul::{Ports, acl_deny_hcl, api_url, leader, unique_node_name};
use crate::http::try_call;
use crate::process::{Process, read_log};
use crate::wait_until;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long the cluster gets to elect a leader, or a member to rejoin.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Serf's member status code for "alive" in /v1/agent/members.
const SERF_ALIVE: u64 = 1;

/// Registers service instances with one [`ClusterMember`]; see
/// [`ClusterMember::registrar`].
#[derive(Clone, Debug)]
pub struct Registrar {
    url: String,
    token: Option<String>,
    node: String,
}

impl Registrar {
    /// Registers `instance`; returns once the member's catalog has it
    /// (which, while the cluster has no leader, waits for the next one).
    pub fn register(&self, instance: &crate::Instance) {
        crate::consul::register_with(&|path| self.api(path), &self.node, instance);
    }

    /// Deregisters service instance `service_id`; returns once it has left
    /// the member's catalog (which, without a leader, waits for the next).
    pub fn deregister(&self, service_id: &str) {
        crate::consul::deregister_with(&|path| self.api(path), &self.node, service_id);
    }

    /// Sets TTL check `check_id` critical; returns once the member's
    /// catalog shows it (which, without a leader, waits for the next).
    pub fn fail(&self, check_id: &str) {
        crate::consul::update_check_with(
            &|path| self.api(path),
            &self.node,
            "fail",
            check_id,
            "critical",
        );
    }

    /// The URL of API `path`, with the member's token.
    fn api(&self, path: &str) -> String {
        api_url(&self.url, path, self.token.as_deref())
    }
}

/// One server of a [`ConsulCluster`].
pub struct ClusterMember {
    process: Option<Process>,
    ports: Ports,
    node: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// The management token of a cluster with ACLs.
    token: Option<String>,
}

impl ClusterMember {
    /// Registers `instance` with this member's agent; returns once its
    /// catalog has it.
    pub fn register(&self, instance: &crate::Instance) {
        self.registrar().register(instance);
    }

    /// A handle that registers with this member from any thread, without
    /// borrowing the cluster (which may be killing members meanwhile).
    pub fn registrar(&self) -> Registrar {
        Registrar {
            url: self.url(),
            token: self.token.clone(),
            node: self.node.clone(),
        }
    }

    /// "127.0.0.1:PORT" of its HTTP API.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.http)
    }

    /// "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr())
    }

    /// Its node name.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// Its raft address "127.0.0.1:PORT", as /v1/status/leader reports it.
    pub fn server_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ports.server)
    }

    /// Whether it is running (not killed).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Its pid; panics if it has been killed.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .unwrap_or_else(|| panic!("cluster member {} is not running", self.node))
            .pid()
    }

    /// PUT to its API (e.g. `/v1/acl/token`), panicking unless it answers
    /// 2xx.
    pub fn put(&self, path: &str, body: Option<&str>) -> crate::Response {
        crate::http::call_ok("PUT", &self.api(path), body)
    }

    /// The URL of API `path`, with the cluster's management token if any.
    fn api(&self, path: &str) -> String {
        api_url(&self.url(), path, self.token.as_deref())
    }

    /// Its log (all runs, across restarts).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }
}

/// Three Consul servers (`-server -bootstrap-expect=3`) on 127.0.0.1.
/// Stopped when dropped.
pub struct ConsulCluster {
    members: Vec<ClusterMember>,
    dir: TempDir,
}

impl ConsulCluster {
    /// Starts three servers and waits until they agree on a leader and every
    /// one sees all three members alive.
    pub fn three() -> ConsulCluster {
        ConsulCluster::start(None)
    }

    /// Like [`ConsulCluster::three`], with ACLs on and a default policy of
    /// deny; `management` is the bootstrap token, which the test bed's own
    /// requests carry.
    pub fn three_with_acls(management: &str) -> ConsulCluster {
        ConsulCluster::start(Some(management))
    }

    fn start(management: Option<&str>) -> ConsulCluster {
        let dir = tempfile::Builder::new()
            .prefix("testbed-cluster-")
            .tempdir()
            .expect("creating a temp dir for a consul cluster");
        let members = (0..3)
            .map(|i| {
                let data_dir = dir.path().join(format!("data-{i}"));
                fs::create_dir(&data_dir)
                    .unwrap_or_else(|e| panic!("creating {}: {e}", data_dir.display()));
                ClusterMember {
                    process: None,
                    ports: Ports::free(),
                    node: unique_node_name(&format!("server{i}")),
                    data_dir,
                    log_path: dir.path().join(format!("consul-{i}.log")),
                    token: management.map(str::to_owned),
                }
            })
            .collect();
        let mut cluster = ConsulCluster { members, dir };
        for i in 0..3 {
            cluster.spawn(i);
        }
        cluster.wait_until_settled("the cluster to elect a leader with all members alive");
        cluster
    }

    /// Member `i` (0, 1 or 2).
    pub fn member(&self, i: usize) -> &ClusterMember {
        &self.members[i]
    }

    /// The index of the current leader, as the running members agree on it;
    /// panics if they do not agree on one.
    pub fn leader_index(&self) -> usize {
        let leaders = self.reported_leaders();
        match leaders.first() {
            Some(Some(first)) if leaders.iter().all(|l| l.as_ref() == Some(first)) => {
                self.index_of(first)
            }
            _ => panic!("the cluster's running members do not agree on a leader: {leaders:?}"),
        }
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.members[i].process.take() {
            process.stop();
        }
    }

    /// Restarts member `i` (killing it first if running) on the same ports
    /// and data dir; returns once every member sees all three alive and the
    /// running members agree on a leader.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        let what = format!("member {i} to rejoin the cluster");
        self.wait_until_settled(&what);
    }

    /// Waits until the running members agree on a leader other than member
    /// `old`, and returns its index.
    pub fn wait_for_new_leader(&self, old: usize) -> usize {
        let old_addr = self.members[old].server_addr();
        let mut new = None;
        let what = format!("a leader other than member {old} ({old_addr})");
        wait_until(&what, CLUSTER_TIMEOUT, || {
            new = self.agreed_leader().filter(|l| *l != old_addr);
            new.is_some()
        });
        self.index_of(&new.expect("set when the wait ended"))
    }

    /// Spawns member `i`, retry-joining the other two.
    fn spawn(&mut self, i: usize) {
        let peers: Vec<u16> = (0..3)
            .filter(|&j| j != i)
            .map(|j| self.members[j].ports.serf_lan)
            .collect();
        let member = &mut self.members[i];
        let mut cmd = Command::new("consul");
        cmd.args([
            "agent",
            "-server",
            "-bootstrap-expect=3",
            "-node",
            &member.node,
        ])
        .arg("-data-dir")
        .arg(&member.data_dir)
        .args(member.ports.args())
        .args(["-retry-interval", "1s"])
        .args(["-hcl", "performance { raft_multiplier = 1 }"]);
        if let Some(token) = &member.token {
            cmd.arg("-hcl").arg(acl_deny_hcl(token));
        }
        for port in peers {
            cmd.arg("-retry-join").arg(format!("127.0.0.1:{port}"));
        }
        let label = format!("consul server {} (member {i})", member.node);
        member.process = Some(Process::spawn(&label, cmd, &member.log_path));
    }

    /// Waits until every member runs and sees all three alive, and all agree
    /// on a leader.
    fn wait_until_settled(&mut self, what: &str) {
        wait_until(what, CLUSTER_TIMEOUT, || {
            for member in &mut self.members {
                if let Some(process) = &mut member.process {
                    process.assert_running();
                }
            }
            self.agreed_leader().is_some() && self.members.iter().all(|m| self.sees_all_alive(m))
        });
    }

    /// The leader all running members report, if they agree on one.
    fn agreed_leader(&self) -> Option<String> {
        let leaders = self.reported_leaders();
        let first = leaders.first()?.clone()?;
        leaders
            .iter()
            .all(|l| l.as_ref() == Some(&first))
            .then_some(first)
    }

    /// What each running member reports as leader.
    fn reported_leaders(&self) -> Vec<Option<String>> {
        self.members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| leader(&m.url()))
            .collect()
    }

    /// Whether `member` runs and lists all three members as alive.
    fn sees_all_alive(&self, member: &ClusterMember) -> bool {
        if !member.is_running() {
            return false;
        }
        let Ok(response) = try_call("GET", &member.api("/v1/agent/members"), None) else {
            return false;
        };
        if response.status != 200 {
            return false;
        }
        let seen = response.json();
        self.members.iter().all(|m| {
            seen.as_array().is_some_and(|all| {
                all.iter()
                    .any(|s| s["Name"] == m.node.as_str() && s["Status"] == SERF_ALIVE)
            })
        })
    }

    /// The index of the member whose raft address is `addr`.
    fn index_of(&self, addr: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.server_addr() == addr)
            .unwrap_or_else(|| {
                panic!(
                    "leader {addr} is none of the cluster's members (data in {})",
                    self.dir.path().display()
                )
            })
    }
}
