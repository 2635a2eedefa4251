//! The command line: consul-template's flags, environment variables and
//! `-config` files in, one validated `Config` (or a request for help or the
//! version) out. Precedence is decided here, setting by setting: a flag
//! beats the config files, which beat the environment, which beats the
//! default; `config_file` only reads and merges the files.
//!
//! Go's flag package takes `-flag` and `--flag`, `-flag=value` and
//! `-flag value`, booleans only as `-flag` or `-flag=false`, and stops at the
//! first argument that is not a flag. A small normalisation (`go_style`)
//! rewrites argv into the one shape clap reads; clap then only checks names,
//! and the values are read here, where each error can name its flag. The
//! parser is handed its arguments and environment, so it never reads the
//! process's own. Clap's types stay inside this module.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches, Parser};
use thiserror::Error;

use crate::config::{
    ChildEnv, Config, ConfigError, ConsulAddress, ConsulConfig, EnvPattern, ExecConfig,
    LogFileConfig, ProcessSignal, RetryConfig, TemplateConfig, TemplateSource, TlsConfig, Token,
    ValueError, Wait, parse_env_entry, parse_listen_address,
};
use crate::config_file;
use crate::duration::parse_duration;
use crate::exit;
use crate::template::{Denylist, Engine, Options, Sandbox, Syntax};
use crate::token_file;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per process and matched at once; a Box would only add noise"
)]
pub enum Invocation {
    /// Run with this configuration.
    Run(Config),
    /// Print this help text to stdout and exit 0.
    Help(String),
    /// Print this version line to stdout and exit 0.
    Version(String),
}

/// Why the command line cannot run, split by the exit code it earns.
#[derive(Debug, Error)]
pub enum CliError {
    /// The arguments do not parse.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// The arguments parse, but the configuration they describe is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `-config` file that cannot be read, or whose settings cannot be.
    #[error(transparent)]
    File(#[from] config_file::ConfigFileError),
    /// A token file named by `origin` (a flag, a config file's setting or a
    /// variable) that cannot be read.
    #[error("cannot read the Consul token file {path} given by {origin}: {error}", path = .path.display())]
    TokenFile {
        origin: &'static str,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// An environment variable whose value cannot be read.
    #[error("invalid value {value:?} in environment variable {var}: {error}")]
    Env {
        var: &'static str,
        value: String,
        #[source]
        error: ValueError,
    },
    /// Any of the above, whose message quoted a secret given on the
    /// command line; rendered with the secret left out.
    #[error("{message}")]
    Redacted { message: String, exit_code: u8 },
}

impl CliError {
    /// consul-template's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Flag(_) => exit::FLAG_ERROR,
            CliError::Config(_)
            | CliError::File(_)
            | CliError::TokenFile { .. }
            | CliError::Env { .. } => exit::CONFIG_ERROR,
            CliError::Redacted { exit_code, .. } => *exit_code,
        }
    }
}

/// An argument list that does not parse. The first two messages are Go's
/// flag package's, word for word, as scripts may match on them.
#[derive(Debug, Error)]
pub enum FlagError {
    /// A flag nobody defined, including the consul-template flags we do not
    /// implement: accepting and ignoring them would hide a missing feature.
    #[error("flag provided but not defined: -{flag} (run consul-render -h to list the flags)")]
    Unknown { flag: String },
    /// A flag name that starts with `-` or `=`, such as `---x` or `-=x`.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    /// A value-taking flag at the end of the arguments.
    #[error("flag needs an argument: -{flag}")]
    MissingValue { flag: String },
    /// A value that does not read as what the flag takes.
    #[error("invalid value {value:?} for -{flag}: {error}")]
    InvalidValue {
        flag: &'static str,
        value: String,
        error: ValueError,
    },
    /// Arguments after the flags; consul-template takes none.
    #[error(
        "unexpected arguments {0:?}: consul-render takes only flags (a boolean flag takes its value as -flag=false, not -flag false)"
    )]
    Unexpected(Vec<String>),
    /// An argument the operating system handed over in a non-UTF-8 encoding.
    #[error("argument {0:?} is not valid UTF-8")]
    NotUnicode(String),
    /// Anything else clap refuses, in clap's words.
    #[error("{0}")]
    Other(String),
}

/// The consul-template flags we implement, as clap sees them after
/// `go_style`: every value is a string, read and checked by `resolve`.
/// Booleans take an optional `=value`, so that `-once false` leaves `false`
/// as a stray argument, as in Go.
#[derive(Debug, Parser)]
#[command(
    name = "consul-render",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
struct RawFlags {
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    help: Option<String>,
    #[arg(short = 'v', long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    version: Option<String>,

    #[arg(long)]
    config: Vec<String>,

    #[arg(long, alias = "consul")]
    consul_addr: Option<String>,
    #[arg(long)]
    consul_token: Option<String>,
    #[arg(long)]
    consul_token_file: Option<String>,
    #[arg(long)]
    consul_auth: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    consul_ssl: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    consul_ssl_verify: Option<String>,
    #[arg(long)]
    consul_ssl_ca_cert: Option<String>,
    #[arg(long)]
    consul_ssl_ca_path: Option<String>,
    #[arg(long)]
    consul_ssl_cert: Option<String>,
    #[arg(long)]
    consul_ssl_key: Option<String>,
    #[arg(long)]
    consul_ssl_server_name: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    consul_retry: Option<String>,
    #[arg(long)]
    consul_retry_attempts: Option<String>,
    #[arg(long)]
    consul_retry_backoff: Option<String>,
    #[arg(long)]
    consul_retry_max_backoff: Option<String>,
    #[arg(long)]
    max_stale: Option<String>,
    #[arg(long)]
    block_wait: Option<String>,
    #[arg(long)]
    consul_max_connections: Option<String>,

    #[arg(long)]
    template: Vec<String>,
    #[arg(long)]
    template_engine: Option<String>,
    #[arg(long)]
    check: Option<String>,
    #[arg(long)]
    command_timeout: Option<String>,

    #[arg(long)]
    wait: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    once: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dry: Option<String>,
    #[arg(long)]
    log_level: Option<String>,
    #[arg(long)]
    pid_file: Option<String>,
    #[arg(long)]
    nginx_pid_file: Option<String>,

    #[arg(long)]
    reset_grace: Option<String>,

    #[arg(long)]
    exec: Option<String>,
    #[arg(long)]
    exec_reload_signal: Option<String>,
    #[arg(long)]
    exec_kill_signal: Option<String>,
    #[arg(long)]
    exec_kill_timeout: Option<String>,
    #[arg(long)]
    exec_splay: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    exec_env_pristine: Option<String>,
    #[arg(long)]
    exec_env_custom: Vec<String>,
    #[arg(long)]
    exec_env_allowlist: Vec<String>,
    #[arg(long)]
    exec_env_denylist: Vec<String>,
    #[arg(long)]
    log_file: Option<String>,
    #[arg(long)]
    log_rotate_bytes: Option<String>,
    #[arg(long)]
    log_rotate_duration: Option<String>,
    #[arg(long)]
    log_rotate_max_files: Option<String>,
    #[arg(long)]
    default_left_delimiter: Option<String>,
    #[arg(long)]
    default_right_delimiter: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    template_error_fatal: Option<String>,
    #[arg(long)]
    metrics_addr: Option<String>,
    #[arg(long)]
    log_format: Option<String>,
    #[arg(long)]
    reload_signal: Option<String>,
    #[arg(long)]
    kill_signal: Option<String>,

    #[arg(long)]
    catalog_file: Option<String>,
    #[arg(long)]
    save_catalog: Option<String>,

    /// Whatever follows the flags; only there to be reported.
    extra: Vec<String>,
}

const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
// Small, so that the first change after Consul comes back lands within about
// a second.
const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(2);
const DEFAULT_BLOCK_WAIT: Duration = Duration::from_secs(5 * 60);
/// Well under Consul's 200 per client address, which the host's other
/// Consul clients share.
const DEFAULT_MAX_CONNECTIONS: u32 = 32;
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough for agents to re-sync their services after a server loses
/// its state (anti-entropy runs about once a minute in small clusters).
const DEFAULT_RESET_GRACE: Duration = Duration::from_secs(60);
/// nginx's reload signal. consul-template's default is none, which restarts
/// the child on every change: for nginx, dropped connections.
const DEFAULT_RELOAD_SIGNAL: ProcessSignal = ProcessSignal(libc::SIGHUP);
/// consul-template's default; nginx takes it as a fast shutdown (SIGQUIT is
/// its graceful one).
const DEFAULT_KILL_SIGNAL: ProcessSignal = ProcessSignal(libc::SIGINT);
const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// consul-template's: a new log file each day.
const DEFAULT_LOG_ROTATE_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Reads the command line and the `-config` files it names. `args` starts
/// with the program name; `env` looks up an environment variable (an empty
/// value counts as unset, as in Consul's own tools). A flag beats the files,
/// which beat its variable, which beats the default.
pub fn parse<I, S>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args = args.into_iter();
    let program = args.next().map_or_else(
        || "consul-render".to_owned(),
        |name| name.as_ref().to_string_lossy().into_owned(),
    );
    let args = args
        .map(|arg| {
            let arg = arg.as_ref();
            arg.to_str()
                .map(str::to_owned)
                .ok_or_else(|| FlagError::NotUnicode(arg.to_string_lossy().into_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A secret can surface in a message about another argument (a stray
    // argument, a value meant for another flag): keep every secret given
    // out of every error.
    let secrets = secrets_in(&args);
    parse_args(program, args, env).map_err(|error| {
        let message = error.to_string();
        let scrubbed = scrub(&message, &secrets);
        if scrubbed != message {
            CliError::Redacted {
                message: scrubbed,
                exit_code: error.exit_code(),
            }
        } else {
            error
        }
    })
}

fn parse_args(
    program: String,
    args: Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, CliError> {
    let mut command = RawFlags::command();
    let normalised = go_style(args, |name| takes_value(&command, name))?;
    let matches = command
        .try_get_matches_from_mut(std::iter::once(program).chain(normalised))
        .map_err(from_clap)?;
    let raw = RawFlags::from_arg_matches(&matches).map_err(from_clap)?;

    if flag("help", raw.help.as_deref(), parse_bool)?.unwrap_or(false) {
        return Ok(Invocation::Help(HELP.to_owned()));
    }
    if flag("version", raw.version.as_deref(), parse_bool)?.unwrap_or(false) {
        return Ok(Invocation::Version(format!(
            "consul-render v{} (compatible with consul-template's command line)",
            env!("CARGO_PKG_VERSION")
        )));
    }
    if !raw.extra.is_empty() {
        return Err(FlagError::Unexpected(raw.extra).into());
    }
    let config = resolve(raw, env)?;
    config.validate()?;
    Ok(Invocation::Run(config))
}

/// Flags whose values are secrets.
const SECRET_FLAGS: [&str; 2] = ["consul-token", "consul-auth"];

/// The values given to secret flags in `args`, in every form Go accepts:
/// one or two dashes, `=value` or the next argument.
fn secrets_in(args: &[String]) -> Vec<String> {
    let mut secrets = Vec::new();
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        let name = arg.trim_start_matches('-');
        if name.len() == arg.len() {
            continue;
        }
        let (name, value) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (name, None),
        };
        if !SECRET_FLAGS.contains(&name) {
            continue;
        }
        let value = value.or_else(|| iter.peek().map(|next| next.to_string()));
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            // The parts of user:password too, which messages may split.
            secrets.extend(value.split(':').filter(|p| p.len() >= 4).map(str::to_owned));
            secrets.push(value);
        }
    }
    // Longest first, so a whole value is replaced before its parts.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// `text` with every secret replaced by `<redacted>`, also where a message
/// quoted it escaped (`{:?}` turns `"`, `\` and control characters into
/// escapes).
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| {
        let escaped: String = secret.escape_debug().collect();
        text.replace(escaped.as_str(), "<redacted>")
            .replace(secret.as_str(), "<redacted>")
    })
}

/// Rewrites Go-style arguments into the shape clap reads: `-name` becomes
/// `--name`, and a value given as the next argument is joined as
/// `--name=value`, so values that start with `-` stay values, as in Go.
/// One-letter names (`-h`, `-v`) stay short. At `--` or at the first
/// argument that is not a flag, Go stops reading flags; everything from
/// there on is passed after a `--`, where clap takes it as stray arguments.
fn go_style(
    args: Vec<String>,
    takes_value: impl Fn(&str) -> bool,
) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let flag = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|flag| !flag.is_empty());
        let Some(flag) = flag else {
            out.push("--".to_owned());
            if arg != "--" {
                out.push(arg);
            }
            out.extend(args);
            break;
        };
        if flag.starts_with(['-', '=']) {
            return Err(FlagError::BadSyntax(arg));
        }
        let (name, inline_value) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        let dashes = if name.chars().count() == 1 { "-" } else { "--" };
        match args.next_if(|_| !inline_value && takes_value(name)) {
            Some(value) => out.push(format!("{dashes}{flag}={value}")),
            None => out.push(format!("{dashes}{flag}")),
        }
    }
    Ok(out)
}

