//! What templates may see of Consul: validated, normalised data built from
//! the raw [`super::model`] shapes.
//!
//! Service names, tags, meta, node names and addresses are written by
//! whoever registers a service, so they are untrusted. This is the one place
//! that decides what may reach a rendered file, so that no template has to:
//! - addresses must be IP addresses or DNS host names, ports 1–65535;
//! - every other string must be a *safe token*: printable ASCII with no
//!   whitespace and none of the characters nginx (or a shell) treats as
//!   syntax: `; { } " ' \ # $` and backtick, at most [`MAX_VALUE_LEN`] bytes.
//!
//! An instance whose identity (id, name, node, address, port, datacenter)
//! fails is skipped; a tag or meta entry that fails is dropped from its
//! instance. Each is reported as a [`Rejection`] for the caller to log and
//! count. KV values are the operator's own configuration and pass unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::{GeneralPurpose, general_purpose};

use super::model::{self, HealthEntry, KvPair};
pub use super::small_map::SmallMap;

/// Longest string passed on from Consul (its own limit for meta values).
pub const MAX_VALUE_LEN: usize = 512;

/// Decoded, validated data for one dependency.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Instances(Vec<Instance>),
    Services(Vec<ServiceSummary>),
    Nodes(Vec<NodeInfo>),
    /// `None`: there is no node by that name.
    Node(Option<Box<NodeDetail>>),
    Datacenters(Vec<String>),
    /// `None`: the key does not exist.
    Key(Option<String>),
    Keys(Vec<String>),
    Tree(Vec<KvEntry>),
    /// A local file's text; `None`: it cannot be read (see
    /// [`local_file`](crate::local_file)).
    File(Option<String>),
}

impl Data {
    /// Whether `self` lacks something `before` had: an instance, service,
    /// node, datacenter or key. What a catalog that has not re-synced yet
    /// looks like.
    pub fn lost_entries_since(&self, before: &Data) -> bool {
        fn missing<T: PartialEq>(before: &[T], now: &[T]) -> bool {
            before.iter().any(|b| !now.contains(b))
        }
        let ids = |list: &[Instance]| {
            list.iter()
                .map(|i| (i.node.clone(), i.id.clone()))
                .collect::<Vec<_>>()
        };
        match (before, self) {
            (Data::Instances(b), Data::Instances(n)) => missing(&ids(b), &ids(n)),
            (Data::Services(b), Data::Services(n)) => missing(
                &b.iter().map(|s| &s.name).collect::<Vec<_>>(),
                &n.iter().map(|s| &s.name).collect::<Vec<_>>(),
            ),
            (Data::Nodes(b), Data::Nodes(n)) => missing(
                &b.iter().map(|x| &x.name).collect::<Vec<_>>(),
                &n.iter().map(|x| &x.name).collect::<Vec<_>>(),
            ),
            (Data::Datacenters(b), Data::Datacenters(n)) | (Data::Keys(b), Data::Keys(n)) => {
                missing(b, n)
            }
            (Data::Key(b), Data::Key(n)) => b.is_some() && n.is_none(),
            (Data::Node(b), Data::Node(n)) => match (b, n) {
                (Some(_), None) => true,
                (Some(b), Some(n)) => missing(
                    &b.services.iter().map(|s| &s.id).collect::<Vec<_>>(),
                    &n.services.iter().map(|s| &s.id).collect::<Vec<_>>(),
                ),
                (None, _) => false,
            },
            (Data::Tree(b), Data::Tree(n)) => missing(
                &b.iter().map(|e| &e.key).collect::<Vec<_>>(),
                &n.iter().map(|e| &e.key).collect::<Vec<_>>(),
            ),
            // Different kinds never share a dependency.
            _ => false,
        }
    }
}

/// One service instance, as templates see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    /// The service address, or the node's when the service has none.
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: SmallMap<String>,
    pub node: String,
    pub node_id: String,
    pub node_address: String,
    pub node_meta: SmallMap<String>,
    /// The node's addresses by name (`lan`, `wan_ipv4`, …).
    pub node_tagged_addresses: SmallMap<String>,
    pub datacenter: String,
    /// The service's own addresses by name.
    pub tagged_addresses: SmallMap<TaggedAddress>,
    pub status: Status,
    /// The node and service checks behind `status`.
    pub checks: Vec<CheckInfo>,
    pub weights: model::Weights,
}

