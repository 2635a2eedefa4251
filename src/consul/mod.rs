//! Everything about talking to Consul: what can be asked
//! ([`dependency`]), what comes back ([`model`], raw; [`data`], validated),
//! the shared HTTP client ([`transport`]) with its outage gate ([`gate`]),
//! the headers that authenticate it ([`credentials`])
//! and connection limits ([`connections`]) over HTTP/1.1 or HTTP/2
//! connections of its own ([`http2`]),
//! the blocking-query loops ([`watcher`]) and, past the connection budget,
//! catalog-wide signals ([`signal`]), both turning replies into changes by
//! one rule ([`change`]), and offline catalog files ([`catalog_file`]). It
//! knows nothing about templates.

pub mod catalog_file;
pub mod change;
pub mod connections;
pub mod credentials;
pub mod data;
pub mod dependency;
pub mod gate;
pub mod http2;
pub mod model;
pub mod signal;
pub mod small_map;
pub mod transport;
pub mod watcher;

pub use data::Data;
pub use dependency::{Dependency, HealthQuery};
