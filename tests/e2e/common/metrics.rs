//! The service's Prometheus metrics, scraped over HTTP and parsed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::api::Api;
use super::process::Server;
use super::wait_for;

impl Server {
    /// The current metrics.
    #[track_caller]
    pub fn metrics(&self) -> Metrics {
        let reply = self.request("GET", "/metrics", &[], None);
        reply.expect_status(200);
        Metrics::parse(&reply.text())
    }

    /// Waits (up to 30 s) until exactly `count` runs are in progress, as its metrics say.
    #[track_caller]
    pub fn wait_for_runs_in_progress(&self, count: u32) {
        let what = format!("{count} run(s) in progress");
        wait_for(Duration::from_secs(30), &what, || {
            let now = self.metrics().get("vivarium_runs_in_progress", &[]);
            (now == Some(f64::from(count))).then_some(())
        });
    }
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The raw text.
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses the exposition (comments skipped).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Self {
            text: text.to_string(),
            samples,
        }
    }

    /// The sample `name` with exactly `labels`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
    }

    /// The sample, or 0 when absent (counters not yet incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Guest instances created since start.
    #[track_caller]
    pub fn instances(&self) -> f64 {
        self.get("vivarium_sandbox_instances_created", &[])
            .unwrap_or_else(|| panic!("no instance gauge in:\n{}", self.text))
    }

    /// `vivarium_runs_total{outcome, trigger}`.
    pub fn runs(&self, outcome: &str, trigger: &str) -> f64 {
        self.value(
            "vivarium_runs_total",
            &[("outcome", outcome), ("trigger", trigger)],
        )
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}