/// Whether the flag `name` (or an alias) needs a value, so that a following
/// argument belongs to it.
fn takes_value(command: &clap::Command, name: &str) -> bool {
    command
        .get_arguments()
        .find(|arg| {
            arg.get_long() == Some(name)
                || arg
                    .get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        })
        .is_some_and(|arg| {
            arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
        })
}

/// Puts clap's refusals in Go's words where Go has words for them.
fn from_clap(error: clap::Error) -> FlagError {
    let flag = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(flag_name(arg)),
        _ => None,
    };
    let no_value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.is_empty(),
        _ => true,
    };
    match (error.kind(), flag) {
        (ErrorKind::UnknownArgument, Some(flag)) => FlagError::Unknown { flag },
        (ErrorKind::InvalidValue, Some(flag)) if no_value => FlagError::MissingValue { flag },
        _ => {
            let rendered = error.render().to_string();
            let first_line = rendered.lines().next().unwrap_or_default();
            FlagError::Other(
                first_line
                    .strip_prefix("error: ")
                    .unwrap_or(first_line)
                    .to_owned(),
            )
        }
    }
}

/// `--consul-addr <CONSUL_ADDR>` or `--bogus=1` → `consul-addr`, `bogus`.
fn flag_name(arg: &str) -> String {
    let name = arg.split([' ', '=', '[']).next().unwrap_or_default();
    name.trim_start_matches('-').to_owned()
}

/// Go's `strconv.ParseBool`, which Go's flag package uses for `-flag=value`.
fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ValueError::Bool),
    }
}

fn parse_count(text: &str) -> Result<u32, ValueError> {
    text.parse().map_err(|_| ValueError::Count)
}

fn parse_integer<T: FromStr>(text: &str) -> Result<T, ValueError> {
    text.parse().map_err(|_| ValueError::Integer)
}

fn parse_duration_value(text: &str) -> Result<Duration, ValueError> {
    Ok(parse_duration(text)?)
}

fn parse_string(text: &str) -> Result<String, ValueError> {
    Ok(text.to_owned())
}

fn parse_path(text: &str) -> Result<PathBuf, ValueError> {
    Ok(PathBuf::from(text))
}

/// Reads the value of flag `name`; an empty value counts as not given.
fn flag<T>(
    name: &'static str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, FlagError> {
    match value.filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => parse(value)
            .map(Some)
            .map_err(|error| FlagError::InvalidValue {
                flag: name,
                value: shown(name, value),
                error,
            }),
    }
}

/// Reads each value of the repeatable flag `name`, in order.
fn flags<T>(
    name: &'static str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Vec<T>, FlagError> {
    values
        .iter()
        .filter_map(|value| flag(name, Some(value), &parse).transpose())
        .collect()
}

/// A value as error messages may show it: secrets (a token, a password in
/// `user:pass`) never reach a terminal or a log, even when refused.
fn shown(name: &str, value: &str) -> String {
    const SECRETS: [&str; 5] = [
        "consul-token",
        "consul-auth",
        // Variables handed to the child often carry its secrets.
        "exec-env-custom",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_AUTH",
    ];
    if SECRETS.contains(&name) {
        "<redacted>".to_owned()
    } else {
        value.to_owned()
    }
}

/// The environment, with empty values treated as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|value| !value.is_empty())
    }

    /// `given` if a flag or a config file set it, else the variable `var`,
    /// read by `parse`.
    fn or<T>(
        &self,
        given: Option<T>,
        var: &'static str,
        parse: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, CliError> {
        if given.is_some() {
            return Ok(given);
        }
        match self.get(var) {
            None => Ok(None),
            Some(value) => parse(&value).map(Some).map_err(|error| CliError::Env {
                var,
                value: shown(var, &value),
                error,
            }),
        }
    }
}

