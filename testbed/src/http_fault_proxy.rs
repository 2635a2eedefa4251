//! [`HttpFaultProxy`]: an HTTP proxy in front of a real Consul agent that
//! passes requests through, or, when told to, answers them with faults the
//! agent cannot produce on demand: an error status (500, 429, 503), a
//! garbage or truncated body under the agent's real headers, or a dropped
//! connection. It counts every request it receives, so tests can measure a
//! client's request rate while Consul "is down".
//!
//! Each request gets its own upstream connection with `Connection: close`
//! (and so does the client's): simple, and fine for tests. Toxiproxy covers
//! the TCP-level faults (latency, resets, bandwidth).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does with each request while set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a plain-text body, without asking Consul.
    Status(u16, String),
    /// Ask Consul, keep its status and headers (index included), replace
    /// the body with this text.
    Body(String),
    /// Ask Consul, then send its headers and only the first half of its
    /// body, and close.
    Truncate,
    /// Close the connection without answering.
    Drop,
    /// Ask Consul and pass its answer on without `X-Consul-Index` (as a
    /// proxy that drops unknown headers would).
    NoIndex,
}

#[derive(Default)]
struct Shared {
    fault: Mutex<Option<Fault>>,
    requests: AtomicUsize,
    stopping: AtomicBool,
}

/// A running fault proxy; stopped on drop.
pub struct HttpFaultProxy {
    addr: String,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl HttpFaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port` of the agent's HTTP API).
    pub fn start(upstream: &str) -> HttpFaultProxy {
        // Bound here, so port 0 is race-free (unlike ports handed to another
        // program, see `free_ports`).
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding fault proxy");
        let addr = listener.local_addr().expect("local addr").to_string();
        let shared = Arc::new(Shared::default());
        let accept = {
            let (shared, upstream) = (shared.clone(), upstream.to_owned());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let (shared, upstream) = (shared.clone(), upstream.clone());
                    thread::spawn(move || serve(client, &upstream, &shared));
                }
            })
        };
        HttpFaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `host:port` to point clients at.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets the fault applied to every request from now on (`None`: pass through).
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(mut client: TcpStream, upstream: &str, shared: &Shared) {
    let Ok(request) = read_request(&client) else {
        return;
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let current = || {
        shared
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    };
    // Faults that need no answer from Consul apply at once; the rest (and
    // any fault set while a blocking query waited) apply to its answer.
    let raw = match current() {
        Some(Fault::Drop) => None,
        Some(Fault::Status(status, body)) => Some(plain_response(status, &body)),
        _ => match forward(&request, upstream) {
            Err(_) => None,
            Ok(raw) => match current() {
                None => Some(raw),
                Some(Fault::Drop) => None,
                Some(Fault::Status(status, body)) => Some(plain_response(status, &body)),
                Some(Fault::Body(body)) => Some(replace_body(&raw, body.as_bytes())),
                Some(Fault::Truncate) => Some(truncate_body(&raw)),
                Some(Fault::NoIndex) => Some(without_index(&raw)),
            },
        },
    };
    if let Some(response) = raw {
        let _ = client.write_all(&response);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// The request head (a GET has no body), rewritten to close after one
/// response.
fn read_request(client: &TcpStream) -> std::io::Result<Vec<u8>> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("connection:") && !lower.starts_with("keep-alive:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(head)
}

/// Sends `request` to the agent and returns its whole raw response.
fn forward(request: &[u8], upstream: &str) -> std::io::Result<Vec<u8>> {
    let mut agent = TcpStream::connect(upstream)?;
    agent.write_all(request)?;
    let mut raw = Vec::new();
    agent.read_to_end(&mut raw)?;
    Ok(raw)
}

fn plain_response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Fault\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Splits a raw response into its head lines (without the blank line) and
/// its body, de-chunking a chunked body.
fn split(raw: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&raw[..end]);
    let lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let chunked = lines
        .iter()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let mut body = raw[end..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    (lines, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        data = &data[(stop + 2).min(data.len())..];
    }
    out
}

/// The response's head with a fresh Content-Length for `body_len`.
fn head_for(lines: &[String], body_len: usize) -> Vec<u8> {
    let mut head = String::new();
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    head.into_bytes()
}

fn replace_body(raw: &[u8], body: &[u8]) -> Vec<u8> {
    let (lines, _) = split(raw);
    let mut out = head_for(&lines, body.len());
    out.extend_from_slice(body);
    out
}

fn without_index(raw: &[u8]) -> Vec<u8> {
    let (lines, body) = split(raw);
    let kept: Vec<String> = lines
        .into_iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("x-consul-index:"))
        .collect();
    let mut out = head_for(&kept, body.len());
    out.extend_from_slice(&body);
    out
}

fn truncate_body(raw: &[u8]) -> Vec<u8> {
    let (lines, body) = split(raw);
    // Promise the whole body, deliver half.
    let mut out = head_for(&lines, body.len());
    out.extend_from_slice(&body[..body.len() / 2]);
    out
}
