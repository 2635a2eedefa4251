//! The two programs under test, behind one [`Tool`] enum: their binaries,
//! their versions, their equivalent templates (one upstream per service in
//! the catalog, passing instances only, a `down` server when none passes),
//! their command lines, and a [`ToolRun`] for a started process. Both are
//! driven only through their consul-template-compatible command line: no
//! `-wait` (no quiescence), no command, default log level.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tempfile::TempDir;
use testbed::Process;

/// consul-render's template (Tera).
const RENDER_TEMPLATE: &str = r#"{%- for s in services() %}{% if s.name != "consul" %}upstream {{ s.name }} {
{%- for i in service(name=s.name) %}
    server {{ i.endpoint }};
{%- else %}
    server 127.0.0.1:1 down;
{%- endfor %}
}
{% endif %}{% endfor -%}
"#;

/// consul-template's template (Go text/template), rendering the same bytes.
const TEMPLATE_TEMPLATE: &str = r#"{{- range services }}{{ if ne .Name "consul" }}upstream {{ .Name }} {
{{- range service .Name }}
    server {{ .Address }}:{{ .Port }};
{{- else }}
    server 127.0.0.1:1 down;
{{- end }}
}
{{ end }}{{ end -}}
"#;

/// Where and how a tool reaches its Consul agent.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Plain HTTP to "127.0.0.1:PORT".
    Http(String),
    /// HTTPS to "127.0.0.1:PORT", trusting the CA certificate `ca`.
    Https { addr: String, ca: PathBuf },
}

impl Endpoint {
    /// The transport's name in the report.
    pub fn transport(&self) -> &'static str {
        match self {
            Endpoint::Http(_) => "HTTP",
            Endpoint::Https { .. } => "HTTPS",
        }
    }
}

/// One of the two programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ConsulRender,
    ConsulTemplate,
}

impl Tool {
    /// Both, in the order measurements alternate.
    pub const BOTH: [Tool; 2] = [Tool::ConsulRender, Tool::ConsulTemplate];

    pub fn name(self) -> &'static str {
        match self {
            Tool::ConsulRender => "consul-render",
            Tool::ConsulTemplate => "consul-template",
        }
    }

    /// The key used for this tool in the JSON results.
    pub fn key(self) -> &'static str {
        match self {
            Tool::ConsulRender => "consul_render",
            Tool::ConsulTemplate => "consul_template",
        }
    }

    fn template(self) -> (&'static str, &'static str) {
        match self {
            Tool::ConsulRender => ("upstreams.tera", RENDER_TEMPLATE),
            Tool::ConsulTemplate => ("upstreams.ctmpl", TEMPLATE_TEMPLATE),
        }
    }
}

/// A tool's binary and the files one instance of the bench gives it: its
/// template, and a directory of its own for the destination (so a watch on
/// that directory sees only this tool's writes) and its logs.
pub struct ToolSetup {
    pub tool: Tool,
    pub binary: PathBuf,
    dir: TempDir,
    runs: usize,
}

impl ToolSetup {
    /// Writes `tool`'s template into a fresh directory.
    pub fn new(tool: Tool, binary: &Path) -> ToolSetup {
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-{}-", tool.name()))
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a directory for {}: {e}", tool.name()));
        let (name, text) = tool.template();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
        let source = dir.path().join(name);
        fs::write(&source, text).unwrap_or_else(|e| panic!("writing {}: {e}", source.display()));
        ToolSetup {
            tool,
            binary: binary.to_path_buf(),
            dir,
            runs: 0,
        }
    }

    /// The file the tool renders to.
    pub fn destination(&self) -> PathBuf {
        self.dir.path().join("out").join("upstreams.conf")
    }

    /// The directory holding only the destination.
    pub fn destination_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn source(&self) -> PathBuf {
        self.dir.path().join(self.tool.template().0)
    }

    /// The arguments for a tool watching the agent at `endpoint`. Over
    /// HTTPS consul-render takes an `https://` address (its documented
    /// way); consul-template takes the bare address and `-consul-ssl`.
    pub fn args(&self, endpoint: &Endpoint) -> Vec<String> {
        let mut args = match (endpoint, self.tool) {
            (Endpoint::Http(addr), _) => vec![format!("-consul-addr={addr}")],
            (Endpoint::Https { addr, ca }, Tool::ConsulRender) => vec![
                format!("-consul-addr=https://{addr}"),
                format!("-consul-ssl-ca-cert={}", ca.display()),
            ],
            (Endpoint::Https { addr, ca }, Tool::ConsulTemplate) => vec![
                format!("-consul-addr={addr}"),
                "-consul-ssl".to_string(),
                format!("-consul-ssl-ca-cert={}", ca.display()),
            ],
        };
        args.push(format!(
            "-template={}:{}",
            self.source().display(),
            self.destination().display()
        ));
        args
    }

    /// The command line as the report shows it: binary name and arguments,
    /// with temp paths shortened to `<dir>`.
    pub fn command_line(&self, endpoint: &Endpoint) -> String {
        let dir = self.dir.path().display().to_string();
        let args = self.args(endpoint).join(" ").replace(&dir, "<dir>");
        format!("{} {args}", self.tool.name())
    }

    /// Removes the destination, so the next run starts from nothing.
    pub fn clear_destination(&self) {
        let dest = self.destination();
        match fs::remove_file(&dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", dest.display()),
        }
    }

    /// Starts the tool against `endpoint`; each run logs to its own file.
    pub fn spawn(&mut self, endpoint: &Endpoint) -> ToolRun {
        self.runs += 1;
        let log = self
            .dir
            .path()
            .join(format!("{}-{}.log", self.tool.name(), self.runs));
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.args(endpoint));
        let started = Instant::now();
        let process = Process::spawn(self.tool.name(), cmd, &log);
        ToolRun {
            tool: self.tool,
            process,
            started,
        }
    }

    /// The binary's version line.
    pub fn version(&self) -> String {
        let output = Command::new(&self.binary)
            .arg("-v")
            .output()
            .unwrap_or_else(|e| panic!("running {} -v: {e}", self.binary.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        text.lines().next().unwrap_or("unknown").trim().to_string()
    }
}

/// A running tool, stopped (SIGKILL) and reaped when dropped.
pub struct ToolRun {
    pub tool: Tool,
    pub process: Process,
    /// Just before the spawn.
    pub started: Instant,
}

impl ToolRun {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// How it exited, if it has.
    pub fn exit(&mut self) -> Option<String> {
        self.process.exit_status().map(|s| s.to_string())
    }

    /// Panics with its log if it has exited.
    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Copies its log so far to `dir/<tool>-<what>.log`.
    pub fn keep_log(&self, dir: &Path, what: &str) {
        let path = dir.join(format!("{}-{what}.log", self.tool.name()));
        fs::create_dir_all(dir)
            .and_then(|()| fs::write(&path, self.log()))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
