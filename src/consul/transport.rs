//! The one HTTP client everything says to Consul goes through. It owns the
//! connection settings (address forms, TLS, token, basic auth, namespace),
//! the blocking-query parameters and timeouts, the stale-read policy, and
//! the [outage gate](super::gate). It returns raw replies; decoding them is
//! the watcher's business, and it knows nothing about templates.
//!
//! Watchers are tasks, not connections: they all share this transport, which
//! decides how requests map onto connections.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::connections::{Connections, Via};
use super::credentials::Credentials;
use super::dependency::{Dependency, encode_component};
use super::gate::{Backoff, Gate, Ticket};
use super::http2::{self, Connector, Target, TlsFiles};
use crate::config::{ConsulAddress, ConsulConfig};
use crate::metrics::{EndpointLabels, Metrics, RequestLabels, Sampled, endpoint_of};

/// Largest response body accepted. The biggest legitimate ones (a catalog of
/// thousands of instances) are a few MB; anything past this is garbage.
const MAX_BODY: usize = 64 << 20;
const USER_AGENT: &str = concat!("consul-render/", env!("CARGO_PKG_VERSION"));
/// Timeout of a read that does not block (first reads, fresh reads after errors).
const PLAIN_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Added to a blocking query's `wait + wait/16` (the server's own jitter)
/// before the client gives up on it.
const BLOCKING_SLACK: Duration = Duration::from_secs(10);

/// A Consul index: what a blocking query waits to see exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsulIndex(u64);

impl ConsulIndex {
    /// Reads `X-Consul-Index`. Consul never sends 0, but a client must not
    /// block on 0 (it would never block), so 0 is read as 1.
    fn from_headers(headers: &HeaderMap) -> Option<ConsulIndex> {
        let value: u64 = headers.get("x-consul-index")?.to_str().ok()?.parse().ok()?;
        Some(ConsulIndex(value.max(1)))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    #[cfg(test)]
    pub(crate) fn new(value: u64) -> ConsulIndex {
        ConsulIndex(value.max(1))
    }
}

impl fmt::Display for ConsulIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What Consul answered to one request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub index: Option<ConsulIndex>,
    pub body: Vec<u8>,
    /// Consul left results out that the token may not read
    /// (`X-Consul-Results-Filtered-By-ACLs`).
    pub filtered_by_acls: bool,
}

/// Why a request produced no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The agent could not be reached (the gate has started or extended an
    /// outage); retrying is the gate's business.
    #[error("consul unreachable: {0}")]
    Unreachable(#[source] Unreachable),
    /// The agent answered this query with an error status.
    #[error("consul answered {status}: {body}")]
    Rejected { status: u16, body: String },
    /// Consul answered, but hid every result from this token: rendering
    /// it would empty what the template lists, so it is refused like a 403.
    #[error(
        "consul hid every result of GET {path} from this token (X-Consul-Results-Filtered-By-ACLs): it lacks {permission}"
    )]
    Hidden { path: String, permission: String },
    /// Retries are exhausted.
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