/// One of a service's tagged addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaggedAddress {
    pub address: String,
    pub port: u16,
}

/// One health check of an instance, as templates see it. Checks carry
/// identifiers and a status; their free text (`Notes`, `Output`) is never
/// read, and a `name` that is not a safe token (Consul's default names,
/// such as `Service 'web' check`, have quotes and spaces) is left empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckInfo {
    pub node: String,
    pub check_id: String,
    pub name: String,
    /// As Consul reports it: `passing`, `warning` or `critical`.
    pub status: String,
    /// Empty for node checks such as `serfHealth`.
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub check_type: String,
}

impl Instance {
    /// `address:port`, with IPv6 addresses in brackets as nginx wants them.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// Aggregated health of an instance: the worst of its node and service
/// checks, with maintenance worst of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    #[default]
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Maintenance => "maintenance",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        [
            Status::Passing,
            Status::Warning,
            Status::Critical,
            Status::Maintenance,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    pub(super) fn of_checks(checks: &[model::Check]) -> Status {
        checks
            .iter()
            .map(|c| {
                if c.check_id == "_node_maintenance"
                    || c.check_id.starts_with("_service_maintenance:")
                {
                    Status::Maintenance
                } else {
                    match c.status.as_str() {
                        "passing" => Status::Passing,
                        "warning" => Status::Warning,
                        // Unknown statuses count as failing: never route to what we can't judge.
                        _ => Status::Critical,
                    }
                }
            })
            .max()
            .unwrap_or(Status::Passing)
    }
}

/// One entry of the service catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub tags: Vec<String>,
}

/// One catalog node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    pub address: String,
    pub datacenter: String,
    /// The node's addresses by name (`lan`, `wan_ipv4`, …).
    pub tagged_addresses: SmallMap<String>,
    pub meta: SmallMap<String>,
}

/// One node and the services registered on it, sorted by service name,
/// then id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDetail {
    pub node: NodeInfo,
    pub services: Vec<NodeService>,
}

/// A service registered on a node, as the catalog lists it (no health).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeService {
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub meta: SmallMap<String>,
    /// 0 for a service registered without a port.
    pub port: u16,
    /// The service's own address; empty when it uses the node's.
    pub address: String,
    pub enable_tag_override: bool,
}

/// One KV entry under a prefix; `key` is relative to that prefix and
/// `path` is the whole key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: String,
    pub path: String,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
    pub session: String,
}

/// A value from Consul that was kept out of the data, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// What was dropped, e.g. `instance "web-1" of service "web"` or
    /// `tag of instance "web-1"`.
    pub subject: String,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skipped: {}", self.subject, self.reason)
    }
}

/// Collects rejections while data is being validated.
#[derive(Default)]
pub struct Rejections(pub Vec<Rejection>);

impl Rejections {
    fn push(&mut self, subject: impl Into<String>, reason: String) {
        self.0.push(Rejection {
            subject: subject.into(),
            reason,
        });
    }
}

/// Why a string is not a safe token, or `None` if it is one.
pub fn unsafe_token_reason(value: &str, allow_empty: bool) -> Option<String> {
    if value.is_empty() {
        return (!allow_empty).then(|| "empty".to_owned());
    }
    if value.len() > MAX_VALUE_LEN {
        return Some(format!(
            "{} bytes long (limit {MAX_VALUE_LEN}): {}",
            value.len(),
            quote_excerpt(value)
        ));
    }
    value
        .chars()
        .find(|&c| {
            !c.is_ascii_graphic()
                || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '#' | '$' | '`')
        })
        .map(|c| format!("contains {} in {}", describe_char(c), quote_excerpt(value)))
}

/// Why `address` is neither an IP address nor a DNS host name.
pub fn invalid_address_reason(address: &str) -> Option<String> {
    if address.parse::<IpAddr>().is_ok() || is_host_name(address) {
        None
    } else {
        Some(format!(
            "address {} is not an IP address or host name",
            quote_excerpt(address)
        ))
    }
}

fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\n' => "a newline".to_owned(),
        c if c.is_ascii_control() => format!("control character {:?}", c),
        c if !c.is_ascii() => format!("non-ASCII {:?}", c),
        c => format!("{c:?}"),
    }
}

/// A log-safe excerpt: escaped, and cut short so a 100 kB value stays a line.
pub fn quote_excerpt(value: &str) -> String {
    const SHOWN: usize = 60;
    let escaped: String = value
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > SHOWN {
        format!("\"{escaped}…\"")
    } else {
        format!("\"{escaped}\"")
    }
}

/// Instances from `/v1/health/service/:name`, validated and sorted by node
/// then id (Consul's order is not stable; ours must be, or every poll would
/// look like a change) unless `by_distance`: a `near` query's order is
/// Consul's answer, nearest first.
pub fn instances(
    entries: Vec<HealthEntry>,
    by_distance: bool,
    rejections: &mut Rejections,
) -> Vec<Instance> {
    let mut out: Vec<Instance> = entries
        .into_iter()
        .filter_map(|entry| instance(entry, rejections))
        .collect();
    if !by_distance {
        out.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    }
    fitted(out)
}

/// `list` without spare capacity. Lists collected from a decoded reply
/// reuse its buffer, which serde grew in steps (four slots for one entry),
/// and data is kept for as long as it is current.
fn fitted<T>(mut list: Vec<T>) -> Vec<T> {
    list.shrink_to_fit();
    list
}

fn instance(entry: HealthEntry, rejections: &mut Rejections) -> Option<Instance> {
    let HealthEntry {
        node,
        service,
        checks,
    } = entry;
    let subject = format!(
        "instance {} of service {}",
        quote_excerpt(&service.id),
        quote_excerpt(&service.service)
    );
    let address = if service.address.is_empty() {
        &node.address
    } else {
        &service.address
    };
    let problem = unsafe_token_reason(&service.id, false)
        .map(|r| format!("id {r}"))
        .or_else(|| {
            unsafe_token_reason(&service.service, false).map(|r| format!("service name {r}"))
        })
        .or_else(|| unsafe_token_reason(&node.node, false).map(|r| format!("node name {r}")))
        .or_else(|| unsafe_token_reason(&node.datacenter, true).map(|r| format!("datacenter {r}")))
        .or_else(|| invalid_address_reason(address))
        .or_else(|| {
            (!node.address.is_empty())
                .then(|| invalid_address_reason(&node.address))
                .flatten()
                .map(|r| format!("node {r}"))
        })
        .or_else(|| {
            (!(1..=65535).contains(&service.port))
                .then(|| format!("port {} is not 1-65535", service.port))
        });
    if let Some(reason) = problem {
        rejections.push(subject, reason);
        return None;
    }
    let status = Status::of_checks(&checks);
    let tags = safe_tags(service.tags, &subject, rejections);
    let meta = safe_meta(service.meta, &format!("meta of {subject}"), rejections);
    let node_meta = safe_meta(node.meta, &format!("node meta of {subject}"), rejections);
    let node_tagged_addresses = safe_addresses(
        node.tagged_addresses,
        &format!("node tagged addresses of {subject}"),
        rejections,
    );
    let tagged_addresses = safe_service_addresses(
        service.tagged_addresses,
        &format!("tagged addresses of {subject}"),
        rejections,
    );
    let node_id = match unsafe_token_reason(&node.id, true) {
        None => node.id,
        Some(reason) => {
            rejections.push(format!("node id of {subject}"), reason);
            String::new()
        }
    };
    let checks = safe_checks(checks, &subject, rejections);
    Some(Instance {
        address: address.clone(),
        // Checked to be in 1..=65535 above.
        port: u16::try_from(service.port).unwrap_or_default(),
        id: service.id,
        name: service.service,
        tags,
        meta,
        node: node.node,
        node_id,
        node_address: node.address,
        node_meta,
        node_tagged_addresses,
        datacenter: node.datacenter,
        tagged_addresses,
        status,
        checks,
        weights: service.weights.unwrap_or(model::Weights {
            passing: 1,
            warning: 1,
        }),
    })
}

