//! consul-template's configuration files (`-config`): finding them, reading
//! them as HCL or JSON, and merging them left to right into one
//! [`FileConfig`].
//!
//! This module owns the file format: which keys exist, what each value reads
//! as, which consul-template keys consul-render refuses, and how files
//! combine (a later file's setting wins; `template` blocks add up). It knows
//! nothing of flags or environment variables beyond the paths `cli` hands it;
//! `cli` decides what beats what.
//!
//! Files are decoded with serde, and every value is checked as it is decoded,
//! so each error names its file, its key's path (`consul.ssl.verify`) and,
//! in HCL, its line. Secrets (the token, the basic-auth password) are never
//! echoed, not even when they have the wrong type.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::edit::Span;
use hcl::edit::structure::{Body, Structure};
use serde::Deserialize;
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_path_to_error::Segment;
use thiserror::Error;

use crate::config::{
    BasicAuth, ConsulAddress, EnvPattern, LogFormat, LogLevel, ProcessSignal, Token, ValueError,
    Wait, parse_env_entry, parse_listen_address,
};
use crate::duration::parse_duration;
use crate::template::Engine;

/// What the config files say. `None` (or an empty list) wherever no file
/// says anything, so that `cli` can fall back to variables and defaults.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    #[serde(deserialize_with = "last_block")]
    pub consul: ConsulFile,
    #[serde(deserialize_with = "duration")]
    pub max_stale: Option<Duration>,
    /// consul-template spells it `block_query_wait`.
    #[serde(alias = "block_query_wait", deserialize_with = "duration")]
    pub block_wait: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub reset_grace: Option<Duration>,
    #[serde(deserialize_with = "log_level")]
    pub log_level: Option<LogLevel>,
    #[serde(deserialize_with = "path")]
    pub pid_file: Option<PathBuf>,
    pub once: Option<bool>,
    /// `Some(None)` turns quiescence off (`wait = "0"`), also for a wait an
    /// earlier file set.
    #[serde(deserialize_with = "global_wait")]
    pub wait: Option<Option<Wait>>,
    /// Every file's `template` blocks, in the order they were read.
    #[serde(rename = "template", deserialize_with = "template_blocks")]
    pub templates: Vec<TemplateFile>,
    /// Supervise mode; a later file's block replaces an earlier one's
    /// settings one by one.
    #[serde(deserialize_with = "last_block")]
    pub exec: ExecFile,
    /// consul-render's own: where `/metrics` and `/health` are served.
    #[serde(deserialize_with = "listen_address")]
    pub metrics_addr: Option<SocketAddr>,
    /// consul-render's own: `text` or `json`.
    #[serde(deserialize_with = "log_format")]
    pub log_format: Option<LogFormat>,
    /// The signal that re-reads the templates; `Some(None)`: an empty
    /// value, no signal does.
    #[serde(deserialize_with = "optional_signal")]
    pub reload_signal: Option<Option<ProcessSignal>>,
    /// A signal that stops consul-render, besides SIGINT, SIGTERM and
    /// SIGQUIT.
    #[serde(deserialize_with = "signal")]
    pub kill_signal: Option<ProcessSignal>,
    /// Accepted for consul-template's sake when it is off: logs go to
    /// stderr only.
    #[serde(deserialize_with = "syslog_off")]
    pub syslog: (),
    /// A copy of the log in a rotating file.
    #[serde(deserialize_with = "last_block")]
    pub log_file: LogFileFile,
    /// The delimiters of templates that set none of their own.
    #[serde(deserialize_with = "last_block")]
    pub default_delimiters: DelimitersFile,
    /// Whether a failed render stops consul-render, for the templates that
    /// do not say (`error_fatal`).
    pub template_error_fatal: Option<bool>,
}

/// The `log_file` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFileFile {
    #[serde(deserialize_with = "path")]
    pub path: Option<PathBuf>,
    /// 0 or less: never by size, as in consul-template.
    pub log_rotate_bytes: Option<i64>,
    #[serde(deserialize_with = "duration")]
    pub log_rotate_duration: Option<Duration>,
    pub log_rotate_max_files: Option<i64>,
}

/// The `default_delimiters` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelimitersFile {
    #[serde(deserialize_with = "text")]
    pub left: Option<String>,
    #[serde(deserialize_with = "text")]
    pub right: Option<String>,
}

/// The `exec` block: the child consul-render supervises.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecFile {
    #[serde(deserialize_with = "command")]
    pub command: Option<String>,
    /// `Some(None)`: an empty `reload_signal`, which leaves the child alone.
    #[serde(deserialize_with = "optional_signal")]
    pub reload_signal: Option<Option<ProcessSignal>>,
    #[serde(deserialize_with = "signal")]
    pub kill_signal: Option<ProcessSignal>,
    #[serde(deserialize_with = "duration")]
    pub kill_timeout: Option<Duration>,
    /// `false` turns supervise mode off even with a command.
    pub enabled: Option<bool>,
    #[serde(deserialize_with = "duration")]
    pub splay: Option<Duration>,
    /// What the child inherits and gets; a later file's lists add to an
    /// earlier one's, as in consul-template.
    #[serde(deserialize_with = "last_block")]
    pub env: EnvFile,
}

/// The `exec.env` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvFile {
    pub pristine: Option<bool>,
    #[serde(deserialize_with = "env_entries")]
    pub custom: Vec<(String, String)>,
    /// `whitelist` is its deprecated name; both count.
    #[serde(deserialize_with = "env_patterns")]
    pub allowlist: Vec<EnvPattern>,
    #[serde(deserialize_with = "env_patterns")]
    pub whitelist: Vec<EnvPattern>,
    /// `blacklist` is its deprecated name; both count.
    #[serde(deserialize_with = "env_patterns")]
    pub denylist: Vec<EnvPattern>,
    #[serde(deserialize_with = "env_patterns")]
    pub blacklist: Vec<EnvPattern>,
}

/// The `consul` block.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsulFile {
    #[serde(deserialize_with = "address")]
    pub address: Option<ConsulAddress>,
    #[serde(deserialize_with = "token")]
    pub token: Option<Token>,
    #[serde(deserialize_with = "path")]
    pub token_file: Option<PathBuf>,
    #[serde(deserialize_with = "text")]
    pub namespace: Option<String>,
    /// `Some(None)`: an `auth` block that leaves basic auth off.
    #[serde(deserialize_with = "auth")]
    pub auth: Option<Option<BasicAuth>>,
    #[serde(deserialize_with = "last_block")]
    pub ssl: SslFile,
    #[serde(deserialize_with = "last_block")]
    pub retry: RetryFile,
    /// consul-render's own: the most connections held to the agent over
    /// HTTP/1.1 (`-consul-max-connections`).
    pub max_connections: Option<u32>,
}

/// The `consul.ssl` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SslFile {
    pub enabled: Option<bool>,
    pub verify: Option<bool>,
    #[serde(deserialize_with = "path")]
    pub ca_cert: Option<PathBuf>,
    #[serde(deserialize_with = "path")]
    pub ca_path: Option<PathBuf>,
    /// CA certificates as PEM text.
    #[serde(deserialize_with = "text")]
    pub ca_cert_bytes: Option<String>,
    #[serde(deserialize_with = "path")]
    pub cert: Option<PathBuf>,
    #[serde(deserialize_with = "path")]
    pub key: Option<PathBuf>,
    #[serde(deserialize_with = "text")]
    pub server_name: Option<String>,
}

/// The `consul.retry` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryFile {
    pub enabled: Option<bool>,
    pub attempts: Option<u32>,
    #[serde(deserialize_with = "duration")]
    pub backoff: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Option<Duration>,
}