/// Why the agent could not be reached, or could serve no one: what starts
/// or extends an outage. Never contains the token: it travels in a header
/// only.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] http2::OpenError),
    #[error("no answer within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("invalid request for {url}: {source}")]
    Request {
        url: String,
        source: hyper::http::Error,
    },
    /// An HTTP/2 request that failed on its connection.
    #[error(transparent)]
    Send(#[from] http2::SendError),
    /// An HTTP/2 response body that broke off.
    #[error("{}", http2::describe(.0))]
    Body(#[source] hyper::Error),
    /// A request on the HTTP/1.1 client (its URL left out).
    #[error("{}", http2::describe(.0))]
    Http1(#[source] reqwest::Error),
    #[error("response body larger than {} MiB", MAX_BODY >> 20)]
    TooLarge,
    /// An answer that says the agent can serve no one right now.
    #[error("HTTP {status}: {body}")]
    AgentWide { status: u16, body: String },
}

/// Consul stayed unreachable past the configured number of retries.
#[derive(Debug, thiserror::Error)]
#[error("consul unreachable after {attempts} attempts: {last_error}")]
pub struct GaveUp {
    pub attempts: u32,
    #[source]
    pub last_error: Unreachable,
}

/// The transport could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("could not read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("invalid {what} {path}: {source}")]
    Tls {
        what: &'static str,
        path: String,
        source: reqwest::Error,
    },
    #[error(
        "could not resolve consul address {address} (needed for -consul-ssl-server-name): {source}"
    )]
    Resolve {
        address: String,
        source: std::io::Error,
    },
    #[error(
        "could not resolve consul address {address} (needed for -consul-ssl-server-name): no addresses"
    )]
    NoAddress { address: String },
    #[error("could not build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("invalid TLS settings: {0}")]
    TlsSettings(#[source] http2::TlsError),
    #[error("invalid TLS settings: {origin} holds no PEM certificate")]
    NoCertificate { origin: String },
    #[error("the {0} is not a valid HTTP header value")]
    Header(&'static str),
}

/// The shared Consul client.
pub struct Transport {
    metrics: Arc<Metrics>,
    connections: Connections,
    base: String,
    /// `X-Consul-Token` and basic auth, marked sensitive.
    credentials: Credentials,
    namespace: Option<String>,
    max_stale: Option<Duration>,
    block_wait: Duration,
    gate: Gate,
    backoff: Backoff,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Sampled for Transport {
    fn sample(&self, metrics: &Metrics) {
        let (http1, lanes) = self.connections.usage();
        metrics.http1_connections.set(http1 as i64);
        metrics.http2_lanes.set(lanes as i64);
        metrics.set_consul_unreachable(self.gate.outage_for());
    }
}

/// One read: where, whether it blocks, and whether a 404 is an answer.
struct Read<'a> {
    path_and_query: &'a str,
    index: Option<ConsulIndex>,
    /// A missing KV key is a 404 that still carries an index to block on.
    not_found_is_data: bool,
}

/// A filter no instance matches: the reply is `[]`, yet its
/// `X-Consul-Index` is the service's own index. A cheap "has it changed?".
const PROBE_FILTER: &str = "filter=Service.ID%20%3D%3D%20%22~consul-render-probe~%22";

impl Transport {
    /// The client for `config`, counting what it does in `metrics`, which
    /// also samples its connections and outage when scraped.
    pub fn new(
        config: &ConsulConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Transport>, TransportError> {
        // reqwest is built without a default crypto provider (we pick ring
        // for a small static binary); installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let tls = &config.tls;
        let mut settings = ClientSettings::default();
        let (scheme, host_port) = match &config.address {
            ConsulAddress::Http(hp) if tls.enabled => ("https", hp.clone()),
            ConsulAddress::Http(hp) => ("http", hp.clone()),
            ConsulAddress::Https(hp) => ("https", hp.clone()),
            ConsulAddress::Unix(path) => {
                settings.unix_socket = Some(path.clone());
                (
                    if tls.enabled { "https" } else { "http" },
                    "localhost".to_owned(),
                )
            }
        };
        let mut base = format!("{scheme}://{host_port}");
        let https = scheme == "https";
        if https {
            if !tls.verify {
                tracing::warn!(
                    consul = %host_port,
                    "TLS certificate verification is off (-consul-ssl-verify=false): whoever sits between here and consul can read the token and forge the catalog"
                );
            }
            settings.tls = Some(TlsMaterial::load(config)?);
            if let (Some(name), None) = (&tls.server_name, &settings.unix_socket) {
                // Verify (and send SNI) for the configured name while
                // connecting to the configured address.
                let addr = resolve(&host_port)?;
                settings.resolve = Some((name.clone(), addr));
                base = format!("https://{name}:{}", addr.port());
            }
        }
        let max_connections = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
        let http2 = match &settings.tls {
            Some(material) => {
                let target = match (&settings.unix_socket, &settings.resolve) {
                    (Some(path), _) => Target::Unix(path.clone()),
                    (None, Some((_, addr))) => Target::Resolved(*addr),
                    (None, None) => Target::Tcp(host_port.clone()),
                };
                let host = match &tls.server_name {
                    Some(name) => name.clone(),
                    None => host_of(&host_port),
                };
                let files = TlsFiles {
                    roots: &material.root_pems,
                    identity: material.identity_pem.as_deref(),
                    verify: material.verify,
                };
                Some(Connector::new(&files, &host, target).map_err(TransportError::TlsSettings)?)
            }
            None => None,
        };
        let http1 = settings.build().map_err(TransportError::Client)?;
        let connections = Connections::new(http1, http2, max_connections);
        let retry = &config.retry;
        let give_up_after = if retry.enabled {
            retry.attempts
        } else {
            Some(0)
        };
        let backoff = Backoff {
            base: retry.backoff,
            max: retry.max_backoff,
        };
        let transport = Arc::new(Transport {
            metrics: metrics.clone(),
            connections,
            base,
            credentials: Credentials::new(config)?,
            namespace: config.namespace.clone(),
            max_stale: config.max_stale,
            block_wait: config.block_wait,
            gate: Gate::new(backoff, give_up_after),
            backoff,
        });
        let sampled: Arc<dyn Sampled> = transport.clone();
        metrics.sample_with(Arc::downgrade(&sampled));
        Ok(transport)
    }

    /// The retry policy's backoff, for callers that retry on their own
    /// (queries the agent refused, replies that would not decode).
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// How many blocking queries may be held at once; `None` when they are
    /// multiplexed (HTTP/2) and practically unlimited.
    pub fn long_poll_capacity(&self) -> Option<usize> {
        self.connections.long_poll_capacity()
    }

    /// How many reads to send side by side for a batch.
    pub fn read_concurrency(&self) -> usize {
        self.connections.read_concurrency()
    }

    /// Reads `dependency`. With an index, blocks until Consul's index for it
    /// exceeds that one (or the wait passes).
    pub async fn get(
        &self,
        dependency: &Dependency,
        index: Option<ConsulIndex>,
    ) -> Result<Reply, FetchError> {
        let path_and_query = dependency.path_and_query();
        let read = Read {
            path_and_query: &path_and_query,
            index: index.filter(|_| dependency.is_blocking()),
            not_found_is_data: is_kv(dependency),
        };
        let reply = self.read(read).await?;
        if reply.filtered_by_acls
            && is_empty(&reply.body)
            && let Some(permission) = dependency.hidden_without()
        {
            return Err(FetchError::Hidden {
                path: path_and_query,
                permission,
            });
        }
        Ok(reply)
    }

    /// Reads an endpoint templates cannot ask for (the catalog-wide
    /// signals), blocking on `index` if given.
    pub async fn get_path(
        &self,
        path_and_query: &str,
        index: Option<ConsulIndex>,
    ) -> Result<Reply, FetchError> {
        self.read(Read {
            path_and_query,
            index,
            not_found_is_data: false,
        })
        .await
    }

    /// The current index of a health dependency, without its body.
    pub async fn index_of(
        &self,
        dependency: &Dependency,
    ) -> Result<Option<ConsulIndex>, FetchError> {
        let path = dependency.path_and_query();
        let sep = if path.contains('?') { '&' } else { '?' };
        let probe = format!("{path}{sep}{PROBE_FILTER}");
        let reply = self
            .read(Read {
                path_and_query: &probe,
                index: None,
                not_found_is_data: false,
            })
            .await?;
        Ok(reply.index)
    }

    /// With stale reads allowed, a reply from a server more than
    /// `-max-stale` behind the leader is re-read from the leader at once.
    async fn read(&self, read: Read<'_>) -> Result<Reply, FetchError> {
        let Some(max_stale) = self.max_stale else {
            return self.send(&read, false).await.map(|(reply, _)| reply);
        };
        let (reply, last_contact) = self.send(&read, true).await?;
        match last_contact {
            Some(lag) if lag > max_stale => {
                tracing::debug!(
                    path = read.path_and_query,
                    ?lag,
                    ?max_stale,
                    "stale reply too old; re-reading from the leader"
                );
                self.send(&read, false).await.map(|(reply, _)| reply)
            }
            _ => Ok(reply),
        }
    }

    async fn send(
        &self,
        read: &Read<'_>,
        stale: bool,
    ) -> Result<(Reply, Option<Duration>), FetchError> {
        let url = self.url(read, stale);
        let timeout = match read.index {
            Some(_) => self.block_wait + self.block_wait / 16 + BLOCKING_SLACK,
            None => PLAIN_READ_TIMEOUT,
        };
        let ticket = self.gate.admit().await;
        let exchanged = self.exchange(&url, timeout, read.index.is_some()).await;
        self.count(read, &exchanged);
        match exchanged {
            Ok((status, _, body)) if is_agent_wide(status, &body) => {
                let body = body_excerpt(&body);
                Err(self.unreachable(ticket, Unreachable::AgentWide { status, body }))
            }
            Ok((status, headers, body)) => {
                self.gate.succeeded(ticket);
                if self.credentials.note_policy(&headers) {
                    // Sent without a token to a deny-by-default agent: send
                    // it again as the anonymous token by name, so that the
                    // reply says whether results were hidden.
                    return Box::pin(self.send(read, stale)).await;
                }
                if !(status == 200 || (status == 404 && read.not_found_is_data)) {
                    return Err(FetchError::Rejected {
                        status,
                        body: body_excerpt(&body),
                    });
                }
                let last_contact = headers
                    .get("x-consul-lastcontact")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_millis);
                Ok((
                    Reply {
                        status,
                        index: ConsulIndex::from_headers(&headers),
                        body,
                        filtered_by_acls: headers
                            .get("x-consul-results-filtered-by-acls")
                            .is_some_and(|v| v.as_bytes() == b"true"),
                    },
                    last_contact,
                ))
            }
            Err(error) => Err(self.unreachable(ticket, error)),
        }
    }

    /// Reports `error` to the gate: the request fails as unreachable, or
    /// as given up once the retry policy says to stop.
    fn unreachable(&self, ticket: Ticket<'_>, error: Unreachable) -> FetchError {
        match self.gate.failed(ticket, &error) {
            Ok(()) => FetchError::Unreachable(error),
            Err(attempts) => FetchError::GaveUp(GaveUp {
                attempts,
                last_error: error,
            }),
        }
    }

    /// Counts a request by endpoint and status, and a retry when it found
    /// the agent unreachable.
    fn count(&self, read: &Read<'_>, exchanged: &Result<(u16, HeaderMap, Vec<u8>), Unreachable>) {
        let endpoint = endpoint_of(read.path_and_query);
        let (status, unreachable) = match exchanged {
            Ok((status, _, body)) => (status.to_string(), is_agent_wide(*status, body)),
            Err(_) => ("error".to_owned(), true),
        };
        if unreachable {
            self.metrics
                .consul_retries
                .get_or_create(&EndpointLabels {
                    endpoint: endpoint.clone(),
                })
                .inc();
        }
        self.metrics
            .consul_requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
    }

    /// One request and its whole body, or what failed.
    async fn exchange(
        &self,
        url: &str,
        timeout: Duration,
        blocking: bool,
    ) -> Result<(u16, HeaderMap, Vec<u8>), Unreachable> {
        let lease = self.connections.lease(blocking).await?;
        let result = match &lease.via {
            Via::Http2(sender) => {
                let exchange = self.exchange_http2(sender.clone(), url);
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(result) => result,
                    Err(_) => Err(Unreachable::TimedOut(timeout)),
                }
            }
            Via::Http1(client) => self.exchange_http1(client, url, timeout).await,
        };
        if result.is_err() {
            lease.connection_failed();
        }
        result
    }

    async fn exchange_http2(
        &self,
        mut sender: http2::Sender,
        url: &str,
    ) -> Result<(u16, HeaderMap, Vec<u8>), Unreachable> {
        let mut request = hyper::Request::get(url)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .body(http_body_util::Empty::new())
            .map_err(|source| Unreachable::Request {
                url: url.to_owned(),
                source,
            })?;
        request.headers_mut().extend(self.credentials.current());
        let response = sender.send(request).await?;
        let (parts, mut incoming) = response.into_parts();
        let mut body = Vec::new();
        while let Some(frame) = http_body_util::BodyExt::frame(&mut incoming).await {
            if let Ok(chunk) = frame.map_err(Unreachable::Body)?.into_data() {
                append(&mut body, &chunk)?;
            }
        }
        Ok((parts.status.as_u16(), parts.headers, body))
    }

    async fn exchange_http1(
        &self,
        client: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> Result<(u16, HeaderMap, Vec<u8>), Unreachable> {
        let request = client.get(url).timeout(timeout);
        let request = request.headers(self.credentials.current());
        let mut response = request.send().await.map_err(http1_failed)?;
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http1_failed)? {
            append(&mut body, &chunk)?;
        }
        Ok((status, headers, body))
    }

    fn url(&self, read: &Read<'_>, stale: bool) -> String {
        let mut url = format!("{}{}", self.base, read.path_and_query);
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut add = |param: &str| {
            url.push(sep);
            url.push_str(param);
            sep = '&';
        };
        if let Some(index) = read.index {
            add(&format!(
                "index={index}&wait={}ms",
                self.block_wait.as_millis()
            ));
        }
        if stale {
            add("stale");
        }
        if let Some(ns) = &self.namespace {
            add(&format!("ns={}", encode_component(ns)));
        }
        url
    }
}

