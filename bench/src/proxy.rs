//! [`CutProxy`]: a TCP proxy between a tool and its agent that can cut the
//! tool off and count what the tool tries meanwhile. Forwarding, it relays
//! every connection to the agent byte for byte. Cut, it resets every
//! connection it relays (`SO_LINGER` 0, so the tool reads a reset or an
//! early end of the reply), and it still accepts new connections, counts
//! them and whether a request arrived on them, and resets them at once.
//! Restored, it forwards again. A refusing port (toxiproxy's `enabled =
//! false` closes its listener) would be the same to a tool, but the kernel
//! would refuse the connections, so nothing could count them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a connection accepted while cut is given to send its request
/// before it is reset. A client writes its request as soon as it connects.
const READ_REQUEST: Duration = Duration::from_millis(200);

/// How long connecting to the agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts of what arrived while the proxy was cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutCounts {
    /// Connections accepted (and reset).
    pub connections: u64,
    /// Those on which the client sent any bytes (a request, or a TLS
    /// handshake) before the reset.
    pub with_request: u64,
}

struct Shared {
    upstream: SocketAddr,
    cut: AtomicBool,
    stopping: AtomicBool,
    connections: AtomicU64,
    with_request: AtomicU64,
    /// Every relayed connection's two sockets, for cutting them, by id.
    relayed: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_id: AtomicU64,
}

impl Shared {
    fn relayed(&self) -> MutexGuard<'_, HashMap<u64, (TcpStream, TcpStream)>> {
        self.relayed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A proxy from a free loopback port to an upstream; stopped on drop.
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// Starts forwarding from a free port on 127.0.0.1 to `upstream`
    /// ("127.0.0.1:PORT").
    pub fn start(upstream: &str) -> CutProxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding the proxy's port: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy's address: {e}"));
        let shared = Arc::new(Shared {
            upstream,
            cut: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            with_request: AtomicU64::new(0),
            relayed: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        CutProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// "127.0.0.1:PORT" for the tool.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Resets every relayed connection and resets new ones until
    /// [`CutProxy::restore`]; the cut counts start from zero.
    pub fn cut(&self) {
        self.shared.connections.store(0, Ordering::SeqCst);
        self.shared.with_request.store(0, Ordering::SeqCst);
        self.shared.cut.store(true, Ordering::SeqCst);
        for (_, (client, server)) in self.shared.relayed().drain() {
            reset(&client);
            reset(&server);
        }
    }

    /// Forwards again; returns what arrived while cut.
    pub fn restore(&self) -> CutCounts {
        self.shared.cut.store(false, Ordering::SeqCst);
        self.counts()
    }

    /// What has arrived since the last cut.
    pub fn counts(&self) -> CutCounts {
        CutCounts {
            connections: self.shared.connections.load(Ordering::SeqCst),
            with_request: self.shared.with_request.load(Ordering::SeqCst),
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the loop sees `stopping` and ends.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, (client, server)) in self.shared.relayed().drain() {
            reset(&client);
            reset(&server);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if shared.cut.load(Ordering::SeqCst) {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let shared = Arc::clone(shared);
            thread::spawn(move || refuse(client, &shared));
            continue;
        }
        match TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) {
            Ok(server) => relay(client, server, shared),
            Err(_) => reset(&client),
        }
    }
}

/// Reads whatever request arrives, counts it, and resets the connection.
fn refuse(mut client: TcpStream, shared: &Shared) {
    let _ = client.set_read_timeout(Some(READ_REQUEST));
    let mut buf = [0u8; 1024];
    if matches!(client.read(&mut buf), Ok(n) if n > 0) {
        shared.with_request.fetch_add(1, Ordering::SeqCst);
    }
    reset(&client);
}

/// Copies both ways on two threads; the connection is forgotten once both
/// directions have ended.
fn relay(client: TcpStream, server: TcpStream, shared: &Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let handles = (|| {
        Ok::<_, io::Error>((
            client.try_clone()?,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ))
    })();
    let Ok((client2, server2, client3, server3)) = handles else {
        reset(&client);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    shared.relayed().insert(id, (client3, server3));
    let ended = Arc::new(AtomicU64::new(0));
    for (from, to) in [(client, server), (server2, client2)] {
        let (shared, ended) = (Arc::clone(shared), Arc::clone(&ended));
        thread::spawn(move || {
            pump(from, to);
            if ended.fetch_add(1, Ordering::SeqCst) == 1 {
                shared.relayed().remove(&id);
            }
        });
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Makes the socket's close send a reset, and closes it both ways (its
/// other handles, in the pump threads, see the end and drop theirs).
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::linger>())
        .expect("linger's size fits socklen_t");
    // SAFETY: a valid socket and a linger struct of the length given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            len,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Whether a connection to `addr` is answered (for tests).
#[cfg(test)]
fn echo_once(addr: &str, message: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(message)?;
    stream.shutdown(Shutdown::Write)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes each connection's bytes back.
    fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                thread::spawn(move || {
                    let mut data = Vec::new();
                    let _ = conn.read_to_end(&mut data);
                    let _ = conn.write_all(&data);
                });
            }
        });
        addr
    }

    #[test]
    fn forwards_then_resets_and_counts_while_cut_then_forwards_again() {
        let proxy = CutProxy::start(&echo_server());
        assert_eq!(echo_once(&proxy.addr(), b"one").expect("relayed"), b"one");

        // A connection open across the cut is reset.
        let mut open = TcpStream::connect(proxy.addr()).expect("connect");
        open.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        thread::sleep(Duration::from_millis(50));
        proxy.cut();
        let mut buf = [0u8; 8];
        assert!(
            !matches!(open.read(&mut buf), Ok(n) if n > 0),
            "a cut connection delivers nothing"
        );

        assert!(echo_once(&proxy.addr(), b"two").map_or(true, |r| r.is_empty()));
        assert!(echo_once(&proxy.addr(), b"three").map_or(true, |r| r.is_empty()));
        let counts = proxy.restore();
        assert_eq!(counts.connections, 2);
        assert_eq!(counts.with_request, 2);

        assert_eq!(echo_once(&proxy.addr(), b"four").expect("relayed"), b"four");
    }
}
