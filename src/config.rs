//! The validated configuration every other module runs on: typed durations,
//! paths and enums, secrets that never print, and the rules that tie fields
//! together (`Config::validate`), checked once before anything starts.
//!
//! This module owns the domain types and the text forms of single values
//! (addresses, `-wait`, log levels, basic auth). It knows nothing of flags,
//! environment variables or config files: `cli` decides where each value
//! comes from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::duration::{DurationError, parse_duration};
pub use crate::env_pattern::EnvPattern;
use crate::template::{Engine, Options, Syntax};

/// The fewest connections that still leave room for the two catalog-wide
/// watches of signal mode and the reads they trigger.
pub const MIN_CONNECTIONS: u32 = 4;

/// Consul's longest blocking-query wait; it quietly shortens longer ones.
pub const MAX_BLOCK_WAIT: Duration = Duration::from_secs(10 * 60);

/// Everything one run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub consul: ConsulConfig,
    pub templates: Vec<TemplateConfig>,
    /// Quiescence: wait for `min` of calm after a change, at most `max`.
    /// `None` renders as soon as data changes.
    pub wait: Option<Wait>,
    /// After Consul comes back empty-handed (an outage, or its index went
    /// backwards), how long data that lost entries is held back.
    pub reset_grace: Duration,
    /// Render every template once, run the commands and exit. Always true
    /// when `catalog_file` is set.
    pub once: bool,
    /// Print rendered templates to stdout instead of writing files.
    pub dry: bool,
    pub log_level: LogLevel,
    pub pid_file: Option<PathBuf>,
    /// The nginx master the reload commands reload: its new workers prove
    /// a reload took.
    pub nginx_pid_file: Option<PathBuf>,
    /// Offline mode: render from this catalog snapshot instead of Consul.
    pub catalog_file: Option<PathBuf>,
    /// After the first complete render, write the data it used here.
    pub save_catalog: Option<PathBuf>,
    /// Supervise mode: the child started once every template has rendered.
    pub exec: Option<ExecConfig>,
    /// Where `/metrics` and `/health` are served; `None` serves nothing.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub log_format: LogFormat,
    /// The signal that re-reads the templates (`-reload-signal`); `None`:
    /// no signal does.
    pub reload_signal: Option<ProcessSignal>,
    /// A signal that stops consul-render besides SIGINT, SIGTERM and
    /// SIGQUIT (`-kill-signal`).
    pub kill_signal: ProcessSignal,
    /// A copy of the log in a file that rotates (`-log-file`).
    pub log_file: Option<LogFileConfig>,
}

/// `-log-file` (the config file's `log_file {}` block), as consul-template
/// has it: every file is named `<stem>-<unix nanoseconds><ext>`, the log
/// still goes to stderr too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileConfig {
    /// A file name, or a directory when it ends in `/` (the files are then
    /// `consul-render-<ns>.log` in it).
    pub path: PathBuf,
    /// Start a new file once this many bytes were written; 0: never by size.
    pub rotate_bytes: u64,
    /// Start a new file once the current one is this old.
    pub rotate_duration: Duration,
    /// How many old files to keep: 0 keeps all, a negative count none.
    pub max_files: i64,
}

/// Supervise mode (`-exec`, the config file's `exec {}` block): one child,
/// started after the first complete render, signalled instead of reloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// A shell command line, run as `sh -c "exec …"` so the signals reach
    /// the program itself, not a shell around it.
    pub command: String,
    /// Sent after a changed render passed its check, instead of the
    /// template's reload command. `None` (`-exec-reload-signal=""`) leaves
    /// the child alone.
    pub reload_signal: Option<ProcessSignal>,
    /// Sent to stop the child when consul-render itself stops for a reason
    /// other than a forwarded signal.
    pub kill_signal: ProcessSignal,
    /// How long the child has after a stop signal before it gets SIGKILL.
    pub kill_timeout: Duration,
    /// The environment the child starts with.
    pub env: ChildEnv,
    /// Up to this long, at random, before each reload signal and before
    /// stopping the child for a reason of consul-render's own, so that many
    /// hosts seeing one change do not all reload at once. Zero: at once.
    pub splay: Duration,
}

