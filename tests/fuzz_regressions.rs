//! Regressions found while building the fuzz targets in `fuzz/`: each test
//! pins a promise those targets are about, on the input that broke it.

use consul_render::cli::parse;

const PASSWORD: &str = "hunter2-password";

/// The parser's environment, holding only `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn a_refused_consul_auth_flag_does_not_print_its_password() {
    let auth = format!("-consul-auth=:{PASSWORD}");
    let error = parse(["consul-render", "-template=in:out", &auth], &env(&[]))
        .expect_err("an empty user name is refused");
    let message = error.to_string();
    assert!(!message.contains(PASSWORD), "password printed: {message}");
}

#[test]
fn a_refused_consul_http_auth_variable_does_not_print_its_password() {
    let auth = format!(":{PASSWORD}");
    let error = parse(
        ["consul-render", "-template=in:out"],
        &env(&[("CONSUL_HTTP_AUTH", &auth)]),
    )
    .expect_err("an empty user name is refused");
    let message = error.to_string();
    assert!(!message.contains(PASSWORD), "password printed: {message}");
}

/// `-once false` is the mistake the error message itself explains: Go stops
/// reading flags at `false`, so everything after it is refused as stray
/// arguments, and was echoed whole, secrets included. The fuzzer's minimal
/// input was an empty argument followed by `-consul-auth=:srd-lose`.
#[test]
fn stray_arguments_are_refused_without_printing_a_secret() {
    const TOKEN: &str = "s3cr3t-t0ken-value";
    let cases: [(&[&str], &str); 4] = [
        (
            &["-once", "false", "-consul-token=s3cr3t-t0ken-value"],
            TOKEN,
        ),
        (&["-once", "false", "--consul-token", TOKEN], TOKEN),
        (
            &["-dry", "no", "-consul-auth=user:hunter2-password"],
            PASSWORD,
        ),
        (&["", "-consul-auth=:hunter2-password"], PASSWORD),
    ];
    for (args, secret) in cases {
        let argv = ["consul-render", "-template=in:out"].iter().chain(args);
        let error = parse(argv, &env(&[])).expect_err("stray arguments are refused");
        let message = error.to_string();
        assert!(
            message.starts_with("unexpected arguments"),
            "{args:?}: {message}"
        );
        assert!(
            !message.contains(secret),
            "{args:?}: secret printed: {message}"
        );
    }
}

/// A value-taking flag whose value went missing takes the next argument as
/// its value, as in Go: `-template $T -consul-token=...` with `$T` empty
/// and unquoted. The secret flag then became that flag's value and was
/// echoed in its error. The fuzzer's input was `-consul-addr` followed by
/// `-consul-token=caDtac:99077-`.
#[test]
fn a_secret_flag_taken_as_another_flags_value_is_not_printed() {
    const TOKEN: &str = "s3cr3t-t0ken-value";
    let cases: [(&[&str], &str); 4] = [
        (
            &["-consul-addr", "-consul-token=s3cr3t:t0ken-value"],
            "s3cr3t:t0ken-value",
        ),
        // Without a colon the token once passed for a host name, and the
        // address it became is logged: it is refused as one now.
        (
            &[
                "-template=a:b",
                "-consul-addr",
                "-consul-token=4a1c6f0e-7d2b-4c39",
            ],
            "4a1c6f0e-7d2b-4c39",
        ),
        (&["-template", "-consul-token=s3cr3t-t0ken-value"], TOKEN),
        (
            &[
                "-template=a:b",
                "-wait",
                "-consul-auth=user:hunter2-password",
            ],
            PASSWORD,
        ),
    ];
    for (args, secret) in cases {
        let argv = std::iter::once(&"consul-render").chain(args);
        let error = parse(argv, &env(&[])).expect_err("the value is refused");
        let message = error.to_string();
        assert!(
            !message.contains(secret),
            "{args:?}: secret printed: {message}"
        );
    }
}

/// Error messages quote arguments with `{:?}`, which escapes quotes,
/// backslashes and control characters, so a secret holding one no longer
/// matched the text being scrubbed and was printed, escaped. The fuzzer's
/// input had a control character in a `-consul-auth` value after a stray
/// argument.
#[test]
fn a_secret_with_quotes_or_backslashes_is_not_printed_escaped() {
    let cases: [(&str, &str); 3] = [
        ("-consul-auth=user:pa\"ss-word-long", "pa\"ss-word-long"),
        ("-consul-token=to\\ken-secret-value", "to\\ken-secret-value"),
        ("-consul-token=tab\tin-secret-value", "tab\tin-secret-value"),
    ];
    for (arg, secret) in cases {
        let argv = ["consul-render", "-template=in:out", "-once", "false", arg];
        let error = parse(argv, &env(&[])).expect_err("stray arguments are refused");
        let message = error.to_string();
        let escaped = secret.escape_debug().to_string();
        assert!(
            !message.contains(secret) && !message.contains(&escaped),
            "{arg:?}: secret printed: {message}"
        );
    }
}