/// One `template` block. What it leaves out (`check`, `command_timeout`,
/// `wait`) comes from the flags or the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(
    clippy::manual_non_exhaustive,
    reason = "the private field checks create_dest_dirs while decoding; it marks nothing"
)]
pub struct TemplateFile {
    /// The template's file. A block gives exactly one of `source` and
    /// `contents` (`TemplateBlock` checks).
    #[serde(default, deserialize_with = "path")]
    pub source: Option<PathBuf>,
    /// The template's text itself.
    #[serde(default, deserialize_with = "text")]
    pub contents: Option<String>,
    #[serde(deserialize_with = "required_path")]
    pub destination: PathBuf,
    #[serde(default, deserialize_with = "command")]
    pub command: Option<String>,
    /// consul-render's own: overrides `-check` for this template.
    #[serde(default, deserialize_with = "text")]
    pub check: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub command_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "perms")]
    pub perms: Option<u32>,
    #[serde(default)]
    pub backup: bool,
    #[serde(default, deserialize_with = "template_wait")]
    pub wait: Option<Wait>,
    /// consul-render's own: `go` or `tera`; by default the source's name
    /// decides (`*.tera` is Tera, anything else consul-template's dialect).
    #[serde(default, deserialize_with = "engine")]
    pub engine: Option<Engine>,
    /// The Go dialect's action delimiters (`{{` and `}}` when unset).
    #[serde(default, deserialize_with = "text")]
    pub left_delimiter: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub right_delimiter: Option<String>,
    /// The directory `file` may read from; empty (consul-template's
    /// default) lets it read anywhere.
    #[serde(default, deserialize_with = "path")]
    pub sandbox_path: Option<PathBuf>,
    /// Names and `*` patterns of the functions whose calls fail.
    #[serde(default, deserialize_with = "list")]
    pub function_denylist: Vec<String>,
    /// `function_denylist`'s deprecated name; both lists count.
    #[serde(default, deserialize_with = "list")]
    pub function_blacklist: Vec<String>,
    /// Go's `missingkey=error` for this template.
    #[serde(default)]
    pub error_on_missing_key: bool,
    /// Whether a failed render stops consul-render; unset, the top-level
    /// `template_error_fatal` decides.
    #[serde(default)]
    pub error_fatal: Option<bool>,
    /// Who owns the written file: a name or a numeric id. `uid` and `gid`
    /// are consul-template's older numeric forms, used when these are unset.
    #[serde(default, deserialize_with = "text")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub group: Option<String>,
    /// consul-template's `*int`: -1 leaves that side alone.
    #[serde(default)]
    pub uid: Option<i64>,
    #[serde(default)]
    pub gid: Option<i64>,
    /// consul-template's newer form of `command` and `command_timeout`.
    #[serde(default, deserialize_with = "last_block")]
    pub exec: TemplateExecFile,
    /// Accepted for consul-template's sake: missing directories are always
    /// created, so only `true` is allowed.
    #[serde(
        rename = "create_dest_dirs",
        default,
        deserialize_with = "always_create_dirs"
    )]
    _create_dest_dirs: (),
}

/// A template's `exec` block: the command run after its file changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateExecFile {
    #[serde(deserialize_with = "command")]
    pub command: Option<String>,
    #[serde(deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

/// consul-template settings that consul-render does not implement, by path.
/// They are refused by name: ignoring one would hide a missing feature.
const UNSUPPORTED: &[&str] = &[
    "consul.transport",
    "deduplicate",
    "err_on_failed_lookup",
    "exec.timeout",
    "nomad",
    "template.exec.enabled",
    "template.exec.env",
    "template.exec.kill_signal",
    "template.exec.kill_timeout",
    "template.exec.reload_signal",
    "template.exec.splay",
    "vault",
];

/// Why the config files cannot be used.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    /// A `-config` path, or a file in a `-config` directory, that cannot be
    /// read.
    #[error("cannot read config file {}: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Text that does not parse. `syntax` is HCL, or JSON for a file whose
    /// text starts with `{`.
    #[error(
        "config file {}, line {line}, column {column}: invalid {syntax}: {message}",
        .path.display()
    )]
    Syntax {
        path: PathBuf,
        syntax: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// A consul-template setting consul-render does not implement.
    #[error("{}: {key} is a consul-template setting that consul-render does not support", Place(.path, .line))]
    Unsupported {
        path: PathBuf,
        /// Only HCL files have line numbers.
        line: Option<usize>,
        /// The setting's path, such as `template.left_delimiter`.
        key: String,
    },
    /// A key nobody defined, a missing one, or a value its key does not
    /// take.
    #[error("{}: {key}: {message}", Place(.path, .line))]
    Invalid {
        path: PathBuf,
        /// Only HCL files have line numbers.
        line: Option<usize>,
        /// The key's path, such as `template[1].perms` for the second block.
        key: String,
        message: String,
    },
}

/// `config file <path>[, line <n>]`, the start of most messages here.
struct Place<'a>(&'a PathBuf, &'a Option<usize>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config file {}", self.0.display())?;
        match self.1 {
            Some(line) => write!(f, ", line {line}"),
            None => Ok(()),
        }
    }
}

/// Reads the `-config` paths in order and merges what they say. A path may
/// be a file, or a directory whose `*.hcl` and `*.json` files are read in
/// name order (subdirectories are not entered).
pub fn load(paths: &[PathBuf]) -> Result<FileConfig, ConfigFileError> {
    let mut merged = FileConfig::default();
    for path in paths {
        for file in config_files(path)? {
            let text = fs::read_to_string(&file).map_err(|error| ConfigFileError::Read {
                path: file.clone(),
                error,
            })?;
            merged.merge(parse(&file, &text)?);
        }
    }
    Ok(merged)
}

/// `path` itself, or the config files in the directory `path`, sorted.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigFileError> {
    let read_error = |error| ConfigFileError::Read {
        path: path.to_owned(),
        error,
    };
    if !fs::metadata(path).map_err(read_error)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read_error)? {
        let file = entry.map_err(read_error)?.path();
        let extension = file.extension().and_then(OsStr::to_str);
        // `is_file` follows symlinks: Kubernetes mounts ConfigMap keys as
        // symlinks into a hidden directory.
        if matches!(extension, Some("hcl" | "json")) && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// Decodes one file's text. As in consul-template, text that starts with
/// `{` is JSON and anything else is HCL, whatever the file is called.
fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigFileError> {
    let (value, body) = if text.trim_start().starts_with('{') {
        let mut value: hcl::Value =
            serde_json::from_str(text).map_err(|error| json_syntax_error(path, &error))?;
        decimal_perms_to_octal(&mut value);
        (value, None)
    } else {
        let body = hcl::edit::parser::parse_body(text).map_err(|error| {
            ConfigFileError::Syntax {
                path: path.to_owned(),
                syntax: "HCL",
                line: error.location().line(),
                column: error.location().column(),
                // Not the error's own Display: that quotes the line, which
                // may hold the token.
                message: error.message().to_owned(),
            }
        })?;
        // Decoded through a `Value`, not straight from the body: the body's
        // deserializer reads any expression as a string (`5` as "${5}"),
        // which would hide type errors.
        let value = hcl::from_body(hcl::Body::from(body.clone())).map_err(|error| {
            ConfigFileError::Invalid {
                path: path.to_owned(),
                line: None,
                key: WHOLE_FILE.to_owned(),
                message: error.to_string(),
            }
        })?;
        (value, Some(body))
    };
    serde_path_to_error::deserialize(value.into_deserializer()).map_err(|error| {
        let line = body
            .as_ref()
            .and_then(|body| line_of(body, text, error.path()));
        decode_error(path, line, error)
    })
}

/// What an error names when it concerns no key in particular.
const WHOLE_FILE: &str = "the file";

fn json_syntax_error(path: &Path, error: &serde_json::Error) -> ConfigFileError {
    let (line, column) = (error.line(), error.column());
    let message = error.to_string();
    // serde_json ends its message with the position, which is shown apart.
    let message = message
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&message)
        .to_owned();
    ConfigFileError::Syntax {
        path: path.to_owned(),
        syntax: "JSON",
        line,
        column,
        message,
    }
}

