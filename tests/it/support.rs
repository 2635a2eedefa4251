//! Running the consul-render binary under test: one-shot runs with their
//! exit code and output, and daemons that are stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::{Process, wait_until};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_consul-render");

/// The repository root, for shipped templates and examples.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a finished run of the binary did.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary to completion (it must finish within `timeout`).
pub fn run(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Finished {
    let mut cmd = Command::new("timeout");
    cmd.arg("--signal=KILL")
        .arg(format!("{}", timeout.as_secs_f64()))
        .arg(BIN)
        .args(args);
    cmd.env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running consul-render");
    Finished {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A consul-render process left running.
pub struct Daemon {
    process: Process,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_program(Path::new(BIN), args, env)
    }

    /// Starts another program that ends up as consul-render (`start.sh`).
    pub fn start_program(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.env_remove("CONSUL_HTTP_ADDR")
            .env_remove("CONSUL_HTTP_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = Process::spawn("consul-render", cmd, &dir.path().join("consul-render.log"))
            .with_stop_signal(libc::SIGTERM);
        Daemon { process, _dir: dir }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits until the log contains `needle` `times` times.
    pub fn wait_for_log(&mut self, needle: &str, times: usize, timeout: Duration) {
        wait_until(
            &format!("consul-render to log {needle:?} {times}x"),
            timeout,
            || {
                self.process.assert_running();
                self.log().matches(needle).count() >= times
            },
        );
    }

    pub fn signal(&mut self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let mut status = None;
        wait_until("consul-render to exit", timeout, || {
            status = self.process.exit_status();
            status.is_some()
        });
        let status = status.expect("exited");
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status:?}\n{}", self.log()))
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }
}

/// Waits until `path` exists and its contents satisfy `pred`; returns them.
pub fn wait_for_file(
    path: &Path,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    wait_for_answer(
        &format!("{} to hold {what}", path.display()),
        timeout,
        || std::fs::read_to_string(path).unwrap_or_default(),
        |text| pred(text),
    )
}

/// Asks `probe` until `done` holds for its answer; returns that answer.
pub fn wait_for_answer<A>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> A,
    done: impl Fn(&A) -> bool,
) -> A {
    let mut last = None;
    wait_until(what, timeout, || {
        let answer = probe();
        let matched = done(&answer);
        last = Some(answer);
        matched
    });
    last.expect("wait_until asks at least once")
}

/// Writes a file, creating its directory.
pub fn write(path: &Path, contents: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The `server …;` lines of a rendered upstream, sorted.
pub fn upstream_servers(conf: &str) -> Vec<String> {
    let mut servers: Vec<String> = conf
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server ") && l.ends_with(';') && !l.contains(" down;"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .trim_end_matches(';')
                .to_owned()
        })
        .collect();
    servers.sort();
    servers
}

/// Every distinct version a file went through while this is alive, polled
/// every millisecond in the background. "Never changed for the worse" is
/// asserted over all of them, not only the last.
pub struct FileHistory {
    path: PathBuf,
    versions: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
}

impl FileHistory {
    pub fn record(path: &Path) -> FileHistory {
        use std::sync::atomic::Ordering;
        let versions = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (versions, stop, path) = (versions.clone(), stop.clone(), path.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    note_version(&path, &mut versions.lock().expect("history lock"));
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        FileHistory {
            path: path.to_path_buf(),
            versions,
            stop,
            poller: Some(poller),
        }
    }

    /// The versions seen so far, oldest first, ending with what is on disk
    /// now: a test that has just seen a new version must find it here even
    /// if the poller has not woken since.
    pub fn versions(&self) -> Vec<String> {
        let mut seen = self.versions.lock().expect("history lock");
        note_version(&self.path, &mut seen);
        seen.clone()
    }
}

/// Appends the file's current text to `seen` unless it is the last one.
fn note_version(path: &Path, seen: &mut Vec<String>) {
    if let Ok(text) = std::fs::read_to_string(path)
        && seen.last() != Some(&text)
    {
        seen.push(text);
    }
}

impl Drop for FileHistory {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

/// consul-render set up the way most tests want it: `template` written to
/// `t.tera` in a fresh directory and rendered to `out` there, from the
/// agent at `consul_addr`, plus whatever flags and command a test adds.
pub struct Render {
    dir: tempfile::TempDir,
    consul_addr: String,
    command: Option<String>,
    flags: Vec<String>,
}

impl Render {
    pub fn new(consul_addr: &str, template: &str) -> Render {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("t.tera"), template);
        Render {
            dir,
            consul_addr: consul_addr.to_owned(),
            command: None,
            flags: Vec::new(),
        }
    }

    /// The template's command (run after each write).
    pub fn command(mut self, command: &str) -> Render {
        self.command = Some(command.to_owned());
        self
    }

    pub fn flag(mut self, flag: &str) -> Render {
        self.flags.push(flag.to_owned());
        self
    }

    /// The directory holding the template, the output and anything the
    /// test puts next to them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn source(&self) -> PathBuf {
        self.dir().join("t.tera")
    }

    pub fn out(&self) -> PathBuf {
        self.dir().join("out")
    }

    fn args(&self) -> Vec<String> {
        let mut spec = format!("{}:{}", self.source().display(), self.out().display());
        if let Some(command) = &self.command {
            spec = format!("{spec}:{command}");
        }
        let mut args = vec![
            format!("-consul-addr={}", self.consul_addr),
            format!("-template={spec}"),
        ];
        args.extend(self.flags.iter().cloned());
        args
    }

    /// Starts it as a daemon.
    pub fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    /// Starts it as a daemon with `env` added to its environment.
    pub fn start_with(&self, env: &[(&str, &str)]) -> Daemon {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::start(&args, env)
    }

    /// Runs it with `-once` and `env` to completion.
    pub fn once(&self, env: &[(&str, &str)]) -> Finished {
        let mut args = self.args();
        args.push("-once".to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, env, Duration::from_secs(30))
    }
}

/// What `/proc/<pid>/stat` says of a process.
pub struct ProcStat {
    /// `R`, `S`, `Z` (a zombie), `X` (dead), ...
    pub state: String,
    pub ppid: u32,
}

/// `/proc/<pid>/stat`, or `None` once the process is gone. The command
/// name may hold spaces and parentheses, so the fields start after its
/// last `)`.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    Some(ProcStat {
        state: fields.next()?.to_owned(),
        ppid: fields.next()?.parse().ok()?,
    })
}

