//! What a Consul reply means: the one rule, shared by the per-dependency
//! loops ([`watcher`](super::watcher)) and the catalog-wide signals
//! ([`signal`](super::signal)), that turns a reply (status, index, body)
//! into a [`Change`] or nothing, and the [`Event`]s that carry changes to
//! the runner, and the [`Staleness`] of a watch whose reads fail.
//!
//! A reply is decoded and validated into [`Data`]; data equal to what was
//! last reported is not a change, whatever its index says; an index below
//! the last one means the agent's state was reset; data that lost entries
//! right after a failure or reset is suspect and read again shortly. It
//! does not fetch, retry, pace or block: that is the watchers' business.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::data::{self, Data, NotBase64, Rejection, Rejections};
use super::dependency::Dependency;
use super::model::{CatalogNode, HealthEntry, KvPair, Node};
use super::transport::{ConsulIndex, GaveUp, Reply};

/// How soon suspect data (entries lost right after a failure) is re-read.
pub const RECHECK_DELAY: Duration = Duration::from_secs(1);

/// What watchers tell the runner.
#[derive(Debug)]
pub enum Event {
    /// A dependency has new data.
    Changed(Change),
    /// A dependency's reads began failing at `since`: its data may be out
    /// of date from then on.
    Stale {
        dependency: Dependency,
        since: Instant,
    },
    /// A stale dependency's reads work again (any change they found was
    /// sent before this).
    Current(Dependency),
    /// Consul stayed unreachable past the retry policy.
    GaveUp(GaveUp),
}

/// New data for one dependency.
#[derive(Debug)]
pub struct Change {
    pub dependency: Dependency,
    /// Shared with the watch's [`LastReported`]: one copy of the data,
    /// however many hold it.
    pub data: Arc<Data>,
    /// The first reply after Consul was unreachable, or after its index
    /// went backwards (an agent restarted with empty state): the data may
    /// come from a catalog that has not re-synced yet.
    pub after_reset: bool,
    /// Values Consul sent that validation kept out of `data`.
    pub rejected: usize,
    /// The earliest the change may have happened: when the reply came,
    /// for a watch that was live; when its reads began failing, for the
    /// first reply after that.
    pub since: Instant,
}

/// Since when a watch has not been able to confirm its data: its reads
/// fail (Consul unreachable, a refusal, a garbled reply). A live blocking
/// query hears of every change within milliseconds, so a watch is either
/// current or stale since its first failure.
#[derive(Default)]
pub struct Staleness(Option<Instant>);

impl Staleness {
    /// A read failed: returns when staleness began if this failure began it.
    pub fn failed(&mut self) -> Option<Instant> {
        match self.0 {
            Some(_) => None,
            None => Some(*self.0.insert(Instant::now())),
        }
    }

    /// A read worked: returns since when the data it brings may have
    /// changed (now, or when the failures began) and whether the watch had
    /// been stale.
    pub fn confirmed(&mut self) -> (Instant, bool) {
        match self.0.take() {
            Some(since) => (since, true),
            None => (Instant::now(), false),
        }
    }

    pub fn is_stale(&self) -> bool {
        self.0.is_some()
    }
}

/// Whether Consul's index went backwards: the agent restarted or its state
/// was reset, and blocking on the old index would hide that.
pub fn index_went_back(before: Option<ConsulIndex>, now: Option<ConsulIndex>) -> bool {
    matches!((before, now), (Some(before), Some(now)) if now < before)
}

/// The data last reported for one dependency, which each new reply is
/// compared with: the same allocation the runner's snapshot stores.
#[derive(Default)]
pub struct LastReported(Option<Arc<Data>>);

/// Data that differs from what was last reported.
pub struct News {
    pub change: Change,
    /// The data lost entries right after a failure or reset: read it again
    /// after [`RECHECK_DELAY`], without blocking.
    pub suspect: bool,
}