/// Tagged node addresses: names must be safe tokens, values addresses.
fn safe_addresses(
    addresses: Option<BTreeMap<String, String>>,
    owner: &str,
    rejections: &mut Rejections,
) -> SmallMap<String> {
    let Some(addresses) = addresses else {
        return SmallMap::nil();
    };
    addresses
        .into_iter()
        .filter(|(name, address)| {
            let reason = unsafe_token_reason(name, false)
                .map(|r| format!("name {r}"))
                .or_else(|| invalid_address_reason(address));
            match reason {
                None => true,
                Some(reason) => {
                    rejections.push(owner.to_owned(), reason);
                    false
                }
            }
        })
        .collect()
}

/// Tagged service addresses: as node ones, with a port of 0–65535.
fn safe_service_addresses(
    addresses: Option<BTreeMap<String, model::ServiceAddress>>,
    owner: &str,
    rejections: &mut Rejections,
) -> SmallMap<TaggedAddress> {
    let Some(addresses) = addresses else {
        return SmallMap::nil();
    };
    addresses
        .into_iter()
        .filter_map(|(name, tagged)| {
            let port = u16::try_from(tagged.port).ok();
            let reason = unsafe_token_reason(&name, false)
                .map(|r| format!("name {r}"))
                .or_else(|| invalid_address_reason(&tagged.address))
                .or_else(|| {
                    port.is_none()
                        .then(|| format!("port {} is not 0-65535", tagged.port))
                });
            match (reason, port) {
                (None, Some(port)) => Some((
                    name,
                    TaggedAddress {
                        address: tagged.address,
                        port,
                    },
                )),
                (reason, _) => {
                    rejections.push(owner.to_owned(), reason.unwrap_or_default());
                    None
                }
            }
        })
        .collect()
}