/// consul-template's `exec.env`: which of consul-render's variables the
/// child inherits, and what is added. Whatever the lists say, the variables
/// that carry Consul credentials never reach it (`process` removes them).
/// Its `Debug` names the custom variables without their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    /// Inherit nothing: the child gets `custom` alone.
    pub pristine: bool,
    /// Variables added after the inherited ones (and so winning over
    /// them), filtered by neither list.
    pub custom: Vec<(String, String)>,
    /// When not empty, only the variables whose names match one of these
    /// are inherited.
    pub allowlist: Vec<EnvPattern>,
    /// Variables whose names match one of these are not inherited, even if
    /// the allowlist has them.
    pub denylist: Vec<EnvPattern>,
}

impl fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let custom: Vec<&str> = self.custom.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ChildEnv")
            .field("pristine", &self.pristine)
            .field("custom", &custom)
            .field("allowlist", &self.allowlist)
            .field("denylist", &self.denylist)
            .finish()
    }
}

impl ChildEnv {
    /// Whether the child inherits consul-render's variable `name`. A name
    /// that is not UTF-8 cannot be checked against a pattern, so it is
    /// passed only when there are no lists.
    pub fn inherits(&self, name: &std::ffi::OsStr) -> bool {
        if self.pristine {
            return false;
        }
        let Some(name) = name.to_str() else {
            return self.allowlist.is_empty() && self.denylist.is_empty();
        };
        let matches = |patterns: &[EnvPattern]| patterns.iter().any(|p| p.matches(name));
        (self.allowlist.is_empty() || matches(&self.allowlist)) && !matches(&self.denylist)
    }
}

/// `NAME=value`, an entry of `exec.env`'s `custom` list. The value may be
/// empty and may hold `=`; the name may not be empty.
pub fn parse_env_entry(text: &str) -> Result<(String, String), ValueError> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(ValueError::EnvEntry),
    }
}

/// A signal by number, read from and printed as its name (`SIGHUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSignal(pub i32);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event, with `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Quiescence bounds; `validate` ensures `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub min: Duration,
    pub max: Duration,
}

/// One template: where it is read, where it is written, what runs after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateConfig {
    pub source: TemplateSource,
    pub destination: PathBuf,
    /// Shell command run after the destination changes (e.g. a reload).
    pub command: Option<String>,
    /// Shell command that must succeed before `command` runs (e.g. `nginx -t`).
    pub check: Option<String>,
    /// How long `check` and `command` may each run before they are killed.
    pub command_timeout: Duration,
    /// Mode for the written file; `None` keeps the old file's mode.
    pub perms: Option<u32>,
    /// Keep the previous file as `<destination>.bak`.
    pub backup: bool,
    /// Who owns the written file (`user`/`group`, names or ids); `None`
    /// for a side leaves it as the old file had it.
    pub user: Option<String>,
    pub group: Option<String>,
    /// Exit when a render fails (consul-template's `error_fatal`). Off
    /// unless asked for: by default a failed render keeps the last good
    /// file and consul-render goes on.
    pub error_fatal: bool,
    /// Quiescence for this template; `None` uses [`Config::wait`].
    pub wait: Option<Wait>,
    /// The dialect and delimiters the source is parsed with.
    pub syntax: Syntax,
    /// The sandbox, denied functions and missing-key rule it runs with.
    pub options: Options,
}

/// Where a template's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// A file, read at start and again on SIGHUP and after each edit.
    File(PathBuf),
    /// The text itself (a config file's `contents`): nothing to re-read.
    Inline(String),
}

impl TemplateSource {
    /// What errors and logs call the template: its path, or for inline
    /// text `(dynamic)`, as consul-template calls it.
    pub fn name(&self) -> String {
        match self {
            TemplateSource::File(path) => path.display().to_string(),
            TemplateSource::Inline(_) => "(dynamic)".to_owned(),
        }
    }

    /// The file to read, if the text is not inline.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TemplateSource::File(path) => Some(path),
            TemplateSource::Inline(_) => None,
        }
    }

    /// The dialect the source implies: a file's name decides (`*.tera` is
    /// Tera); inline text is consul-template's.
    pub fn engine(&self) -> Engine {
        match self {
            TemplateSource::File(path) => Engine::for_path(&path.to_string_lossy()),
            TemplateSource::Inline(_) => Engine::Go,
        }
    }
}