/// JSON has no octal numbers, so consul-template's JSON files give `perms`
/// as the mode's decimal value (420 for 0644). Written out in octal, it reads
/// like the digits of an HCL `perms = 0644`.
fn decimal_perms_to_octal(value: &mut hcl::Value) {
    let Some(templates) = value.as_object_mut().and_then(|o| o.get_mut("template")) else {
        return;
    };
    let templates = match templates {
        hcl::Value::Array(templates) => templates.iter_mut().collect(),
        template => vec![template],
    };
    for template in templates {
        if let Some(perms) = template.as_object_mut().and_then(|t| t.get_mut("perms"))
            && let Some(mode) = perms.as_u64()
        {
            *perms = hcl::Value::String(format!("{mode:o}"));
        }
    }
}

/// Names what failed: a setting we refuse, or the key and serde's reason.
fn decode_error(
    path: &Path,
    line: Option<usize>,
    error: serde_path_to_error::Error<hcl::Error>,
) -> ConfigFileError {
    let setting = error
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".");
    if UNSUPPORTED.contains(&setting.as_str()) {
        return ConfigFileError::Unsupported {
            path: path.to_owned(),
            line,
            key: setting,
        };
    }
    let key = if setting.is_empty() {
        WHOLE_FILE.to_owned()
    } else {
        error.path().to_string()
    };
    ConfigFileError::Invalid {
        path: path.to_owned(),
        line,
        key,
        message: error.into_inner().to_string(),
    }
}

/// The line of the key at `path` in an HCL body. Blocks are matched by name
/// and, when `path` gives one, by their index among blocks of that name.
fn line_of(body: &Body, text: &str, path: &serde_path_to_error::Path) -> Option<usize> {
    let mut body = body;
    let mut span = None;
    let mut segments = path.iter().peekable();
    while let Some(Segment::Map { key }) = segments.next() {
        let index = match segments.peek() {
            Some(Segment::Seq { index }) => {
                segments.next();
                Some(*index)
            }
            _ => None,
        };
        let named: Vec<&Structure> = body
            .iter()
            .filter(|structure| match structure {
                Structure::Attribute(attribute) => attribute.key.as_str() == key,
                Structure::Block(block) => block.ident.as_str() == key,
            })
            .collect();
        match index.and_then(|index| named.get(index)).or(named.last())? {
            Structure::Attribute(attribute) => {
                span = attribute.key.span();
                break;
            }
            Structure::Block(block) => {
                span = block.ident.span();
                body = &block.body;
            }
        }
    }
    let before = text.get(..span?.start)?;
    Some(before.matches('\n').count() + 1)
}

impl FileConfig {
    /// Lays `later` over `self`: each setting `later` gives wins, and its
    /// templates come after ours.
    fn merge(&mut self, later: FileConfig) {
        let FileConfig {
            consul,
            max_stale,
            block_wait,
            reset_grace,
            log_level,
            pid_file,
            once,
            wait,
            templates,
            exec,
            metrics_addr,
            log_format,
            reload_signal,
            kill_signal,
            syslog: (),
            log_file,
            default_delimiters,
            template_error_fatal,
        } = later;
        self.consul.merge(consul);
        override_with(&mut self.max_stale, max_stale);
        override_with(&mut self.block_wait, block_wait);
        override_with(&mut self.reset_grace, reset_grace);
        override_with(&mut self.log_level, log_level);
        override_with(&mut self.pid_file, pid_file);
        override_with(&mut self.once, once);
        override_with(&mut self.wait, wait);
        self.templates.extend(templates);
        self.exec.merge(exec);
        override_with(&mut self.metrics_addr, metrics_addr);
        override_with(&mut self.log_format, log_format);
        override_with(&mut self.reload_signal, reload_signal);
        override_with(&mut self.kill_signal, kill_signal);
        self.log_file.merge(log_file);
        override_with(&mut self.default_delimiters.left, default_delimiters.left);
        override_with(&mut self.default_delimiters.right, default_delimiters.right);
        override_with(&mut self.template_error_fatal, template_error_fatal);
    }
}

impl LogFileFile {
    fn merge(&mut self, later: LogFileFile) {
        let LogFileFile {
            path,
            log_rotate_bytes,
            log_rotate_duration,
            log_rotate_max_files,
        } = later;
        override_with(&mut self.path, path);
        override_with(&mut self.log_rotate_bytes, log_rotate_bytes);
        override_with(&mut self.log_rotate_duration, log_rotate_duration);
        override_with(&mut self.log_rotate_max_files, log_rotate_max_files);
    }
}

impl ExecFile {
    fn merge(&mut self, later: ExecFile) {
        let ExecFile {
            command,
            reload_signal,
            kill_signal,
            kill_timeout,
            enabled,
            splay,
            env,
        } = later;
        override_with(&mut self.command, command);
        override_with(&mut self.reload_signal, reload_signal);
        override_with(&mut self.kill_signal, kill_signal);
        override_with(&mut self.kill_timeout, kill_timeout);
        override_with(&mut self.enabled, enabled);
        override_with(&mut self.splay, splay);
        self.env.merge(env);
    }
}

impl EnvFile {
    fn merge(&mut self, later: EnvFile) {
        let EnvFile {
            pristine,
            custom,
            allowlist,
            whitelist,
            denylist,
            blacklist,
        } = later;
        override_with(&mut self.pristine, pristine);
        self.custom.extend(custom);
        self.allowlist.extend(allowlist);
        self.whitelist.extend(whitelist);
        self.denylist.extend(denylist);
        self.blacklist.extend(blacklist);
    }
}

impl ConsulFile {
    fn merge(&mut self, later: ConsulFile) {
        let ConsulFile {
            address,
            token,
            token_file,
            namespace,
            auth,
            ssl,
            retry,
            max_connections,
        } = later;
        override_with(&mut self.max_connections, max_connections);
        override_with(&mut self.address, address);
        override_with(&mut self.token, token);
        override_with(&mut self.token_file, token_file);
        override_with(&mut self.namespace, namespace);
        override_with(&mut self.auth, auth);
        self.ssl.merge(ssl);
        self.retry.merge(retry);
    }
}

impl SslFile {
    /// Whether the files ask for TLS: `enabled` if given, else on as soon as
    /// any other TLS setting is given, as consul-template documents.
    pub fn wants_tls(&self) -> Option<bool> {
        let SslFile {
            enabled,
            verify,
            ca_cert,
            ca_path,
            ca_cert_bytes,
            cert,
            key,
            server_name,
        } = self;
        let implied = verify.is_some()
            || ca_cert.is_some()
            || ca_path.is_some()
            || ca_cert_bytes.is_some()
            || cert.is_some()
            || key.is_some()
            || server_name.is_some();
        enabled.or(implied.then_some(true))
    }

    fn merge(&mut self, later: SslFile) {
        let SslFile {
            enabled,
            verify,
            ca_cert,
            ca_path,
            ca_cert_bytes,
            cert,
            key,
            server_name,
        } = later;
        override_with(&mut self.enabled, enabled);
        override_with(&mut self.verify, verify);
        override_with(&mut self.ca_cert, ca_cert);
        override_with(&mut self.ca_path, ca_path);
        override_with(&mut self.ca_cert_bytes, ca_cert_bytes);
        override_with(&mut self.cert, cert);
        override_with(&mut self.key, key);
        override_with(&mut self.server_name, server_name);
    }
}

impl RetryFile {
    fn merge(&mut self, later: RetryFile) {
        let RetryFile {
            enabled,
            attempts,
            backoff,
            max_backoff,
        } = later;
        override_with(&mut self.enabled, enabled);
        override_with(&mut self.attempts, attempts);
        override_with(&mut self.backoff, backoff);
        override_with(&mut self.max_backoff, max_backoff);
    }
}

fn override_with<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

/// A block given once (an HCL block, a JSON object) or several times (an
/// HCL block repeated, a JSON list of objects). Decoded through serde's own
/// map and list access, so errors inside keep their key paths.
struct Blocks<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Blocks<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlocksVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for BlocksVisitor<T> {
            type Value = Blocks<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a block")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Blocks<T>, A::Error> {
                let block = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Blocks(vec![block]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Blocks<T>, A::Error> {
                let mut blocks = Vec::new();
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(Blocks(blocks))
            }
        }

