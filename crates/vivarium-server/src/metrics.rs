//! Prometheus metrics: runs by outcome and trigger, durations, fuel, queue depth, and guest
//! instances created (so operators and tests can see that refused runs never start one).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished run.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// `ok`, `script_error`, ..., or `permission_denied`.
    pub outcome: String,
    /// `manual`, `alert`, `logs` or `schedule`.
    pub trigger: String,
}

/// Labels of an outbound request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EgressLabels {
    /// `allowed`, `refused` (by the policy) or `failed` (by the network or the peer).
    pub outcome: String,
    /// Why it was refused or failed (`not_allowed`, `private_address`, `timeout`, ...); `none`
    /// when it was answered.
    pub reason: String,
}

/// The service's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Finished runs.
    pub runs: Family<RunLabels, Counter>,
    /// Wall-clock time of sandbox calls.
    pub run_duration: Histogram,
    /// Fuel consumed by all runs.
    pub fuel: Counter<u64, AtomicU64>,
    /// Runs admitted and waiting for a sandbox slot.
    pub queued: Gauge,
    /// Runs executing in the sandbox.
    pub running: Gauge,
    /// Runs refused with 429 because the queue was full.
    pub rejected: Counter,
    /// Guest instances created, read from the sandbox at each scrape.
    pub instances: Gauge,
    /// Outbound requests of actions, by outcome and reason.
    pub egress: Family<EgressLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vivarium");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Finished action runs", runs.clone());
        let run_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "run_duration_seconds",
            "Wall-clock time of sandboxed calls",
            run_duration.clone(),
        );
        let fuel = Counter::<u64, AtomicU64>::default();
        registry.register("run_fuel", "Fuel consumed by runs", fuel.clone());
        let queued = Gauge::default();
        registry.register(
            "run_queue_depth",
            "Runs waiting for a sandbox slot",
            queued.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "runs_in_progress",
            "Runs executing in the sandbox",
            running.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "runs_rejected",
            "Runs refused because the queue was full",
            rejected.clone(),
        );
        let instances = Gauge::default();
        registry.register(
            "sandbox_instances_created",
            "Guest instances created since start",
            instances.clone(),
        );
        let egress = Family::<EgressLabels, Counter>::default();
        registry.register(
            "egress_requests",
            "Outbound HTTP requests of actions, by outcome and refusal or failure reason",
            egress.clone(),
        );
        Self {
            registry,
            egress,
            runs,
            run_duration,
            fuel,
            queued,
            running,
            rejected,
            instances,
        }
    }
}

impl Metrics {
    /// Counts a run's outbound requests.
    pub fn count_egress(&self, records: &[vivarium_egress::AuditRecord]) {
        for record in records {
            let labels = EgressLabels {
                outcome: record.outcome().into(),
                reason: record
                    .failure
                    .as_ref()
                    .map_or("none", |failure| failure.reason)
                    .into(),
            };
            self.egress.get_or_create(&labels).inc();
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "could not encode metrics");
        }
        text
    }
}
