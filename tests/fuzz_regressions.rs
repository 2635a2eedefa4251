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
