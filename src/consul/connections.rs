//! How requests map onto connections to the agent.
//!
//! Plain HTTP is HTTP/1.1: a connection carries one request at a time, and
//! Consul refuses a client address past 200 connections
//! (`http_max_conns_per_client`), answering 429 to every client on that
//! address. A semaphore caps our requests in flight, and so our
//! connections, at `-consul-max-connections`.
//!
//! HTTPS speaks HTTP/2 (Consul's listener negotiates it), where one
//! connection carries many requests, up to the 250 streams Consul allows.
//! Requests are spread over *lanes*, each one connection of our own
//! ([`http2`](super::http2)) with at most [`STREAMS_PER_LANE`] in flight,
//! opened as needed. The first request on a lane opens its connection and
//! the others wait for it, so a thousand watches starting at once open a
//! few connections, not a thousand. Reads that do not block are few at a
//! time, so that a start does not hold a thousand answers in memory at
//! once. If an HTTPS endpoint turns out not to speak HTTP/2 (a TLS proxy in
//! front of Consul), the HTTP/1.1 cap applies from then on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http2::{ConnectError, Connector, OpenError, Sender};

/// Requests in flight per HTTP/2 connection before another is opened: well
/// under Consul's 250 streams, leaving room for one-off reads.
pub const STREAMS_PER_LANE: usize = 150;
/// A full lane still takes requests up to this many when every lane is
/// full, so that a moment where a watch re-polls before its old stream is
/// counted out does not open a connection.
const STREAMS_PER_LANE_HARD: usize = 220;
/// Lanes are opened up to this many (4,800 requests in flight); past it,
/// requests share the least busy lane.
const MAX_LANES: usize = 32;
/// Reads that do not block, in flight at once over HTTP/2.
const PLAIN_READS: usize = 32;

/// The connections requests go out on, and the limits that apply to them.
pub struct Connections {
    http2: Option<Lanes>,
    http1: reqwest::Client,
    /// One per connection allowed when requests cannot be multiplexed.
    permits: Arc<Semaphore>,
    max_connections: usize,
    /// An HTTPS endpoint answered in HTTP/1.1: use the capped client.
    downgraded: AtomicBool,
    plain_reads: Arc<Semaphore>,
}

struct Lanes {
    lanes: Mutex<Vec<Arc<Lane>>>,
    connector: Connector,
}

/// One HTTP/2 connection, opened by the first request that needs it.
struct Lane {
    in_flight: AtomicUsize,
    /// The connection and its generation; waiting on the lock is waiting
    /// for whoever is opening it.
    sender: tokio::sync::Mutex<Option<(u64, Sender)>>,
    generations: AtomicU64,
}

impl Lane {
    fn new() -> Arc<Lane> {
        Arc::new(Lane {
            in_flight: AtomicUsize::new(0),
            sender: tokio::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
        })
    }

    /// The lane's open connection, or a new one.
    async fn sender(&self, connector: &Connector) -> Result<(u64, Sender), ConnectError> {
        let mut current = self.sender.lock().await;
        if let Some((generation, sender)) = current.as_ref()
            && !sender.is_closed()
        {
            return Ok((*generation, sender.clone()));
        }
        // Boxed: opening a connection (TCP, TLS, HTTP/2 handshake) is a
        // large future, and inline it would size every request's future,
        // hence every watch task, for a step a lane takes once.
        let sender = Box::pin(connector.connect()).await?;
        let generation = self.generations.fetch_add(1, Ordering::SeqCst);
        *current = Some((generation, sender.clone()));
        Ok((generation, sender))
    }

    /// Forgets the connection of `generation`, if it is still the lane's.
    fn forget(&self, generation: u64) {
        if let Ok(mut current) = self.sender.try_lock()
            && current.as_ref().is_some_and(|(g, _)| *g == generation)
        {
            *current = None;
        }
    }
}

/// What one request goes out on.
pub enum Via {
    Http2(Sender),
    Http1(reqwest::Client),
}

/// The right to send one request, and what to send it on. Dropping it
/// frees the slot.
pub struct Lease {
    pub via: Via,
    _permit: Option<OwnedSemaphorePermit>,
    /// The lane's slot and the generation of its connection.
    lane: Option<(Slot, u64)>,
}

impl Lease {
    /// The request failed on its connection: the next request on this lane
    /// opens a new one rather than trusting it.
    pub fn connection_failed(&self) {
        if let Some((Slot(lane), generation)) = &self.lane {
            lane.forget(*generation);
        }
    }
}