/// How to reach Consul and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulConfig {
    pub address: ConsulAddress,
    pub token: Option<Token>,
    /// The file `token` was read from: read again whenever it changes, so
    /// a rotated token takes over without a restart.
    pub token_file: Option<PathBuf>,
    pub auth: Option<BasicAuth>,
    pub tls: TlsConfig,
    pub retry: RetryConfig,
    /// Allow stale reads from any server up to this old; `None` asks the leader.
    pub max_stale: Option<Duration>,
    /// The `wait` of each blocking query, at most `MAX_BLOCK_WAIT`.
    pub block_wait: Duration,
    /// The most connections held open to the agent at once over HTTP/1.1,
    /// where each carries one request: Consul refuses a client address past
    /// 200 (`http_max_conns_per_client`), and every other client on the host
    /// shares that budget. Past it, service watches share catalog-wide
    /// signals. HTTP/2 (HTTPS) multiplexes and is not bound by it.
    pub max_connections: u32,
    /// Consul Enterprise namespace.
    pub namespace: Option<String>,
}

/// Where the Consul agent listens. In a `Config` from `cli`, an `Https`
/// address always has `tls.enabled` set and an `Http` one never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsulAddress {
    /// `host:port`, port always present.
    Http(String),
    /// `host:port`, port always present.
    Https(String),
    /// Absolute path of the agent's unix socket.
    Unix(PathBuf),
}

/// A Consul ACL token. It prints as `<redacted>` so it cannot leak into logs
/// or error messages by accident; `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// HTTP basic auth for Consul; `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub enabled: bool,
    pub verify: bool,
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    /// CA certificates as PEM text (the config file's `ca_cert_bytes`),
    /// trusted besides those of `ca_cert` and `ca_path`.
    pub ca_cert_pem: Option<String>,
    /// Client certificate; may also hold the key when `key` is `None`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Failed attempts in a row before giving up; `None` never gives up.
    pub attempts: Option<u32>,
    /// First delay, doubled after each failure up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

/// Why a single value cannot be read. The messages are fragments that follow
/// the flag (or variable) name and the value, so they do not repeat them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// Not a Go-style duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// Not `min[:max]` durations.
    #[error("expected a duration like 5s or 500ms, or min:max")]
    Wait,
    /// Not one of Go's `strconv.ParseBool` spellings.
    #[error("expected true or false")]
    Bool,
    /// Not a count that fits in a `u32`.
    #[error("expected a whole number from 0 to {}", u32::MAX)]
    Count,
    /// Not a level consul-template knows.
    #[error("expected one of trace, debug, info, warn, err")]
    LogLevel,
    /// Not a template engine.
    #[error("expected go (consul-template's dialect) or tera")]
    Engine,
    /// Not a signal name this platform has.
    #[error("expected a signal name such as SIGHUP, SIGTERM, SIGQUIT or SIGUSR2")]
    Signal,
    /// Not a log format.
    #[error("expected text or json")]
    LogFormat,
    /// Not an address to listen on.
    #[error("expected host:port to listen on, for example 127.0.0.1:9102")]
    ListenAddress,
    /// An empty user name.
    #[error("expected user or user:password")]
    BasicAuth,
    /// Not an address Consul's clients accept; says which part is wrong.
    #[error(
        "expected host:port, http://host:port, https://host:port or unix:///path/to.sock ({0})"
    )]
    Address(&'static str),
    /// Not a pattern of variable names; says why.
    #[error("expected a variable-name pattern such as NGINX_* ({0})")]
    EnvPattern(#[from] crate::env_pattern::BadPattern),
    /// Not a whole number of the kind asked for.
    #[error("expected a whole number")]
    Integer,
    /// Not a `NAME=value` entry.
    #[error("expected NAME=value")]
    EnvEntry,
}

/// A configuration whose values are each fine but which, taken together,
/// cannot run.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Nothing to render.
    #[error(
        "no -template given and no template block in a -config file: nothing to render (for example -template \"in.tera:out.conf:nginx -s reload\")"
    )]
    NoTemplates,
    /// A `-template` whose source or destination is empty.
    #[error(
        "-template {template:?} has an empty {missing} path (expected source:destination[:command])"
    )]
    EmptyTemplatePath {
        /// `source:destination`, as it was given.
        template: String,
        missing: &'static str,
    },
    /// `-wait min:max` with `max < min`.
    #[error("-wait max {max:?} is less than min {min:?}")]
    WaitMaxBelowMin { min: Duration, max: Duration },
    /// A TLS client key is useless without its certificate.
    #[error(
        "a TLS client key (-consul-ssl-key or CONSUL_CLIENT_KEY) needs a client certificate (-consul-ssl-cert or CONSUL_CLIENT_CERT)"
    )]
    KeyWithoutCert,
    /// Retry delays that shrink instead of grow.
    #[error("-consul-retry-max-backoff {max:?} is less than -consul-retry-backoff {base:?}")]
    MaxBackoffBelowBackoff { base: Duration, max: Duration },
    /// A blocking wait Consul would not honour.
    #[error("-block-wait {0:?} is out of range: it must be more than 0 and at most 10m")]
    BlockWaitOutOfRange(Duration),
    #[error(
        "-consul-max-connections {0} is too few: at least {MIN_CONNECTIONS} (two catalog-wide watches and reads beside them)"
    )]
    TooFewConnections(u32),
    /// A reload or kill signal that cannot be listened for, or that would
    /// mean two things.
    #[error("{flag} {signal}: {why}")]
    UnusableSignal {
        flag: &'static str,
        signal: ProcessSignal,
        why: &'static str,
    },
    /// A command timeout that would kill every command at once.
    #[error("-command-timeout must be more than 0")]
    ZeroCommandTimeout,
}

