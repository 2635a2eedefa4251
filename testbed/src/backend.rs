//! [`Backend`]: a tiny HTTP/1.1 upstream for nginx to proxy to. It answers
//! every request with 200 and its own name as the body, counts the requests,
//! and runs on a background thread that ends when it is dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// An HTTP server on 127.0.0.1 that answers `200 <name>` to everything.
pub struct Backend {
    name: String,
    port: u16,
    hits: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts a backend whose responses' body is `name`, on a free port.
    pub fn start(name: &str) -> Backend {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("backend {name}: binding 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .expect("local_addr of a bound socket")
            .port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (name, hits, stopping) = (name.to_string(), hits.clone(), stopping.clone());
            thread::Builder::new()
                .name(format!("backend-{name}"))
                .spawn(move || serve(&listener, &name, &hits, &stopping))
                .expect("spawning a backend thread")
        };
        Backend {
            name: name.to_string(),
            port,
            hits,
            stopping,
            thread: Some(thread),
        }
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT", as an nginx `server` line wants it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many requests it has answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The accept loop: a short-lived thread per connection.
fn serve(listener: &TcpListener, name: &str, hits: &Arc<AtomicUsize>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        // A failed accept or a client that vanished mid-request is not the
        // backend's problem: ignore both.
        if let Ok(stream) = stream {
            let (name, hits) = (name.to_string(), hits.clone());
            thread::spawn(move || {
                let _ = answer(stream, &name, &hits);
            });
        }
    }
}

/// Reads one request's head and answers it; a connection closed before a
/// request arrived is not counted.
fn answer(stream: TcpStream, name: &str, hits: &AtomicUsize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    while line != "\r\n" && line != "\n" {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
    (&stream).write_all(response.as_bytes())?;
    (&stream).flush()
}