/// Counts one request on a lane from its pick until dropped, including
/// while the lane's connection is being opened.
struct Slot(Arc<Lane>);

impl Slot {
    fn take(lane: Arc<Lane>) -> Slot {
        lane.in_flight.fetch_add(1, Ordering::SeqCst);
        Slot(lane)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connections {
    /// `http1` carries plain HTTP and HTTPS without HTTP/2; `http2` opens
    /// the HTTPS connections when the scheme is HTTPS.
    pub fn new(
        http1: reqwest::Client,
        http2: Option<Connector>,
        max_connections: usize,
    ) -> Connections {
        Connections {
            http2: http2.map(|connector| Lanes {
                lanes: Mutex::new(Vec::new()),
                connector,
            }),
            http1,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            downgraded: AtomicBool::new(false),
            plain_reads: Arc::new(Semaphore::new(PLAIN_READS)),
        }
    }

    /// How many blocking queries may be held open at once without starving
    /// other requests; `None` when requests are multiplexed (HTTP/2).
    pub fn long_poll_capacity(&self) -> Option<usize> {
        if self.multiplexed() {
            None
        } else {
            // Keep two connections for the reads a change triggers.
            Some(self.max_connections.saturating_sub(2))
        }
    }

    /// How many requests may be sent side by side for a batch of reads.
    pub fn read_concurrency(&self) -> usize {
        if self.multiplexed() {
            PLAIN_READS
        } else {
            (self.max_connections / 4).clamp(1, 8)
        }
    }

    /// HTTP/1.1 connections in use and HTTP/2 lanes open, for metrics.
    pub fn usage(&self) -> (usize, usize) {
        let http1 = self.max_connections - self.permits.available_permits();
        let lanes = self.http2.as_ref().map_or(0, |l| {
            l.lanes.lock().unwrap_or_else(|p| p.into_inner()).len()
        });
        (http1, lanes)
    }

    fn multiplexed(&self) -> bool {
        self.http2.is_some() && !self.downgraded.load(Ordering::SeqCst)
    }

    /// Waits for a slot and returns what to send one request on; `blocking`
    /// says whether it is a long-poll. Fails when no connection could be
    /// opened.
    pub async fn lease(&self, blocking: bool) -> Result<Lease, OpenError> {
        if let (Some(lanes), true) = (&self.http2, self.multiplexed()) {
            // The semaphores are never closed, so acquiring cannot fail.
            let permit = if blocking {
                None
            } else {
                self.plain_reads.clone().acquire_owned().await.ok()
            };
            let slot = Slot::take(lanes.pick());
            match slot.0.sender(&lanes.connector).await {
                Ok((generation, sender)) => {
                    return Ok(Lease {
                        via: Via::Http2(sender),
                        _permit: permit,
                        lane: Some((slot, generation)),
                    });
                }
                Err(ConnectError::Failed(error)) => return Err(error),
                Err(ConnectError::NotHttp2) => self.downgrade(),
            }
        }
        let permit = self.permits.clone().acquire_owned().await.ok();
        Ok(Lease {
            via: Via::Http1(self.http1.clone()),
            _permit: permit,
            lane: None,
        })
    }

    /// An HTTPS endpoint that does not speak HTTP/2 gets the HTTP/1.1 cap.
    fn downgrade(&self) {
        if !self.downgraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                max_connections = self.max_connections,
                "consul's HTTPS endpoint does not speak HTTP/2 (a proxy in front of it?); capping connections"
            );
        }
    }
}

impl Lanes {
    /// The first lane with room, or (all full) one within the hard limit,
    /// or a new one, or (at the lane limit) the least busy.
    fn pick(&self) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let in_flight = |l: &&Arc<Lane>| l.in_flight.load(Ordering::SeqCst);
        if let Some(lane) = lanes.iter().find(|l| in_flight(l) < STREAMS_PER_LANE) {
            return lane.clone();
        }
        if let Some(lane) = lanes.iter().find(|l| in_flight(l) < STREAMS_PER_LANE_HARD) {
            return lane.clone();
        }
        if lanes.len() < MAX_LANES {
            let lane = Lane::new();
            lanes.push(lane.clone());
            if lanes.len() > 1 {
                tracing::debug!(
                    lanes = lanes.len(),
                    "opening another HTTP/2 connection to consul"
                );
            }
            return lane;
        }
        lanes
            .iter()
            .min_by_key(in_flight)
            .cloned()
            .expect("MAX_LANES lanes exist")
    }
}