        deserializer.deserialize_any(BlocksVisitor(PhantomData))
    }
}

fn blocks<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Blocks::deserialize(deserializer)?.0)
}

/// A `template` block, checked as a whole once its keys are read: it takes
/// exactly one of `source` and `contents`, in consul-template's words.
struct TemplateBlock(TemplateFile);

impl<'de> Deserialize<'de> for TemplateBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let block = TemplateFile::deserialize(deserializer)?;
        match (&block.source, &block.contents) {
            (Some(_), Some(_)) => Err(de::Error::custom(
                "cannot specify both 'source' and 'contents'",
            )),
            (None, None) => Err(de::Error::custom(
                "must specify exactly one of 'source' or 'contents'",
            )),
            _ => Ok(TemplateBlock(block)),
        }
    }
}

fn template_blocks<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<TemplateFile>, D::Error> {
    let blocks: Vec<TemplateBlock> = blocks(deserializer)?;
    Ok(blocks.into_iter().map(|block| block.0).collect())
}

/// A block that may appear once; if it is repeated, the last one counts, as
/// in consul-template.
fn last_block<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Blocks::deserialize(deserializer)?
        .0
        .pop()
        .unwrap_or_default())
}

/// A string; an empty one counts as not given, as an empty flag does.
fn engine<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Engine>, D::Error> {
    parsed(deserializer, str::parse::<Engine>)
}

fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Some(String::deserialize(deserializer)?).filter(|text| !text.is_empty()))
}

/// A string read by `parse`; an error quotes the value, so never use this
/// for secrets.
fn parsed<'de, D, T, E>(
    deserializer: D,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    text(deserializer)?
        .map(|text| parse(&text).map_err(|error| invalid(&text, error)))
        .transpose()
}

fn invalid<E: de::Error>(text: &str, error: impl fmt::Display) -> E {
    E::custom(format!("invalid value {text:?}: {error}"))
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    parsed(deserializer, parse_duration)
}

fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ConsulAddress>, D::Error> {
    parsed(deserializer, str::parse::<ConsulAddress>)
}

fn log_level<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<LogLevel>, D::Error> {
    parsed(deserializer, str::parse::<LogLevel>)
}

fn log_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<LogFormat>, D::Error> {
    parsed(deserializer, str::parse::<LogFormat>)
}

fn listen_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    parsed(deserializer, parse_listen_address)
}

fn signal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ProcessSignal>, D::Error> {
    parsed(deserializer, str::parse::<ProcessSignal>)
}

/// A signal, where an empty string means none at all.
fn optional_signal<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<ProcessSignal>>, D::Error> {
    Ok(Some(signal(deserializer)?))
}

/// A `syslog` block, which must leave syslog off.
fn syslog_off<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    #[derive(Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Syslog {
        #[serde(default)]
        enabled: bool,
        #[serde(default, rename = "facility")]
        _facility: Option<String>,
        #[serde(default, rename = "name")]
        _name: Option<String>,
    }
    let syslog = last_block::<D, Syslog>(deserializer)?;
    if syslog.enabled {
        return Err(de::Error::custom(
            "consul-render does not log to syslog (it logs to stderr); only `enabled = false` is accepted",
        ));
    }
    Ok(())
}

fn path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(text(deserializer)?.map(PathBuf::from))
}

fn required_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    path(deserializer)?.ok_or_else(|| de::Error::custom("must not be empty"))
}

/// A secret string. Any other type is refused without showing the value.
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match hcl::Value::deserialize(deserializer)? {
        hcl::Value::String(secret) => Ok(Some(secret).filter(|secret| !secret.is_empty())),
        _ => Err(de::Error::custom(
            "expected a string (the value is not shown)",
        )),
    }
}

fn token<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Token>, D::Error> {
    Ok(secret(deserializer)?.map(Token::new))
}

/// The `consul.auth` block. No `Debug`: it holds the password.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AuthBlock {
    enabled: Option<bool>,
    #[serde(deserialize_with = "text")]
    username: Option<String>,
    #[serde(deserialize_with = "secret")]
    password: Option<String>,
}

/// Basic auth is on when `enabled` says so or, without it, when a user name
/// or password is given, as in consul-template.
fn auth<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<BasicAuth>>, D::Error> {
    let AuthBlock {
        enabled,
        username,
        password,
    } = last_block(deserializer)?;
    if !enabled.unwrap_or(username.is_some() || password.is_some()) {
        return Ok(Some(None));
    }
    let username = username.ok_or_else(|| de::Error::custom("basic auth needs a username"))?;
    Ok(Some(Some(BasicAuth { username, password })))
}

/// The strings of an HCL list; `None` if an item is not a string.
fn strings(items: Vec<hcl::Value>) -> Option<Vec<String>> {
    items
        .into_iter()
        .map(|item| match item {
            hcl::Value::String(item) => Some(item),
            _ => None,
        })
        .collect()
}

const STRINGS_EXPECTED: &str = "expected a string or a list of strings";

/// A list of strings, or one string of comma-separated items, as
/// consul-template's decoder turns a string into a list (`""` is none).
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    match hcl::Value::deserialize(deserializer)? {
        hcl::Value::String(text) if text.is_empty() => Ok(Vec::new()),
        hcl::Value::String(text) => Ok(text.split(',').map(str::to_owned).collect()),
        hcl::Value::Array(items) => {
            strings(items).ok_or_else(|| de::Error::custom(STRINGS_EXPECTED))
        }
        _ => Err(de::Error::custom(STRINGS_EXPECTED)),
    }
}

/// `exec.env.custom`: `NAME=value` entries.
fn env_entries<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, String)>, D::Error> {
    // An entry is not shown: variables handed to the child often carry its
    // secrets, and a malformed one may be `PASSWORD: hunter2`.
    list(deserializer)?
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            parse_env_entry(entry)
                .map_err(|error| de::Error::custom(format!("entry {} (not shown): {error}", i + 1)))
        })
        .collect()
}

/// `exec.env`'s allow- and denylists: patterns of variable names.
fn env_patterns<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<EnvPattern>, D::Error> {
    list(deserializer)?
        .iter()
        .map(|pattern| pattern.parse().map_err(|error| invalid(pattern, error)))
        .collect()
}

/// A string run by the shell, or consul-template's exec form, a list of
/// words. A single word is run by the shell as it stands, as in
/// consul-template; several are quoted and joined.
fn command<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let expected = || de::Error::custom(STRINGS_EXPECTED);
    let command = match hcl::Value::deserialize(deserializer)? {
        hcl::Value::String(command) => command,
        hcl::Value::Array(words) => {
            let words = strings(words).ok_or_else(expected)?;
            match words.as_slice() {
                [command] => command.clone(),
                words => words
                    .iter()
                    .map(|word| shell_word(word))
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        }
        _ => return Err(expected()),
    };
    Ok(Some(command).filter(|command| !command.trim().is_empty()))
}

/// `word` as `sh` reads it back: as it stands when it is plainly safe, else
/// in single quotes, so that commands in logs read as they were written.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "%+,-./:=@_".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A file mode in octal, as `chmod` takes it: the string `"0644"`, or an
/// HCL number, whose digits read the same way. (consul-template's HCL reads
/// `0644` as octal; hcl-rs reads it as 644, so its digits are what was
/// written.)
fn perms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let digits = match hcl::Value::deserialize(deserializer)? {
        hcl::Value::String(digits) => digits,
        hcl::Value::Number(number) if number.is_u64() => number.to_string(),
        _ => return Err(de::Error::custom(PERMS_EXPECTED)),
    };
    u32::from_str_radix(&digits, 8)
        .ok()
        .filter(|&mode| mode <= 0o777)
        .map(Some)
        .ok_or_else(|| invalid(&digits, PERMS_EXPECTED))
}

const PERMS_EXPECTED: &str = "expected an octal file mode from 0000 to 0777, like 0644 \
     (in JSON, a string like \"0644\", or the mode in decimal: 420 for 0644)";

