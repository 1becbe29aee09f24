//! Prometheus metrics, served as text on their own port (`/metrics`).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use approval_api::v1::ErrorReason;

use crate::domain::{OnTimeout, Status, Verdict};
use crate::shutdown::Shutdown;

type Labels = Vec<(&'static str, &'static str)>;

/// Every metric of one `approvald` process. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    pub created: Counter,
    /// By outcome: approved, rejected, expired, cancelled.
    pub finished: Family<Labels, Counter>,
    /// Pending approvals in the store (all replicas), as this replica sees it.
    pub pending: Gauge,
    pub waiters: Gauge,
    pub watchers: Gauge,
    /// Watches the server ended, by reason: behind (a slow client),
    /// events_trimmed (it fell behind the event log), history_changed.
    pub watchers_ended: Family<Labels, Counter>,
    /// From a decision being made to a waiter on this replica having it.
    pub decision_latency: Histogram,
    pub store_errors: Counter,
    /// 1 while the store accepts writes, 0 while it refuses them.
    pub store_writable: Gauge,
    /// Writes the store refused, by cause (out_of_memory, read_only...).
    pub store_write_refusals: Family<Labels, Counter>,
    /// 1 when the store may evict keys under memory pressure (Redis
    /// `maxmemory-policy` other than `noeviction`): approvals can vanish.
    pub store_evicting: Gauge,
    /// Writes whose answer was lost and that a retry settled (the caller got
    /// the truth), and those still unknown when the call had to answer.
    pub outcomes_settled: Counter,
    pub outcomes_unknown: Counter,
    /// Votes recorded by this replica, by decision (approve, reject).
    pub votes: Family<Labels, Counter>,
    /// Approvals a policy decided at their deadline, by outcome (approve).
    pub policy_decisions: Family<Labels, Counter>,
    /// Reminders this replica wrote (for notifications).
    pub reminders: Counter,
    /// Calls a limit refused (RESOURCE_EXHAUSTED), by limit: rate_limited,
    /// too_many_invalid_credentials, open_approvals_quota, watcher_cap.
    pub limit_refusals: Family<Labels, Counter>,
    pub webhooks: crate::webhooks::WebhookMetrics,
    registry: std::sync::Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let created = Counter::default();
        let finished = Family::<Labels, Counter>::default();
        let pending = Gauge::default();
        let waiters = Gauge::default();
        let watchers = Gauge::default();
        let watchers_ended = Family::<Labels, Counter>::default();
        let decision_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let store_errors = Counter::default();
        let store_writable = Gauge::default();
        let store_write_refusals = Family::<Labels, Counter>::default();
        let store_evicting = Gauge::default();
        let outcomes_settled = Counter::default();
        let outcomes_unknown = Counter::default();
        let votes = Family::<Labels, Counter>::default();
        let policy_decisions = Family::<Labels, Counter>::default();
        let reminders = Counter::default();
        let limit_refusals = Family::<Labels, Counter>::default();
        let mut r = Registry::with_prefix("approvald");
        r.register(
            "votes",
            "Votes recorded (Respond), by decision: approve, reject",
            votes.clone(),
        );
        r.register(
            "policy_decisions",
            "Approvals their policy decided at the deadline (on_timeout), by outcome: approve",
            policy_decisions.clone(),
        );
        r.register(
            "reminders",
            "Reminders written for pending approvals (their policy's remind_after)",
            reminders.clone(),
        );
        r.register(
            "limit_refusals",
            "Calls a limit refused (RESOURCE_EXHAUSTED), by limit: rate_limited, too_many_invalid_credentials, open_approvals_quota, watcher_cap",
            limit_refusals.clone(),
        );
        r.register("approvals_created", "Approvals created", created.clone());
        r.register(
            "approvals_finished",
            "Approvals that became final, by outcome",
            finished.clone(),
        );
        r.register(
            "approvals_pending",
            "Approvals pending in the store",
            pending.clone(),
        );
        r.register(
            "waiters",
            "Calls on this replica waiting for a decision",
            waiters.clone(),
        );
        r.register(
            "watchers",
            "WatchPending streams open on this replica",
            watchers.clone(),
        );
        r.register(
            "watchers_ended",
            "WatchPending streams the server ended, by reason (behind, events_trimmed, history_changed)",
            watchers_ended.clone(),
        );
        r.register(
            "decision_latency_seconds",
            "From a decision being recorded to a waiter on this replica having it",
            decision_latency.clone(),
        );
        r.register(
            "store_errors",
            "Failed calls to the store (Redis)",
            store_errors.clone(),
        );
        r.register(
            "store_writable",
            "1 while the store (Redis) accepts writes, 0 while it refuses them (readiness is NOT_SERVING)",
            store_writable.clone(),
        );
        r.register(
            "store_write_refusals",
            "Writes the store (Redis) refused, by cause: out_of_memory, read_only, loading, master_down, busy, cannot_persist, not_enough_replicas",
            store_write_refusals.clone(),
        );
        r.register(
            "store_evicting",
            "1 when Redis may evict keys (maxmemory-policy is not noeviction): approvals can silently vanish",
            store_evicting.clone(),
        );
        r.register(
            "store_outcomes_settled",
            "Writes whose answer from the store was lost, settled by repeating them (the caller got the truth)",
            outcomes_settled.clone(),
        );
        r.register(
            "store_outcomes_unknown",
            "Writes whose outcome was still unknown when the call answered (UNAVAILABLE, outcome unknown)",
            outcomes_unknown.clone(),
        );
        let webhooks = crate::webhooks::WebhookMetrics::register(&mut r);
        Self {
            created,
            finished,
            pending,
            waiters,
            watchers,
            watchers_ended,
            decision_latency,
            store_errors,
            store_writable,
            store_write_refusals,
            store_evicting,
            outcomes_settled,
            outcomes_unknown,
            votes,
            policy_decisions,
            reminders,
            limit_refusals,
            webhooks,
            registry: std::sync::Arc::new(r),
        }
    }

    pub fn finished(&self, status: Status) {
        self.finished
            .get_or_create(&vec![("outcome", status.as_str())])
            .inc();
    }

    pub fn vote(&self, verdict: Verdict) {
        self.votes
            .get_or_create(&vec![("decision", verdict.name())])
            .inc();
    }

    pub fn auto_decided(&self, outcome: OnTimeout) {
        self.policy_decisions
            .get_or_create(&vec![("outcome", outcome.name())])
            .inc();
    }

    pub fn watchers_ended(&self, reason: &'static str) {
        self.watchers_ended
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    pub fn refused(&self, cause: &'static str) {
        self.store_write_refusals
            .get_or_create(&vec![("cause", cause)])
            .inc();
    }

    /// A call refused for `reason`; reasons that are not limits are not
    /// counted here.
    pub fn limit_refused(&self, reason: ErrorReason) {
        let limit = match reason {
            ErrorReason::RateLimited => "rate_limited",
            ErrorReason::TooManyInvalidCredentials => "too_many_invalid_credentials",
            ErrorReason::OpenApprovalsQuota => "open_approvals_quota",
            ErrorReason::WatcherCap => "watcher_cap",
            _ => return,
        };
        self.limit_refusals
            .get_or_create(&vec![("limit", limit)])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Serves `/metrics` on `listener` until shutdown.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) {
        loop {
            let (stream, _peer): (_, SocketAddr) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener accept failed");
                        continue;
                    }
                },
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(metrics.respond(req.uri().path())) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn respond(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, content_type, body) = match path {
            "/metrics" => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.render(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found: metrics are at /metrics\n".to_string(),
            ),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }
}

/// Keeps a gauge up while a call is open.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
