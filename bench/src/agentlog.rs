//! Every request a tool made, from the agent's own log: a dev agent logs
//! each HTTP request it answers at DEBUG level,
//!
//! ```text
//! 2026-11-26T01:42:51.587Z [DEBUG] agent.http: Request finished: method=GET url="/v1/catalog/services?index=23&wait=300000ms&stale" from=127.0.0.1:53366 latency=512.855511ms
//! ```
//!
//! with the whole URL (so whether it was a blocking query, and on which
//! index) and how long it was held. The counters say how many requests
//! there were per route; this says which change each came after and what
//! kind of request it was. Both tools ask with `stale` (their default
//! `-max-stale` is 2 s) and the bench never does, which tells their
//! requests apart.

use crate::latency::Sample;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A blocking query answered faster than this was not parked: the index
/// it asked with was already behind when it arrived.
pub const IMMEDIATE: Duration = Duration::from_millis(5);

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// When the agent finished it, in milliseconds since the epoch.
    pub at_ms: i64,
    pub method: String,
    pub url: String,
    /// How long the agent held it.
    pub latency: Duration,
}

impl LoggedRequest {
    /// The path, with a service name replaced by `*`.
    pub fn route(&self) -> String {
        let path = self.url.split('?').next().unwrap_or_default();
        for prefix in ["/v1/health/service/", "/v1/catalog/service/"] {
            if path.starts_with(prefix) && path.len() > prefix.len() {
                return format!("{prefix}*");
            }
        }
        path.to_string()
    }

    /// The `index` it blocked on, if it was a blocking query.
    pub fn index(&self) -> Option<u64> {
        let query = self.url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("index="))
            .and_then(|n| n.parse().ok())
    }

    /// Whether one of the tools made it (they ask with `stale`).
    pub fn is_tool_s(&self) -> bool {
        self.url.split_once('?').is_some_and(|(_, q)| {
            q.split('&')
                .any(|p| p == "stale" || p.starts_with("stale="))
        })
    }

    pub fn class(&self) -> Class {
        match self.index() {
            None => Class::Read,
            Some(_) if self.latency < IMMEDIATE => Class::Immediate,
            Some(_) => Class::Parked,
        }
    }
}

/// What kind of request a logged one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A blocking query that waited for a change (or its `wait`).
    Parked,
    /// A blocking query answered at once: its index was already behind.
    Immediate,
    /// A read without `index`: it never blocks.
    Read,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Parked => "parked",
            Class::Immediate => "answered at once",
            Class::Read => "plain read",
        }
    }
}

/// `log` without the agent's "… in sync" lines (one per service on every
/// anti-entropy pass: most of a 1,000-service agent's log), for keeping.
pub fn without_sync_noise(log: &str) -> String {
    log.lines()
        .filter(|l| !l.contains(" in sync: "))
        .flat_map(|l| [l, "\n"])
        .collect()
}

