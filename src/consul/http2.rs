//! HTTP/2 connections of our own to Consul's HTTPS listener: TCP (or a unix
//! socket), TLS with ALPN, and hyper's HTTP/2 client on top, each request a
//! stream.
//!
//! A general-purpose client (reqwest over hyper-util's pool) wraps every
//! request in several boxed futures and a task: about 10 KB per request in
//! flight, measured with heaptrack, 10 MB for 1,000 long-polls. Here a
//! request is hyper's stream and its task, a quarter of that. The HTTP/1.1
//! path (plain HTTP, and HTTPS endpoints that do not speak HTTP/2) stays on
//! reqwest.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

/// Sends requests on one HTTP/2 connection, and knows why it ended.
#[derive(Clone)]
pub struct Sender {
    requests: http2::SendRequest<Empty<Bytes>>,
    /// Why the connection ended, once it has. Some failures reach only the
    /// connection: a server that wants a client certificate says so in a
    /// TLS alert after the handshake, while the request merely sees the
    /// connection close.
    ended: Arc<OnceLock<String>>,
    /// Set when we have no client certificate: whether a server asked.
    no_certificate: Option<Arc<NoClientCertificate>>,
}

impl Sender {
    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// Sends `request`. A failure says why the connection ended, if it did
    /// (the driver records that in the same poll that ends it, so on this
    /// single-threaded runtime it is known by the time the request fails).
    pub async fn send(
        &mut self,
        request: hyper::Request<Empty<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, SendError> {
        self.requests
            .send_request(request)
            .await
            .map_err(|source| SendError {
                source,
                ended: self.ended.get().cloned(),
                certificate_asked: self
                    .no_certificate
                    .as_ref()
                    .is_some_and(|c| c.asked.load(Ordering::Relaxed)),
            })
    }
}

/// A request that failed on its connection, with why the connection ended
/// if it did, and whether the server had asked for a client certificate we
/// do not have.
#[derive(Debug)]
pub struct SendError {
    source: hyper::Error,
    ended: Option<String>,
    certificate_asked: bool,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(&self.source))?;
        if let Some(reason) = &self.ended {
            write!(f, ": {reason}")?;
        }
        if self.certificate_asked {
            f.write_str(
                " (consul asked for a client certificate and none is configured: -consul-ssl-cert, -consul-ssl-key)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// How long opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle time before TCP keepalive probes start.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Where the agent listens.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(String),
    /// Pinned address (`-consul-ssl-server-name` verifies another name).
    Resolved(SocketAddr),
    Unix(PathBuf),
}

/// TLS settings in rustls' terms, from the same PEM files as the
/// HTTP/1.1 client's.
pub struct TlsFiles<'a> {
    pub roots: &'a [Vec<u8>],
    /// Certificate chain and key, concatenated PEM.
    pub identity: Option<&'a [u8]>,
    pub verify: bool,
}

/// Opens HTTP/2 connections to the agent.
pub struct Connector {
    tls: TlsConnector,
    no_certificate: Option<Arc<NoClientCertificate>>,
    server_name: ServerName<'static>,
    target: Target,
}

/// Why no HTTP/2 connection could be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The server picked HTTP/1.1 (or nothing) in the TLS handshake.
    NotHttp2,
    Failed(OpenError),
}