fn always_create_dirs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    if bool::deserialize(deserializer)? {
        Ok(())
    } else {
        Err(de::Error::custom(
            "consul-render always creates missing directories; false is not supported",
        ))
    }
}

/// A `wait` value: `"min[:max]"` or a block with `min` and `max`. `None`
/// turns quiescence off (no `min`, or a zero one). `max` defaults to four
/// times `min`.
struct WaitValue(Option<Wait>);

/// The block form of `wait`.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WaitBlock {
    #[serde(deserialize_with = "duration")]
    min: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    max: Option<Duration>,
}

impl<'de> Deserialize<'de> for WaitValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WaitVisitor;

        impl<'de> Visitor<'de> for WaitVisitor {
            type Value = WaitValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a wait like \"2s:10s\" or a block with min and max")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<WaitValue, E> {
                let wait = Wait::parse(text).map_err(|error: ValueError| invalid(text, error))?;
                ordered(wait)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WaitValue, A::Error> {
                let WaitBlock { min, max } =
                    WaitBlock::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let wait = min.filter(|min| !min.is_zero()).map(|min| Wait {
                    min,
                    max: max.unwrap_or(min.saturating_mul(4)),
                });
                ordered(wait)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WaitValue, A::Error> {
                let mut last = None;
                while let Some(wait) = seq.next_element()? {
                    last = Some(wait);
                }
                last.ok_or_else(|| de::Error::invalid_length(0, &self))
            }
        }

        deserializer.deserialize_any(WaitVisitor)
    }
}

fn ordered<E: de::Error>(wait: Option<Wait>) -> Result<WaitValue, E> {
    match wait {
        Some(Wait { min, max }) if max < min => {
            Err(E::custom(format!("max {max:?} is less than min {min:?}")))
        }
        wait => Ok(WaitValue(wait)),
    }
}

fn global_wait<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<Wait>>, D::Error> {
    Ok(Some(WaitValue::deserialize(deserializer)?.0))
}

