//! The bench's own HTTP client: one HTTP/1.0 request per TCP connection,
//! written and read by hand so the bench knows the exact moment a request
//! has left (a blocking query is in flight before a change is made) and so
//! every byte of the answer, chunking aside, is read before the clock stops.
//! HTTP/1.0 makes Consul's Go server close the connection after the body
//! instead of chunking it. A request can come from a chosen loopback source
//! address, which Consul counts as a different client. It knows nothing
//! about Consul; `consul` does.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request that has been written to the socket and whose response has not
/// been read yet.
pub struct Pending {
    stream: TcpStream,
}

impl Pending {
    /// Reads the whole response (until the server closes the connection).
    pub fn receive(mut self) -> io::Result<Response> {
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw)?;
        parse(&raw)
    }
}

/// Connects to `addr` ("127.0.0.1:PORT"), from `source` if given, and
/// writes one request; `timeout` bounds the connect, the write and every
/// later read.
pub fn send(
    addr: &str,
    source: Option<Ipv4Addr>,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<Pending> {
    let socket: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let mut stream = match (source, socket) {
        (Some(source), SocketAddr::V4(target)) => connect_from(source, target)?,
        _ => TcpStream::connect_timeout(&socket, timeout)?,
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: consul-render-bench\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    Ok(Pending { stream })
}

/// Connects to `target` from `source` (port chosen by the kernel). Blocking:
/// on loopback a connect is answered at once.
fn connect_from(source: Ipv4Addr, target: SocketAddrV4) -> io::Result<TcpStream> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns; closed on error.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>())
        .expect("sockaddr_in's size fits socklen_t");
    let local = sockaddr(SocketAddrV4::new(source, 0));
    let remote = sockaddr(target);
    // SAFETY: valid sockaddr_in structs of the length given.
    unsafe {
        if libc::bind(raw, (&raw const local).cast(), len) != 0
            || libc::connect(raw, (&raw const remote).cast(), len) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: a connected TCP socket, handed over with its ownership.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits"),
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Splits a raw HTTP/1.x response into status, headers and body.
fn parse(raw: &[u8]) -> io::Result<Response> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("response has no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let body = String::from_utf8_lossy(&raw[head_end + 4..]).into_owned();
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nX-Consul-Index: 42\r\nContent-Length: 2\r\n\r\n[]";
        let response = parse(raw).expect("parses");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-consul-index"), Some("42"));
        assert_eq!(response.body, "[]");
    }

    #[test]
    fn connects_from_a_chosen_loopback_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, peer) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).expect("read");
            conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nhi").expect("write");
            peer
        });
        let source = Ipv4Addr::new(127, 0, 0, 2);
        let response = send(
            &addr,
            Some(source),
            "GET",
            "/",
            None,
            Duration::from_secs(5),
        )
        .expect("send")
        .receive()
        .expect("receive");
        assert_eq!(response.body, "hi");
        assert_eq!(server.join().expect("server").ip(), source);
    }

    #[test]
    fn rejects_a_response_cut_off_in_its_headers() {
        assert!(parse(b"HTTP/1.0 200 OK\r\nX-Consul").is_err());
    }
}