/// Everything needed to build one more client with the same settings.
#[derive(Clone, Default)]
struct ClientSettings {
    unix_socket: Option<std::path::PathBuf>,
    tls: Option<TlsMaterial>,
    /// `-consul-ssl-server-name`: connect to this address for that name.
    resolve: Option<(String, std::net::SocketAddr)>,
}

impl ClientSettings {
    fn build(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            // Long-polls never sit idle; what does is left over from a
            // burst of reads. Let it go soon: it costs the agent a slot of
            // its per-client connection limit and us memory.
            .pool_idle_timeout(Duration::from_secs(10))
            .no_proxy();
        if let Some(path) = &self.unix_socket {
            builder = builder.unix_socket(path.clone());
        }
        if let Some((name, addr)) = &self.resolve {
            builder = builder.resolve(name, *addr);
        }
        if let Some(tls) = &self.tls {
            if !tls.roots.is_empty() {
                builder = builder.tls_certs_only(tls.roots.clone());
            }
            if let Some(identity) = &tls.identity {
                builder = builder.identity(identity.clone());
            }
            if !tls.verify {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        builder.build()
    }
}

/// TLS files, read once.
#[derive(Clone)]
struct TlsMaterial {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    /// The same files, for the HTTP/2 connections' rustls configuration.
    root_pems: Vec<Vec<u8>>,
    identity_pem: Option<Vec<u8>>,
    verify: bool,
}

impl TlsMaterial {
    fn load(config: &ConsulConfig) -> Result<TlsMaterial, TransportError> {
        let tls = &config.tls;
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| TransportError::ReadFile {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        // (PEM, where it came from, whether it must hold a certificate: a
        // file in a CA directory may be something else).
        let mut pems = Vec::new();
        if let Some(ca) = &tls.ca_cert {
            pems.push((read("CA certificate", ca)?, ca.display().to_string(), true));
        }
        if let Some(dir) = &tls.ca_path {
            let entries = std::fs::read_dir(dir).map_err(|source| TransportError::ReadFile {
                what: "CA directory",
                path: dir.display().to_string(),
                source,
            })?;
            let mut files: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in &files {
                pems.push((
                    read("CA certificate", file)?,
                    file.display().to_string(),
                    false,
                ));
            }
        }
        if let Some(pem) = &tls.ca_cert_pem {
            let origin = "consul.ssl.ca_cert_bytes in a -config file".to_owned();
            pems.push((pem.clone().into_bytes(), origin, true));
        }
        let mut roots = Vec::new();
        let mut root_pems = Vec::new();
        for (pem, origin, required) in pems {
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                TransportError::Tls {
                    what: "CA certificate",
                    path: origin.clone(),
                    source,
                }
            })?;
            if required && certs.is_empty() {
                // Trusting nothing more would only fail later, as an
                // unknown issuer.
                return Err(TransportError::NoCertificate { origin });
            }
            roots.extend(certs);
            root_pems.push(pem);
        }
        let mut identity_pem = None;
        let identity = match &tls.cert {
            None => None,
            Some(cert) => {
                // Without -consul-ssl-key, the certificate file holds the
                // key too (consul-template's rule).
                let mut pem = read("client certificate", cert)?;
                let mut path = cert.display().to_string();
                if let Some(key) = &tls.key {
                    pem.push(b'\n');
                    pem.extend(read("client key", key)?);
                    path = format!("{path} / {}", key.display());
                }
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|source| TransportError::Tls {
                        what: "client certificate or key",
                        path,
                        source,
                    })?;
                identity_pem = Some(pem);
                Some(identity)
            }
        };
        Ok(TlsMaterial {
            roots,
            identity,
            root_pems,
            identity_pem,
            verify: tls.verify,
        })
    }
}