fn template_wait<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Wait>, D::Error> {
    Ok(WaitValue::deserialize(deserializer)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn wait(min: u64, max: u64) -> Wait {
        Wait {
            min: secs(min),
            max: secs(max),
        }
    }

    fn template(source: &str, destination: &str) -> TemplateFile {
        TemplateFile {
            source: Some(source.into()),
            contents: None,
            destination: destination.into(),
            command: None,
            check: None,
            command_timeout: None,
            perms: None,
            backup: false,
            wait: None,
            engine: None,
            left_delimiter: None,
            right_delimiter: None,
            sandbox_path: None,
            function_denylist: Vec::new(),
            function_blacklist: Vec::new(),
            error_on_missing_key: false,
            error_fatal: None,
            user: None,
            group: None,
            uid: None,
            gid: None,
            exec: TemplateExecFile::default(),
            _create_dest_dirs: (),
        }
    }

    fn decode(text: &str) -> Result<FileConfig, ConfigFileError> {
        parse(Path::new("/etc/cr/test.hcl"), text)
    }

    fn decoded(text: &str) -> FileConfig {
        decode(text).unwrap_or_else(|error| panic!("{text}\n{error}"))
    }

    const FULL_HCL: &str = r#"
# Everything consul-render reads, as consul-template users write it.
consul {
  address = "consul.service:8500"
  token = "tok-SECRET"
  namespace = "team-a"
  auth {
    enabled = true
    username = "user"
    password = "pw-SECRET"
  }
  ssl {
    enabled = true
    verify = false
    ca_cert = "/etc/ssl/ca.pem"
    ca_path = ""
    cert = "/etc/ssl/client.pem"
    key = "/etc/ssl/client-key.pem"
    server_name = "consul.internal"
  }
  retry {
    enabled = true
    attempts = 12
    backoff = "250ms"
    max_backoff = "1m"
  }
}
max_stale = "2s"
log_level = "debug"
pid_file = "/run/consul-render.pid"
wait {
  min = "2s"
  max = "10s"
}
reset_grace = "90s"
block_wait = "5m"
log_format = "json"
metrics_addr = "127.0.0.1:9102"
reload_signal = "SIGUSR2"
kill_signal = "SIGTERM"
syslog {
  enabled = false
  facility = "LOCAL5"
}
exec {
  command = ["nginx", "-g", "daemon off;"]
  reload_signal = "SIGHUP"
  kill_signal = "SIGQUIT"
  kill_timeout = "10s"
}
template {
  source = "/templates/default.conf.tera"
  destination = "/etc/nginx/conf.d/default.conf"
  command = "nginx -s reload"
  command_timeout = "1m"
  perms = 0600
  backup = true
  wait {
    min = "1s"
    max = "5s"
  }
  check = "nginx -t"
  create_dest_dirs = true
  sandbox_path = "/etc/nginx/snippets"
}
template {
  source = "/templates/stream.conf.tera"
  destination = "/etc/nginx/stream.d/stream.conf"
  command = ["nginx", "-s", "reload"]
}
"#;

    const FULL_JSON: &str = r#"{
  "consul": {
    "address": "consul.service:8500",
    "token": "tok-SECRET",
    "namespace": "team-a",
    "auth": {"enabled": true, "username": "user", "password": "pw-SECRET"},
    "ssl": {
      "enabled": true, "verify": false, "ca_cert": "/etc/ssl/ca.pem", "ca_path": "",
      "cert": "/etc/ssl/client.pem", "key": "/etc/ssl/client-key.pem",
      "server_name": "consul.internal"
    },
    "retry": {"enabled": true, "attempts": 12, "backoff": "250ms", "max_backoff": "1m"}
  },
  "log_format": "json",
  "metrics_addr": "127.0.0.1:9102",
  "reload_signal": "SIGUSR2",
  "kill_signal": "SIGTERM",
  "syslog": {"enabled": false, "facility": "LOCAL5"},
  "exec": {
    "command": ["nginx", "-g", "daemon off;"],
    "reload_signal": "SIGHUP",
    "kill_signal": "SIGQUIT",
    "kill_timeout": "10s"
  },
  "max_stale": "2s",
  "log_level": "debug",
  "pid_file": "/run/consul-render.pid",
  "wait": {"min": "2s", "max": "10s"},
  "reset_grace": "90s",
  "block_wait": "5m",
  "template": [
    {
      "source": "/templates/default.conf.tera",
      "destination": "/etc/nginx/conf.d/default.conf",
      "command": "nginx -s reload",
      "command_timeout": "1m",
      "perms": 384,
      "backup": true,
      "wait": {"min": "1s", "max": "5s"},
      "check": "nginx -t",
      "create_dest_dirs": true,
      "sandbox_path": "/etc/nginx/snippets"
    },
    {
      "source": "/templates/stream.conf.tera",
      "destination": "/etc/nginx/stream.d/stream.conf",
      "command": ["nginx", "-s", "reload"]
    }
  ]
}"#;

    fn full() -> FileConfig {
        FileConfig {
            consul: ConsulFile {
                address: Some(ConsulAddress::Http("consul.service:8500".to_owned())),
                token: Some(Token::new("tok-SECRET".to_owned())),
                token_file: None,
                namespace: Some("team-a".to_owned()),
                auth: Some(Some(BasicAuth {
                    username: "user".to_owned(),
                    password: Some("pw-SECRET".to_owned()),
                })),
                ssl: SslFile {
                    enabled: Some(true),
                    verify: Some(false),
                    ca_cert: Some("/etc/ssl/ca.pem".into()),
                    ca_path: None,
                    ca_cert_bytes: None,
                    cert: Some("/etc/ssl/client.pem".into()),
                    key: Some("/etc/ssl/client-key.pem".into()),
                    server_name: Some("consul.internal".to_owned()),
                },
                retry: RetryFile {
                    enabled: Some(true),
                    attempts: Some(12),
                    backoff: Some(Duration::from_millis(250)),
                    max_backoff: Some(secs(60)),
                },
                max_connections: None,
            },
            max_stale: Some(secs(2)),
            block_wait: Some(secs(300)),
            reset_grace: Some(secs(90)),
            log_level: Some(LogLevel::Debug),
            pid_file: Some("/run/consul-render.pid".into()),
            once: None,
            wait: Some(Some(wait(2, 10))),
            exec: ExecFile {
                command: Some("nginx -g 'daemon off;'".to_owned()),
                reload_signal: Some(Some(ProcessSignal(libc::SIGHUP))),
                kill_signal: Some(ProcessSignal(libc::SIGQUIT)),
                kill_timeout: Some(secs(10)),
                enabled: None,
                splay: None,
                env: EnvFile::default(),
            },
            metrics_addr: Some("127.0.0.1:9102".parse().unwrap()),
            log_format: Some(LogFormat::Json),
            reload_signal: Some(Some(ProcessSignal(libc::SIGUSR2))),
            kill_signal: Some(ProcessSignal(libc::SIGTERM)),
            syslog: (),
            log_file: LogFileFile::default(),
            default_delimiters: DelimitersFile::default(),
            template_error_fatal: None,
            templates: vec![
                TemplateFile {
                    command: Some("nginx -s reload".to_owned()),
                    check: Some("nginx -t".to_owned()),
                    command_timeout: Some(secs(60)),
                    perms: Some(0o600),
                    backup: true,
                    wait: Some(wait(1, 5)),
                    sandbox_path: Some("/etc/nginx/snippets".into()),
                    ..template(
                        "/templates/default.conf.tera",
                        "/etc/nginx/conf.d/default.conf",
                    )
                },
                TemplateFile {
                    command: Some("nginx -s reload".to_owned()),
                    ..template(
                        "/templates/stream.conf.tera",
                        "/etc/nginx/stream.d/stream.conf",
                    )
                },
            ],
        }
    }

    #[test]
    fn reads_a_full_consul_template_file_in_hcl_and_in_json() {
        for (syntax, text) in [("HCL", FULL_HCL), ("JSON", FULL_JSON)] {
            assert_eq!(decode(text).ok(), Some(full()), "{syntax}");
        }
    }

    type Expect = fn(&mut FileConfig);

    #[test]
    fn reads_every_form_of_each_value() {
        let cases: &[(&str, Expect)] = &[
            ("", |_| {}),
            ("# only a comment\n", |_| {}),
            ("{}", |_| {}),
            ("wait = \"2s\"\n", |c| c.wait = Some(Some(wait(2, 8)))),
            ("wait = \"2s:3s\"\n", |c| c.wait = Some(Some(wait(2, 3)))),
            ("wait = \"0\"\n", |c| c.wait = Some(None)),
            ("wait {\n  min = \"2s\"\n}\n", |c| {
                c.wait = Some(Some(wait(2, 8)))
            }),
            ("wait {\n  max = \"2s\"\n}\n", |c| c.wait = Some(None)),
            ("{\"wait\": \"1s:2s\"}", |c| c.wait = Some(Some(wait(1, 2)))),
            ("block_query_wait = \"1m\"\n", |c| {
                c.block_wait = Some(secs(60))
            }),
            ("once = true\n", |c| c.once = Some(true)),
            ("max_stale = \"\"\n", |_| {}),
            ("log_level = \"ERR\"\n", |c| {
                c.log_level = Some(LogLevel::Error)
            }),
            (
                "consul {\n  address = \"https://consul\"\n  token_file = \"/run/token\"\n}\n",
                |c| {
                    c.consul.address = Some(ConsulAddress::Https("consul:8501".to_owned()));
                    c.consul.token_file = Some("/run/token".into());
                },
            ),
            ("consul {\n  token = \"\"\n}\n", |_| {}),
            (
                "consul {\n  address = \"a\"\n}\nconsul {\n  namespace = \"n\"\n}\n",
                |c| c.consul.namespace = Some("n".to_owned()),
            ),
            ("consul {\n  auth {\n    username = \"u\"\n  }\n}\n", |c| {
                c.consul.auth = Some(Some(BasicAuth {
                    username: "u".to_owned(),
                    password: None,
                }))
            }),
            (
                "consul {\n  auth {\n    enabled = false\n    username = \"u\"\n  }\n}\n",
                |c| c.consul.auth = Some(None),
            ),
            ("consul {\n  auth {}\n}\n", |c| c.consul.auth = Some(None)),
            ("consul {\n  retry {\n    attempts = 0\n  }\n}\n", |c| {
                c.consul.retry.attempts = Some(0)
            }),
            (
                "template {\n  source = \"in\"\n  destination = \"out\"\n}\n",
                |c| c.templates = vec![template("in", "out")],
            ),
        ];
        for (text, expect) in cases {
            let mut expected = FileConfig::default();
            expect(&mut expected);
            assert_eq!(decoded(text), expected, "{text}");
        }
    }

    #[test]
    fn reads_each_template_setting() {
        type ExpectTemplate = fn(&mut TemplateFile);
        let cases: &[(&str, ExpectTemplate)] = &[
            ("perms = 0644", |t| t.perms = Some(0o644)),
            ("perms = 644", |t| t.perms = Some(0o644)),
            ("perms = 0600", |t| t.perms = Some(0o600)),
            ("perms = \"0640\"", |t| t.perms = Some(0o640)),
            ("perms = \"755\"", |t| t.perms = Some(0o755)),
            ("perms = 0", |t| t.perms = Some(0)),
            ("backup = true", |t| t.backup = true),
            ("backup = false", |_| {}),
            ("check = \"nginx -t -c /etc/nginx/nginx.conf\"", |t| {
                t.check = Some("nginx -t -c /etc/nginx/nginx.conf".to_owned())
            }),
            ("command = \"\"", |_| {}),
            ("command = []", |_| {}),
            ("command = \"nginx -s reload\"", |t| {
                t.command = Some("nginx -s reload".to_owned())
            }),
            ("command = [\"service nginx reload\"]", |t| {
                t.command = Some("service nginx reload".to_owned())
            }),
            (
                "command = [\"/bin/sh\", \"-c\", \"nginx -t && nginx -s reload\"]",
                |t| t.command = Some("/bin/sh -c 'nginx -t && nginx -s reload'".to_owned()),
            ),
            ("command_timeout = \"5s\"", |t| {
                t.command_timeout = Some(secs(5))
            }),
            ("wait = \"1s:2s\"", |t| t.wait = Some(wait(1, 2))),
            ("wait = \"0s\"", |_| {}),
            ("wait {\n    min = \"3s\"\n  }", |t| {
                t.wait = Some(wait(3, 12))
            }),
            ("create_dest_dirs = true", |_| {}),
            ("sandbox_path = \"/etc/nginx/snippets\"", |t| {
                t.sandbox_path = Some("/etc/nginx/snippets".into())
            }),
            ("sandbox_path = \"snippets\"", |t| {
                t.sandbox_path = Some("snippets".into())
            }),
            ("sandbox_path = \"\"", |_| {}),
            ("function_denylist = [\"env\", \"sprig_*\"]", |t| {
                t.function_denylist = vec!["env".to_owned(), "sprig_*".to_owned()]
            }),
            ("function_denylist = []", |_| {}),
            ("function_denylist = \"\"", |_| {}),
            // consul-template's decoder splits a string at commas, as is.
            ("function_denylist = \"env, file\"", |t| {
                t.function_denylist = vec!["env".to_owned(), " file".to_owned()]
            }),
            ("function_blacklist = [\"key\"]", |t| {
                t.function_blacklist = vec!["key".to_owned()]
            }),
            ("error_on_missing_key = true", |t| {
                t.error_on_missing_key = true
            }),
            ("error_on_missing_key = false", |_| {}),
        ];
        for (setting, expect) in cases {
            let text = format!(
                "template {{\n  source = \"in\"\n  destination = \"out\"\n  {setting}\n}}\n"
            );
            let mut expected = template("in", "out");
            expect(&mut expected);
            assert_eq!(decoded(&text).templates, [expected], "{setting}");
        }
    }

    #[test]
    fn takes_a_template_s_text_from_contents_instead_of_a_source() {
        let inline = |contents: &str| TemplateFile {
            source: None,
            contents: Some(contents.to_owned()),
            ..template("unused", "out")
        };
        let cases = [
            (
                "template {\n  contents = \"{{ key \\\"a\\\" }}\"\n  destination = \"out\"\n}\n",
                inline("{{ key \"a\" }}"),
            ),
            // A well-formed HCL interpolation stays text, as consul-template
            // (HCL 1) reads it.
            (
                "template {\n  contents = <<EOT\nserver ${x};\nEOT\n  destination = \"out\"\n}\n",
                inline("server ${x};\n"),
            ),
            (
                r#"{"template": {"contents": "{{ env \"A\" }}", "destination": "out"}}"#,
                inline("{{ env \"A\" }}"),
            ),
            (
                "template {\n  source = \"in\"\n  contents = \"\"\n  destination = \"out\"\n}\n",
                template("in", "out"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(decoded(text).templates, [expected], "{text}");
        }
    }

    #[test]
    fn refuses_a_template_with_both_source_and_contents_or_neither() {
        let both = "cannot specify both 'source' and 'contents'";
        let neither = "must specify exactly one of 'source' or 'contents'";
        let cases = [
            (
                "template {\n  source = \"in\"\n  contents = \"x\"\n  destination = \"out\"\n}\n",
                format!("config file /etc/cr/test.hcl, line 1: template: {both}"),
            ),
            (
                "template {\n  destination = \"out\"\n}\n",
                format!("config file /etc/cr/test.hcl, line 1: template: {neither}"),
            ),
            (
                "template {\n  source = \"\"\n  contents = \"\"\n  destination = \"out\"\n}\n",
                format!("config file /etc/cr/test.hcl, line 1: template: {neither}"),
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n}\n\ntemplate {\n  source = \"c\"\n  contents = \"x\"\n  destination = \"d\"\n}\n",
                format!("config file /etc/cr/test.hcl, line 6: template[1]: {both}"),
            ),
        ];
        for (text, message) in cases {
            let error = decode(text).expect_err(text);
            assert_eq!(error.to_string(), message, "{text}");
            assert!(
                matches!(error, ConfigFileError::Invalid { .. }),
                "{error:?}"
            );
        }
        let error = parse(
            Path::new("/etc/cr/test.json"),
            r#"{"template": [{"source": "a", "destination": "b"}, {"destination": "c"}]}"#,
        )
        .expect_err("neither");
        assert_eq!(
            error.to_string(),
            format!("config file /etc/cr/test.json: template[1]: {neither}")
        );
    }

    #[test]
    fn reads_json_perms_as_consul_template_does() {
        let cases = [("420", 0o644), ("384", 0o600), ("\"0644\"", 0o644)];
        for (perms, expected) in cases {
            let text = format!(
                r#"{{"template": {{"source": "in", "destination": "out", "perms": {perms}}}}}"#
            );
            assert_eq!(decoded(&text).templates[0].perms, Some(expected), "{perms}");
        }
    }

    #[test]
    fn turns_tls_on_when_any_tls_setting_is_given() {
        let cases = [
            ("", None),
            ("enabled = false", Some(false)),
            ("enabled = true", Some(true)),
            ("verify = false", Some(true)),
            ("ca_cert = \"/ca.pem\"", Some(true)),
            ("server_name = \"consul\"", Some(true)),
            ("ca_path = \"\"", None),
            ("enabled = false\n    cert = \"/c.pem\"", Some(false)),
        ];
        for (setting, expected) in cases {
            let text = format!("consul {{\n  ssl {{\n    {setting}\n  }}\n}}\n");
            assert_eq!(decoded(&text).consul.ssl.wants_tls(), expected, "{setting}");
        }
    }

    #[test]
    fn accepts_syslog_only_when_it_is_off() {
        decoded("syslog {\n  enabled = false\n  facility = \"LOCAL5\"\n}\n");
        decoded(r#"{"syslog": {"name": "ct"}}"#);
        let error = decode("\nsyslog {\n  enabled = true\n}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "config file /etc/cr/test.hcl, line 2: syslog: consul-render does not log to syslog (it logs to stderr); only `enabled = false` is accepted"
        );
    }

    #[test]
    fn refuses_each_consul_template_setting_it_does_not_support() {
        for setting in UNSUPPORTED {
            // `a.b.c` as nested blocks, `c` set on line depth + 1.
            let keys: Vec<&str> = setting.split('.').collect();
            let (last, blocks) = keys.split_last().expect("a key");
            let mut text = String::new();
            for block in blocks {
                text.push_str(&format!("{block} {{\n"));
            }
            text.push_str(&format!("{last} = \"x\"\n"));
            text.push_str(&"}\n".repeat(blocks.len()));
            let error = decode(&text).expect_err(setting);
            assert_eq!(
                error.to_string(),
                format!(
                    "config file /etc/cr/test.hcl, line {}: {setting} is a consul-template setting that consul-render does not support",
                    blocks.len() + 1
                ),
                "{text}"
            );
        }
        let error = parse(
            Path::new("/etc/cr/test.json"),
            r#"{"template": [{"source": "a", "destination": "b"}, {"exec": {"env": {}}}]}"#,
        )
        .expect_err("unsupported");
        assert_eq!(
            error.to_string(),
            "config file /etc/cr/test.json: template.exec.env is a consul-template setting that consul-render does not support"
        );
    }

    #[test]
    fn names_the_file_line_and_key_of_each_bad_setting() {
        let two_templates = "template {\n  source = \"a\"\n  destination = \"b\"\n}\n\
                             template {\n  source = \"c\"\n  destination = \"d\"\n  bogus = 1\n}\n";
        let cases: &[(&str, &str)] = &[
            (
                "bogus = 1\n",
                "line 1: bogus: unknown field `bogus`, expected one of `consul`, `max_stale`, `block_query_wait`, `block_wait`, `reset_grace`, `log_level`, `pid_file`, `once`, `wait`, `template`",
            ),
            (
                "consul {\n  ssl {\n    verify = true\n    verfy = false\n  }\n}\n",
                "line 4: consul.ssl.verfy: unknown field `verfy`, expected one of `enabled`, `verify`, `ca_cert`, `ca_path`, `ca_cert_bytes`, `cert`, `key`, `server_name`",
            ),
            (
                two_templates,
                "line 8: template[1].bogus: unknown field `bogus`, expected one of `source`, `contents`, `destination`, `command`, `check`, `command_timeout`, `perms`, `backup`, `wait`, `engine`, `left_delimiter`, `right_delimiter`, `sandbox_path`, `function_denylist`, `function_blacklist`, `error_on_missing_key`, `error_fatal`, `user`, `group`, `uid`, `gid`, `exec`, `create_dest_dirs`",
            ),
            (
                "max_stale = \"5x\"\n",
                "line 1: max_stale: invalid value \"5x\": unknown unit \"x\" (use ns, us, ms, s, m or h)",
            ),
            (
                "max_stale = 5\n",
                "line 1: max_stale: invalid type: integer `5`, expected a string",
            ),
            (
                "\n\nlog_level = \"loud\"\n",
                "line 3: log_level: invalid value \"loud\": expected one of trace, debug, info, warn, err",
            ),
            (
                "wait = \"10s:5s\"\n",
                "line 1: wait: max 5s is less than min 10s",
            ),
            (
                "wait {\n  min = \"10s\"\n  max = \"5s\"\n}\n",
                "line 1: wait: max 5s is less than min 10s",
            ),
            (
                "wait {\n  min = \"abc\"\n}\n",
                "line 2: wait.min: invalid value \"abc\": expected a number and a unit, like 5s, 500ms or 1m30s",
            ),
            (
                "consul {\n  address = \"ftp://x\"\n}\n",
                "line 2: consul.address: invalid value \"ftp://x\": expected host:port, http://host:port, https://host:port or unix:///path/to.sock (unknown scheme)",
            ),
            (
                "consul {\n  auth {\n    password = \"pw-SECRET\"\n  }\n}\n",
                "line 2: consul.auth: basic auth needs a username",
            ),
            (
                "consul {\n  retry {\n    attempts = -1\n  }\n}\n",
                "line 3: consul.retry.attempts: invalid value: integer `-1`, expected u32",
            ),
            (
                "consul = \"127.0.0.1:8500\"\n",
                "line 1: consul: invalid type: string \"127.0.0.1:8500\", expected a block",
            ),
            (
                "template {\n  source = \"a\"\n}\n",
                "line 1: template: missing field `destination`",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"\"\n}\n",
                "line 3: template.destination: must not be empty",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  perms = 0999\n}\n",
                "line 4: template.perms: invalid value \"999\": expected an octal file mode from 0000 to 0777, like 0644 (in JSON, a string like \"0644\", or the mode in decimal: 420 for 0644)",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  perms = \"01777\"\n}\n",
                "line 4: template.perms: invalid value \"01777\": expected an octal file mode",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  perms = -1\n}\n",
                "line 4: template.perms: expected an octal file mode",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  command = [\"nginx\", 1]\n}\n",
                "line 4: template.command: expected a string or a list of strings",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  create_dest_dirs = false\n}\n",
                "line 4: template.create_dest_dirs: consul-render always creates missing directories; false is not supported",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  wait = \"5s:1s\"\n}\n",
                "line 4: template.wait: max 1s is less than min 5s",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  function_denylist = [\"env\", 1]\n}\n",
                "line 4: template.function_denylist: expected a string or a list of strings",
            ),
            (
                "template {\n  source = \"a\"\n  destination = \"b\"\n  error_on_missing_key = \"yes\"\n}\n",
                "line 4: template.error_on_missing_key: invalid type: string \"yes\", expected a boolean",
            ),
        ];
        for (text, message) in cases {
            let error = decode(text).expect_err(message);
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("config file /etc/cr/test.hcl, {message}")),
                "{text}\n{error}"
            );
            assert!(
                matches!(error, ConfigFileError::Invalid { .. }),
                "{error:?}"
            );
        }
    }

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let cases = [
            (
                "test.hcl",
                "consul {\n  address = \"a\"\n",
                "config file test.hcl, line 2, column 17: invalid HCL: invalid block body; expected `}`, newline or identifier",
            ),
            (
                "test.hcl",
                "max_stale = \"1s\"\nmax_stale = \"2s\"\n",
                "config file test.hcl, line 2, column 1: invalid HCL: invalid attribute; expected unique attribute key; found redefined attribute",
            ),
            (
                "test.json",
                "{\n  \"max_stale\": \"1s\",\n}",
                "config file test.json, line 3, column 1: invalid JSON: trailing comma",
            ),
        ];
        for (path, text, message) in cases {
            let error = parse(Path::new(path), text).expect_err(text);
            assert!(error.to_string().starts_with(message), "{error}");
            assert!(matches!(error, ConfigFileError::Syntax { .. }), "{error:?}");
        }
    }

    #[test]
    fn never_shows_the_token_or_the_password() {
        let config = decoded(FULL_HCL);
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for text in [
            "consul {\n  token = \"tok-SECRET\n}\n",
            "consul {\n  token = 12345678\n}\n",
            "consul {\n  token = [\"tok-SECRET\"]\n}\n",
            "consul {\n  auth {\n    username = \"u\"\n    password = 12345678\n  }\n}\n",
            "consul {\n  auth {\n    password = \"pw-SECRET\"\n  }\n}\n",
            "{\"consul\": {\"token\": \"tok-SECRET\", \"bogus\": 1}}",
            "{\"consul\": {\"token\": \"tok-SECRET\"",
        ] {
            let error = decode(text).expect_err(text);
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("SECRET") && !shown.contains("12345678"),
                "{shown}"
            );
        }
    }

    #[test]
    fn loads_a_directory_s_hcl_and_json_files_in_name_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("mkdir");
            }
            fs::write(path, text).expect("write");
        };
        let one = |source: &str| {
            format!(
                "template {{\n  source = \"{source}\"\n  destination = \"out\"\n}}\nlog_level = \"{source}\"\n"
            )
        };
        write("20-b.hcl", &one("warn"));
        write(
            "10-a.json",
            r#"{"template": {"source": "info", "destination": "out"}, "max_stale": "1s"}"#,
        );
        write("30-c.hcl", &one("debug"));
        write("README.md", "not a config file");
        write("40-d.hcl.bak", "not = a config file");
        write("sub/50-e.hcl", "not = read");
        std::os::unix::fs::symlink(
            dir.path().join("sub/50-e.hcl"),
            dir.path().join("25-link.hcl"),
        )
        .expect("symlink");
        write("sub/50-e.hcl", &one("trace"));

        let config = load(&[dir.path().to_owned()]).expect("loads");
        let sources: Vec<_> = config.templates.iter().map(|t| t.source.clone()).collect();
        assert_eq!(
            sources,
            [
                Some(PathBuf::from("info")),
                Some("warn".into()),
                Some("trace".into()),
                Some("debug".into())
            ]
        );
        assert_eq!(config.log_level, Some(LogLevel::Debug));
        assert_eq!(config.max_stale, Some(secs(1)));
    }

    #[test]
    fn merges_files_left_to_right_and_adds_up_their_templates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = dir.path().join("first.hcl");
        let second = dir.path().join("second.json");
        fs::write(
            &first,
            r#"
consul {
  address = "first:8500"
  token = "first-token"
  ssl {
    verify = false
    ca_cert = "/first/ca.pem"
  }
  retry {
    attempts = 3
  }
}
wait = "2s:10s"
max_stale = "5s"
template {
  source = "a"
  destination = "a.conf"
}
"#,
        )
        .expect("write");
        fs::write(
            &second,
            r#"{
  "consul": {"address": "second:8500", "ssl": {"ca_cert": "/second/ca.pem"}, "retry": {"backoff": "1s"}},
  "wait": "0",
  "template": [{"source": "b", "destination": "b.conf"}, {"source": "c", "destination": "c.conf"}]
}"#,
        )
        .expect("write");

        let mut expected = FileConfig::default();
        expected.consul.address = Some(ConsulAddress::Http("second:8500".to_owned()));
        expected.consul.token = Some(Token::new("first-token".to_owned()));
        expected.consul.ssl.verify = Some(false);
        expected.consul.ssl.ca_cert = Some("/second/ca.pem".into());
        expected.consul.retry.attempts = Some(3);
        expected.consul.retry.backoff = Some(secs(1));
        expected.wait = Some(None);
        expected.max_stale = Some(secs(5));
        expected.templates = vec![
            template("a", "a.conf"),
            template("b", "b.conf"),
            template("c", "c.conf"),
        ];
        assert_eq!(
            load(&[first.clone(), second.clone()]).expect("loads"),
            expected
        );

        let swapped = load(&[second, first]).expect("loads");
        assert_eq!(
            swapped.consul.address,
            Some(ConsulAddress::Http("first:8500".to_owned()))
        );
        assert_eq!(swapped.wait, Some(Some(wait(2, 10))));
        let sources: Vec<_> = swapped.templates.iter().map(|t| t.source.clone()).collect();
        assert_eq!(
            sources,
            [Some(PathBuf::from("b")), Some("c".into()), Some("a".into())]
        );
    }

    #[test]
    fn names_the_path_it_cannot_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.hcl");
        let error = load(std::slice::from_ref(&missing)).expect_err("missing");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read config file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        assert_eq!(load(&[]).expect("nothing to read"), FileConfig::default());
    }

    #[test]
    fn quotes_only_the_words_the_shell_would_split_or_expand() {
        let cases = [
            ("nginx", "nginx"),
            ("-s", "-s"),
            ("/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"),
            ("a=b,c:d@e%f+g", "a=b,c:d@e%f+g"),
            ("", "''"),
            ("two words", "'two words'"),
            ("$HOME", "'$HOME'"),
            ("it's", r"'it'\''s'"),
            ("a;b", "'a;b'"),
        ];
        for (word, expected) in cases {
            assert_eq!(shell_word(word), expected, "{word:?}");
        }
    }
}
