//! Counting Consul HTTP requests: the agent's own cumulative counter
//! `consul_api_http_count{method, path}` (from `/v1/agent/metrics?format=
//! prometheus`, which needs `telemetry { prometheus_retention_time }`), the
//! requests the bench itself made to the same agent, and the difference of
//! the two between snapshots, which is the tool's share.
//!
//! Consul counts a request when its handler returns, so a blocking query
//! open across a snapshot is counted in the window where it ends; requests
//! refused with 429 by the per-client connection limit never reach a handler
//! and are not counted at all (the bench counts those separately).

use std::collections::BTreeMap;
use std::fmt;

/// The metric's path label of the metrics endpoint itself, left out of
/// every total: reading the counters must not change them.
pub const METRICS_PATH: &str = "v1_agent_metrics";

/// Request counts by method and Consul's path label (`v1_health_service_`:
/// the route's pattern with `/` turned into `_`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts(BTreeMap<(String, String), u64>);

impl RequestCounts {
    /// Reads `consul_api_http_count{method="GET",path="…"} N` lines from a
    /// Prometheus text exposition.
    pub fn from_prometheus(text: &str) -> RequestCounts {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("consul_api_http_count{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let (Some(method), Some(path)) = (label(labels, "method"), label(labels, "path"))
            else {
                continue;
            };
            // The exposition writes counters as floats ("12" or "1.2e+06").
            if let Ok(n) = value.trim().parse::<f64>() {
                counts.insert((method.to_string(), path.to_string()), n as u64);
            }
        }
        RequestCounts(counts)
    }

    /// Adds one request.
    pub fn add(&mut self, method: &str, path: &str) {
        *self
            .0
            .entry((method.to_string(), path.to_string()))
            .or_default() += 1;
    }

    /// All requests except reads of the metrics endpoint.
    pub fn total(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, path), _)| path != METRICS_PATH)
            .map(|(_, n)| n)
            .sum()
    }

    /// `self - earlier`, per method and path (saturating: a counter never
    /// goes down while the agent runs).
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        let counts = self
            .0
            .iter()
            .map(|(key, n)| (key.clone(), n.saturating_sub(earlier.get(key))))
            .filter(|(_, n)| *n > 0)
            .collect();
        RequestCounts(counts)
    }

    /// `self - mine`: what is left once the bench's own requests are taken
    /// out. Panics if the bench claims more requests on a route than the
    /// agent counted, which means the bench's path labels are wrong.
    pub fn without(&self, mine: &RequestCounts) -> RequestCounts {
        for (key, n) in &mine.0 {
            if key.1 != METRICS_PATH {
                assert!(
                    self.get(key) >= *n,
                    "the bench made {n} {} {} requests but the agent counted only {}: \
                     the bench's path label for that route does not match Consul's",
                    key.0,
                    key.1,
                    self.get(key)
                );
            }
        }
        self.since(mine)
    }

    /// The count for one method and path.
    fn get(&self, key: &(String, String)) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// `(method path, count)` pairs, metrics reads left out.
    pub fn routes(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.0
            .iter()
            .filter(|((_, path), _)| path != METRICS_PATH)
            .map(|((method, path), n)| (format!("{method} {path}"), *n))
    }
}

impl fmt::Display for RequestCounts {
    /// `GET v1_health_service_ 12, GET v1_catalog_services 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.routes().map(|(r, n)| format!("{r} {n}")).collect();
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// The value of `name="value"` in a Prometheus label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# TYPE consul_api_http summary
consul_api_http_count 0
consul_api_http_count{method=\"GET\",path=\"v1_agent_metrics\"} 2
consul_api_http_count{method=\"GET\",path=\"v1_health_service_\"} 8
consul_api_http_count{method=\"PUT\",path=\"v1_agent_check_fail_\"} 2
consul_api_http_sum{method=\"GET\",path=\"v1_health_service_\"} 5.75
";

    #[test]
    fn reads_labelled_counts_and_skips_the_metrics_route_in_totals() {
        let counts = RequestCounts::from_prometheus(SAMPLE);
        assert_eq!(counts.total(), 10);
        assert_eq!(
            counts.to_string(),
            "GET v1_health_service_ 8, PUT v1_agent_check_fail_ 2"
        );
    }

    #[test]
    fn takes_out_the_bench_s_own_requests() {
        let counts = RequestCounts::from_prometheus(SAMPLE);
        let mut mine = RequestCounts::default();
        mine.add("PUT", "v1_agent_check_fail_");
        mine.add("PUT", "v1_agent_check_fail_");
        mine.add("GET", "v1_health_service_");
        assert_eq!(
            counts.without(&mine).to_string(),
            "GET v1_health_service_ 7"
        );
    }

    #[test]
    #[should_panic(expected = "path label")]
    fn a_mislabelled_own_request_is_caught() {
        let counts = RequestCounts::from_prometheus(SAMPLE);
        let mut mine = RequestCounts::default();
        mine.add("GET", "v1/health/service");
        let _ = counts.without(&mine);
    }
}
