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
//! Past that, one reqwest client silently queues requests (measured: about
//! a minute of delay with 300 long-polls). So requests are spread over
//! *lanes*, each its own client and connection with at most
//! [`STREAMS_PER_LANE`] in flight, opened as needed. If an HTTPS endpoint
//! turns out not to speak HTTP/2 (a TLS proxy in front of Consul), the
//! HTTP/1.1 cap applies from then on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

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

/// Builds one more client with the transport's settings.
pub type MakeClient = Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>;

/// The clients requests go out on, and the limits that apply to them.
pub struct Connections {
    http2: Option<Lanes>,
    http1: reqwest::Client,
    /// One per connection allowed when requests cannot be multiplexed.
    permits: Arc<Semaphore>,
    max_connections: usize,
    /// An HTTPS endpoint answered in HTTP/1.1: use the capped client.
    downgraded: AtomicBool,
}

struct Lanes {
    lanes: Mutex<Vec<Arc<Lane>>>,
    make: MakeClient,
}

struct Lane {
    client: reqwest::Client,
    in_flight: AtomicUsize,
    /// Its connection has answered once: the protocol is known.
    warm: AtomicBool,
    /// A request is establishing its connection right now.
    warming: AtomicBool,
    warmed: Notify,
}

impl Lane {
    fn new(client: reqwest::Client) -> Arc<Lane> {
        Arc::new(Lane {
            client,
            in_flight: AtomicUsize::new(0),
            warm: AtomicBool::new(false),
            warming: AtomicBool::new(false),
            warmed: Notify::new(),
        })
    }
}

/// The right to send one request, and the client to send it with. Dropping
/// it frees the slot.
pub struct Lease {
    pub client: reqwest::Client,
    _permit: Option<OwnedSemaphorePermit>,
    lane: Option<Arc<Lane>>,
    /// This request is the one establishing its lane's connection.
    warming: bool,
}

impl Lease {
    /// The request got an answer: its lane's connection is up and its
    /// protocol known, so the requests waiting for it may go.
    pub fn answered(&mut self) {
        if let (Some(lane), true) = (&self.lane, self.warming) {
            self.warming = false;
            lane.warm.store(true, Ordering::SeqCst);
            lane.warmed.notify_waiters();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(lane) = &self.lane {
            lane.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.warming {
                // It failed before an answer: let the next request try.
                lane.warming.store(false, Ordering::SeqCst);
                lane.warmed.notify_waiters();
            }
        }
    }
}

impl Connections {
    /// `make` builds a client with the transport's settings; `multiplexed`
    /// says whether the scheme negotiates HTTP/2 (HTTPS).
    pub fn new(
        make: MakeClient,
        multiplexed: bool,
        max_connections: usize,
    ) -> reqwest::Result<Connections> {
        let http1 = make()?;
        // The first lane reuses the client already built, so there is
        // always one to fall back on.
        let first = Lane::new(http1.clone());
        let http2 = multiplexed.then(|| Lanes {
            lanes: Mutex::new(vec![first]),
            make,
        });
        Ok(Connections {
            http2,
            http1,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            downgraded: AtomicBool::new(false),
        })
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
            32
        } else {
            (self.max_connections / 4).clamp(1, 8)
        }
    }

    fn multiplexed(&self) -> bool {
        self.http2.is_some() && !self.downgraded.load(Ordering::SeqCst)
    }

    /// Waits for a slot and returns the client to use for one request.
    ///
    /// On a new lane, one request goes first and the others wait for its
    /// answer: until a connection has negotiated HTTP/2, the client cannot
    /// know that requests will share it, and each would open its own
    /// (measured: some 850 connections at the start of 1,000 watches, and
    /// Consul refusing them, and every other client on the host).
    pub async fn lease(&self) -> Lease {
        if let (Some(lanes), true) = (&self.http2, self.multiplexed()) {
            let lane = lanes.pick();
            lane.in_flight.fetch_add(1, Ordering::SeqCst);
            let warming = lane.wait_until_warm().await;
            return Lease {
                client: lane.client.clone(),
                _permit: None,
                lane: Some(lane),
                warming,
            };
        }
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.permits.clone().acquire_owned().await.ok();
        Lease {
            client: self.http1.clone(),
            _permit: permit,
            lane: None,
            warming: false,
        }
    }

    /// Notes the HTTP version a reply came in: HTTP/1.1 from an HTTPS
    /// endpoint means its connections are not multiplexed after all.
    pub fn saw(&self, version: reqwest::Version) {
        if self.http2.is_some()
            && version != reqwest::Version::HTTP_2
            && !self.downgraded.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                ?version,
                max_connections = self.max_connections,
                "consul's HTTPS endpoint does not speak HTTP/2 (a proxy in front of it?); capping connections"
            );
        }
    }

    /// How many HTTP/2 connections are open (for logs and tests).
    pub fn lanes(&self) -> usize {
        self.http2.as_ref().map_or(0, |l| {
            l.lanes.lock().unwrap_or_else(|p| p.into_inner()).len()
        })
    }
}

impl Lane {
    /// Returns at once on a warm lane. Otherwise makes the caller the one
    /// to warm it (true), or waits until whoever does gets an answer.
    async fn wait_until_warm(&self) -> bool {
        loop {
            let warmed = self.warmed.notified();
            tokio::pin!(warmed);
            // Registered before looking, so a wake-up in between is not lost.
            warmed.as_mut().enable();
            if self.warm.load(Ordering::SeqCst) {
                return false;
            }
            if !self.warming.swap(true, Ordering::SeqCst) {
                return true;
            }
            warmed.await;
        }
    }
}

impl Lanes {
    /// The first lane with room, or (all full) one within the hard limit,
    /// or a new one, or (at the lane limit) the least busy.
    fn pick(&self) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes
            .iter()
            .find(|l| l.in_flight.load(Ordering::SeqCst) < STREAMS_PER_LANE)
        {
            return lane.clone();
        }
        let in_flight = |l: &&Arc<Lane>| l.in_flight.load(Ordering::SeqCst);
        if let Some(lane) = lanes.iter().find(|l| in_flight(l) < STREAMS_PER_LANE_HARD) {
            return lane.clone();
        }
        if lanes.len() < MAX_LANES {
            match (self.make)() {
                Ok(client) => {
                    let lane = Lane::new(client);
                    lanes.push(lane.clone());
                    tracing::debug!(
                        lanes = lanes.len(),
                        "opened another HTTP/2 connection to consul"
                    );
                    return lane;
                }
                // The same settings built the first client; should another
                // fail anyway, the lanes there are share the load.
                Err(error) => {
                    tracing::warn!("could not open another connection to consul: {error}")
                }
            }
        }
        let least_busy = lanes
            .iter()
            .min_by_key(|l| l.in_flight.load(Ordering::SeqCst));
        // There is always the first lane.
        least_busy
            .cloned()
            .expect("the first lane is never removed")
    }
}