impl LastReported {
    /// Compares freshly decoded `data` with what was last reported: `None`
    /// if it is the same, otherwise the change to report (now the last
    /// reported), with its rejections logged.
    pub fn update(
        &mut self,
        dependency: &Dependency,
        data: Data,
        rejections: &[Rejection],
        after_reset: bool,
        since: Instant,
    ) -> Option<News> {
        if self.0.as_deref() == Some(&data) {
            return None;
        }
        let suspect = after_reset
            && self
                .0
                .as_ref()
                .is_some_and(|before| data.lost_entries_since(before));
        for rejection in rejections {
            tracing::warn!(%dependency, "{rejection}");
        }
        let data = Arc::new(data);
        self.0 = Some(Arc::clone(&data));
        let change = Change {
            dependency: dependency.clone(),
            data,
            after_reset,
            rejected: rejections.len(),
            since,
        };
        Some(News { change, suspect })
    }
}

/// Why a reply could not be turned into data.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not the JSON this endpoint answers with.
    #[error("invalid JSON for {dependency}: {source}")]
    Json {
        dependency: Dependency,
        source: serde_json::Error,
    },
    /// A KV value in it is not base64.
    #[error(transparent)]
    Value(#[from] NotBase64),
}

/// Decodes and validates a reply for `dependency`.
pub fn decode(
    dependency: &Dependency,
    reply: &Reply,
) -> Result<(Data, Vec<Rejection>), DecodeError> {
    let mut rejections = Rejections::default();
    let json_error = |source| DecodeError::Json {
        dependency: dependency.clone(),
        source,
    };
    let data = match dependency {
        Dependency::Health(query) => {
            let entries: Vec<HealthEntry> =
                serde_json::from_slice(&reply.body).map_err(json_error)?;
            Data::Instances(data::instances(
                entries,
                query.near.is_some(),
                &mut rejections,
            ))
        }
        Dependency::CatalogServices { .. } => {
            let catalog: BTreeMap<String, Option<Vec<String>>> =
                serde_json::from_slice(&reply.body).map_err(json_error)?;
            Data::Services(data::services(catalog, &mut rejections))
        }
        Dependency::CatalogNodes { .. } => {
            let nodes: Vec<Node> = serde_json::from_slice(&reply.body).map_err(json_error)?;
            Data::Nodes(data::nodes(nodes, &mut rejections))
        }
        Dependency::CatalogNode { .. } => {
            let node: Option<CatalogNode> =
                serde_json::from_slice(&reply.body).map_err(json_error)?;
            Data::Node(data::node(node, &mut rejections))
        }
        // Never fetched over HTTP; read as the file's bytes, were it.
        Dependency::File { .. } => Data::File(Some(String::from_utf8_lossy(&reply.body).into())),
        Dependency::Datacenters => {
            let dcs: Vec<String> = serde_json::from_slice(&reply.body).map_err(json_error)?;
            Data::Datacenters(data::datacenters(dcs, &mut rejections))
        }
        Dependency::Key { path, .. } => {
            if reply.status == 404 {
                Data::Key(None)
            } else {
                let pairs: Vec<KvPair> = serde_json::from_slice(&reply.body).map_err(json_error)?;
                Data::Key(data::key_value(pairs, path)?)
            }
        }
        Dependency::Keys { .. } => {
            if reply.status == 404 {
                Data::Keys(Vec::new())
            } else {
                let mut keys: Vec<String> =
                    serde_json::from_slice(&reply.body).map_err(json_error)?;
                keys.sort();
                Data::Keys(keys)
            }
        }
        Dependency::Tree { prefix, .. } => {
            if reply.status == 404 {
                Data::Tree(Vec::new())
            } else {
                let pairs: Vec<KvPair> = serde_json::from_slice(&reply.body).map_err(json_error)?;
                Data::Tree(data::tree(pairs, prefix)?)
            }
        }
    };
    Ok((data, rejections.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::data::KvEntry;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            index: None,
            body: body.as_bytes().to_vec(),
            filtered_by_acls: false,
        }
    }

    #[test]
    fn garbage_replies_are_errors_not_data() {
        let dep = Dependency::CatalogServices { dc: None };
        for body in ["", "{", "<html>", "[1,2]", "{\"web\": 5}"] {
            assert!(decode(&dep, &reply(200, body)).is_err(), "{body:?}");
        }
    }

    #[test]
    fn a_missing_key_is_data() {
        let dep = Dependency::Key {
            path: "a/b".into(),
            dc: None,
        };
        assert_eq!(decode(&dep, &reply(404, "")).unwrap().0, Data::Key(None));
        let found = decode(&dep, &reply(200, r#"[{"Key":"a/b","Value":"aGk="}]"#))
            .unwrap()
            .0;
        assert_eq!(found, Data::Key(Some("hi".into())));
    }

    #[test]
    fn decode_errors_say_what_was_wrong_with_the_reply() {
        let key = Dependency::Key {
            path: "a/b".into(),
            dc: None,
        };
        let error = decode(&key, &reply(200, "{")).unwrap_err();
        assert!(matches!(error, DecodeError::Json { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("invalid JSON for {key}: ")),
            "{error}"
        );
        let error = decode(&key, &reply(200, r#"[{"Key":"a/b","Value":"!!!!"}]"#)).unwrap_err();
        assert_eq!(error.to_string(), r#"KV value "!!!!" is not valid base64"#);
    }

    #[test]
    fn only_a_smaller_index_went_back() {
        let at = |i| Some(ConsulIndex::new(i));
        assert!(index_went_back(at(18), at(11)));
        for (before, now) in [
            (at(11), at(18)),
            (at(5), at(5)),
            (None, at(5)),
            (at(5), None),
        ] {
            assert!(!index_went_back(before, now), "{before:?} → {now:?}");
        }
    }

    #[test]
    fn the_same_data_is_not_a_change_and_lost_entries_after_a_reset_are_suspect() {
        let dep = Dependency::Tree {
            prefix: "app".into(),
            dc: None,
        };
        let tree = |keys: &[&str]| {
            Data::Tree(
                keys.iter()
                    .map(|k| KvEntry {
                        key: (*k).into(),
                        ..KvEntry::default()
                    })
                    .collect(),
            )
        };
        let mut last = LastReported::default();
        let first = last
            .update(&dep, tree(&["a", "b"]), &[], true, Instant::now())
            .unwrap();
        assert!(!first.suspect, "nothing to lose yet");
        assert!(
            last.update(&dep, tree(&["a", "b"]), &[], false, Instant::now())
                .is_none()
        );
        let lost = last
            .update(&dep, tree(&["a"]), &[], false, Instant::now())
            .unwrap();
        assert!(!lost.suspect, "losing entries in normal operation is news");
        assert_eq!(*lost.change.data, tree(&["a"]));
        assert!(
            last.update(&dep, tree(&[]), &[], true, Instant::now())
                .unwrap()
                .suspect
        );
        assert!(
            !last
                .update(&dep, tree(&["c"]), &[], true, Instant::now())
                .unwrap()
                .suspect
        );
    }

    #[tokio::test(start_paused = true)]
    async fn staleness_begins_at_the_first_failure_and_ends_with_a_reply() {
        let mut staleness = Staleness::default();
        let start = Instant::now();
        let (since, was_stale) = staleness.confirmed();
        assert!(!was_stale);
        assert_eq!(since, start, "a live watch's change is as old as its reply");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(staleness.failed(), Some(start + Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(staleness.failed(), None, "the episode had begun");
        assert!(staleness.is_stale());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            staleness.confirmed(),
            (start + Duration::from_secs(1), true),
            "the first reply's changes date from the first failure"
        );
        assert!(!staleness.is_stale());
    }
}