impl Config {
    /// Checks the rules that span fields. Each value on its own was checked
    /// when it was read; this runs once, after all of them are in place.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.templates.is_empty() {
            return Err(ConfigError::NoTemplates);
        }
        for template in &self.templates {
            let no_source = template
                .source
                .path()
                .is_some_and(|path| path.as_os_str().is_empty());
            let missing = if no_source {
                "source"
            } else if template.destination.as_os_str().is_empty() {
                "destination"
            } else {
                continue;
            };
            return Err(ConfigError::EmptyTemplatePath {
                template: format!(
                    "{}:{}",
                    template.source.name(),
                    template.destination.display()
                ),
                missing,
            });
        }
        if self.templates.iter().any(|t| t.command_timeout.is_zero()) {
            return Err(ConfigError::ZeroCommandTimeout);
        }
        if let Some(Wait { min, max }) = self.wait
            && max < min
        {
            return Err(ConfigError::WaitMaxBelowMin { min, max });
        }
        let consul = &self.consul;
        if consul.tls.key.is_some() && consul.tls.cert.is_none() {
            return Err(ConfigError::KeyWithoutCert);
        }
        if consul.retry.max_backoff < consul.retry.backoff {
            return Err(ConfigError::MaxBackoffBelowBackoff {
                base: consul.retry.backoff,
                max: consul.retry.max_backoff,
            });
        }
        if consul.block_wait.is_zero() || consul.block_wait > MAX_BLOCK_WAIT {
            return Err(ConfigError::BlockWaitOutOfRange(consul.block_wait));
        }
        if consul.max_connections < MIN_CONNECTIONS {
            return Err(ConfigError::TooFewConnections(consul.max_connections));
        }
        self.validate_signals()
    }

    fn validate_signals(&self) -> Result<(), ConfigError> {
        const UNCATCHABLE: [i32; 5] = [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGSEGV,
        ];
        let unusable = |flag, signal, why| Err(ConfigError::UnusableSignal { flag, signal, why });
        let kill = self.kill_signal;
        if UNCATCHABLE.contains(&kill.0) {
            return unusable("-kill-signal", kill, "a process cannot catch it");
        }
        let Some(reload) = self.reload_signal else {
            return Ok(());
        };
        if UNCATCHABLE.contains(&reload.0) {
            return unusable("-reload-signal", reload, "a process cannot catch it");
        }
        if [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, kill.0].contains(&reload.0) {
            return unusable(
                "-reload-signal",
                reload,
                "it already stops consul-render (SIGINT, SIGTERM, SIGQUIT and -kill-signal do)",
            );
        }
        Ok(())
    }
}

impl Wait {
    /// Reads `min[:max]`; `max` defaults to four times `min`. A zero `min`
    /// turns quiescence off (`None`), as in consul-template. `max < min` is
    /// left for `Config::validate`, which reports it as a configuration error.
    pub fn parse(text: &str) -> Result<Option<Wait>, ValueError> {
        let duration = |part: &str| parse_duration(part).map_err(|_| ValueError::Wait);
        let (min, max) = match text.split_once(':') {
            Some((min, max)) => (duration(min)?, Some(duration(max)?)),
            None => (duration(text)?, None),
        };
        if min.is_zero() {
            return Ok(None);
        }
        let max = match max {
            Some(max) => max,
            None => min.checked_mul(4).ok_or(ValueError::Wait)?,
        };
        Ok(Some(Wait { min, max }))
    }
}

