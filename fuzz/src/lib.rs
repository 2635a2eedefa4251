//! What the fuzz targets share: hostile health entries built from fuzzer
//! input, and checks of the data model's safety promise.
//!
//! Entries are built as the crate's own model types and serialised, so that
//! mutations reach validation instead of dying as JSON syntax errors. The
//! checks are written from the promise stated in `consul::data`'s docs, not
//! by calling its validators: an oracle that reuses the code under test can
//! only confirm that the code agrees with itself.

use std::collections::BTreeMap;
use std::net::IpAddr;

use consul_render::consul::data::{
    Instance, MAX_VALUE_LEN, NodeDetail, NodeInfo, ServiceSummary, SmallMap,
};
use consul_render::consul::model;
use libfuzzer_sys::arbitrary::{self, Arbitrary};

/// Values that have broken config renderers before, or sit on a limit.
/// One more, built on demand, is a 100 kB value.
const HOSTILE: &[&str] = &[
    "",
    "10.9.9.9:80; return 200 x",
    "a}b",
    "a{b",
    "a;b",
    "\n",
    "a\nb",
    "10.0.0.2\n",
    "a b",
    "a\tb",
    "a\"b",
    "a'b",
    "a\\b",
    "a#b",
    "$host",
    "`id`",
    "\u{0}",
    "\u{7f}",
    "é",
    "ｗｅｂ",
    "web\u{202e}",
    "[::1]",
    "10.0.0.2:80",
    "::ffff:10.0.0.2",
    "fe80::1%eth0",
    "-bad.example",
    "a..b",
    "web.",
    ".",
    "127.0.0.1:1 down",
    "passing",
    "_node_maintenance",
];

/// Values a real catalog holds: the fuzzer splices hostile characters into them.
const PLAUSIBLE: &[&str] = &[
    "web",
    "web-1",
    "node-1",
    "dc1",
    "10.0.0.2",
    "192.168.1.10",
    "fe80::1",
    "::1",
    "web.service.consul",
    "host_1.example.com.",
    "primary",
    "v1",
    "8080",
    "weight",
    "passing",
    "warning",
    "critical",
];

/// A string for one field of a health entry.
#[derive(Arbitrary, Debug)]
pub enum Text {
    /// Anything at all.
    Raw(String),
    /// One of [`HOSTILE`], or (one index past them) a 100 kB value.
    Hostile(u8),
    /// One of [`PLAUSIBLE`].
    Plausible(u8),
    /// A plausible value with one character spliced in.
    Spliced { base: u8, at: u8, insert: char },
    /// A well-formed IP address (v4 or v6).
    Ip(IpAddr),
    /// A value just under or over the length limit.
    AtLimit { delta: i8, fill: char },
}

impl Text {
    pub fn build(&self) -> String {
        let pick = |list: &[&str], index: u8| list[usize::from(index) % list.len()].to_owned();
        match self {
            Text::Raw(text) => text.clone(),
            Text::Hostile(index) => match HOSTILE.get(usize::from(*index) % (HOSTILE.len() + 1)) {
                Some(text) => (*text).to_owned(),
                None => "x".repeat(100_000),
            },
            Text::Plausible(index) => pick(PLAUSIBLE, *index),
            Text::Spliced { base, at, insert } => {
                let mut text = pick(PLAUSIBLE, *base);
                let at = usize::from(*at) % (text.len() + 1);
                text.insert(at, *insert);
                text
            }
            Text::Ip(ip) => ip.to_string(),
            Text::AtLimit { delta, fill } => {
                let count = MAX_VALUE_LEN.saturating_add_signed(isize::from(*delta % 4));
                std::iter::repeat_n(*fill, count).collect()
            }
        }
    }
}

/// A service port: mostly in range, so that instances get as far as the
/// checks on their strings.
#[derive(Arbitrary, Debug)]
pub enum Port {
    InRange(u16),
    Any(i64),
}

/// One health entry, every string of it chosen by the fuzzer.
#[derive(Arbitrary, Debug)]
pub struct HostileEntry {
    pub node: Text,
    pub node_address: Text,
    pub datacenter: Text,
    pub node_meta: Vec<(Text, Text)>,
    pub id: Text,
    pub name: Text,
    pub address: Text,
    pub port: Port,
    pub tags: Vec<Text>,
    pub meta: Vec<(Text, Text)>,
    /// `(CheckID, Status)`; no checks at all means passing.
    pub checks: Vec<(Text, Text)>,
}

impl HostileEntry {
    pub fn to_model(&self) -> model::HealthEntry {
        // No pairs is Consul's `null`, as it sends for a map never given.
        let map = |pairs: &[(Text, Text)]| -> Option<BTreeMap<String, String>> {
            (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| (k.build(), v.build())).collect())
        };
        model::HealthEntry {
            node: model::Node {
                id: String::new(),
                node: self.node.build(),
                address: self.node_address.build(),
                datacenter: self.datacenter.build(),
                tagged_addresses: None,
                meta: map(&self.node_meta),
            },
            service: model::Service {
                id: self.id.build(),
                service: self.name.build(),
                tags: self.tags.iter().map(Text::build).collect(),
                address: self.address.build(),
                port: match self.port {
                    Port::InRange(port) => i64::from(port),
                    Port::Any(port) => port,
                },
                meta: map(&self.meta),
                ..model::Service::default()
            },
            checks: self
                .checks
                .iter()
                .map(|(id, status)| model::Check {
                    check_id: id.build(),
                    status: status.build(),
                    ..model::Check::default()
                })
                .collect(),
        }
    }
}