/// Turns the raw flags, the config files and the environment into a
/// `Config`. Every flag is read before any file or variable, so a bad flag
/// is reported as one.
fn resolve(raw: RawFlags, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, CliError> {
    let config_paths = raw
        .config
        .iter()
        .map(|path| flag("config", Some(path.as_str()), parse_path))
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, _>>()?;
    let address = flag("consul-addr", raw.consul_addr.as_deref(), str::parse)?;
    let token = flag("consul-token", raw.consul_token.as_deref(), parse_string)?;
    let token_file = flag(
        "consul-token-file",
        raw.consul_token_file.as_deref(),
        parse_path,
    )?;
    let auth = flag("consul-auth", raw.consul_auth.as_deref(), str::parse)?;
    let ssl = flag("consul-ssl", raw.consul_ssl.as_deref(), parse_bool)?;
    let ssl_verify = flag(
        "consul-ssl-verify",
        raw.consul_ssl_verify.as_deref(),
        parse_bool,
    )?;
    let ca_cert = flag(
        "consul-ssl-ca-cert",
        raw.consul_ssl_ca_cert.as_deref(),
        parse_path,
    )?;
    let ca_path = flag(
        "consul-ssl-ca-path",
        raw.consul_ssl_ca_path.as_deref(),
        parse_path,
    )?;
    let cert = flag(
        "consul-ssl-cert",
        raw.consul_ssl_cert.as_deref(),
        parse_path,
    )?;
    let key = flag("consul-ssl-key", raw.consul_ssl_key.as_deref(), parse_path)?;
    let server_name = flag(
        "consul-ssl-server-name",
        raw.consul_ssl_server_name.as_deref(),
        parse_string,
    )?;
    let retry = flag("consul-retry", raw.consul_retry.as_deref(), parse_bool)?;
    let retry_attempts = flag(
        "consul-retry-attempts",
        raw.consul_retry_attempts.as_deref(),
        parse_count,
    )?;
    let retry_backoff = flag(
        "consul-retry-backoff",
        raw.consul_retry_backoff.as_deref(),
        parse_duration_value,
    )?;
    let retry_max_backoff = flag(
        "consul-retry-max-backoff",
        raw.consul_retry_max_backoff.as_deref(),
        parse_duration_value,
    )?;
    let max_stale = flag("max-stale", raw.max_stale.as_deref(), parse_duration_value)?;
    let max_connections = flag(
        "consul-max-connections",
        raw.consul_max_connections.as_deref(),
        parse_count,
    )?;
    let block_wait = flag(
        "block-wait",
        raw.block_wait.as_deref(),
        parse_duration_value,
    )?;
    let check = flag("check", raw.check.as_deref(), parse_string)?;
    let command_timeout = flag(
        "command-timeout",
        raw.command_timeout.as_deref(),
        parse_duration_value,
    )?;
    let wait = flag("wait", raw.wait.as_deref(), Wait::parse)?;
    let reset_grace = flag(
        "reset-grace",
        raw.reset_grace.as_deref(),
        parse_duration_value,
    )?;
    let once = flag("once", raw.once.as_deref(), parse_bool)?;
    let dry = flag("dry", raw.dry.as_deref(), parse_bool)?;
    let log_level = flag("log-level", raw.log_level.as_deref(), str::parse)?;
    let engine = flag(
        "template-engine",
        raw.template_engine.as_deref(),
        str::parse,
    )?;
    let pid_file = flag("pid-file", raw.pid_file.as_deref(), parse_path)?;
    let nginx_pid_file = flag("nginx-pid-file", raw.nginx_pid_file.as_deref(), parse_path)?;
    let catalog_file = flag("catalog-file", raw.catalog_file.as_deref(), parse_path)?;
    let save_catalog = flag("save-catalog", raw.save_catalog.as_deref(), parse_path)?;
    let exec_command = flag("exec", raw.exec.as_deref(), parse_string)?;
    let reload_signal = optional_signal("exec-reload-signal", raw.exec_reload_signal.as_deref())?;
    let kill_signal = flag(
        "exec-kill-signal",
        raw.exec_kill_signal.as_deref(),
        str::parse,
    )?;
    let own_reload_signal = optional_signal("reload-signal", raw.reload_signal.as_deref())?;
    let own_kill_signal = flag("kill-signal", raw.kill_signal.as_deref(), str::parse)?;
    let kill_timeout = flag(
        "exec-kill-timeout",
        raw.exec_kill_timeout.as_deref(),
        parse_duration_value,
    )?;
    let metrics_addr = flag(
        "metrics-addr",
        raw.metrics_addr.as_deref(),
        parse_listen_address,
    )?;
    let log_format = flag("log-format", raw.log_format.as_deref(), str::parse)?;
    let splay = flag(
        "exec-splay",
        raw.exec_splay.as_deref(),
        parse_duration_value,
    )?;
    let env_pristine = flag(
        "exec-env-pristine",
        raw.exec_env_pristine.as_deref(),
        parse_bool,
    )?;
    let env_custom = flags("exec-env-custom", &raw.exec_env_custom, parse_env_entry)?;
    let pattern = |text: &str| Ok(text.parse::<EnvPattern>()?);
    let env_allowlist = flags("exec-env-allowlist", &raw.exec_env_allowlist, pattern)?;
    let env_denylist = flags("exec-env-denylist", &raw.exec_env_denylist, pattern)?;
    let log_file = flag("log-file", raw.log_file.as_deref(), parse_path)?;
    let log_rotate_bytes = flag(
        "log-rotate-bytes",
        raw.log_rotate_bytes.as_deref(),
        parse_integer,
    )?;
    let log_rotate_duration = flag(
        "log-rotate-duration",
        raw.log_rotate_duration.as_deref(),
        parse_duration_value,
    )?;
    let log_rotate_max_files = flag(
        "log-rotate-max-files",
        raw.log_rotate_max_files.as_deref(),
        parse_integer,
    )?;
    let default_left = flag(
        "default-left-delimiter",
        raw.default_left_delimiter.as_deref(),
        parse_string,
    )?;
    let default_right = flag(
        "default-right-delimiter",
        raw.default_right_delimiter.as_deref(),
        parse_string,
    )?;
    let error_fatal = flag(
        "template-error-fatal",
        raw.template_error_fatal.as_deref(),
        parse_bool,
    )?;

    // Each setting below is the flag's, else the files', else the
    // variable's, else the default: in consul-template the variables are
    // defaults that config files override.
    let file = config_file::load(&config_paths)?;
    let consul = file.consul;
    let env = Env(env);
    let mut address = env
        .or(address.or(consul.address), "CONSUL_HTTP_ADDR", str::parse)?
        .unwrap_or_else(|| ConsulAddress::Http(DEFAULT_ADDRESS.to_owned()));
    // As in Consul's client: https:// turns TLS on, and TLS, once asked for,
    // is never dropped for plain http.
    let tls_enabled = matches!(address, ConsulAddress::Https(_))
        || env
            .or(
                ssl.or(consul.ssl.wants_tls()),
                "CONSUL_HTTP_SSL",
                parse_bool,
            )?
            .unwrap_or(false);
    if let (true, ConsulAddress::Http(host_port)) = (tls_enabled, &address) {
        address = ConsulAddress::Https(host_port.clone());
    }
    let auth = match auth.map(Some).or(consul.auth) {
        Some(auth) => auth,
        None => env.or(None, "CONSUL_HTTP_AUTH", str::parse)?,
    };
    let (token, token_file) = resolve_token(
        [
            (token.map(Token::new), token_file, "-consul-token-file"),
            (
                consul.token,
                consul.token_file,
                "consul.token_file in a -config file",
            ),
        ],
        &env,
    )?;
    let ssl_file = consul.ssl;
    let retry_file = consul.retry;
    let command_timeout = command_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT);
    let default_delimiters = Delimiters {
        left: default_left.or(file.default_delimiters.left),
        right: default_right.or(file.default_delimiters.right),
    };
    // The flag overrides every template; the file's top-level setting only
    // those that say nothing.
    let fatal = |template: Option<bool>| {
        error_fatal
            .or(template)
            .or(file.template_error_fatal)
            .unwrap_or(false)
    };
    // consul-template appends the -template flags to the files' templates.
    let templates = file
        .templates
        .into_iter()
        .map(|from_file| {
            // The file's block has exactly one of the two.
            let source = match from_file.contents {
                Some(text) => TemplateSource::Inline(text),
                None => TemplateSource::File(from_file.source.unwrap_or_default()),
            };
            let denylist = from_file.function_denylist.into_iter();
            let engine = from_file
                .engine
                .or(engine)
                .unwrap_or_else(|| source.engine());
            TemplateConfig {
                syntax: Syntax {
                    engine,
                    delimiters: default_delimiters.under(
                        engine,
                        from_file.left_delimiter,
                        from_file.right_delimiter,
                    ),
                },
                options: Options {
                    sandbox: from_file.sandbox_path.map(Sandbox::new),
                    denylist: Denylist::new(denylist.chain(from_file.function_blacklist).collect()),
                    error_on_missing_key: from_file.error_on_missing_key,
                },
                source,
                destination: from_file.destination,
                command: from_file.exec.command.or(from_file.command),
                check: from_file.check.or_else(|| check.clone()),
                command_timeout: from_file
                    .exec
                    .timeout
                    .or(from_file.command_timeout)
                    .unwrap_or(command_timeout),
                perms: from_file.perms,
                backup: from_file.backup,
                user: from_file
                    .user
                    .or_else(|| from_file.uid.map(|uid| uid.to_string())),
                group: from_file
                    .group
                    .or_else(|| from_file.gid.map(|gid| gid.to_string())),
                error_fatal: fatal(from_file.error_fatal),
                wait: from_file.wait,
            }
        })
        .chain(raw.template.iter().map(|spec| {
            let syntax = |source: &str| {
                let engine = engine.unwrap_or_else(|| Engine::for_path(source));
                Syntax {
                    engine,
                    delimiters: default_delimiters.under(engine, None, None),
                }
            };
            template(spec, check.as_ref(), command_timeout, syntax, fatal(None))
        }))
        .collect();

    let retry_backoff = retry_backoff
        .or(retry_file.backoff)
        .unwrap_or(DEFAULT_RETRY_BACKOFF);
    Ok(Config {
        consul: ConsulConfig {
            address,
            token,
            token_file,
            auth,
            tls: TlsConfig {
                enabled: tls_enabled,
                verify: env
                    .or(
                        ssl_verify.or(ssl_file.verify),
                        "CONSUL_HTTP_SSL_VERIFY",
                        parse_bool,
                    )?
                    .unwrap_or(true),
                ca_cert: env.or(ca_cert.or(ssl_file.ca_cert), "CONSUL_CACERT", parse_path)?,
                ca_path: env.or(ca_path.or(ssl_file.ca_path), "CONSUL_CAPATH", parse_path)?,
                ca_cert_pem: ssl_file.ca_cert_bytes,
                cert: env.or(cert.or(ssl_file.cert), "CONSUL_CLIENT_CERT", parse_path)?,
                key: env.or(key.or(ssl_file.key), "CONSUL_CLIENT_KEY", parse_path)?,
                server_name: env.or(
                    server_name.or(ssl_file.server_name),
                    "CONSUL_TLS_SERVER_NAME",
                    parse_string,
                )?,
            },
            retry: RetryConfig {
                enabled: retry.or(retry_file.enabled).unwrap_or(true),
                // 0 never gives up; consul-template gives up after 12, which
                // turns a Consul outage into a dead load balancer.
                attempts: retry_attempts
                    .or(retry_file.attempts)
                    .filter(|&attempts| attempts > 0),
                backoff: retry_backoff,
                // Unset, the cap never sits below the chosen base.
                max_backoff: retry_max_backoff
                    .or(retry_file.max_backoff)
                    .unwrap_or(DEFAULT_RETRY_MAX_BACKOFF.max(retry_backoff)),
            },
            max_stale: Some(max_stale.or(file.max_stale).unwrap_or(DEFAULT_MAX_STALE))
                .filter(|d| !d.is_zero()),
            block_wait: block_wait.or(file.block_wait).unwrap_or(DEFAULT_BLOCK_WAIT),
            max_connections: max_connections
                .or(consul.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            namespace: env.or(consul.namespace, "CONSUL_NAMESPACE", parse_string)?,
        },
        templates,
        wait: wait.or(file.wait).flatten(),
        reset_grace: reset_grace
            .or(file.reset_grace)
            .unwrap_or(DEFAULT_RESET_GRACE),
        // Offline mode has nothing to watch, so it always renders once.
        once: once.or(file.once).unwrap_or(false) || catalog_file.is_some(),
        dry: dry.unwrap_or(false),
        log_level: log_level.or(file.log_level).unwrap_or_default(),
        pid_file: pid_file.or(file.pid_file),
        nginx_pid_file,
        catalog_file,
        save_catalog,
        // As in consul-template: `-exec` turns supervise mode on, and a
        // file's `enabled = false` turns off the file's command.
        exec: exec_command
            .or(file
                .exec
                .command
                .filter(|_| file.exec.enabled.unwrap_or(true)))
            .map(|command| ExecConfig {
                command,
                reload_signal: reload_signal
                    .or(file.exec.reload_signal)
                    .unwrap_or(Some(DEFAULT_RELOAD_SIGNAL)),
                kill_signal: kill_signal
                    .or(file.exec.kill_signal)
                    .unwrap_or(DEFAULT_KILL_SIGNAL),
                kill_timeout: kill_timeout
                    .or(file.exec.kill_timeout)
                    .unwrap_or(DEFAULT_KILL_TIMEOUT),
                splay: splay.or(file.exec.splay).unwrap_or(Duration::ZERO),
                env: child_env(
                    file.exec.env,
                    env_pristine,
                    env_custom,
                    env_allowlist,
                    env_denylist,
                ),
            }),
        log_file: log_file.or(file.log_file.path).map(|path| LogFileConfig {
            path,
            // 0 or less: never by size, as in consul-template.
            rotate_bytes: log_rotate_bytes
                .or(file.log_file.log_rotate_bytes)
                .map_or(0, |bytes: i64| bytes.try_into().unwrap_or(0)),
            rotate_duration: log_rotate_duration
                .or(file.log_file.log_rotate_duration)
                .filter(|duration| !duration.is_zero())
                .unwrap_or(DEFAULT_LOG_ROTATE_DURATION),
            max_files: log_rotate_max_files
                .or(file.log_file.log_rotate_max_files)
                .unwrap_or(0),
        }),
        metrics_addr: metrics_addr.or(file.metrics_addr),
        log_format: log_format.or(file.log_format).unwrap_or_default(),
        reload_signal: own_reload_signal
            .or(file.reload_signal)
            .unwrap_or(Some(ProcessSignal(libc::SIGHUP))),
        kill_signal: own_kill_signal
            .or(file.kill_signal)
            .unwrap_or(ProcessSignal(libc::SIGINT)),
    })
}

/// A signal flag where an empty value is a choice, not an unset flag: no
/// signal at all.
fn optional_signal(
    name: &'static str,
    value: Option<&str>,
) -> Result<Option<Option<ProcessSignal>>, FlagError> {
    match value {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Ok(Some(None)),
        Some(value) => Ok(Some(flag(name, Some(value), str::parse)?)),
    }
}

/// Picks the token by precedence: from each of `given` in turn (the flags',
/// then the files'), a token, else a token file named by `origin`; then
/// `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`. Only the winning file is
/// read, and is returned with the token. An empty token means none; the
/// given tokens are never empty.
fn resolve_token(
    given: [(Option<Token>, Option<PathBuf>, &'static str); 2],
    env: &Env<'_>,
) -> Result<(Option<Token>, Option<PathBuf>), CliError> {
    for (token, token_file, origin) in given {
        if token.is_some() {
            return Ok((token, None));
        }
        if let Some(path) = token_file {
            return read_token_file(origin, path);
        }
    }
    match (
        env.get("CONSUL_HTTP_TOKEN"),
        env.get("CONSUL_HTTP_TOKEN_FILE"),
    ) {
        (Some(secret), _) => Ok((Some(secret).filter(|s| !s.is_empty()).map(Token::new), None)),
        (None, Some(path)) => read_token_file("CONSUL_HTTP_TOKEN_FILE", path.into()),
        (None, None) => Ok((None, None)),
    }
}

fn read_token_file(
    origin: &'static str,
    path: PathBuf,
) -> Result<(Option<Token>, Option<PathBuf>), CliError> {
    match token_file::read(&path) {
        Ok(token) => Ok((token, Some(path))),
        Err(error) => Err(CliError::TokenFile {
            origin,
            path,
            error,
        }),
    }
}

/// The child's environment: the files' lists, then the flags' (each adds
/// to what came before, as in consul-template), the deprecated names
/// counting as the new ones.
fn child_env(
    file: config_file::EnvFile,
    pristine: Option<bool>,
    custom: Vec<(String, String)>,
    allowlist: Vec<EnvPattern>,
    denylist: Vec<EnvPattern>,
) -> ChildEnv {
    let config_file::EnvFile {
        pristine: file_pristine,
        custom: file_custom,
        allowlist: file_allowlist,
        whitelist,
        denylist: file_denylist,
        blacklist,
    } = file;
    ChildEnv {
        pristine: pristine.or(file_pristine).unwrap_or(false),
        custom: file_custom.into_iter().chain(custom).collect(),
        allowlist: file_allowlist
            .into_iter()
            .chain(whitelist)
            .chain(allowlist)
            .collect(),
        denylist: file_denylist
            .into_iter()
            .chain(blacklist)
            .chain(denylist)
            .collect(),
    }
}

/// `default_delimiters`: what a template that gives no delimiter of its
/// own is parsed with, each side on its own, as in consul-template.
struct Delimiters {
    left: Option<String>,
    right: Option<String>,
}

impl Delimiters {
    /// A template's delimiters: each it gives wins over the default, and
    /// `{{`/`}}` stand in for what neither gives. The defaults are the Go
    /// dialect's: a Tera template gets only what its own block gives (and
    /// is refused for it).
    fn under(
        &self,
        engine: Engine,
        left: Option<String>,
        right: Option<String>,
    ) -> Option<(String, String)> {
        let go = engine == Engine::Go;
        let left = left.or_else(|| self.left.clone().filter(|_| go));
        let right = right.or_else(|| self.right.clone().filter(|_| go));
        if left.is_none() && right.is_none() {
            return None;
        }
        Some((
            left.unwrap_or_else(|| "{{".to_owned()),
            right.unwrap_or_else(|| "}}".to_owned()),
        ))
    }
}

/// Reads `source:destination[:command]`. Only the first two colons split:
/// the command is everything after the second, colons and all. Empty paths
/// are left for `Config::validate` to report. `syntax` gives the source's
/// engine and delimiters.
fn template(
    spec: &str,
    check: Option<&String>,
    command_timeout: Duration,
    syntax: impl Fn(&str) -> Syntax,
    error_fatal: bool,
) -> TemplateConfig {
    let (source, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let (destination, command) = match rest.split_once(':') {
        Some((destination, command)) => (destination, Some(command)),
        None => (rest, None),
    };
    TemplateConfig {
        source: TemplateSource::File(PathBuf::from(source)),
        destination: PathBuf::from(destination),
        command: command
            .filter(|command| !command.trim().is_empty())
            .map(str::to_owned),
        check: check.cloned(),
        command_timeout,
        perms: None,
        backup: false,
        user: None,
        group: None,
        error_fatal,
        wait: None,
        syntax: syntax(source),
        options: Options::default(),
    }
}

const HELP: &str = r#"consul-render: keeps files such as nginx config in step with Consul.

Usage: consul-render [flags]

  Watches the Consul services and keys that its templates use, renders each
  template when they change, writes the file atomically and runs the
  template's command (for example an nginx reload). Runs until interrupted,
  or renders once with -once. It takes consul-template's flags, config
  files, environment variables and exit codes, so it can replace
  consul-template in place.

  Flags take one or two dashes: -flag=value or -flag value. Boolean flags
  are -flag or -flag=false (not -flag false). An empty value means unset.
  Durations read like 500ms, 5s, 1m30s or 1h; a bare number is seconds.

Configuration files:
  -config=<path>
      Read settings from a consul-template config file (HCL or JSON), or
      from every *.hcl and *.json file in a directory, in name order.
      Repeat the flag for more. Files merge left to right: a later file's
      setting wins and template blocks add up. Flags beat every file, and
      -template flags come after the files' templates. A file's consul
      settings beat the CONSUL_* variables. Keys consul-render does not
      support (vault, deduplicate, ...) are errors, not ignored.

Consul connection:
  -consul-addr=<address>, -consul=<address>
      Consul agent: host:port, http://host:port, https://host:port or
      unix:///path/to.sock; https:// turns TLS on. Without a port: 8500
      (8501 for https). Default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
  -consul-token=<token>
      ACL token. Default: $CONSUL_HTTP_TOKEN.
  -consul-token-file=<path>
      File holding the ACL token, read again when it changes. Default:
      $CONSUL_HTTP_TOKEN_FILE. Order: -consul-token, -consul-token-file,
      $CONSUL_HTTP_TOKEN, $CONSUL_HTTP_TOKEN_FILE.
  -consul-auth=<user[:password]>
      HTTP basic auth. Default: $CONSUL_HTTP_AUTH.
  -consul-ssl
      Talk to Consul over TLS. Default: $CONSUL_HTTP_SSL, else false.
  -consul-ssl-verify
      Verify Consul's certificate. Default: $CONSUL_HTTP_SSL_VERIFY, else
      true.
  -consul-ssl-ca-cert=<path>
      CA certificate file. Default: $CONSUL_CACERT.
  -consul-ssl-ca-path=<path>
      Directory of CA certificates. Default: $CONSUL_CAPATH.
  -consul-ssl-cert=<path>
      Client certificate (the file may hold the key too). Default:
      $CONSUL_CLIENT_CERT.
  -consul-ssl-key=<path>
      Client key; needs a client certificate. Default: $CONSUL_CLIENT_KEY.
  -consul-ssl-server-name=<name>
      Server name to expect in Consul's certificate. Default:
      $CONSUL_TLS_SERVER_NAME.
  -consul-retry
      Retry failed Consul requests. Default: true.
  -consul-retry-attempts=<n>
      Give up after n failures in a row; 0 never gives up. Default: 0
      (consul-template gives up after 12).
  -consul-retry-backoff=<duration>
      Delay before the first retry, doubled after each failure.
      Default: 250ms.
  -consul-retry-max-backoff=<duration>
      Longest delay between retries. Default: 1s.
  -max-stale=<duration>
      Let any Consul server answer with data up to this old, sparing the
      leader; 0 sends every query to the leader. Default: 2s.
  -consul-max-connections=<n>
      Most connections held to Consul at once over plain HTTP, where each
      carries one query. Consul refuses an address past 200, shared by
      every client on the host; past this many watches, services are
      watched through two catalog-wide queries instead. HTTPS (HTTP/2)
      carries many queries per connection. Default: 32.
  -block-wait=<duration>
      How long each watch asks Consul to hold a query open while nothing
      changes; Consul allows up to 10m. Default: 5m.

Templates:
  -template=<source:destination[:command]>
      Render source to destination and run command when the file changes.
      Repeat the flag for more templates. Everything after the second
      colon is the command, colons included.
  -template-engine=<go|tera>
      The dialect of every template whose config block names none. By
      default the source's name decides: *.tera is Tera, anything else
      (default.ctmpl, haproxy.cfg.tmpl, ...) is consul-template's Go
      template dialect and runs unchanged.
  -check=<command>
      Run before every command, for example "nginx -t". If it fails, the
      last good file stays in place and the command does not run. A
      template block's own check replaces it for that template.
  -command-timeout=<duration>
      Time each check and command may take before it is killed; a template
      block's command_timeout replaces it. Default: 30s.
  -default-left-delimiter=<text>, -default-right-delimiter=<text>
      The Go dialect's delimiters in templates that set none of their own.
      Default: {{ and }}.
  -template-error-fatal
      Exit when a template fails to render or write, for every template
      (a block's error_fatal otherwise decides). Default: false, unlike
      consul-template: the last good file stays and consul-render goes on.

Behaviour:
  -wait=<min[:max]>
      After a change, wait until nothing has changed for min, but no
      longer than max (default 4 x min), before rendering; 0 turns this
      off. A template block's own wait replaces it. Default: off.
  -reset-grace=<duration>
      When Consul comes back from an outage or a reset (its index went
      backwards) with fewer instances or keys than before, keep using the
      last good data this long while they re-register. Default: 60s.
  -once
      Render every template once, run the commands, and exit.
  -dry
      Print each rendered template to stdout instead of writing it, and
      run no commands.
  -log-level=<level>
      trace, debug, info, warn or err. Default: info.
  -log-format=<format>
      text (one line per event) or json (one object per line).
      Default: text.
  -log-file=<path>
      Also write the log to <stem>-<unix ns><ext> files beside path (in
      it, as consul-render-<ns>.log, when path ends in /). Default: none.
  -log-rotate-bytes=<n>
      Start a new log file once this many bytes were written. Default: 0,
      never by size.
  -log-rotate-duration=<duration>
      Start a new log file once the current one is this old. Default: 24h.
  -log-rotate-max-files=<n>
      Old log files to keep: 0 keeps all, -1 none. Default: 0.
  -metrics-addr=<host:port>
      Serve Prometheus metrics at /metrics and a health report at /health
      (200 when every template is rendered and Consul answers, else 503).
      Default: not served.
  -pid-file=<path>
      Write the process id to this file.
  -reload-signal=<signal>
      Re-reads every template (a template file is also re-read when it is
      edited); "" lets no signal do it. Default: SIGHUP.
  -kill-signal=<signal>
      Stops consul-render, as SIGINT, SIGTERM and SIGQUIT always do.
      Default: SIGINT.
  -nginx-pid-file=<path>
      The pid file of the nginx master that the templates' commands reload
      (e.g. /run/nginx.pid). After a command succeeds, consul-render checks
      that the master started new workers, i.e. took the new config, and
      reports a reload it rolled back. Default: not checked (supervise mode
      checks its child without this).
  -h, -help
      Print this help and exit.
  -v, -version
      Print the version and exit.

Supervise mode:
  -exec=<command>
      Run command (by the shell, which exec()s it) as the one child, once
      every template has rendered, as the container's main process. After
      a change that passed its check, signal it instead of running the
      template's command; stop it when consul-render stops, and exit with
      its exit code when it exits. SIGUSR1, SIGUSR2, SIGWINCH and (with
      another -reload-signal) SIGHUP are passed on to it. As PID 1, also
      reap orphans.
  -exec-reload-signal=<signal>
      Sent to the child after a change; "" sends nothing. Default: SIGHUP
      (consul-template restarts the child instead, dropping connections).
  -exec-kill-signal=<signal>
      Sent to stop the child. Default: SIGINT.
  -exec-kill-timeout=<duration>
      Time the child has to stop before it gets SIGKILL. Default: 30s.
  -exec-splay=<duration>
      Wait up to this long, at random, before each reload signal and
      before stopping the child for a reason of consul-render's own, so
      that many hosts do not reload at once. Default: 0.
  -exec-env-pristine
      Start the child with no variable of consul-render's, only those of
      -exec-env-custom. Default: false.
  -exec-env-custom=<NAME=value>
      Give the child this variable, whatever the lists say. Repeatable.
  -exec-env-allowlist=<pattern>
      Pass the child only the variables whose names match (*, ?, [a-z]).
      Repeatable. Default: all.
  -exec-env-denylist=<pattern>
      Never pass the child the variables whose names match, even if the
      allowlist has them. Repeatable. Consul's token variables are never
      passed, whatever the lists say.

Offline mode:
  -catalog-file=<path>
      Render from a catalog snapshot file instead of Consul; implies -once.
  -save-catalog=<path>
      After the first complete render, write the data it used to this
      file as a catalog snapshot (for -catalog-file).

Environment:
  CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE,
  CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT,
  CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY,
  CONSUL_TLS_SERVER_NAME
      Defaults for the flags above: a -config file beats its variable,
      and a flag beats both.
  CONSUL_NAMESPACE
      Consul Enterprise namespace to query.

Exit codes:
  0 success, 11 error, 12 interrupted, 13 bad flags, 14 run failed,
  15 bad configuration.

Examples:
  Keep nginx in step with Consul, reloading it on every change:
    consul-render -consul=$CONSUL_URL -template="/templates/default.conf.tera:/etc/nginx/conf.d/default.conf:service nginx reload"

  Check the config before each reload, and let changes settle first:
    consul-render -consul-addr=consul:8500 -wait=2s:10s -check="nginx -t" \
      -template="nginx.conf.tera:/etc/nginx/nginx.conf:nginx -s reload"

  In CI, render once and print the result without writing anything:
    consul-render -once -dry -template="nginx.conf.tera:nginx.conf"

  Render offline from a catalog snapshot:
    consul-render -catalog-file examples/catalog.json \
      -template="nginx.conf.tera:nginx.conf"

  Run nginx as the child, reloaded by SIGHUP after every checked change:
    consul-render -consul=consul:8500 -check="nginx -t" \
      -template="nginx.conf.tera:/etc/nginx/conf.d/default.conf" \
      -exec="nginx -g 'daemon off;'"

  Use consul-template's config files, with a flag on top:
    consul-render -config=/etc/consul-template.d -log-level=debug
"#;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{BasicAuth, LogFormat, LogLevel};

    fn invoke(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, CliError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|&(var, value)| (var.to_owned(), value.to_owned()))
            .collect();
        let argv = std::iter::once("consul-render").chain(args.iter().copied());
        parse(argv, &|var| env.get(var).cloned())
    }

    fn run_config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match invoke(args, env) {
            Ok(Invocation::Run(config)) => config,
            other => panic!("{args:?} with {env:?} gave {other:?}"),
        }
    }

    fn template(source: &str, destination: &str, command: Option<&str>) -> TemplateConfig {
        TemplateConfig {
            source: TemplateSource::File(source.into()),
            destination: destination.into(),
            command: command.map(str::to_owned),
            check: None,
            command_timeout: Duration::from_secs(30),
            perms: None,
            backup: false,
            user: None,
            group: None,
            error_fatal: false,
            wait: None,
            syntax: Syntax::for_path(source),
            options: Options::default(),
        }
    }

    /// The configuration `-template=in.tpl:out.conf` alone gives.
    fn defaults() -> Config {
        crate::config::sample()
    }

    fn http(host_port: &str) -> ConsulAddress {
        ConsulAddress::Http(host_port.to_owned())
    }

    fn https(host_port: &str) -> ConsulAddress {
        ConsulAddress::Https(host_port.to_owned())
    }

    type Args<'a> = &'a [&'a str];
    type Vars<'a> = &'a [(&'a str, &'a str)];
    type Expect = fn(&mut Config);

    #[test]
    fn reads_every_flag_form_consul_template_users_write() {
        let cases: &[(Args, Expect)] = &[
            (&[], |_| {}),
            (&["-consul=1.2.3.4:8500"], |c| {
                c.consul.address = http("1.2.3.4:8500")
            }),
            (&["-consul", "1.2.3.4:8500"], |c| {
                c.consul.address = http("1.2.3.4:8500")
            }),
            (&["--consul-addr=http://x:8500"], |c| {
                c.consul.address = http("x:8500")
            }),
            (&["-consul-addr", "consul"], |c| {
                c.consul.address = http("consul:8500")
            }),
            (&["-consul-addr=unix:///var/run/consul.sock"], |c| {
                c.consul.address = ConsulAddress::Unix("/var/run/consul.sock".into())
            }),
            (&["-consul-addr=https://consul"], |c| {
                c.consul.address = https("consul:8501");
                c.consul.tls.enabled = true;
            }),
            (&["-consul-addr=a:1", "-consul-addr=b:2"], |c| {
                c.consul.address = http("b:2")
            }),
            (&["-consul-ssl", "-consul-ssl-verify=false"], |c| {
                c.consul.address = https("127.0.0.1:8500");
                c.consul.tls.enabled = true;
                c.consul.tls.verify = false;
            }),
            (&["-consul-ssl=true", "-consul-addr=http://x:1"], |c| {
                c.consul.address = https("x:1");
                c.consul.tls.enabled = true;
            }),
            (&["-consul-ssl=0"], |_| {}),
            (
                &[
                    "-consul-ssl-ca-cert=/ca.pem",
                    "-consul-ssl-ca-path",
                    "/cas",
                    "-consul-ssl-cert=/c.pem",
                    "-consul-ssl-key=/k.pem",
                    "-consul-ssl-server-name=consul.local",
                ],
                |c| {
                    c.consul.tls.ca_cert = Some("/ca.pem".into());
                    c.consul.tls.ca_path = Some("/cas".into());
                    c.consul.tls.cert = Some("/c.pem".into());
                    c.consul.tls.key = Some("/k.pem".into());
                    c.consul.tls.server_name = Some("consul.local".to_owned());
                },
            ),
            (&["-consul-token=s3cret"], |c| {
                c.consul.token = Some(Token::new("s3cret".to_owned()))
            }),
            (&["-consul-token", "-starts-with-dash"], |c| {
                c.consul.token = Some(Token::new("-starts-with-dash".to_owned()))
            }),
            (&["-consul-auth=user:pa:ss"], |c| {
                c.consul.auth = Some(BasicAuth {
                    username: "user".to_owned(),
                    password: Some("pa:ss".to_owned()),
                })
            }),
            (&["-consul-retry=false", "-consul-retry-attempts=12"], |c| {
                c.consul.retry.enabled = false;
                c.consul.retry.attempts = Some(12);
            }),
            (&["-consul-retry-attempts", "0"], |_| {}),
            (
                &[
                    "-consul-retry-backoff=100ms",
                    "-consul-retry-max-backoff=1m",
                ],
                |c| {
                    c.consul.retry.backoff = Duration::from_millis(100);
                    c.consul.retry.max_backoff = Duration::from_secs(60);
                },
            ),
            (&["-max-stale=0"], |c| c.consul.max_stale = None),
            (&["-max-stale", "10s"], |c| {
                c.consul.max_stale = Some(Duration::from_secs(10))
            }),
            (&["-consul-retry-backoff=2s"], |c| {
                // An unset cap follows a larger base instead of contradicting it.
                c.consul.retry.backoff = Duration::from_secs(2);
                c.consul.retry.max_backoff = Duration::from_secs(2);
            }),
            (&["-block-wait=10m"], |c| {
                c.consul.block_wait = Duration::from_secs(600)
            }),
            (&["-wait=5s"], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_secs(5),
                    max: Duration::from_secs(20),
                })
            }),
            (&["-wait", "5s:10s"], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_secs(5),
                    max: Duration::from_secs(10),
                })
            }),
            (&["-wait=500ms"], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_millis(500),
                    max: Duration::from_secs(2),
                })
            }),
            (&["-wait=5"], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_secs(5),
                    max: Duration::from_secs(20),
                })
            }),
            (&["-wait=0"], |_| {}),
            (&["-once"], |c| c.once = true),
            (&["--once"], |c| c.once = true),
            (&["-once=false"], |_| {}),
            (&["-once=t", "-once=F"], |_| {}),
            (&["-dry", "-once=TRUE"], |c| {
                c.dry = true;
                c.once = true;
            }),
            (&["-log-level=debug"], |c| c.log_level = LogLevel::Debug),
            (&["-log-level", "err"], |c| c.log_level = LogLevel::Error),
            (&["-log-level=TRACE"], |c| c.log_level = LogLevel::Trace),
            (&["-log-format=json"], |c| c.log_format = LogFormat::Json),
            (&["-reload-signal=USR2", "-kill-signal=SIGUSR1"], |c| {
                c.reload_signal = Some(ProcessSignal(libc::SIGUSR2));
                c.kill_signal = ProcessSignal(libc::SIGUSR1);
            }),
            (&["-reload-signal="], |c| c.reload_signal = None),
            (&["-metrics-addr=:9102"], |c| {
                c.metrics_addr = Some("0.0.0.0:9102".parse().unwrap())
            }),
            (&["-exec", "nginx -g 'daemon off;'"], |c| {
                c.exec = Some(ExecConfig {
                    command: "nginx -g 'daemon off;'".to_owned(),
                    reload_signal: Some(ProcessSignal(libc::SIGHUP)),
                    kill_signal: ProcessSignal(libc::SIGINT),
                    kill_timeout: Duration::from_secs(30),
                    env: ChildEnv::default(),
                    splay: Duration::ZERO,
                })
            }),
            (
                &[
                    "-exec=nginx",
                    "-exec-reload-signal=",
                    "-exec-kill-signal=quit",
                    "-exec-kill-timeout=5s",
                    "-exec-splay=2s",
                ],
                |c| {
                    c.exec = Some(ExecConfig {
                        command: "nginx".to_owned(),
                        reload_signal: None,
                        kill_signal: ProcessSignal(libc::SIGQUIT),
                        kill_timeout: Duration::from_secs(5),
                        env: ChildEnv::default(),
                        splay: Duration::from_secs(2),
                    })
                },
            ),
            (&["-pid-file=/run/cr.pid"], |c| {
                c.pid_file = Some("/run/cr.pid".into())
            }),
            (&["-catalog-file", "examples/catalog.json"], |c| {
                c.catalog_file = Some("examples/catalog.json".into());
                c.once = true;
            }),
            (&["-once", "-catalog-file=cat.json"], |c| {
                c.catalog_file = Some("cat.json".into());
                c.once = true;
            }),
            (&["-save-catalog=snap.json"], |c| {
                c.save_catalog = Some("snap.json".into())
            }),
            (&["-check=nginx -t", "-command-timeout=5s"], |c| {
                c.templates[0].check = Some("nginx -t".to_owned());
                c.templates[0].command_timeout = Duration::from_secs(5);
            }),
            (&["-pid-file="], |_| {}),
        ];
        for (args, expect) in cases {
            let mut expected = defaults();
            expect(&mut expected);
            let argv: Vec<&str> = ["-template=in.tpl:out.conf"]
                .iter()
                .chain(args.iter())
                .copied()
                .collect();
            assert_eq!(run_config(&argv, &[]), expected, "{args:?}");
        }
    }

    #[test]
    fn splits_templates_at_the_first_two_colons_only() {
        let cases: &[(Args, &[TemplateConfig])] = &[
            (
                &[
                    "-template=/templates/default.ctmpl:/etc/nginx/conf.d/default.conf:service nginx reload",
                ],
                &[template(
                    "/templates/default.ctmpl",
                    "/etc/nginx/conf.d/default.conf",
                    Some("service nginx reload"),
                )],
            ),
            (
                &["-template", "in.tpl:out.conf:nginx -s reload"],
                &[template("in.tpl", "out.conf", Some("nginx -s reload"))],
            ),
            (
                &["-template=in.tpl:out.conf:sh -c 'a:b'"],
                &[template("in.tpl", "out.conf", Some("sh -c 'a:b'"))],
            ),
            (
                &["-template=in.tpl:out.conf:"],
                &[template("in.tpl", "out.conf", None)],
            ),
            (
                &[
                    "-template=a.tpl:a.conf",
                    "--template",
                    "b.tpl:b.conf:reload b",
                ],
                &[
                    template("a.tpl", "a.conf", None),
                    template("b.tpl", "b.conf", Some("reload b")),
                ],
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(run_config(args, &[]).templates, *expected, "{args:?}");
        }
    }

    #[test]
    fn gives_every_template_the_global_check_and_timeout() {
        let config = run_config(
            &[
                "-check",
                "nginx -t",
                "-command-timeout=1m",
                "-template=a:b:x",
                "-template=c:d",
            ],
            &[],
        );
        for template in &config.templates {
            assert_eq!(template.check.as_deref(), Some("nginx -t"));
            assert_eq!(template.command_timeout, Duration::from_secs(60));
        }
    }

    #[test]
    fn takes_defaults_from_the_environment_and_lets_flags_win() {
        let cases: &[(Vars, Args, Expect)] = &[
            (&[("CONSUL_HTTP_ADDR", "consul:8500")], &[], |c| {
                c.consul.address = http("consul:8500")
            }),
            (
                &[("CONSUL_HTTP_ADDR", "consul:8500")],
                &["-consul=flag:1"],
                |c| c.consul.address = http("flag:1"),
            ),
            (&[("CONSUL_HTTP_ADDR", "")], &[], |_| {}),
            (
                &[("CONSUL_HTTP_ADDR", "not a valid address")],
                &["-consul-addr=x:1"],
                |c| c.consul.address = http("x:1"),
            ),
            (&[("CONSUL_HTTP_SSL", "true")], &[], |c| {
                c.consul.address = https("127.0.0.1:8500");
                c.consul.tls.enabled = true;
            }),
            (
                &[("CONSUL_HTTP_SSL", "true")],
                &["-consul-ssl=false"],
                |_| {},
            ),
            (&[("CONSUL_HTTP_SSL_VERIFY", "0")], &[], |c| {
                c.consul.tls.verify = false
            }),
            (
                &[("CONSUL_HTTP_SSL_VERIFY", "0")],
                &["-consul-ssl-verify"],
                |_| {},
            ),
            (&[("CONSUL_HTTP_TOKEN", "env-token")], &[], |c| {
                c.consul.token = Some(Token::new("env-token".to_owned()))
            }),
            (
                &[("CONSUL_HTTP_TOKEN", "env-token")],
                &["-consul-token=flag-token"],
                |c| c.consul.token = Some(Token::new("flag-token".to_owned())),
            ),
            (
                &[
                    ("CONSUL_HTTP_TOKEN", "env-token"),
                    ("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token"),
                ],
                &[],
                |c| c.consul.token = Some(Token::new("env-token".to_owned())),
            ),
            (&[("CONSUL_HTTP_AUTH", "u")], &[], |c| {
                c.consul.auth = Some(BasicAuth {
                    username: "u".to_owned(),
                    password: None,
                })
            }),
            (
                &[
                    ("CONSUL_CACERT", "/env/ca.pem"),
                    ("CONSUL_CAPATH", "/env/cas"),
                    ("CONSUL_CLIENT_CERT", "/env/c.pem"),
                    ("CONSUL_CLIENT_KEY", "/env/k.pem"),
                    ("CONSUL_TLS_SERVER_NAME", "env.name"),
                ],
                &["-consul-ssl-cert=/flag/c.pem"],
                |c| {
                    c.consul.tls.ca_cert = Some("/env/ca.pem".into());
                    c.consul.tls.ca_path = Some("/env/cas".into());
                    c.consul.tls.cert = Some("/flag/c.pem".into());
                    c.consul.tls.key = Some("/env/k.pem".into());
                    c.consul.tls.server_name = Some("env.name".to_owned());
                },
            ),
            (&[("CONSUL_NAMESPACE", "team-a")], &[], |c| {
                c.consul.namespace = Some("team-a".to_owned())
            }),
        ];
        for (env, args, expect) in cases {
            let mut expected = defaults();
            expect(&mut expected);
            let argv: Vec<&str> = ["-template=in.tpl:out.conf"]
                .iter()
                .chain(args.iter())
                .copied()
                .collect();
            assert_eq!(run_config(&argv, env), expected, "{env:?} {args:?}");
        }
    }

    /// Writes `text` as a config file and returns its `-config` flag.
    fn config_flag(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config file");
        format!("-config={}", path.display())
    }

    #[test]
    fn lets_flags_beat_config_files_and_config_files_beat_the_environment() {
        let cases: &[(&str, Args, Vars, Expect)] = &[
            ("", &[], &[], |_| {}),
            ("consul {\n  address = \"file:8500\"\n}\n", &[], &[], |c| {
                c.consul.address = http("file:8500")
            }),
            (
                "consul {\n  address = \"file:8500\"\n}\n",
                &[],
                &[("CONSUL_HTTP_ADDR", "env:8500")],
                |c| c.consul.address = http("file:8500"),
            ),
            (
                "consul {\n  address = \"file:8500\"\n}\n",
                &["-consul-addr=flag:8500"],
                &[("CONSUL_HTTP_ADDR", "env:8500")],
                |c| c.consul.address = http("flag:8500"),
            ),
            (
                "consul {\n  address = \"file:8500\"\n}\n",
                &[],
                &[("CONSUL_HTTP_ADDR", "not a valid address")],
                |c| c.consul.address = http("file:8500"),
            ),
            (
                "consul {\n  ssl {\n    verify = false\n  }\n}\n",
                &[],
                &[("CONSUL_HTTP_SSL", "false")],
                |c| {
                    c.consul.address = https("127.0.0.1:8500");
                    c.consul.tls.enabled = true;
                    c.consul.tls.verify = false;
                },
            ),
            (
                "consul {\n  ssl {\n    enabled = true\n  }\n}\n",
                &["-consul-ssl=false"],
                &[],
                |_| {},
            ),
            (
                "consul {\n  ssl {\n    enabled = false\n  }\n}\n",
                &[],
                &[("CONSUL_HTTP_SSL", "true")],
                |_| {},
            ),
            (
                "consul {\n  ssl {\n    enabled = false\n    ca_cert = \"/file/ca.pem\"\n  }\n}\n",
                &["-consul-ssl-ca-cert=/flag/ca.pem"],
                &[
                    ("CONSUL_CACERT", "/env/ca.pem"),
                    ("CONSUL_CAPATH", "/env/cas"),
                ],
                |c| {
                    c.consul.tls.ca_cert = Some("/flag/ca.pem".into());
                    c.consul.tls.ca_path = Some("/env/cas".into());
                },
            ),
            (
                "consul {\n  token = \"file-token\"\n}\n",
                &[],
                &[("CONSUL_HTTP_TOKEN", "env-token")],
                |c| c.consul.token = Some(Token::new("file-token".to_owned())),
            ),
            (
                "consul {\n  token = \"file-token\"\n}\n",
                &["-consul-token=flag-token"],
                &[],
                |c| c.consul.token = Some(Token::new("flag-token".to_owned())),
            ),
            (
                "consul {\n  token = \"file-token\"\n  token_file = \"/nonexistent/token\"\n}\n",
                &[],
                &[],
                |c| c.consul.token = Some(Token::new("file-token".to_owned())),
            ),
            (
                "consul {\n  auth {\n    username = \"file\"\n    password = \"pw\"\n  }\n}\n",
                &[],
                &[("CONSUL_HTTP_AUTH", "env")],
                |c| {
                    c.consul.auth = Some(BasicAuth {
                        username: "file".to_owned(),
                        password: Some("pw".to_owned()),
                    })
                },
            ),
            (
                "consul {\n  auth {\n    enabled = false\n  }\n}\n",
                &[],
                &[("CONSUL_HTTP_AUTH", "env")],
                |_| {},
            ),
            (
                "consul {\n  auth {\n    username = \"file\"\n  }\n}\n",
                &["-consul-auth=flag"],
                &[],
                |c| {
                    c.consul.auth = Some(BasicAuth {
                        username: "flag".to_owned(),
                        password: None,
                    })
                },
            ),
            (
                "consul {\n  namespace = \"file-ns\"\n}\n",
                &[],
                &[("CONSUL_NAMESPACE", "env-ns")],
                |c| c.consul.namespace = Some("file-ns".to_owned()),
            ),
            (
                "consul {\n  retry {\n    enabled = false\n    attempts = 12\n    backoff = \"100ms\"\n    max_backoff = \"1m\"\n  }\n}\n",
                &[],
                &[],
                |c| {
                    c.consul.retry.enabled = false;
                    c.consul.retry.attempts = Some(12);
                    c.consul.retry.backoff = Duration::from_millis(100);
                    c.consul.retry.max_backoff = Duration::from_secs(60);
                },
            ),
            (
                "consul {\n  retry {\n    attempts = 12\n    max_backoff = \"1m\"\n  }\n}\n",
                &["-consul-retry-attempts=0", "-consul-retry-max-backoff=2s"],
                &[],
                |c| c.consul.retry.max_backoff = Duration::from_secs(2),
            ),
            (
                "max_stale = \"0\"\nblock_wait = \"1m\"\nreset_grace = \"2m\"\n",
                &[],
                &[],
                |c| {
                    c.consul.max_stale = None;
                    c.consul.block_wait = Duration::from_secs(60);
                    c.reset_grace = Duration::from_secs(120);
                },
            ),
            (
                "max_stale = \"0\"\nblock_wait = \"1m\"\nreset_grace = \"2m\"\n",
                &["-max-stale=3s", "-block-wait=2m", "-reset-grace=10s"],
                &[],
                |c| {
                    c.consul.max_stale = Some(Duration::from_secs(3));
                    c.consul.block_wait = Duration::from_secs(120);
                    c.reset_grace = Duration::from_secs(10);
                },
            ),
            (
                "log_level = \"warn\"\npid_file = \"/run/file.pid\"\nonce = true\n",
                &[],
                &[],
                |c| {
                    c.log_level = LogLevel::Warn;
                    c.pid_file = Some("/run/file.pid".into());
                    c.once = true;
                },
            ),
            (
                "log_level = \"warn\"\npid_file = \"/run/file.pid\"\nonce = true\n",
                &["-log-level=err", "-pid-file=/run/flag.pid", "-once=false"],
                &[],
                |c| {
                    c.log_level = LogLevel::Error;
                    c.pid_file = Some("/run/flag.pid".into());
                },
            ),
            ("wait = \"2s:10s\"\n", &[], &[], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_secs(2),
                    max: Duration::from_secs(10),
                })
            }),
            ("wait = \"2s:10s\"\n", &["-wait=0"], &[], |_| {}),
            ("wait = \"2s:10s\"\n", &["-wait=1s"], &[], |c| {
                c.wait = Some(Wait {
                    min: Duration::from_secs(1),
                    max: Duration::from_secs(4),
                })
            }),
        ];
        for (text, args, env, expect) in cases {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = config_flag(&dir, "config.hcl", text);
            let mut expected = defaults();
            expect(&mut expected);
            let argv: Vec<&str> = ["-template=in.tpl:out.conf", config.as_str()]
                .iter()
                .chain(args.iter())
                .copied()
                .collect();
            assert_eq!(run_config(&argv, env), expected, "{text}\n{args:?} {env:?}");
        }
    }

    #[test]
    fn reads_the_token_file_a_config_file_names_unless_a_flag_gives_a_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file-token-file\n").expect("write token");
        let config = config_flag(
            &dir,
            "config.hcl",
            &format!(
                "consul {{\n  token_file = \"{}\"\n}}\n",
                token_file.display()
            ),
        );
        let cases: &[(Args, Vars, &str)] = &[
            (&[], &[("CONSUL_HTTP_TOKEN", "env")], "from-file-token-file"),
            (&["-consul-token=flag"], &[], "flag"),
        ];
        for (args, env, expected) in cases {
            let argv: Vec<&str> = ["-template=a:b", config.as_str()]
                .iter()
                .chain(args.iter())
                .copied()
                .collect();
            let token = run_config(&argv, env).consul.token;
            assert_eq!(
                token.as_ref().map(Token::expose),
                Some(*expected),
                "{args:?}"
            );
        }
    }

    #[test]
    fn puts_the_config_files_templates_first_each_with_its_own_settings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = config_flag(
            &dir,
            "10-first.hcl",
            r#"
template {
  source = "own.tera"
  destination = "own.conf"
  command = ["nginx", "-s", "reload"]
  check = "nginx -t -c /etc/nginx/own.conf"
  command_timeout = "5s"
  perms = 0600
  backup = true
  wait = "1s:2s"
  sandbox_path = "/etc/nginx/snippets"
}
template {
  source = "plain.tera"
  destination = "plain.conf"
  sandbox_path = ""
}
"#,
        );
        let second = config_flag(
            &dir,
            "20-second.json",
            r#"{"template": {"source": "json.tera", "destination": "json.conf", "perms": 420}}"#,
        );
        let config = run_config(
            &[
                "-template=flag.tera:flag.conf:reload",
                &second,
                "-check=nginx -t",
                "-command-timeout=1m",
                &first,
            ],
            &[],
        );
        let with_flags = |source: &str, destination: &str, command: Option<&str>| TemplateConfig {
            check: Some("nginx -t".to_owned()),
            command_timeout: Duration::from_secs(60),
            ..template(source, destination, command)
        };
        assert_eq!(
            config.templates,
            [
                TemplateConfig {
                    perms: Some(0o644),
                    ..with_flags("json.tera", "json.conf", None)
                },
                TemplateConfig {
                    check: Some("nginx -t -c /etc/nginx/own.conf".to_owned()),
                    command_timeout: Duration::from_secs(5),
                    perms: Some(0o600),
                    backup: true,
                    wait: Some(Wait {
                        min: Duration::from_secs(1),
                        max: Duration::from_secs(2),
                    }),
                    options: Options {
                        sandbox: Some(Sandbox::new("/etc/nginx/snippets".into())),
                        ..Options::default()
                    },
                    ..template("own.tera", "own.conf", Some("nginx -s reload"))
                },
                with_flags("plain.tera", "plain.conf", None),
                with_flags("flag.tera", "flag.conf", Some("reload")),
            ]
        );
        assert_eq!(config.wait, None);
    }

    #[test]
    fn takes_inline_templates_denied_functions_and_the_missing_key_rule_from_config_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = config_flag(
            &dir,
            "inline.hcl",
            r#"
template {
  contents = "{{ key \"a\" }}"
  destination = "go.conf"
  function_denylist = ["env", "sprig_*"]
  function_blacklist = ["file"]
  error_on_missing_key = true
}
template {
  contents = "{{ key(path=\"a\") }}"
  destination = "tera.conf"
  engine = "tera"
}
"#,
        );
        let config = run_config(&[&file], &[]);
        let inline = |text: &str, destination: &str, engine: Engine| TemplateConfig {
            source: TemplateSource::Inline(text.to_owned()),
            syntax: Syntax {
                engine,
                delimiters: None,
            },
            ..template("unused", destination, None)
        };
        assert_eq!(
            config.templates,
            [
                TemplateConfig {
                    options: Options {
                        denylist: Denylist::new(
                            ["env", "sprig_*", "file"].map(str::to_owned).to_vec()
                        ),
                        error_on_missing_key: true,
                        ..Options::default()
                    },
                    ..inline("{{ key \"a\" }}", "go.conf", Engine::Go)
                },
                inline("{{ key(path=\"a\") }}", "tera.conf", Engine::Tera),
            ]
        );
        // -template-engine decides for a block that names no engine.
        let config = run_config(&[&file, "-template-engine=tera"], &[]);
        assert_eq!(config.templates[0].syntax.engine, Engine::Tera);
        assert_eq!(config.templates[0].source.name(), "(dynamic)");
    }

    #[test]
    fn takes_ownership_delimiters_fatality_and_the_exec_form_from_config_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = config_flag(
            &dir,
            "more.hcl",
            r#"
template_error_fatal = true
default_delimiters {
  left = "<%"
}
template {
  source = "a.ctmpl"
  destination = "a.conf"
  user = "www-data"
  gid = 33
  error_fatal = false
  command = "the old form loses to exec"
  command_timeout = "1s"
  exec {
    command = ["nginx", "-s", "reload"]
    timeout = "5s"
  }
}
template {
  source = "b.ctmpl"
  destination = "b.conf"
  uid = 0
  right_delimiter = "%>"
  command = "used: this block has no exec"
  command_timeout = "9s"
}
"#,
        );
        let config = run_config(
            &[&file, "-template=c.ctmpl:c.conf", "-template=d.tera:d.conf"],
            &[],
        );
        let delimiters = |left: &str, right: &str| Some((left.to_owned(), right.to_owned()));
        let with_delimiters = |mut t: TemplateConfig, left, right| {
            t.syntax.delimiters = delimiters(left, right);
            t
        };
        assert_eq!(
            config.templates,
            [
                TemplateConfig {
                    command: Some("nginx -s reload".to_owned()),
                    command_timeout: Duration::from_secs(5),
                    user: Some("www-data".to_owned()),
                    group: Some("33".to_owned()),
                    error_fatal: false,
                    ..with_delimiters(template("a.ctmpl", "a.conf", None), "<%", "}}")
                },
                TemplateConfig {
                    command: Some("used: this block has no exec".to_owned()),
                    command_timeout: Duration::from_secs(9),
                    user: Some("0".to_owned()),
                    error_fatal: true,
                    ..with_delimiters(template("b.ctmpl", "b.conf", None), "<%", "%>")
                },
                TemplateConfig {
                    error_fatal: true,
                    ..with_delimiters(template("c.ctmpl", "c.conf", None), "<%", "}}")
                },
                // The default delimiters are the Go dialect's only.
                TemplateConfig {
                    error_fatal: true,
                    ..template("d.tera", "d.conf", None)
                },
            ]
        );
        // The flags beat the files, and -template-error-fatal every template.
        let config = run_config(
            &[
                &file,
                "-template-error-fatal=false",
                "-default-left-delimiter=[[",
                "-default-right-delimiter=]]",
            ],
            &[],
        );
        assert!(config.templates.iter().all(|t| !t.error_fatal));
        assert_eq!(
            config.templates[0].syntax.delimiters,
            delimiters("[[", "]]")
        );
        assert_eq!(
            config.templates[1].syntax.delimiters,
            delimiters("[[", "%>")
        );
        // Unsaid, a failed render is not fatal.
        assert!(!run_config(&["-template=c.ctmpl:c.conf"], &[]).templates[0].error_fatal);
    }

    #[test]
    fn adds_the_flags_exec_env_lists_to_the_files_and_reads_the_log_file_settings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = config_flag(
            &dir,
            "exec.hcl",
            r#"
exec {
  command = "nginx"
  env {
    custom = ["A=1", "B=x=y"]
    allowlist = ["PATH", "NGINX_*"]
    whitelist = "HOME"
    blacklist = ["NGINX_SECRET"]
  }
}
log_file {
  path = "/var/log/cr/"
  log_rotate_bytes = 1048576
  log_rotate_max_files = -1
}
"#,
        );
        let config = run_config(
            &[
                &file,
                "-template=a:b",
                "-exec-env-custom=C=",
                "-exec-env-custom=A=2",
                "-exec-env-denylist=NGINX_KEY",
                "-exec-env-pristine",
            ],
            &[],
        );
        let pattern = |p: &str| p.parse::<EnvPattern>().expect(p);
        let entry = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            config.exec.expect("exec").env,
            ChildEnv {
                pristine: true,
                custom: vec![
                    entry("A", "1"),
                    entry("B", "x=y"),
                    entry("C", ""),
                    entry("A", "2")
                ],
                allowlist: ["PATH", "NGINX_*", "HOME"].map(pattern).to_vec(),
                denylist: ["NGINX_SECRET", "NGINX_KEY"].map(pattern).to_vec(),
            }
        );
        assert_eq!(
            config.log_file,
            Some(LogFileConfig {
                path: "/var/log/cr/".into(),
                rotate_bytes: 1 << 20,
                rotate_duration: Duration::from_secs(24 * 60 * 60),
                max_files: -1,
            })
        );
        let config = run_config(
            &[
                "-template=in.tpl:out.conf",
                "-log-file=/tmp/cr.log",
                "-log-rotate-duration=1h",
                "-log-rotate-max-files=3",
            ],
            &[],
        );
        assert_eq!(
            config.log_file,
            Some(LogFileConfig {
                path: "/tmp/cr.log".into(),
                rotate_bytes: 0,
                rotate_duration: Duration::from_secs(60 * 60),
                max_files: 3,
            })
        );
        // `enabled = false` turns the file's command off, -exec on again.
        let off = config_flag(
            &dir,
            "off.hcl",
            "exec {\n  command = \"nginx\"\n  enabled = false\n}\n",
        );
        assert_eq!(run_config(&[&off, "-template=a:b"], &[]).exec, None);
        let on = run_config(
            &[&off, "-template=a:b", "-exec=nginx -g 'daemon off;'"],
            &[],
        );
        assert_eq!(on.exec.expect("exec").command, "nginx -g 'daemon off;'");
    }

    #[test]
    fn reports_config_file_errors_as_configuration_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.hcl");
        let unsupported = config_flag(&dir, "vault.hcl", "vault {\n  address = \"x\"\n}\n");
        let only_consul = config_flag(&dir, "consul.hcl", "consul {}\n");
        let cases: Vec<(Vec<String>, String)> = vec![
            (
                vec![format!("-config={}", missing.display())],
                format!(
                    "cannot read config file {}: No such file or directory (os error 2)",
                    missing.display()
                ),
            ),
            (
                vec![unsupported.clone()],
                format!(
                    "config file {}, line 1: vault is a consul-template setting that consul-render does not support",
                    dir.path().join("vault.hcl").display()
                ),
            ),
            (
                vec![only_consul, "-once".to_owned()],
                "no -template given and no template block in a -config file: nothing to render (for example -template \"in.tera:out.conf:nginx -s reload\")".to_owned(),
            ),
        ];
        for (args, message) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match invoke(&args, &[]) {
                Err(error) => {
                    assert_eq!(error.to_string(), message, "{args:?}");
                    assert_eq!(error.exit_code(), exit::CONFIG_ERROR, "{args:?}");
                }
                Ok(invocation) => panic!("{args:?} gave {invocation:?}"),
            }
        }
        // A bad flag is reported as one, before any file is read.
        let error = invoke(&[&unsupported, "-wait=x"], &[]).expect_err("bad flag");
        assert_eq!(error.exit_code(), exit::FLAG_ERROR);
        // An empty -config is no path at all, as an empty flag value is unset.
        assert!(matches!(
            invoke(&["-config=", "-template=a:b"], &[]),
            Ok(Invocation::Run(_))
        ));
    }

    #[test]
    fn reads_the_token_file_that_wins_and_trims_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let flag_file = dir.path().join("flag-token");
        let env_file = dir.path().join("env-token");
        let empty_file = dir.path().join("empty");
        std::fs::write(&flag_file, "  from-flag-file\n").expect("write token");
        std::fs::write(&env_file, "from-env-file\n").expect("write token");
        std::fs::write(&empty_file, "\n").expect("write token");
        let flag_file = format!("-consul-token-file={}", flag_file.display());
        let env_file = env_file.display().to_string();
        let empty_file = format!("-consul-token-file={}", empty_file.display());

        let cases: &[(Args, Vars, Option<&str>)] = &[
            (&[&flag_file], &[], Some("from-flag-file")),
            (&[&flag_file, "-consul-token=flag"], &[], Some("flag")),
            (
                &[&flag_file],
                &[("CONSUL_HTTP_TOKEN", "env")],
                Some("from-flag-file"),
            ),
            (
                &[],
                &[("CONSUL_HTTP_TOKEN_FILE", &env_file)],
                Some("from-env-file"),
            ),
            (
                &[],
                &[
                    ("CONSUL_HTTP_TOKEN", "env"),
                    ("CONSUL_HTTP_TOKEN_FILE", &env_file),
                ],
                Some("env"),
            ),
            (&[&empty_file], &[], None),
        ];
        for (args, env, expected) in cases {
            let argv: Vec<&str> = ["-template=a:b"]
                .iter()
                .chain(args.iter())
                .copied()
                .collect();
            let token = run_config(&argv, env).consul.token;
            assert_eq!(
                token.as_ref().map(Token::expose),
                *expected,
                "{args:?} {env:?}"
            );
        }
    }

    #[test]
    fn reports_each_bad_command_line_with_its_exit_code_and_names_the_culprit() {
        let cases: &[(Args, Vars, u8, &str)] = &[
            (
                &["-bogus"],
                &[],
                exit::FLAG_ERROR,
                "flag provided but not defined: -bogus (run consul-render -h to list the flags)",
            ),
            (
                &["--bogus=1", "-template=a:b"],
                &[],
                exit::FLAG_ERROR,
                "flag provided but not defined: -bogus (run consul-render -h to list the flags)",
            ),
            (
                &["-x"],
                &[],
                exit::FLAG_ERROR,
                "flag provided but not defined: -x (run consul-render -h to list the flags)",
            ),
            (
                &["-vault-addr=https://vault:8200"],
                &[],
                exit::FLAG_ERROR,
                "flag provided but not defined: -vault-addr (run consul-render -h to list the flags)",
            ),
            (
                &[
                    "-template=a:b",
                    "-exec=nginx",
                    "-exec-reload-signal=SIGBOGUS",
                ],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"SIGBOGUS\" for -exec-reload-signal: expected a signal name such as SIGHUP, SIGTERM, SIGQUIT or SIGUSR2",
            ),
            (
                &["-template=a:b", "-metrics-addr=localhost"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"localhost\" for -metrics-addr: expected host:port to listen on, for example 127.0.0.1:9102",
            ),
            (
                &["-template=a:b", "-log-format=xml"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"xml\" for -log-format: expected text or json",
            ),
            (
                &["-template=a:b", "-consul-addr"],
                &[],
                exit::FLAG_ERROR,
                "flag needs an argument: -consul-addr",
            ),
            (
                &["-template"],
                &[],
                exit::FLAG_ERROR,
                "flag needs an argument: -template",
            ),
            (
                &["-template=a:b", "-wait=abc"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"abc\" for -wait: expected a duration like 5s or 500ms, or min:max",
            ),
            (
                &["-template=a:b", "-wait=5s:x"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"5s:x\" for -wait: expected a duration like 5s or 500ms, or min:max",
            ),
            (
                &["-template=a:b", "-max-stale=5x"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"5x\" for -max-stale: unknown unit \"x\" (use ns, us, ms, s, m or h)",
            ),
            (
                &["-template=a:b", "-consul-retry-backoff=-1s"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"-1s\" for -consul-retry-backoff: durations cannot be negative",
            ),
            (
                &["-template=a:b", "-once=maybe"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"maybe\" for -once: expected true or false",
            ),
            (
                &["-template=a:b", "-once", "false"],
                &[],
                exit::FLAG_ERROR,
                "unexpected arguments [\"false\"]: consul-render takes only flags (a boolean flag takes its value as -flag=false, not -flag false)",
            ),
            (
                &["-template=a:b", "--", "-once"],
                &[],
                exit::FLAG_ERROR,
                "unexpected arguments [\"-once\"]: consul-render takes only flags (a boolean flag takes its value as -flag=false, not -flag false)",
            ),
            (
                &["-template=a:b", "-consul-retry-attempts=-1"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"-1\" for -consul-retry-attempts: expected a whole number from 0 to 4294967295",
            ),
            (
                &["-template=a:b", "-log-level=loud"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"loud\" for -log-level: expected one of trace, debug, info, warn, err",
            ),
            (
                &["-template=a:b", "-consul-auth=:pw"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"<redacted>\" for -consul-auth: expected user or user:password",
            ),
            (
                &["-template=a:b", "-consul-addr=unix://consul.sock"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"unix://consul.sock\" for -consul-addr: expected host:port, http://host:port, https://host:port or unix:///path/to.sock (the socket path must be absolute)",
            ),
            (
                &["-template=a:b", "-consul-addr=x:99999"],
                &[],
                exit::FLAG_ERROR,
                "invalid value \"x:99999\" for -consul-addr: expected host:port, http://host:port, https://host:port or unix:///path/to.sock (the port must be a number from 1 to 65535)",
            ),
            (
                &["-template=a:b", "-wait=10s:5s"],
                &[],
                exit::CONFIG_ERROR,
                "-wait max 5s is less than min 10s",
            ),
            (
                &["-template=a:b", "-consul-ssl-key=/k.pem"],
                &[],
                exit::CONFIG_ERROR,
                "a TLS client key (-consul-ssl-key or CONSUL_CLIENT_KEY) needs a client certificate (-consul-ssl-cert or CONSUL_CLIENT_CERT)",
            ),
            (
                &["-template=a:b"],
                &[("CONSUL_CLIENT_KEY", "/k.pem")],
                exit::CONFIG_ERROR,
                "a TLS client key (-consul-ssl-key or CONSUL_CLIENT_KEY) needs a client certificate (-consul-ssl-cert or CONSUL_CLIENT_CERT)",
            ),
            (
                &["-template=a:b", "-consul-token-file=/nonexistent/token"],
                &[],
                exit::CONFIG_ERROR,
                "cannot read the Consul token file /nonexistent/token given by -consul-token-file: No such file or directory (os error 2)",
            ),
            (
                &["-template=a:b"],
                &[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/token")],
                exit::CONFIG_ERROR,
                "cannot read the Consul token file /nonexistent/token given by CONSUL_HTTP_TOKEN_FILE: No such file or directory (os error 2)",
            ),
            (
                &["-template=:out.conf"],
                &[],
                exit::CONFIG_ERROR,
                "-template \":out.conf\" has an empty source path (expected source:destination[:command])",
            ),
            (
                &["-template=in.tpl"],
                &[],
                exit::CONFIG_ERROR,
                "-template \"in.tpl:\" has an empty destination path (expected source:destination[:command])",
            ),
            (
                &["-once", "-dry"],
                &[],
                exit::CONFIG_ERROR,
                "no -template given and no template block in a -config file: nothing to render (for example -template \"in.tera:out.conf:nginx -s reload\")",
            ),
            (
                &[
                    "-template=a:b",
                    "-consul-retry-backoff=2s",
                    "-consul-retry-max-backoff=1s",
                ],
                &[],
                exit::CONFIG_ERROR,
                "-consul-retry-max-backoff 1s is less than -consul-retry-backoff 2s",
            ),
            (
                &["-template=a:b", "-block-wait=11m"],
                &[],
                exit::CONFIG_ERROR,
                "-block-wait 660s is out of range: it must be more than 0 and at most 10m",
            ),
            (
                &["-template=a:b", "-command-timeout=0"],
                &[],
                exit::CONFIG_ERROR,
                "-command-timeout must be more than 0",
            ),
            (
                &["-template=a:b"],
                &[("CONSUL_HTTP_SSL", "yes")],
                exit::CONFIG_ERROR,
                "invalid value \"yes\" in environment variable CONSUL_HTTP_SSL: expected true or false",
            ),
            (
                &["-template=a:b"],
                &[("CONSUL_HTTP_ADDR", "ftp://x")],
                exit::CONFIG_ERROR,
                "invalid value \"ftp://x\" in environment variable CONSUL_HTTP_ADDR: expected host:port, http://host:port, https://host:port or unix:///path/to.sock (unknown scheme)",
            ),
        ];
        for (args, env, code, message) in cases {
            match invoke(args, env) {
                Err(error) => {
                    assert_eq!(error.to_string(), *message, "{args:?} {env:?}");
                    assert_eq!(error.exit_code(), *code, "{args:?} {env:?}");
                }
                Ok(invocation) => panic!("{args:?} {env:?} gave {invocation:?}"),
            }
        }
    }

    #[test]
    fn answers_help_and_version_requests_in_any_spelling() {
        for args in [
            &["-h"][..],
            &["-help"],
            &["--help"],
            &["--h"],
            &["-h", "-wait=abc"],
        ] {
            assert_eq!(
                invoke(args, &[]).ok(),
                Some(Invocation::Help(HELP.to_owned())),
                "{args:?}"
            );
        }
        let version = Invocation::Version(format!(
            "consul-render v{} (compatible with consul-template's command line)",
            env!("CARGO_PKG_VERSION")
        ));
        for args in [&["-v"][..], &["-version"], &["--version"]] {
            assert_eq!(invoke(args, &[]).ok(), Some(version.clone()), "{args:?}");
        }
        assert!(matches!(
            invoke(&["-version=false", "-template=a:b"], &[]),
            Ok(Invocation::Run(_))
        ));
    }

    #[test]
    fn help_describes_every_flag_and_variable_and_the_seed_command() {
        for arg in RawFlags::command().get_arguments() {
            for name in arg
                .get_long()
                .into_iter()
                .chain(arg.get_all_aliases().unwrap_or_default())
            {
                let described = HELP
                    .match_indices(&format!(" -{name}"))
                    .any(|(at, found)| HELP[at + found.len()..].starts_with(['=', ',', '\n']));
                assert!(described, "-{name} missing from help");
            }
        }
        for var in [
            "CONSUL_HTTP_ADDR",
            "CONSUL_HTTP_TOKEN",
            "CONSUL_HTTP_TOKEN_FILE",
            "CONSUL_HTTP_AUTH",
            "CONSUL_HTTP_SSL",
            "CONSUL_HTTP_SSL_VERIFY",
            "CONSUL_CACERT",
            "CONSUL_CAPATH",
            "CONSUL_CLIENT_CERT",
            "CONSUL_CLIENT_KEY",
            "CONSUL_TLS_SERVER_NAME",
            "CONSUL_NAMESPACE",
        ] {
            assert!(HELP.contains(var), "{var} missing from help");
        }
        assert!(HELP.contains(
            r#"consul-render -consul=$CONSUL_URL -template="/templates/default.conf.tera:/etc/nginx/conf.d/default.conf:service nginx reload""#
        ));
        assert!(HELP.contains("consul-render -once -dry "));
        assert!(HELP.contains("-catalog-file examples/catalog.json"));
    }

    #[test]
    fn help_fits_an_80_column_terminal_except_for_the_seed_command() {
        for line in HELP.lines().filter(|line| !line.contains("$CONSUL_URL")) {
            assert!(line.chars().count() <= 78, "too long: {line}");
        }
    }

    #[test]
    fn never_prints_the_token_or_the_password_in_debug_output() {
        let config = run_config(
            &[
                "-template=a:b",
                "-consul-token=tok-SECRET",
                "-consul-auth=user:pw-SECRET",
            ],
            &[],
        );
        let debug = format!("{config:?} {:#?}", config);
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert!(debug.contains("user"));
    }

    #[test]
    fn rejects_arguments_that_are_not_unicode() {
        use std::os::unix::ffi::OsStrExt;
        let argv = [
            OsStr::new("consul-render"),
            OsStr::from_bytes(b"-template=\xff:b"),
        ];
        let error = parse(argv, &|_| None).expect_err("non-UTF-8 argument");
        assert_eq!(error.exit_code(), exit::FLAG_ERROR);
        assert_eq!(
            error.to_string(),
            "argument \"-template=\u{fffd}:b\" is not valid UTF-8"
        );
    }

    #[test]
    fn go_style_rewrites_arguments_into_the_shape_clap_reads() {
        let takes_value = |name: &str| ["consul-addr", "template", "consul"].contains(&name);
        let cases: &[(Args, Args)] = &[
            (&["-consul-addr=x"], &["--consul-addr=x"]),
            (&["--consul-addr=x"], &["--consul-addr=x"]),
            (&["-consul-addr", "x"], &["--consul-addr=x"]),
            (&["-consul", "-x"], &["--consul=-x"]),
            (&["-template", "a:b:c d"], &["--template=a:b:c d"]),
            (&["-consul-addr"], &["--consul-addr"]),
            (&["-once", "-dry"], &["--once", "--dry"]),
            (&["-once=false"], &["--once=false"]),
            (&["-h"], &["-h"]),
            (&["--h"], &["-h"]),
            (&["-v"], &["-v"]),
            (
                &["-once", "false", "-dry"],
                &["--once", "--", "false", "-dry"],
            ),
            (&["-once", "--", "-dry"], &["--once", "--", "-dry"]),
            (&["-"], &["--", "-"]),
        ];
        for (args, expected) in cases {
            let args = args.iter().map(|arg| arg.to_string()).collect();
            let rewritten = go_style(args, takes_value).expect("valid flags");
            assert_eq!(rewritten, *expected);
        }
        for bad in ["---x", "-=x", "--=x", "-=", "--="] {
            let error = go_style(vec![bad.to_owned()], takes_value).expect_err(bad);
            assert_eq!(error.to_string(), format!("bad flag syntax: {bad}"));
        }
    }

    #[test]
    fn reads_booleans_the_way_go_does() {
        for text in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(text), Ok(true), "{text}");
        }
        for text in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(text), Ok(false), "{text}");
        }
        for text in ["yes", "no", "tRUE", "", " true"] {
            assert_eq!(parse_bool(text), Err(ValueError::Bool), "{text}");
        }
    }
}