/// Every `Request finished` line of `log`.
pub fn parse(log: &str) -> Vec<LoggedRequest> {
    log.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<LoggedRequest> {
    let rest = &line[line.find("Request finished: ")? + "Request finished: ".len()..];
    let at_ms = timestamp_ms(line.split_whitespace().next()?)?;
    let method = field(rest, "method=")?;
    let url = field(rest, "url=")?;
    let latency = go_duration(&field(rest, "latency=")?)?;
    Some(LoggedRequest {
        at_ms,
        method,
        url,
        latency,
    })
}

/// The value after `name` in `text`: up to the closing quote if quoted,
/// else up to the next space.
fn field(text: &str, name: &str) -> Option<String> {
    let start = text
        .find(&format!(" {name}"))
        .map(|i| i + 1)
        .or_else(|| text.starts_with(name).then_some(0))?;
    let value = &text[start + name.len()..];
    if let Some(quoted) = value.strip_prefix('"') {
        Some(quoted[..quoted.find('"')?].to_string())
    } else {
        Some(value.split_whitespace().next()?.to_string())
    }
}

/// `2026-11-26T01:42:51.587Z` in milliseconds since the epoch.
fn timestamp_ms(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    let days = days_from_civil(y, m, day);
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Go duration as Consul prints it: `1.5s`, `512.8ms`, `435.1µs`, `1m0.5s`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let (scale, unit_len) = [
            ("ns", 1e-9),
            ("µs", 1e-6),
            ("us", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .map(|(unit, scale)| (*scale, unit.len()))?;
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Wall-clock time in milliseconds since the epoch.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A tool's requests over a series of changes: per change kind, route and
/// class, how many.
#[derive(Debug, Clone, Default)]
pub struct Anatomy {
    /// How many changes of each kind.
    pub changes: BTreeMap<String, usize>,
    /// (change kind, route, class) → requests.
    pub requests: BTreeMap<(String, String, Class), u64>,
    /// Tool requests answered before the first change of the series.
    pub before_first: u64,
    /// A few of the requests that were not parked, with the change they
    /// followed, as evidence: (ms after the change, change kind, url,
    /// latency).
    pub examples: Vec<(i64, String, String, Duration)>,
}

/// How many not-parked requests to keep as examples.
const EXAMPLES: usize = 8;

impl Anatomy {
    /// Attributes each tool request in `log` to the last of `samples`'
    /// changes that started before the agent answered it (the log has
    /// millisecond timestamps; changes are at least 25 ms apart).
    pub fn of(log: &[LoggedRequest], samples: &[&Sample]) -> Anatomy {
        let mut anatomy = Anatomy::default();
        let mut starts: Vec<(i64, String)> = samples
            .iter()
            .map(|s| (epoch_ms(s.at), s.kind.name().to_string()))
            .collect();
        starts.sort();
        for (_, kind) in &starts {
            *anatomy.changes.entry(kind.clone()).or_default() += 1;
        }
        for request in log.iter().filter(|r| r.is_tool_s()) {
            let after = starts.partition_point(|(at, _)| *at <= request.at_ms);
            let Some((at, kind)) = after.checked_sub(1).map(|i| &starts[i]) else {
                anatomy.before_first += 1;
                continue;
            };
            let class = request.class();
            *anatomy
                .requests
                .entry((kind.clone(), request.route(), class))
                .or_default() += 1;
            if class != Class::Parked && anatomy.examples.len() < EXAMPLES {
                anatomy.examples.push((
                    request.at_ms - at,
                    kind.clone(),
                    request.url.clone(),
                    request.latency,
                ));
            }
        }
        anatomy
    }

    /// Requests after changes of `kind` on `route`, by class.
    pub fn count(&self, kind: &str, route: &str, class: Option<Class>) -> u64 {
        self.requests
            .iter()
            .filter(|((k, r, c), _)| k == kind && r == route && class.is_none_or(|x| *c == x))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every route seen.
    pub fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self.requests.keys().map(|(_, r, _)| r.clone()).collect();
        routes.sort();
        routes.dedup();
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"2026-11-26T01:42:51.587Z [DEBUG] agent.http: Request finished: method=GET url="/v1/catalog/services?index=23&wait=300000ms&stale" from=127.0.0.1:53366 latency=512.855511ms"#;

    #[test]
    fn parses_a_request_line() {
        let r = parse(LINE).pop().expect("one request");
        assert_eq!(r.method, "GET");
        assert_eq!(r.url, "/v1/catalog/services?index=23&wait=300000ms&stale");
        assert_eq!(r.index(), Some(23));
        assert!(r.is_tool_s());
        assert_eq!(r.class(), Class::Parked);
        assert_eq!(r.route(), "/v1/catalog/services");
        assert_eq!(r.latency, Duration::from_secs_f64(0.512_855_511));
        // 2026-11-26T01:42:51.587Z
        assert_eq!(r.at_ms, 1_795_657_371_587);
    }

    #[test]
    fn parses_unquoted_urls_and_go_durations() {
        let line = "2026-11-26T01:42:51.072Z [DEBUG] agent.http: Request finished: method=PUT url=/v1/agent/service/deregister/web-3 from=127.0.0.1:53404 latency=\"808.783µs\"";
        let r = parse(line).pop().expect("one request");
        assert_eq!(r.url, "/v1/agent/service/deregister/web-3");
        assert!(!r.is_tool_s());
        assert_eq!(r.class(), Class::Read);
        assert_eq!(go_duration("1m0.5s"), Some(Duration::from_millis(60_500)));
        assert_eq!(go_duration("74.3µs"), Some(Duration::from_nanos(74_300)));
        assert_eq!(
            go_duration("1.492311428s"),
            Some(Duration::from_nanos(1_492_311_428))
        );
        assert!(parse("2026-11-26T01:42:51.072Z [INFO] agent: Synced service").is_empty());
    }

    #[test]
    fn consul_template_s_stale_parameter_counts_as_a_tool_s() {
        let line = r#"2026-11-26T01:43:16.602Z [DEBUG] agent.http: Request finished: method=GET url="/v1/health/service/c?passing=1&stale=&wait=60000ms" from=127.0.0.1:49390 latency="325.995µs""#;
        let r = parse(line).pop().expect("one request");
        assert!(r.is_tool_s());
        assert_eq!(r.route(), "/v1/health/service/*");
        assert_eq!(r.class(), Class::Read);
    }

    #[test]
    fn sync_noise_is_left_out() {
        let log = "a\n2026 [DEBUG] agent: Service in sync: service=x\nb\n";
        assert_eq!(without_sync_noise(log), "a\nb\n");
    }

    #[test]
    fn the_epoch_is_day_zero() {
        assert_eq!(timestamp_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            timestamp_ms("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500)
        );
    }
}