/// The JSON body Consul would send for `entries`.
pub fn health_body(entries: &[HostileEntry]) -> Vec<u8> {
    let models: Vec<model::HealthEntry> = entries.iter().map(HostileEntry::to_model).collect();
    // Plain structs and string maps: serialising them cannot fail.
    serde_json::to_vec(&models).expect("model types serialise")
}

/// Whether `value` is a safe token: printable ASCII, no whitespace, none of
/// `; { } " ' \ # $` or backtick, at most `MAX_VALUE_LEN` bytes.
pub fn is_safe_token(value: &str, allow_empty: bool) -> bool {
    (allow_empty || !value.is_empty())
        && value.len() <= MAX_VALUE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b";{}\"'\\#$`".contains(&b))
}

/// Whether `value` is an IP address or a DNS host name (labels of letters,
/// digits, `-` and `_`, not starting or ending with `-`; one trailing dot).
pub fn is_address(value: &str) -> bool {
    if value.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn assert_safe_meta(meta: &SmallMap<String>, what: &str, owner: &dyn std::fmt::Debug) {
    for (key, value) in meta {
        assert!(
            is_safe_token(key, false),
            "unsafe {what} key {key:?} in {owner:?}"
        );
        assert!(
            is_safe_token(value, true),
            "unsafe {what} value {value:?} in {owner:?}"
        );
    }
}

fn assert_safe_tags(tags: &[String], owner: &dyn std::fmt::Debug) {
    for tag in tags {
        assert!(is_safe_token(tag, false), "unsafe tag {tag:?} in {owner:?}");
    }
    assert!(
        tags.windows(2).all(|w| w[0] <= w[1]),
        "tags not sorted in {owner:?}"
    );
}

/// The promise for instances: what reaches a template is safe to write
/// into nginx config unquoted.
pub fn assert_instances_safe(instances: &[Instance]) {
    for i in instances {
        for (what, value, allow_empty) in [
            ("id", &i.id, false),
            ("name", &i.name, false),
            ("node", &i.node, false),
            ("datacenter", &i.datacenter, true),
        ] {
            assert!(is_safe_token(value, allow_empty), "unsafe {what} in {i:?}");
        }
        assert!(is_address(&i.address), "bad address in {i:?}");
        assert!(
            i.node_address.is_empty() || is_address(&i.node_address),
            "bad node address in {i:?}"
        );
        assert!(i.port >= 1, "port 0 in {i:?}");
        assert_safe_tags(&i.tags, i);
        assert_safe_meta(&i.meta, "meta", i);
        assert_safe_meta(&i.node_meta, "node meta", i);
    }
    assert!(
        instances
            .windows(2)
            .all(|w| (&w[0].node, &w[0].id) <= (&w[1].node, &w[1].id)),
        "instances not sorted by node then id"
    );
}

/// The same promise for catalog services.
pub fn assert_services_safe(services: &[ServiceSummary]) {
    for s in services {
        assert!(is_safe_token(&s.name, false), "unsafe name in {s:?}");
        assert_safe_tags(&s.tags, s);
    }
}

/// The same promise for catalog nodes.
pub fn assert_nodes_safe(nodes: &[NodeInfo]) {
    for n in nodes {
        assert!(is_safe_token(&n.name, false), "unsafe name in {n:?}");
        assert!(is_address(&n.address), "bad address in {n:?}");
        assert!(
            is_safe_token(&n.datacenter, true),
            "unsafe datacenter in {n:?}"
        );
        assert!(is_safe_token(&n.id, true), "unsafe id in {n:?}");
        for (name, address) in &n.tagged_addresses {
            assert!(
                is_safe_token(name, false),
                "unsafe tagged address name in {n:?}"
            );
            assert!(is_address(address), "bad tagged address in {n:?}");
        }
        assert_safe_meta(&n.meta, "meta", n);
    }
}

/// Every identity field of a node's listing is safe, and so is the node.
pub fn assert_node_detail_safe(detail: &NodeDetail) {
    assert_nodes_safe(std::slice::from_ref(&detail.node));
    for s in &detail.services {
        assert!(is_safe_token(&s.id, false), "unsafe id in {s:?}");
        assert!(is_safe_token(&s.service, false), "unsafe name in {s:?}");
        assert!(
            s.address.is_empty() || is_address(&s.address),
            "bad address in {s:?}"
        );
        for tag in &s.tags {
            assert!(is_safe_token(tag, false), "unsafe tag in {s:?}");
        }
        assert_safe_meta(&s.meta, "meta", s);
    }
}
