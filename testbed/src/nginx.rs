//! [`Nginx`]: a real nginx master in the foreground with its own prefix in a
//! temp dir (main config, `conf.d/`, pid file, error log, temp paths), plus
//! reload, config test and the reload count read from its error log; and
//! [`NginxPrefix`], such a prefix for an nginx that something else starts
//! (the image's `start.sh`), stopped through its pid file on drop.

use crate::process::{Process, read_log};
use crate::wait_until;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long nginx gets to write its pid file after start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The message nginx 1.22's master logs at `notice` level when it handles
/// SIGHUP (after "signal 1 (SIGHUP) received from PID, reconfiguring").
const RELOAD_MESSAGE: &str = "reconfiguring";

/// An nginx prefix directory (main config including `conf.d/*.conf`,
/// `conf.d/default.conf`, pid file, error log, temp paths) for an nginx
/// that daemonises, started by something else. On drop, a master found in
/// its pid file is stopped.
pub struct NginxPrefix {
    dir: TempDir,
    /// Whether drop stops the master in the pid file. Not for [`Nginx`]'s
    /// own prefix: its process guard stops and reaps the master, after
    /// which the pid in a stale pid file could belong to anyone.
    stop_on_drop: bool,
}

impl NginxPrefix {
    /// A prefix whose main config lets nginx daemonise, as the nginx image's
    /// own config does; `server_conf` becomes `conf.d/default.conf`.
    pub fn new(server_conf: &str) -> NginxPrefix {
        NginxPrefix::create(server_conf, false)
    }

    fn create(server_conf: &str, foreground: bool) -> NginxPrefix {
        let dir = tempfile::Builder::new()
            .prefix("testbed-nginx-")
            .tempdir()
            .expect("creating nginx prefix dir");
        let p = dir.path();
        for sub in ["conf.d", "temp"] {
            make_dir(&p.join(sub));
        }
        write_file(&p.join("nginx.conf"), &main_conf(p, foreground));
        write_file(&p.join("conf.d/default.conf"), server_conf);
        NginxPrefix {
            dir,
            stop_on_drop: !foreground,
        }
    }

    /// The prefix directory (`-p`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The directory whose `*.conf` files the main config includes.
    pub fn conf_d(&self) -> PathBuf {
        self.path().join("conf.d")
    }

    /// The arguments that point an nginx command at this prefix.
    pub fn args(&self) -> Vec<String> {
        nginx_args(self.path())
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        read_log(&self.path().join("error.log"))
    }

    /// How many SIGHUPs the master now in the pid file has handled (see
    /// [`Nginx::reload_count`]); 0 while there is none.
    pub fn reload_count(&self) -> usize {
        self.master_pid()
            .map_or(0, |pid| reload_count(&self.error_log(), pid))
    }

