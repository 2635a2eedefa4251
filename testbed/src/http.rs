//! The HTTP client side of the test bed: one ureq agent set up for talking to
//! loopback test servers (no proxy from the environment, a fresh connection
//! per request, 4xx/5xx returned as statuses rather than errors), the
//! [`Response`] tests assert on, and [`http_get`] for requests through nginx.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Deadline for a request to a test-bed program's API.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline for [`http_get`].
const GET_TIMEOUT: Duration = Duration::from_secs(3);

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers by lowercased name (a repeated header keeps its last value).
    pub headers: BTreeMap<String, String>,
    /// Body, decoded as UTF-8.
    pub body: String,
}

impl Response {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status, self.body
            )
        })
    }
}

/// GET `url` once (no retries, 3 s deadline): `(status, body)`, or a
/// description of the transport error (refused, reset, timed out...).
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    request("GET", url, None, GET_TIMEOUT).map(|r| (r.status, r.body))
}

/// Sends one request to a test-bed program's API; panics with the method,
/// URL and error if there is no response at all.
pub(crate) fn call(method: &str, url: &str, body: Option<&str>) -> Response {
    try_call(method, url, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Like [`call`], but a transport error (e.g. connection refused while a
/// program starts) is returned rather than panicking.
pub(crate) fn try_call(method: &str, url: &str, body: Option<&str>) -> Result<Response, String> {
    request(method, url, body, API_TIMEOUT)
}

/// Like [`call`], but also panics (with the response) unless the status is 2xx.
pub(crate) fn call_ok(method: &str, url: &str, body: Option<&str>) -> Response {
    let response = call(method, url, body);
    assert!(
        (200..300).contains(&response.status),
        "{method} {url} with body {body:?} answered {}: {}",
        response.status,
        response.body
    );
    response
}

/// One request with a deadline for the whole exchange.
fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, String> {
    let agent = agent();
    let result = match (method, body) {
        ("GET", None) => agent
            .get(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call(),
        ("DELETE", None) => agent
            .delete(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call(),
        ("PUT", body) => agent
            .put(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body.unwrap_or("")),
        ("POST", body) => agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body.unwrap_or("")),
        _ => panic!("testbed http: unsupported request {method} with body {body:?}"),
    };
    let mut response = result.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the body of a {status} response: {e}"))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The shared client.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into()
    })
}