impl FromStr for ProcessSignal {
    type Err = ValueError;

    /// Reads `SIGHUP`, `HUP` or `hup`, as consul-template does.
    fn from_str(text: &str) -> Result<Self, ValueError> {
        crate::process::signal_by_name(text)
            .map(|signal| ProcessSignal(signal as i32))
            .ok_or(ValueError::Signal)
    }
}

impl fmt::Display for ProcessSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::process::signal_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// An address to serve on: `host:port` with an IP host, or `:port` for
/// every interface, as Go programs write it.
pub fn parse_listen_address(text: &str) -> Result<std::net::SocketAddr, ValueError> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    full.parse().map_err(|_| ValueError::ListenAddress)
}

impl FromStr for LogFormat {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ValueError::LogFormat),
        }
    }
}

impl FromStr for ConsulAddress {
    type Err = ValueError;

    /// Reads the forms Consul's own tools take. A missing port is 8500, or
    /// 8501 (Consul's HTTPS port) after `https://`.
    fn from_str(text: &str) -> Result<Self, ValueError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return host_port(text, 8500).map(ConsulAddress::Http);
        };
        match scheme {
            "http" => host_port(rest, 8500).map(ConsulAddress::Http),
            "https" => host_port(rest, 8501).map(ConsulAddress::Https),
            "unix" if rest.starts_with('/') => Ok(ConsulAddress::Unix(PathBuf::from(rest))),
            "unix" => Err(ValueError::Address("the socket path must be absolute")),
            _ => Err(ValueError::Address("unknown scheme")),
        }
    }
}