    /// The pid of the master recorded in the pid file, if any.
    pub fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.path().join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for NginxPrefix {
    fn drop(&mut self) {
        let Some(pid) = self.master_pid().filter(|_| self.stop_on_drop) else {
            return;
        };
        if thread::panicking() {
            eprintln!("----- nginx error log -----\n{}\n-----", self.error_log());
        }
        let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions. The pid comes
        // from this prefix's own pid file; SIGTERM is nginx's fast shutdown.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + START_TIMEOUT;
        // SAFETY: as above; signal 0 only checks that the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A running nginx master with its own prefix directory.
pub struct Nginx {
    process: Process,
    prefix: NginxPrefix,
}

impl Nginx {
    /// Writes `server_conf` to `<prefix>/conf.d/default.conf` and starts nginx
    /// with a main config that includes `conf.d/*.conf` inside `http {}`.
    /// Ready once the master has written its pid file.
    pub fn start(server_conf: &str) -> Nginx {
        let prefix = NginxPrefix::create(server_conf, true);
        let p = prefix.path();
        let mut cmd = Command::new("nginx");
        cmd.args(nginx_args(p));
        // stdout/stderr share the error log: startup errors land there too.
        let mut process =
            Process::spawn("nginx", cmd, &p.join("error.log")).with_stop_signal(libc::SIGTERM);
        let pid_file = p.join("nginx.pid");
        wait_until("nginx to write its pid file", START_TIMEOUT, || {
            process.assert_running();
            fs::read_to_string(&pid_file).is_ok_and(|s| s.trim() == process.pid().to_string())
        });
        Nginx { process, prefix }
    }

    /// The prefix directory (`-p`).
    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    /// The arguments that point an nginx command at this instance.
    pub fn args(&self) -> Vec<String> {
        self.prefix.args()
    }

    /// The directory whose `*.conf` files the main config includes.
    pub fn conf_d(&self) -> PathBuf {
        self.prefix().join("conf.d")
    }

    /// The main config file (`-c`).
    pub fn main_conf(&self) -> PathBuf {
        self.prefix().join("nginx.conf")
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Runs `nginx -s reload`; `Err` carries its output if it fails (nginx
    /// tests the config before signalling, so a broken config fails here).
    pub fn reload(&self) -> Result<(), String> {
        self.run_nginx(&["-s", "reload"])
    }

    /// Runs `nginx -t`; `Err` carries nginx's message if the config is bad.
    pub fn config_test(&self) -> Result<(), String> {
        self.run_nginx(&["-t"])
    }

    /// The error log (notice level) so far, including nginx's stderr.
    pub fn error_log(&self) -> String {
        read_log(&self.prefix().join("error.log"))
    }

    /// How many SIGHUPs (reload attempts, including ones whose new config
    /// the master rejected) the master has handled so far.
    pub fn reload_count(&self) -> usize {
        reload_count(&self.error_log(), self.pid())
    }

    /// Waits until the master has handled `n` reloads and every worker it
    /// started before the last one has exited, so that every request from
    /// then on is served with the latest config (right after a reload, old
    /// workers can still accept connections for a moment). A reload the
    /// master rejected counts as finished: the old workers keep serving.
    pub fn wait_for_reloads(&self, n: usize, timeout: Duration) {
        wait_until(&format!("nginx to finish {n} reloads"), timeout, || {
            let log = self.error_log();
            let messages: Vec<(&str, &str)> = master_messages(&log, self.pid()).collect();
            let reloads = messages
                .iter()
                .filter(|(_, message)| *message == RELOAD_MESSAGE)
                .count();
            reloads >= n && last_reload_finished(&messages)
        });
    }

    /// Runs the nginx binary against this instance's prefix and config.
    fn run_nginx(&self, extra: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new("nginx");
        cmd.args(nginx_args(self.prefix())).args(extra);
        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} exited with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ))
        }
    }
}

/// How many SIGHUPs the master with `pid` logged handling.
fn reload_count(log: &str, pid: u32) -> usize {
    master_messages(log, pid)
        .filter(|(_, message)| *message == RELOAD_MESSAGE)
        .count()
}

/// The `(level, message)` pairs the master with `pid` logged, from lines
/// like `2024/01/01 00:00:00 [notice] 42#42: reconfiguring`.
fn master_messages(log: &str, pid: u32) -> impl Iterator<Item = (&str, &str)> {
    let tag = format!(" {pid}#{pid}: ");
    log.lines().filter_map(move |line| {
        let (head, message) = line.split_once(&tag)?;
        let level = head.rsplit_once('[')?.1.strip_suffix(']')?;
        Some((level, message))
    })
}

/// Whether the last reload has finished: every child process the master
/// started ("start worker process 7", also cache manager/loader) and has
/// not reaped ("worker process 7 exited with code 0") was started after it,
/// or the master rejected it (logged an error before starting any, and did
/// not go on to retry a failed bind()).
fn last_reload_finished(messages: &[(&str, &str)]) -> bool {
    let mut alive = BTreeSet::new();
    let mut latest = BTreeSet::new();
    let mut rejected = false;
    for &(level, message) in messages {
        if message == RELOAD_MESSAGE {
            latest.clear();
            rejected = false;
        } else if let Some(pid) = message.strip_prefix("start ").and_then(process_pid) {
            alive.insert(pid);
            latest.insert(pid);
        } else if let Some(pid) = message
            .split_once(" exited")
            .and_then(|(before, _)| process_pid(before))
        {
            alive.remove(&pid);
        } else if latest.is_empty() && ["emerg", "alert", "crit"].contains(&level) {
            rejected = true;
        } else if message.starts_with("try again") {
            // "try again to bind() after 500ms": the error before was not final.
            rejected = false;
        }
    }
    rejected || alive.is_subset(&latest)
}

/// The pid at the end of "worker process 7".
fn process_pid(text: &str) -> Option<u32> {
    text.rsplit_once(" process ")?.1.parse().ok()
}

/// `-p PREFIX -e ERROR_LOG -c MAIN_CONF`: `-e` keeps nginx away from the
/// compiled-in /var/log/nginx/error.log before it has read its config.
fn nginx_args(prefix: &Path) -> Vec<String> {
    let path = |name: &str| prefix.join(name).display().to_string();
    vec![
        "-p".into(),
        path(""),
        "-e".into(),
        path("error.log"),
        "-c".into(),
        path("nginx.conf"),
    ]
}

/// The main config: everything under `prefix`, one worker, in the
/// foreground or free to daemonise.
fn main_conf(prefix: &Path, foreground: bool) -> String {
    let p = prefix.display();
    // As root, nginx would switch its workers to `nobody`, who cannot read
    // the private temp dir: keep them root instead.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let daemon = if foreground { "daemon off;\n" } else { "" };
    format!(
        "{user}{daemon}worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {p}/temp/client_body;
    proxy_temp_path {p}/temp/proxy;
    fastcgi_temp_path {p}/temp/fastcgi;
    uwsgi_temp_path {p}/temp/uwsgi;
    scgi_temp_path {p}/temp/scgi;
    include {p}/conf.d/*.conf;
}}
"
    )
}

/// Whether this process's effective uid is 0.
fn running_as_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Creates a directory, panicking with context on failure.
fn make_dir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
}

/// Writes a file, panicking with context on failure.
fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