/// Checks keep their identifiers and status; a check with an unsafe one is
/// dropped (it still counted towards the instance's status). Names that
/// are not safe tokens are left empty without a report: Consul's default
/// names all have spaces and quotes.
fn safe_checks(
    checks: Vec<model::Check>,
    owner: &str,
    rejections: &mut Rejections,
) -> Vec<CheckInfo> {
    let kept = checks
        .into_iter()
        .filter_map(|check| {
            let identifiers = [
                ("node", &check.node),
                ("id", &check.check_id),
                ("status", &check.status),
                ("service id", &check.service_id),
                ("service name", &check.service_name),
                ("type", &check.r#type),
            ];
            let problem = identifiers.iter().find_map(|(what, value)| {
                unsafe_token_reason(value, true).map(|r| format!("{what} {r}"))
            });
            if let Some(reason) = problem {
                rejections.push(format!("check of {owner}"), reason);
                return None;
            }
            let name = if unsafe_token_reason(&check.name, true).is_none() {
                check.name
            } else {
                String::new()
            };
            Some(CheckInfo {
                service_tags: safe_tags(
                    check.service_tags,
                    &format!("check of {owner}"),
                    rejections,
                ),
                node: check.node,
                check_id: check.check_id,
                name,
                status: check.status,
                service_id: check.service_id,
                service_name: check.service_name,
                check_type: check.r#type,
            })
        })
        .collect();
    fitted(kept)
}

fn safe_tags(tags: Vec<String>, owner: &str, rejections: &mut Rejections) -> Vec<String> {
    let mut kept: Vec<String> = tags
        .into_iter()
        .filter(|tag| match unsafe_token_reason(tag, false) {
            None => true,
            Some(reason) => {
                rejections.push(format!("tag of {owner}"), reason);
                false
            }
        })
        .collect();
    kept.sort();
    fitted(kept)
}

fn safe_meta(
    meta: Option<BTreeMap<String, String>>,
    owner: &str,
    rejections: &mut Rejections,
) -> SmallMap<String> {
    let Some(meta) = meta else {
        return SmallMap::nil();
    };
    meta.into_iter()
        .filter(|(key, value)| {
            let reason = unsafe_token_reason(key, false)
                .map(|r| format!("key {r}"))
                .or_else(|| {
                    unsafe_token_reason(value, true)
                        .map(|r| format!("value of {} {r}", quote_excerpt(key)))
                });
            match reason {
                None => true,
                Some(reason) => {
                    rejections.push(owner.to_owned(), reason);
                    false
                }
            }
        })
        .collect()
}

/// `/v1/catalog/services`: service name to tags, sorted by name.
pub fn services(
    catalog: BTreeMap<String, Option<Vec<String>>>,
    rejections: &mut Rejections,
) -> Vec<ServiceSummary> {
    catalog
        .into_iter()
        .filter_map(|(name, tags)| {
            let subject = format!("service {}", quote_excerpt(&name));
            if let Some(reason) = unsafe_token_reason(&name, false) {
                rejections.push(subject, format!("name {reason}"));
                return None;
            }
            let tags = safe_tags(tags.unwrap_or_default(), &subject, rejections);
            Some(ServiceSummary { name, tags })
        })
        .collect()
}

/// `/v1/catalog/nodes`, sorted by name.
pub fn nodes(raw: Vec<model::Node>, rejections: &mut Rejections) -> Vec<NodeInfo> {
    let mut out: Vec<NodeInfo> = raw
        .into_iter()
        .filter_map(|node| node_info(node, rejections))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `/v1/catalog/node/:name`: `None` for no such node, or one whose own
/// identity fails validation; services that fail are dropped from it.
pub fn node(
    raw: Option<model::CatalogNode>,
    rejections: &mut Rejections,
) -> Option<Box<NodeDetail>> {
    let raw = raw?;
    let node = node_info(raw.node, rejections)?;
    let mut services: Vec<NodeService> = raw
        .services
        .into_values()
        .filter_map(|service| node_service(service, &node.name, rejections))
        .collect();
    services.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
    Some(Box::new(NodeDetail { node, services }))
}

/// A node whose name, id, address or datacenter is unsafe is dropped;
/// unsafe meta and tagged addresses are dropped from it.
fn node_info(node: model::Node, rejections: &mut Rejections) -> Option<NodeInfo> {
    let subject = format!("node {}", quote_excerpt(&node.node));
    let problem = unsafe_token_reason(&node.node, false)
        .map(|r| format!("name {r}"))
        .or_else(|| unsafe_token_reason(&node.id, true).map(|r| format!("id {r}")))
        .or_else(|| invalid_address_reason(&node.address))
        .or_else(|| unsafe_token_reason(&node.datacenter, true).map(|r| format!("datacenter {r}")));
    if let Some(reason) = problem {
        rejections.push(subject, reason);
        return None;
    }
    let meta = safe_meta(node.meta, &format!("meta of {subject}"), rejections);
    let tagged_addresses = safe_addresses(
        node.tagged_addresses,
        &format!("tagged addresses of {subject}"),
        rejections,
    );
    Some(NodeInfo {
        id: node.id,
        name: node.node,
        address: node.address,
        datacenter: node.datacenter,
        tagged_addresses,
        meta,
    })
}

/// A service of a node's listing: its id and name must be safe tokens, its
/// address (if any) an address, its port 0–65535.
fn node_service(
    service: model::Service,
    node: &str,
    rejections: &mut Rejections,
) -> Option<NodeService> {
    let subject = format!(
        "service {} on node {}",
        quote_excerpt(&service.id),
        quote_excerpt(node)
    );
    let port = u16::try_from(service.port).ok();
    let problem = unsafe_token_reason(&service.id, false)
        .map(|r| format!("id {r}"))
        .or_else(|| unsafe_token_reason(&service.service, false).map(|r| format!("name {r}")))
        .or_else(|| {
            (!service.address.is_empty())
                .then(|| invalid_address_reason(&service.address))
                .flatten()
        })
        .or_else(|| {
            port.is_none()
                .then(|| format!("port {} is not 0-65535", service.port))
        });
    if let Some(reason) = problem {
        rejections.push(subject, reason);
        return None;
    }
    Some(NodeService {
        tags: safe_tags(service.tags, &subject, rejections),
        meta: safe_meta(service.meta, &format!("meta of {subject}"), rejections),
        id: service.id,
        service: service.service,
        port: port.unwrap_or_default(),
        address: service.address,
        enable_tag_override: service.enable_tag_override,
    })
}

/// `/v1/catalog/datacenters`, keeping only safe names.
pub fn datacenters(raw: Vec<String>, rejections: &mut Rejections) -> Vec<String> {
    raw.into_iter()
        .filter(|dc| match unsafe_token_reason(dc, false) {
            None => true,
            Some(reason) => {
                rejections.push("datacenter", reason);
                false
            }
        })
        .collect()
}

/// A single key's value (base64-decoded, lossy UTF-8); `None` if the key
/// exists but has no value is mapped to an empty string.
pub fn key_value(pairs: Vec<KvPair>, path: &str) -> Result<Option<String>, NotBase64> {
    let wanted = path.trim_start_matches('/');
    match pairs.into_iter().find(|p| p.key == wanted) {
        None => Ok(None),
        Some(pair) => decode_value(pair.value.as_deref()).map(Some),
    }
}

/// `?recurse` entries under `prefix`, keys made relative to it; folder
/// placeholders (keys ending in `/`) are skipped.
pub fn tree(pairs: Vec<KvPair>, prefix: &str) -> Result<Vec<KvEntry>, NotBase64> {
    let prefix = prefix.trim_start_matches('/');
    let mut out = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if pair.key.ends_with('/') {
            continue;
        }
        let relative = pair
            .key
            .strip_prefix(prefix)
            .unwrap_or(&pair.key)
            .trim_start_matches('/');
        out.push(KvEntry {
            key: relative.to_owned(),
            value: decode_value(pair.value.as_deref())?,
            path: pair.key.clone(),
            flags: pair.flags,
            create_index: pair.create_index,
            modify_index: pair.modify_index,
            lock_index: pair.lock_index,
            session: pair.session,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A KV value is not base64, as Consul would have sent it.
#[derive(Debug, thiserror::Error)]
#[error("KV value {excerpt} is not valid base64")]
pub struct NotBase64 {
    /// The value, quoted and cut short for a log line.
    excerpt: String,
    source: base64::DecodeError,
}

fn decode_value(value: Option<&str>) -> Result<String, NotBase64> {
    let Some(value) = value else {
        return Ok(String::new());
    };
    let bytes = KV_BASE64.decode(value).map_err(|source| NotBase64 {
        excerpt: quote_excerpt(value),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Standard base64 with padding, as Consul encodes KV values. Non-zero
/// bits after the last byte are ignored, as Go's decoder ignores them.
const KV_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    general_purpose::PAD.with_decode_allow_trailing_bits(true),
);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, address: &str, port: i64) -> HealthEntry {
        HealthEntry {
            node: model::Node {
                node: "node-1".into(),
                address: "10.0.0.1".into(),
                datacenter: "dc1".into(),
                ..Default::default()
            },
            service: model::Service {
                id: id.into(),
                service: "web".into(),
                address: address.into(),
                port,
                ..Default::default()
            },
            checks: vec![],
        }
    }

    fn one(entry: HealthEntry) -> (Vec<Instance>, Vec<Rejection>) {
        let mut rejections = Rejections::default();
        (instances(vec![entry], false, &mut rejections), rejections.0)
    }

    #[test]
    fn hostile_identity_values_skip_the_instance() {
        let hostile = [
            "10.9.9.9:80; return 200 x",
            "a;b",
            "a{b",
            "a}b",
            "a\"b",
            "a'b",
            "a\\b",
            "a\nb",
            "a b",
            "a#b",
            "a$b",
            "é",
            "",
        ];
        for value in hostile {
            let (kept, rejected) = one(entry(value, "10.0.0.2", 80));
            assert!(kept.is_empty(), "id {value:?} was kept");
            assert_eq!(rejected.len(), 1, "id {value:?}");
            let (kept, _) = one(entry("web-1", value, 80));
            // An empty service address falls back to the node's, which is valid.
            assert_eq!(
                kept.len(),
                usize::from(value.is_empty()),
                "address {value:?}"
            );
        }
        let long = "a".repeat(100_000);
        let (kept, rejected) = one(entry(&long, "10.0.0.2", 80));
        assert!(kept.is_empty());
        assert!(
            rejected[0].reason.contains("100000 bytes"),
            "{}",
            rejected[0]
        );
        assert!(
            rejected[0].to_string().len() < 300,
            "log line stays short: {}",
            rejected[0]
        );
    }

    #[test]
    fn addresses_must_be_ips_or_host_names_and_ports_in_range() {
        for good in [
            "10.0.0.2",
            "::1",
            "fe80::1",
            "web.internal",
            "host_1.example.com.",
        ] {
            assert_eq!(one(entry("w", good, 80)).0.len(), 1, "{good}");
        }
        for bad in ["10.0.0.2:80", "-bad.example", "a..b", "[::1]", "http://x"] {
            assert!(one(entry("w", bad, 80)).0.is_empty(), "{bad}");
        }
        for port in [0, -1, 65536] {
            assert!(one(entry("w", "10.0.0.2", port)).0.is_empty(), "{port}");
        }
    }

    #[test]
    fn hostile_tags_and_meta_are_dropped_but_the_instance_stays() {
        let mut e = entry("web-1", "", 8080);
        e.service.tags = vec!["primary".into(), "x; y".into(), "primary".into()];
        e.service.meta = Some(BTreeMap::from([
            ("weight".to_owned(), "5".to_owned()),
            ("evil".to_owned(), "}".to_owned()),
            ("empty".to_owned(), String::new()),
        ]));
        let (kept, rejected) = one(e);
        // A repeated tag stays repeated, as Consul stores it.
        assert_eq!(kept[0].tags, ["primary", "primary"]);
        assert_eq!(kept[0].meta.keys().collect::<Vec<_>>(), ["empty", "weight"]);
        assert_eq!(
            kept[0].address, "10.0.0.1",
            "falls back to the node address"
        );
        assert_eq!(rejected.len(), 2);
    }

    #[test]
    fn a_null_meta_stays_nil_and_an_emptied_one_does_not() {
        let nil = one(entry("web-1", "", 8080)).0;
        assert!(nil[0].meta.is_nil() && nil[0].tagged_addresses.is_nil());
        let mut e = entry("web-1", "", 8080);
        e.service.meta = Some(BTreeMap::from([("evil".to_owned(), "}".to_owned())]));
        let emptied = one(e).0;
        assert!(emptied[0].meta.is_empty() && !emptied[0].meta.is_nil());
        assert_ne!(nil[0], emptied[0], "the nil map renders apart");
    }

    #[test]
    fn status_is_the_worst_check_and_maintenance_beats_all() {
        let check = |id: &str, status: &str| model::Check {
            check_id: id.into(),
            status: status.into(),
            ..model::Check::default()
        };
        let cases = [
            (vec![], Status::Passing),
            (
                vec![check("a", "passing"), check("b", "warning")],
                Status::Warning,
            ),
            (
                vec![check("a", "critical"), check("b", "warning")],
                Status::Critical,
            ),
            (vec![check("a", "bogus")], Status::Critical),
            (
                vec![
                    check("_node_maintenance", "critical"),
                    check("b", "passing"),
                ],
                Status::Maintenance,
            ),
            (
                vec![check("_service_maintenance:web-1", "critical")],
                Status::Maintenance,
            ),
        ];
        for (checks, want) in cases {
            let mut e = entry("w", "10.0.0.2", 80);
            e.checks = checks.clone();
            assert_eq!(one(e).0[0].status, want, "{checks:?}");
        }
    }

    #[test]
    fn instances_are_sorted_by_node_then_id() {
        let mut rejections = Rejections::default();
        let mut b = entry("b", "10.0.0.2", 80);
        b.node.node = "n1".into();
        let mut a = entry("a", "10.0.0.3", 80);
        a.node.node = "n2".into();
        let mut c = entry("c", "10.0.0.4", 80);
        c.node.node = "n1".into();
        let ids: Vec<String> = instances(vec![a, c, b], false, &mut rejections)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let (kept, _) = one(entry("w", "fe80::1", 443));
        assert_eq!(kept[0].endpoint(), "[fe80::1]:443");
        let (kept, _) = one(entry("w", "10.0.0.2", 443));
        assert_eq!(kept[0].endpoint(), "10.0.0.2:443");
    }

    #[test]
    fn losing_entries_is_told_apart_from_gaining_or_changing_them() {
        let (a, b) = (
            one(entry("a", "10.0.0.2", 80)).0,
            one(entry("b", "10.0.0.3", 80)).0,
        );
        let both = Data::Instances([a.clone(), b.clone()].concat());
        let only_a = Data::Instances(a.clone());
        let mut a_moved = a.clone();
        a_moved[0].port = 81;
        assert!(only_a.lost_entries_since(&both));
        assert!(Data::Instances(vec![]).lost_entries_since(&only_a));
        assert!(!both.lost_entries_since(&only_a), "gaining is not losing");
        assert!(
            !Data::Instances(a_moved).lost_entries_since(&only_a),
            "a changed instance is still there"
        );
        assert!(Data::Key(None).lost_entries_since(&Data::Key(Some("x".into()))));
        assert!(!Data::Key(Some("y".into())).lost_entries_since(&Data::Key(Some("x".into()))));
        let entry = |k: &str| KvEntry {
            key: k.into(),
            ..KvEntry::default()
        };
        assert!(
            Data::Tree(vec![entry("a")])
                .lost_entries_since(&Data::Tree(vec![entry("a"), entry("b")]))
        );
    }

    #[test]
    fn kv_values_decode_from_base64() {
        for (encoded, want) in [
            ("", ""),
            ("YQ==", "a"),
            ("YWI=", "ab"),
            ("YWJj", "abc"),
            ("aGVsbG8gd29ybGQ=", "hello world"),
            // Trailing bits are ignored, as Go ignores them.
            ("YR==", "a"),
        ] {
            assert_eq!(decode_value(Some(encoded)).unwrap(), want, "{encoded}");
        }
        assert_eq!(decode_value(None).unwrap(), "");
        for bad in ["Y", "YQ", "YQ=", "Y===", "!!!!", "YQ==YQ=="] {
            assert_eq!(
                decode_value(Some(bad)).unwrap_err().to_string(),
                format!("KV value \"{bad}\" is not valid base64"),
                "{bad}"
            );
        }
    }

    #[test]
    fn trees_are_relative_and_skip_folders() {
        let pair = |k: &str, v: Option<&str>| KvPair {
            key: k.into(),
            value: v.map(str::to_owned),
            ..KvPair::default()
        };
        let got = tree(
            vec![
                pair("app/", None),
                pair("app/b", Some("Yg==")),
                pair("app/a/x", None),
            ],
            "/app",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                KvEntry {
                    key: "a/x".into(),
                    path: "app/a/x".into(),
                    ..KvEntry::default()
                },
                KvEntry {
                    key: "b".into(),
                    value: "b".into(),
                    path: "app/b".into(),
                    ..KvEntry::default()
                }
            ]
        );
    }

    #[test]
    fn a_node_keeps_its_safe_services_sorted_by_name_then_id() {
        let service = |id: &str, name: &str, address: &str, port: i64| model::Service {
            id: id.into(),
            service: name.into(),
            address: address.into(),
            port,
            tags: vec!["b".into(), "a b".into(), "a".into()],
            ..Default::default()
        };
        let raw = model::CatalogNode {
            node: model::Node {
                node: "n1".into(),
                address: "10.0.0.1".into(),
                tagged_addresses: Some(BTreeMap::from([
                    ("lan".into(), "10.0.0.1".into()),
                    ("x".into(), "x;y".into()),
                ])),
                ..Default::default()
            },
            services: [
                service("web-2", "web", "", 0),
                service("api-1", "api", "10.0.1.1", 9000),
                service("web-1", "web", "10.0.1.2", 8080),
                service("evil", "web;", "", 80),
                service("far", "web", "10.0.0.1 ; x", 80),
                service("big", "web", "", 70000),
            ]
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect(),
        };
        let mut rejections = Rejections::default();
        let detail = node(Some(raw), &mut rejections).expect("a valid node");
        let ids: Vec<&str> = detail.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["api-1", "web-1", "web-2"]);
        assert_eq!(
            detail.services[0].tags,
            ["a", "b"],
            "the unsafe tag is dropped"
        );
        assert_eq!(
            detail.services[2].port, 0,
            "a service without a port is kept"
        );
        assert_eq!(
            detail.node.tagged_addresses.keys().collect::<Vec<_>>(),
            ["lan"]
        );
        let reasons: Vec<String> = rejections.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons.len(),
            7,
            "one address, three services, three tags: {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("port 70000")),
            "{reasons:?}"
        );

        assert_eq!(node(None, &mut rejections), None, "no such node");
        let hostile = model::CatalogNode {
            node: model::Node {
                node: "n1\nserver evil".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(node(Some(hostile), &mut rejections), None);
    }
}
