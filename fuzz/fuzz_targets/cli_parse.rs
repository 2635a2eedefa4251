//! Any command line and a small environment through `cli::parse`: it must
//! never panic, a configuration it accepts must not show its secrets (the
//! Consul token, the basic-auth password) in its `Debug` text, and an error
//! must not print a secret the command line or environment gave, even where
//! the parser took it for something else (a stray argument, the value of
//! the flag before it).
//!
//! Input format, chosen so that seeds read as real command lines: items are
//! separated by NUL bytes; an item that starts with byte 0x01 is an
//! environment entry `NAME=value`, every other item is an argument (raw
//! bytes, so non-UTF-8 arguments are covered too). The program name is
//! added here.

#![no_main]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use consul_render::cli::{CliError, Invocation, parse};
use consul_render::config::{Config, Token};
use libfuzzer_sys::fuzz_target;

/// Environment entries past this many are ignored: the parser reads a
/// fixed set of variables, so a bigger map only slows the fuzzer down.
const MAX_ENV: usize = 8;

/// Token files and `-config` files are read during parsing; a path into
/// these would block or exhaust memory (`/dev/stdin`, `/dev/zero`), which is
/// the operator's choice, not a parser bug.
const SPECIAL_FILES: [&[u8]; 3] = [b"dev", b"proc", b"sys"];

/// Checks that `config`'s `Debug` text does not depend on the secret that
/// `swap` replaces, and does not contain it.
fn assert_hidden(config: &Config, secret: &str, swap: impl Fn(&mut Config)) {
    if secret.len() < 8 {
        return;
    }
    let shown = format!("{config:?}");
    let mut other = config.clone();
    swap(&mut other);
    let shown_other = format!("{other:?}");
    // The same text may be elsewhere in the config (a path equal to the
    // token): only an occurrence that goes away with the secret is a leak.
    assert!(
        !shown.contains(secret) || shown_other.contains(secret),
        "secret {secret:?} in {shown}"
    );
    assert_eq!(shown, shown_other, "Debug text depends on the secret");
}

/// Where the input holds a secret: argument `index` (after the program
/// name) or variable `var`, from byte `start` of its value to the end.
#[derive(Clone, Copy)]
enum Place {
    Arg { index: usize, start: usize },
    Env { var: &'static str, start: usize },
}

/// The tokens and passwords the input gives, wherever the parser would
/// take them from: `-consul-token=T`, `-consul-token T`, `-consul-auth=u:P`,
/// `-consul-auth u:P` (one or two dashes), `CONSUL_HTTP_TOKEN` and
/// `CONSUL_HTTP_AUTH`.
fn secrets(args: &[OsString], env: &BTreeMap<String, String>) -> Vec<Place> {
    let password = |value: &str| value.find(':').map(|colon| colon + 1);
    let mut found = Vec::new();
    for (index, arg) in args.iter().enumerate().skip(1) {
        let Some(arg) = arg.to_str() else { continue };
        let name = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .unwrap_or_default();
        let next = args.get(index + 1).and_then(|a| a.to_str());
        let at = |start| Place::Arg { index, start };
        let next_at = |start| Place::Arg {
            index: index + 1,
            start,
        };
        let dashes = arg.len() - name.len();
        if name == "consul-token" && next.is_some() {
            found.push(next_at(0));
        } else if name.starts_with("consul-token=") {
            found.push(at(dashes + "consul-token=".len()));
        } else if name == "consul-auth" {
            found.extend(next.and_then(password).map(next_at));
        } else if let Some(value) = name.strip_prefix("consul-auth=") {
            let start = dashes + "consul-auth=".len();
            found.extend(password(value).map(|p| at(start + p)));
        }
    }
    if env.contains_key("CONSUL_HTTP_TOKEN") {
        found.push(Place::Env {
            var: "CONSUL_HTTP_TOKEN",
            start: 0,
        });
    }
    if let Some(start) = env.get("CONSUL_HTTP_AUTH").and_then(|v| password(v)) {
        found.push(Place::Env {
            var: "CONSUL_HTTP_AUTH",
            start,
        });
    }
    found
}

fn run(args: &[OsString], env: &BTreeMap<String, String>) -> Result<Invocation, CliError> {
    parse(args, &|name| env.get(name).cloned())
}

/// Checks that `error` does not print any secret the input gave. A secret
/// may also be elsewhere in the input (a path equal to the token): only an
/// occurrence that goes away when the secret is replaced is a leak.
fn assert_error_hides_secrets(error: &CliError, args: &[OsString], env: &BTreeMap<String, String>) {
    let message = error.to_string();
    for place in secrets(args, env) {
        let (mut args, mut env) = (args.to_vec(), env.clone());
        let value = match place {
            Place::Arg { index, .. } => args[index].to_str().unwrap_or_default().to_owned(),
            Place::Env { var, .. } => env[var].clone(),
        };
        let start = match place {
            Place::Arg { start, .. } | Place::Env { start, .. } => start,
        };
        let secret = &value[start..];
        // Messages quote arguments with `{:?}`, which escapes quotes,
        // backslashes and control characters: either form is a leak.
        let escaped = secret.escape_debug().to_string();
        let shows = |text: &str| text.contains(secret) || text.contains(&escaped);
        if secret.len() < 8 || !shows(&message) {
            continue;
        }
        let decoy = if secret.contains('z') { "y" } else { "z" }.repeat(secret.len());
        let swapped = format!("{}{decoy}", &value[..start]);
        match place {
            Place::Arg { index, .. } => args[index] = OsString::from(swapped),
            Place::Env { var, .. } => {
                env.insert(var.to_owned(), swapped);
            }
        }
        let still_there = match run(&args, &env) {
            Err(other) => shows(&other.to_string()),
            Ok(_) => true,
        };
        assert!(still_there, "secret {secret:?} printed: {message}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut args = vec![OsString::from("consul-render")];
    let mut env = BTreeMap::new();
    for item in data.split(|&b| b == 0) {
        if SPECIAL_FILES
            .iter()
            .any(|word| item.windows(word.len()).any(|w| w == *word))
        {
            return;
        }
        match item.strip_prefix(&[1]) {
            Some(entry) if env.len() < MAX_ENV => {
                let entry = String::from_utf8_lossy(entry);
                let (name, value) = entry.split_once('=').unwrap_or((&entry, ""));
                env.insert(name.to_owned(), value.to_owned());
            }
            Some(_) => {}
            None => args.push(OsString::from_vec(item.to_vec())),
        }
    }

    let config = match run(&args, &env) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help(_) | Invocation::Version(_)) => return,
        Err(error) => return assert_error_hides_secrets(&error, &args, &env),
    };
    if let Some(token) = &config.consul.token {
        assert_hidden(&config, token.expose(), |c| {
            c.consul.token = Some(Token::new("decoy-token-0000".to_owned()));
        });
    }
    if let Some(password) = config
        .consul
        .auth
        .as_ref()
        .and_then(|a| a.password.as_deref())
    {
        assert_hidden(&config, password, |c| {
            if let Some(auth) = &mut c.consul.auth {
                auth.password = Some("decoy-password-0000".to_owned());
            }
        });
    }
});