/// Whether an error answer means "the agent can't serve anyone right now"
/// (rate limits, no cluster leader, gateway failures) rather than "this
/// query is wrong". A query for an unknown datacenter is the one 5xx that
/// is about the query: treating it as an outage would stall every other
/// watcher behind the gate.
fn is_agent_wide(status: u16, body: &[u8]) -> bool {
    match status {
        429 => true,
        500..=599 => !String::from_utf8_lossy(body).contains("No path to datacenter"),
        _ => false,
    }
}

fn is_kv(dependency: &Dependency) -> bool {
    matches!(
        dependency,
        Dependency::Key { .. } | Dependency::Keys { .. } | Dependency::Tree { .. }
    )
}

/// Whether a reply body lists nothing: an empty array, object or `null`.
fn is_empty(body: &[u8]) -> bool {
    matches!(body.trim_ascii(), b"[]" | b"{}" | b"null" | b"")
}

/// A failed HTTP/1.1 request, its URL left out of the message.
fn http1_failed(error: reqwest::Error) -> Unreachable {
    Unreachable::Http1(error.without_url())
}

/// Adds a chunk of a response body, refusing bodies past [`MAX_BODY`].
fn append(body: &mut Vec<u8>, chunk: &[u8]) -> Result<(), Unreachable> {
    if body.len() + chunk.len() > MAX_BODY {
        return Err(Unreachable::TooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// The host part of `host:port` (`[v6]:port` too): the TLS server name
/// when none is configured.
fn host_of(host_port: &str) -> String {
    let host = host_port
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host_port, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// The start of an error body, on one line.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn resolve(host_port: &str) -> Result<std::net::SocketAddr, TransportError> {
    use std::net::ToSocketAddrs;
    let mut addrs = host_port
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve {
            address: host_port.to_owned(),
            source,
        })?;
    addrs.next().ok_or_else(|| TransportError::NoAddress {
        address: host_port.to_owned(),
    })
}