/// What a production token for templates is granted: reads of services,
/// nodes and the KV prefix they use (`app/`), nothing else.
const READ_ONLY_RULES: &str = r#"service_prefix "" { policy = "read" } node_prefix "" { policy = "read" } key_prefix "app/" { policy = "read" }"#;

/// Creates a token with the read-only policy through `put` (an agent's
/// or a cluster member's management-token PUT, returning the reply's
/// JSON); returns (accessor, secret).
pub fn read_only_token(put: &dyn Fn(&str, &str) -> serde_json::Value) -> (String, String) {
    token_with_rules(put, READ_ONLY_RULES)
}

/// Creates a token granted `rules` (Consul's ACL rule syntax) through
/// `put`, as [`read_only_token`] does; returns (accessor, secret).
pub fn token_with_rules(
    put: &dyn Fn(&str, &str) -> serde_json::Value,
    rules: &str,
) -> (String, String) {
    let name = format!("templates-{}", testbed::free_port());
    let policy = serde_json::json!({"Name": name, "Rules": rules});
    put("/v1/acl/policy", &policy.to_string());
    let token = serde_json::json!({"Policies": [{"Name": name}]});
    let created = put("/v1/acl/token", &token.to_string());
    (
        created["AccessorID"].as_str().unwrap().to_owned(),
        created["SecretID"].as_str().unwrap().to_owned(),
    )
}

/// What a reload nginx rolled back must show: `/health` 503 saying so in
/// nginx's words, one rollback in `/metrics` (both served on
/// `metrics_port`), and the `[emerg]` in nginx's `error_log` that says why.
pub fn assert_rollback_reported(metrics_port: u16, error_log: &str) {
    let base = format!("http://127.0.0.1:{metrics_port}");
    let (status, body) = testbed::http_get(&format!("{base}/health")).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("nginx did not take the last reload"),
        "{body}"
    );
    // nginx's own reason, read from its error log (found through its
    // master's stderr), not the timeout's guess.
    assert!(
        body.contains("its error log says: [emerg]") && body.contains("bind() to 127.0.0.1:"),
        "{body}"
    );
    let (_, metrics) = testbed::http_get(&format!("{base}/metrics")).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "consul_render_reload_rollbacks_total 1"),
        "{metrics}"
    );
    assert!(error_log.contains("[emerg]"), "{error_log}");
}