/// Why opening a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("connecting timed out after {}s", CONNECT_TIMEOUT.as_secs())]
    TimedOut,
    /// TCP, the unix socket or TLS.
    #[error("{}", describe(.0))]
    Io(#[source] std::io::Error),
    /// The HTTP/2 handshake.
    #[error("{}", describe(.0))]
    Handshake(#[source] hyper::Error),
}

/// TLS settings rustls will not take.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Protocols(#[source] rustls::Error),
    #[error("the system's certificate store: {0}")]
    PlatformRoots(#[source] rustls::Error),
    #[error("CA certificate: {0}")]
    CaPem(#[source] pem::Error),
    #[error("CA certificate: {0}")]
    CaCertificate(#[source] rustls::Error),
    #[error("client certificate: {0}")]
    ClientCertificate(#[source] pem::Error),
    #[error("client key: {0}")]
    ClientKey(#[source] pem::Error),
    #[error("client certificate or key: {0}")]
    ClientAuth(#[source] rustls::Error),
    #[error("invalid TLS server name {host:?}: {source}")]
    ServerName {
        host: String,
        source: InvalidDnsNameError,
    },
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Connector {
    pub fn new(files: &TlsFiles<'_>, host: &str, target: Target) -> Result<Connector, TlsError> {
        let (mut config, no_certificate) = client_config(files)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|source| TlsError::ServerName {
                host: host.to_owned(),
                source,
            })?;
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
            no_certificate,
            server_name,
            target,
        })
    }

    /// Opens a connection and starts its driver task.
    pub async fn connect(&self) -> Result<Sender, ConnectError> {
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await;
        let io = opened.map_err(|_| ConnectError::Failed(OpenError::TimedOut))??;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ConnectError::Failed(OpenError::Handshake(e)))?;
        let ended = Arc::new(OnceLock::new());
        let reason = ended.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                let error = describe(&error);
                tracing::debug!("HTTP/2 connection to consul ended: {error}");
                let _ = reason.set(error);
            }
        });
        Ok(Sender {
            requests: sender,
            ended,
            no_certificate: self.no_certificate.clone(),
        })
    }

    async fn open(&self) -> Result<tokio_rustls::client::TlsStream<Box<dyn Io>>, ConnectError> {
        let failed = |e| ConnectError::Failed(OpenError::Io(e));
        let stream: Box<dyn Io> = match &self.target {
            Target::Tcp(host_port) => Box::new(tcp(tokio::net::TcpStream::connect(host_port)
                .await
                .map_err(failed)?)),
            Target::Resolved(addr) => Box::new(tcp(tokio::net::TcpStream::connect(addr)
                .await
                .map_err(failed)?)),
            Target::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(failed)?,
            ),
        };
        let tls = self
            .tls
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(failed)?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(ConnectError::NotHttp2);
        }
        Ok(tls)
    }
}

/// TCP settings as the HTTP/1.1 client's: no Nagle delay, and keepalive
/// probes so that a peer gone without a word (a NAT that forgot the flow)
/// is noticed before a long-poll's own timeout. Best effort: a failure
/// only costs latency.
fn tcp(stream: tokio::net::TcpStream) -> tokio::net::TcpStream {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    stream
}

/// The rustls configuration: the given CA certificates (or the platform's
/// when none are given), an optional client identity, or no verification
/// at all (`-consul-ssl-verify=false`). Without an identity, also what
/// notes whether a server asks for one.
fn client_config(
    files: &TlsFiles<'_>,
) -> Result<(ClientConfig, Option<Arc<NoClientCertificate>>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?;
    let builder = if !files.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else if files.roots.is_empty() {
        let verifier =
            rustls_platform_verifier::Verifier::new(provider).map_err(TlsError::PlatformRoots)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for pem in files.roots {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(TlsError::CaPem)?;
                roots.add(cert).map_err(TlsError::CaCertificate)?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match files.identity {
        None => {
            let resolver = Arc::new(NoClientCertificate::default());
            let config = builder.with_client_cert_resolver(resolver.clone());
            Ok((config, Some(resolver)))
        }
        Some(pem) => {
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(TlsError::ClientCertificate)?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(TlsError::ClientKey)?;
            let config = builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::ClientAuth)?;
            Ok((config, None))
        }
    }
}

/// No client certificate, and a note of whether a server asked for one:
/// over TLS 1.3 its refusal comes after the handshake, as a connection
/// that merely closes.
#[derive(Debug, Default)]
struct NoClientCertificate {
    asked: AtomicBool,
}

impl ResolvesClientCert for NoClientCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// `-consul-ssl-verify=false`: any certificate is accepted, though the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An error with its causes, which carry the useful part ("invalid peer
/// certificate: UnknownIssuer", "Connection refused").
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut not_tls = is_not_tls(error);
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        not_tls |= is_not_tls(cause);
        source = cause.source();
    }
    if not_tls {
        text.push_str(
            " (the server's first bytes were not TLS: is this a plain-HTTP port? consul-render never falls back to http:// on its own)",
        );
    }
    text
}

/// Whether `error` is rustls finding that the peer does not speak TLS
/// (a record of no TLS content type: the start of an HTTP answer).
fn is_not_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let rustls = error.downcast_ref::<rustls::Error>().or_else(|| {
        error
            .downcast_ref::<std::io::Error>()?
            .get_ref()?
            .downcast_ref::<rustls::Error>()
    });
    matches!(
        rustls,
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    )
}
