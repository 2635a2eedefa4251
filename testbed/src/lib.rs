//! Test bed for consul-render: starts the real programs its tests and
//! benchmarks talk to (Consul agents and clusters, nginx, HTTP backends,
//! toxiproxy) and owns the two rules every helper here follows: ports are
//! ones the OS has just let us bind, never fixed numbers ([`free_port`],
//! [`free_ports`]), and waiting is always for an explicit condition with a
//! deadline ([`wait_until`]).
//!
//! The API is synchronous and panics with context on failure: it is test
//! support, callable from plain `#[test]`s and from inside async tests alike.

mod accounts;
mod backend;
mod cluster;
mod consul;
mod fault_proxy;
mod http;
mod http_fault_proxy;
mod nginx;
mod process;

pub use accounts::{Nobody, nobody};
pub use backend::Backend;
pub use cluster::{ClusterMember, ConsulCluster, Registrar};
pub use consul::{AgentOptions, ConsulAgent, Instance, TlsFiles};
pub use fault_proxy::FaultProxy;
pub use http::{Response, http_get};
pub use http_fault_proxy::{Fault, HttpFaultProxy};
pub use nginx::{Nginx, NginxPrefix};
pub use process::Process;

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(15);

/// Polls `cond` every ~15 ms until it returns true; panics naming `what` if
/// `timeout` passes first. The one way this crate (and its users) wait.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The lowest port [`free_ports`] hands out.
const FIRST_PORT: u16 = 10_000;

/// One port on 127.0.0.1 that is free for both TCP and UDP right now.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct ports on 127.0.0.1, each of which the OS has just let us bind
/// for both TCP and UDP (Consul's serf and DNS ports use both). All are held
/// until all are chosen, and no port is handed out twice by this process, so
/// parallel tests never collide with each other.
///
/// The ports lie below the kernel's ephemeral range when it leaves room
/// (ports 10000 up to `ip_local_port_range`'s start): a port from the
/// ephemeral range (what binding port 0 gives) can be taken by any outgoing
/// connection before the program it was meant for binds it, or while that
/// program restarts; this was seen to fail Consul starts with "address
/// already in use".
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut handed_out = handed_out_ports();
    let range = ports_outside_ephemeral_range();
    let offset = RandomState::new().build_hasher().finish();
    let mut held = Vec::with_capacity(n);
    for attempt in 0..20_000u64 {
        if held.len() == n {
            break;
        }
        // Port 0 asks the OS to pick one.
        let candidate = range.clone().map_or(0, |r| {
            let len = u64::from(r.end - r.start);
            r.start
                + u16::try_from(offset.wrapping_add(attempt) % len)
                    .expect("below a u16 range's length")
        });
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, candidate)) else {
            continue;
        };
        let port = tcp
            .local_addr()
            .expect("local_addr of a bound socket")
            .port();
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) {
            handed_out.insert(port);
            held.push((port, tcp, udp));
        }
    }
    assert_eq!(held.len(), n, "could not find {n} free ports on 127.0.0.1");
    held.into_iter().map(|(port, _, _)| port).collect()
}

/// Ports from [`FIRST_PORT`] up to the start of the kernel's ephemeral port
/// range, or `None` if that leaves fewer than 1000 (or cannot be read).
fn ports_outside_ephemeral_range() -> Option<Range<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let ephemeral_start: u16 = text.split_whitespace().next()?.parse().ok()?;
    (ephemeral_start >= FIRST_PORT.saturating_add(1000)).then_some(FIRST_PORT..ephemeral_start)
}

/// The ports this process has handed out so far.
fn handed_out_ports() -> MutexGuard<'static, BTreeSet<u16>> {
    static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
