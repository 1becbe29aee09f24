//! Webhook metrics, registered with the process's others (`crate::metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels: the endpoint's name (from the operator's file, so bounded) and
/// the outcome.
type EndpointLabels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct WebhookMetrics {
    /// Attempts by endpoint and outcome: ok, retry (failed, will retry),
    /// dead (failed past the retry horizon).
    pub deliveries: Family<EndpointLabels, Counter>,
    /// From sending a request to its answer (or failure), per endpoint.
    pub latency: Family<EndpointLabels, Histogram>,
    /// Deliveries waiting in the outbox (all replicas), as last measured.
    pub queued: Gauge,
    /// Dead letters kept (all replicas), as last measured.
    pub dead: Gauge,
}

impl WebhookMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            deliveries: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            queued: Gauge::default(),
            dead: Gauge::default(),
        };
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by endpoint and outcome (ok, retry, dead)",
            m.deliveries.clone(),
        );
        r.register(
            "webhook_latency_seconds",
            "From sending a webhook request to its answer, by endpoint",
            m.latency.clone(),
        );
        r.register(
            "webhook_queued",
            "Webhook deliveries waiting in the outbox (all replicas)",
            m.queued.clone(),
        );
        r.register(
            "webhook_dead_letters",
            "Webhook deliveries given up on and kept as dead letters (all replicas)",
            m.dead.clone(),
        );
        m
    }

    pub fn attempt(&self, endpoint: &str, outcome: &'static str, seconds: f64) {
        self.deliveries
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .observe(seconds);
    }
}