/// Checks `host[:port]` (IPv6 in brackets) and returns `host:port`.
fn host_port(text: &str, default_port: u16) -> Result<String, ValueError> {
    let text = text.strip_suffix('/').unwrap_or(text);
    if text.contains(['/', '?', '#', '@']) || text.contains(char::is_whitespace) {
        return Err(ValueError::Address("only a host and a port are allowed"));
    }
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let Some((ip, after)) = inner.split_once(']') else {
            return Err(ValueError::Address("unclosed [ in IPv6 address"));
        };
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(ValueError::Address("unexpected text after ]"))?,
            ),
        };
        // Keep the brackets: host:port must stay unambiguous.
        let host = if ip.is_empty() {
            ""
        } else {
            &text[..ip.len() + 2]
        };
        (host, port)
    } else {
        match text.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(ValueError::Address(
                    "IPv6 addresses need brackets, like [::1]:8500",
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(ValueError::Address("missing host"));
    }
    // No host name starts with a dash; an argument that does is another
    // flag taken as this one's value (`-consul-addr -consul-token=…`).
    if host.starts_with('-') || host.contains(['=', '"', '\\']) {
        return Err(ValueError::Address("not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(port) => {
            port.parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or(ValueError::Address(
                    "the port must be a number from 1 to 65535",
                ))?
        }
    };
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for ConsulAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsulAddress::Http(host_port) => write!(f, "http://{host_port}"),
            ConsulAddress::Https(host_port) => write!(f, "https://{host_port}"),
            ConsulAddress::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl Token {
    pub fn new(secret: String) -> Token {
        Token(secret)
    }

    /// The secret itself, for the one place that sends it to Consul.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for BasicAuth {
    type Err = ValueError;

    /// Reads `user` or `user:password`; the password may contain colons.
    fn from_str(text: &str) -> Result<Self, ValueError> {
        let (username, password) = match text.split_once(':') {
            Some((username, password)) => (username, Some(password.to_owned())),
            None => (text, None),
        };
        if username.is_empty() {
            return Err(ValueError::BasicAuth);
        }
        Ok(BasicAuth {
            username: username.to_owned(),
            password,
        })
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl FromStr for Engine {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        Engine::from_name(&text.to_ascii_lowercase()).ok_or(ValueError::Engine)
    }
}

impl FromStr for LogLevel {
    type Err = ValueError;

    /// Reads consul-template's levels (`err` as well as `error`), plus `trace`.
    fn from_str(text: &str) -> Result<Self, ValueError> {
        match text.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "err" | "error" => Ok(LogLevel::Error),
            _ => Err(ValueError::LogLevel),
        }
    }
}

impl From<LogLevel> for tracing::Level {
    fn from(level: LogLevel) -> tracing::Level {
        match level {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// What `-template=in.tpl:out.conf` alone gives: every default. Tests of
/// the parser compare against it, tests of validation start from it.
#[cfg(test)]
pub(crate) fn sample() -> Config {
    Config {
        consul: ConsulConfig {
            address: ConsulAddress::Http("127.0.0.1:8500".to_owned()),
            token: None,
            token_file: None,
            auth: None,
            tls: TlsConfig {
                enabled: false,
                verify: true,
                ca_cert: None,
                ca_path: None,
                ca_cert_pem: None,
                cert: None,
                key: None,
                server_name: None,
            },
            retry: RetryConfig {
                enabled: true,
                attempts: None,
                backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(1),
            },
            max_stale: Some(Duration::from_secs(2)),
            block_wait: Duration::from_secs(300),
            max_connections: 32,
            namespace: None,
        },
        templates: vec![TemplateConfig {
            source: TemplateSource::File("in.tpl".into()),
            destination: "out.conf".into(),
            command: None,
            check: None,
            command_timeout: Duration::from_secs(30),
            perms: None,
            backup: false,
            user: None,
            group: None,
            error_fatal: false,
            wait: None,
            syntax: Syntax::for_path("in.tpl"),
            options: Options::default(),
        }],
        wait: None,
        reset_grace: Duration::from_secs(60),
        once: false,
        dry: false,
        log_level: LogLevel::Info,
        pid_file: None,
        nginx_pid_file: None,
        catalog_file: None,
        save_catalog: None,
        exec: None,
        metrics_addr: None,
        log_format: LogFormat::Text,
        reload_signal: Some(ProcessSignal(libc::SIGHUP)),
        kill_signal: ProcessSignal(libc::SIGINT),
        log_file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_child_inherits_what_the_lists_let_through() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let patterns = |list: &[&str]| -> Vec<EnvPattern> {
            list.iter().map(|p| p.parse().expect(p)).collect()
        };
        let env = |pristine, allow: &[&str], deny: &[&str]| ChildEnv {
            pristine,
            custom: Vec::new(),
            allowlist: patterns(allow),
            denylist: patterns(deny),
        };
        let not_utf8 = OsStr::from_bytes(b"BAD\xff");
        // (env, name, inherited)
        let cases = [
            (env(false, &[], &[]), OsStr::new("PATH"), true),
            (env(false, &[], &[]), not_utf8, true),
            (env(true, &[], &[]), OsStr::new("PATH"), false),
            (env(false, &["NGINX_*"], &[]), OsStr::new("NGINX_A"), true),
            (env(false, &["NGINX_*"], &[]), OsStr::new("PATH"), false),
            (env(false, &["NGINX_*"], &[]), not_utf8, false),
            (
                env(false, &["NGINX_*"], &["NGINX_KEY"]),
                OsStr::new("NGINX_KEY"),
                false,
            ),
            (
                env(false, &[], &["*_TOKEN"]),
                OsStr::new("VAULT_TOKEN"),
                false,
            ),
            (env(false, &[], &["*_TOKEN"]), OsStr::new("HOME"), true),
            (env(false, &[], &["*"]), not_utf8, false),
        ];
        for (env, name, want) in cases {
            assert_eq!(env.inherits(name), want, "{name:?} under {env:?}");
        }
    }

    #[test]
    fn reads_custom_variables_as_name_equals_value() {
        let entry = |name: &str, value: &str| Ok((name.to_owned(), value.to_owned()));
        assert_eq!(parse_env_entry("A=1"), entry("A", "1"));
        assert_eq!(parse_env_entry("A="), entry("A", ""));
        assert_eq!(parse_env_entry("A=b=c"), entry("A", "b=c"));
        assert_eq!(parse_env_entry("=1"), Err(ValueError::EnvEntry));
        assert_eq!(parse_env_entry("PASSWORD: x"), Err(ValueError::EnvEntry));
        let env = ChildEnv {
            custom: vec![("DB_PASSWORD".to_owned(), "hunter2".to_owned())],
            ..ChildEnv::default()
        };
        let shown = format!("{env:?}");
        assert!(
            shown.contains("DB_PASSWORD") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn reads_every_consul_address_form_and_fills_in_the_default_port() {
        let cases = [
            (
                "1.2.3.4:8500",
                ConsulAddress::Http("1.2.3.4:8500".to_owned()),
            ),
            ("consul", ConsulAddress::Http("consul:8500".to_owned())),
            (
                "http://consul",
                ConsulAddress::Http("consul:8500".to_owned()),
            ),
            ("http://x:8500/", ConsulAddress::Http("x:8500".to_owned())),
            (
                "https://consul",
                ConsulAddress::Https("consul:8501".to_owned()),
            ),
            (
                "https://consul:443",
                ConsulAddress::Https("consul:443".to_owned()),
            ),
            ("[::1]", ConsulAddress::Http("[::1]:8500".to_owned())),
            ("http://[::1]:9", ConsulAddress::Http("[::1]:9".to_owned())),
            (
                "unix:///var/run/consul.sock",
                ConsulAddress::Unix("/var/run/consul.sock".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_consul_addresses_it_could_not_connect_to() {
        let cases = [
            ("", "missing host"),
            (":8500", "missing host"),
            ("http://", "missing host"),
            ("[]:8500", "missing host"),
            ("x:", "the port must be a number from 1 to 65535"),
            ("x:0", "the port must be a number from 1 to 65535"),
            ("x:65536", "the port must be a number from 1 to 65535"),
            ("x:http", "the port must be a number from 1 to 65535"),
            ("::1", "IPv6 addresses need brackets, like [::1]:8500"),
            ("[::1", "unclosed [ in IPv6 address"),
            ("[::1]8500", "unexpected text after ]"),
            ("http://x:1/v1", "only a host and a port are allowed"),
            ("http://user@x:1", "only a host and a port are allowed"),
            ("x y:1", "only a host and a port are allowed"),
            ("unix://consul.sock", "the socket path must be absolute"),
            ("unix://", "the socket path must be absolute"),
            ("ftp://x", "unknown scheme"),
        ];
        for (text, reason) in cases {
            assert_eq!(
                text.parse::<ConsulAddress>(),
                Err(ValueError::Address(reason)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn prints_consul_addresses_as_urls() {
        let cases = [
            (
                ConsulAddress::Http("127.0.0.1:8500".to_owned()),
                "http://127.0.0.1:8500",
            ),
            (
                ConsulAddress::Https("consul:8501".to_owned()),
                "https://consul:8501",
            ),
            (ConsulAddress::Unix("/x.sock".into()), "unix:///x.sock"),
        ];
        for (address, expected) in cases {
            assert_eq!(address.to_string(), expected);
            assert_eq!(expected.parse(), Ok(address));
        }
    }

    #[test]
    fn reads_wait_as_min_with_an_optional_max_that_defaults_to_four_times_min() {
        let cases = [
            ("5s", Some((secs(5), secs(20)))),
            ("5s:10s", Some((secs(5), secs(10)))),
            ("500ms", Some((Duration::from_millis(500), secs(2)))),
            ("5", Some((secs(5), secs(20)))),
            ("10s:5s", Some((secs(10), secs(5)))),
            ("0", None),
            ("0s:10s", None),
        ];
        for (text, expected) in cases {
            let expected = expected.map(|(min, max)| Wait { min, max });
            assert_eq!(Wait::parse(text), Ok(expected), "{text}");
        }
        for text in ["", "abc", "5s:", ":5s", "5s:10s:20s", "-5s"] {
            assert_eq!(Wait::parse(text), Err(ValueError::Wait), "{text:?}");
        }
    }

    #[test]
    fn reads_consul_template_log_levels_in_any_case() {
        let cases = [
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("INFO", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("err", LogLevel::Error),
            ("error", LogLevel::Error),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse(), Ok(expected), "{text}");
        }
        assert_eq!("warning".parse::<LogLevel>(), Err(ValueError::LogLevel));
    }

    #[test]
    fn reads_basic_auth_with_a_password_that_may_hold_colons() {
        let cases = [
            ("user", Ok(("user", None))),
            ("user:", Ok(("user", Some("")))),
            ("user:pa:ss", Ok(("user", Some("pa:ss")))),
            (":pass", Err(ValueError::BasicAuth)),
            ("", Err(ValueError::BasicAuth)),
        ];
        for (text, expected) in cases {
            let expected = expected.map(|(username, password)| BasicAuth {
                username: username.to_owned(),
                password: password.map(str::to_owned),
            });
            assert_eq!(text.parse(), expected, "{text:?}");
        }
    }

    #[test]
    fn hides_secrets_from_debug_and_display_but_exposes_them_on_request() {
        let token = Token::new("s3cret".to_owned());
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(token.to_string(), "<redacted>");
        assert_eq!(token.expose(), "s3cret");
        let auth = BasicAuth {
            username: "user".to_owned(),
            password: Some("s3cret".to_owned()),
        };
        assert_eq!(
            format!("{auth:?}"),
            r#"BasicAuth { username: "user", password: Some("<redacted>") }"#
        );
    }

    type Change = fn(&mut Config);

    fn valid() -> Config {
        super::sample()
    }

    #[test]
    fn validate_accepts_the_edges_of_every_range() {
        let cases: &[Change] = &[
            |_| {},
            |c| {
                c.wait = Some(Wait {
                    min: secs(5),
                    max: secs(5),
                })
            },
            |c| c.consul.block_wait = MAX_BLOCK_WAIT,
            |c| c.consul.block_wait = Duration::from_millis(1),
            |c| c.consul.tls.cert = Some("/c.pem".into()),
            |c| c.consul.retry.max_backoff = c.consul.retry.backoff,
            |c| c.templates[0].source = TemplateSource::Inline("{{ key \"a\" }}".into()),
            |c| c.reload_signal = None,
            |c| c.kill_signal = ProcessSignal(libc::SIGTERM),
            |c| c.reload_signal = Some(ProcessSignal(libc::SIGUSR2)),
        ];
        for (index, change) in cases.iter().enumerate() {
            let mut config = valid();
            change(&mut config);
            assert!(config.validate().is_ok(), "case {index}: {config:?}");
        }
    }

    #[test]
    fn validate_rejects_fields_that_contradict_each_other() {
        let cases: &[(Change, &str)] = &[
            (|c| c.templates.clear(), "no -template given"),
            (
                |c| c.templates[0].source = TemplateSource::File(PathBuf::new()),
                r#"-template ":out.conf" has an empty source path"#,
            ),
            (
                |c| c.templates[0].destination = PathBuf::new(),
                r#"-template "in.tpl:" has an empty destination path"#,
            ),
            (
                |c| c.templates[0].command_timeout = Duration::ZERO,
                "-command-timeout must be more than 0",
            ),
            (
                |c| {
                    c.wait = Some(Wait {
                        min: secs(10),
                        max: secs(5),
                    })
                },
                "-wait max 5s is less than min 10s",
            ),
            (
                |c| c.consul.tls.key = Some("/k.pem".into()),
                "a TLS client key (-consul-ssl-key or CONSUL_CLIENT_KEY) needs",
            ),
            (
                |c| c.consul.retry.max_backoff = Duration::from_millis(100),
                "-consul-retry-max-backoff 100ms is less than -consul-retry-backoff 250ms",
            ),
            (
                |c| c.consul.max_connections = 3,
                "-consul-max-connections 3 is too few: at least 4 (two catalog-wide watches and reads beside them)",
            ),
            (
                |c| c.consul.block_wait = Duration::ZERO,
                "-block-wait 0ns is out of range",
            ),
            (
                |c| c.consul.block_wait = MAX_BLOCK_WAIT + Duration::from_nanos(1),
                "-block-wait 600.000000001s is out of range",
            ),
            (
                |c| c.kill_signal = ProcessSignal(libc::SIGKILL),
                "-kill-signal SIGKILL: a process cannot catch it",
            ),
            (
                |c| c.reload_signal = Some(ProcessSignal(libc::SIGSTOP)),
                "-reload-signal SIGSTOP: a process cannot catch it",
            ),
            (
                |c| c.reload_signal = Some(ProcessSignal(libc::SIGTERM)),
                "-reload-signal SIGTERM: it already stops consul-render",
            ),
            (
                |c| {
                    c.kill_signal = ProcessSignal(libc::SIGUSR2);
                    c.reload_signal = Some(ProcessSignal(libc::SIGUSR2));
                },
                "-reload-signal SIGUSR2: it already stops consul-render",
            ),
        ];
        for (change, message) in cases {
            let mut config = valid();
            change(&mut config);
            let error = config.validate().expect_err(message);
            assert!(error.to_string().starts_with(message), "{error}");
        }
    }

    #[test]
    fn maps_log_levels_onto_tracing_levels() {
        let cases = [
            (LogLevel::Trace, tracing::Level::TRACE),
            (LogLevel::Debug, tracing::Level::DEBUG),
            (LogLevel::Info, tracing::Level::INFO),
            (LogLevel::Warn, tracing::Level::WARN),
            (LogLevel::Error, tracing::Level::ERROR),
        ];
        for (level, expected) in cases {
            assert_eq!(tracing::Level::from(level), expected);
        }
    }
}
