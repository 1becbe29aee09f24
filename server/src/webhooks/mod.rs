//! Webhooks: signed HTTP messages to the operator's endpoints when
//! approvals are created, decided, expire or are cancelled.
//!
//! Two tasks per replica, over the store's outbox (`store::outbox`):
//! - the planner claims events nobody planned yet and queues one delivery
//!   per matching endpoint (atomically with marking the event planned);
//! - the sender takes due deliveries with a lease, at most `MAX_IN_FLIGHT`
//!   at once, and sends them: success removes one, failure schedules it
//!   again (exponential backoff with jitter) until the endpoint's
//!   `retry_for` passes, then it becomes a dead letter.
//!
//! Neither is on the path of a decision: the use cases only append events,
//! as they always do, so a slow or dead receiver never delays or changes an
//! approval. A third task re-reads the configuration file on SIGHUP and
//! when it changes (a broken file keeps the last good endpoints).

mod config;
mod event;
mod metrics;
mod signing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use config::{Endpoint, Endpoints, Format, WebhookEntry};
pub use event::WebhookEvent;
pub use metrics::WebhookMetrics;

use crate::audit::TARGET as AUDIT_TARGET;
use crate::domain::{ApprovalId, DomainError, Event, Millis};
use crate::shutdown::Shutdown;
use crate::store::outbox::{DeadLetter, Delivery};
use crate::store::Store;
use crate::telemetry;
use tracing::Instrument;

/// Events the planner claims at once.
const PLAN_BATCH: usize = 100;
/// How long one blocking read of unplanned events waits.
const PLAN_BLOCK: Duration = Duration::from_secs(2);
/// Requests in flight at once on one replica.
const MAX_IN_FLIGHT: usize = 32;
/// Longest pause of the sender between looks at the outbox (deliveries
/// other replicas planned, retries coming due).
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// Pause after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// A lease outlasts the longest request by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Backoff: the first retry after about this long, doubling, at most
/// `LONGEST_RETRY`; each delay is drawn between half and all of it.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(600);
/// How often the outbox's sizes are measured for the gauges.
const SIZES_EVERY: Duration = Duration::from_secs(5);
/// TCP connect timeout (the endpoint's `timeout` bounds the whole request).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    endpoints: watch::Sender<Arc<Endpoints>>,
    /// The configuration file, re-read on SIGHUP and when it changes.
    path: Option<PathBuf>,
    metrics: WebhookMetrics,
    http: reqwest::Client,
    /// Wakes the sender: deliveries planned, or a request finished.
    wake: Notify,
    in_flight: Arc<Semaphore>,
    /// This replica's name in the planners' consumer group.
    consumer: String,
    shutdown: Shutdown,
}

impl Webhooks {
    /// Reads the endpoints from the configuration file (none without one);
    /// a file that does not load refuses the start.
    pub fn new(
        path: Option<PathBuf>,
        store: Arc<dyn Store>,
        metrics: WebhookMetrics,
        shutdown: Shutdown,
    ) -> Result<Self, String> {
        let endpoints = match &path {
            Some(path) => Endpoints::load(path)?,
            None => Endpoints::default(),
        };
        let http = reqwest::Client::builder()
            // A receiver's redirect is a failure, never followed: the
            // operator's configuration alone says where messages go.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(4)
            .user_agent(concat!("approvald-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhooks: cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                endpoints: watch::channel(Arc::new(endpoints)).0,
                path,
                metrics,
                http,
                wake: Notify::new(),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                consumer: format!("replica-{}", uuid::Uuid::now_v7().simple()),
                shutdown,
            }),
        })
    }

    /// The endpoints in force.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.inner.endpoints.borrow().clone()
    }

    /// Starts the planners (one per partition of the event log), the
    /// sender and (with a file) the reloader.
    pub fn start(&self, reload_every: Option<Duration>) -> Vec<tokio::task::JoinHandle<()>> {
        let n = self.endpoints().list.len();
        if n > 0 {
            tracing::info!(endpoints = n, "webhooks on");
        }
        let mut tasks: Vec<_> = (0..self.store().partitions())
            .map(|part| tokio::spawn(self.clone().run_planner(part)))
            .collect();
        tasks.push(tokio::spawn(self.clone().run_sender()));
        if let Some(path) = self.inner.path.clone() {
            tasks.push(tokio::spawn(self.clone().run_reload(path, reload_every)));
        }
        tasks
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The newest dead letters, at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, DomainError> {
        self.store().dead_letters(limit).await
    }

    /// Sends a dead letter again (attempts and horizon start over); false
    /// when there is none with this id. `by` is who asked, for the audit.
    pub async fn revive(&self, id: &str, by: &str) -> Result<bool, DomainError> {
        let revived = self.store().revive(id).await?;
        if revived {
            tracing::info!(
                target: AUDIT_TARGET,
                action = "webhook_revived",
                delivery = id,
                principal = by,
                "webhook dead letter queued again"
            );
            self.inner.wake.notify_one();
        }
        Ok(revived)
    }

    /// Waits until there are endpoints; false on shutdown.
    async fn until_configured(&self, config: &mut watch::Receiver<Arc<Endpoints>>) -> bool {
        loop {
            if !config.borrow_and_update().is_empty() {
                return true;
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return false,
                changed = config.changed() => if changed.is_err() { return false },
            }
        }
    }

    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.inner.shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    // ---- planning --------------------------------------------------------

    /// Plans the events of partition `part`'s log.
    async fn run_planner(self, part: usize) {
        let mut config = self.inner.endpoints.subscribe();
        loop {
            if !self.until_configured(&mut config).await {
                return;
            }
            let read = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                read = self.store().unplanned_events(part, &self.inner.consumer, PLAN_BATCH, PLAN_BLOCK) => read,
            };
            let mut events = match read {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: cannot read events to plan; retrying");
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            // The log's entries leave the approval's body out (type,
            // context, labels): read it for the batch, in one round trip.
            // Should that fail, the events stay claimed: planned later
            // (takeover). An approval whose record is gone goes out with
            // what the entry holds.
            let completed = self
                .store()
                .complete_events(&mut events, &|e| WebhookEvent::of(e).is_some())
                .await;
            if let Err(e) = completed {
                tracing::warn!(error = %e, "webhooks: cannot read the approvals of events to plan; retrying later");
                if !self.pause(STORE_RETRY).await {
                    return;
                }
                continue;
            }
            let endpoints = self.endpoints();
            for event in events {
                let deliveries = self.deliveries_for(&endpoints, &event);
                if let Err(e) = self.store().plan(part, event.cursor, &deliveries).await {
                    // The event stays claimed: planned later (takeover).
                    tracing::warn!(error = %e, cursor = %event.cursor, "webhooks: cannot queue deliveries; retrying later");
                    break;
                }
                if !deliveries.is_empty() {
                    self.inner.wake.notify_one();
                }
            }
        }
    }

    /// One delivery per endpoint that wants the event; none for an event
    /// older than every retry horizon (a backlog from before webhooks were
    /// on).
    fn deliveries_for(&self, endpoints: &Endpoints, event: &Event) -> Vec<Delivery> {
        let Some(kind) = WebhookEvent::of(event) else {
            return Vec::new();
        };
        let now = self.store().now();
        if Millis(event.cursor.ms).plus(endpoints.longest_retry_for()) < now {
            return Vec::new();
        }
        endpoints
            .list
            .iter()
            .filter(|ep| ep.wants(kind, &event.approval.approval_type))
            .filter_map(|ep| match event::render(ep, kind, event) {
                Ok(body) => Some(Delivery {
                    id: Delivery::id_for(event.partition, event.cursor, &ep.name),
                    endpoint: ep.name.clone(),
                    event: kind.name().to_string(),
                    approval_id: event.approval.id.to_string(),
                    approval_type: event.approval.approval_type.clone(),
                    body,
                    attempts: 0,
                    planned_at: now.0,
                    last_error: String::new(),
                }),
                Err(e) => {
                    tracing::error!(error = %e, endpoint = %ep.name, "webhooks: cannot render a message");
                    None
                }
            })
            .collect()
    }

    // ---- sending ---------------------------------------------------------

    async fn run_sender(self) {
        let mut config = self.inner.endpoints.subscribe();
        let mut sizes_at: Option<Instant> = None;
        loop {
            if !self.until_configured(&mut config).await {
                return;
            }
            if sizes_at.is_none_or(|t| t.elapsed() >= SIZES_EVERY) {
                sizes_at = Some(Instant::now());
                if let Ok(sizes) = self.store().outbox_sizes().await {
                    self.inner.metrics.queued.set(sizes.queued as i64);
                    self.inner.metrics.dead.set(sizes.dead as i64);
                }
            }
            let wait = self.send_due().await;
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
    }

    /// Starts what is due, as far as the in-flight bound allows; returns how
    /// long to wait before looking again.
    async fn send_due(&self) -> Duration {
        let free = self.inner.in_flight.available_permits();
        if free == 0 {
            // A finishing request wakes the sender.
            return IDLE_LOOK;
        }
        let lease = self.endpoints().longest_timeout() + LEASE_MARGIN;
        let batch = match self.store().take_due(free, lease).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot take due deliveries; retrying");
                return STORE_RETRY;
            }
        };
        if !batch.is_empty() {
            for delivery in batch {
                let Ok(permit) = self.inner.in_flight.clone().try_acquire_owned() else {
                    // Cannot happen (we took at most `free`); the lease
                    // brings it back if it did.
                    break;
                };
                tokio::spawn(self.clone().attempt(delivery, permit));
            }
            return Duration::ZERO;
        }
        match self.store().next_due().await {
            Ok(Some(at)) => self
                .store()
                .now()
                .until(at)
                .clamp(Duration::from_millis(10), IDLE_LOOK),
            Ok(None) => IDLE_LOOK,
            Err(_) => STORE_RETRY,
        }
    }

    /// One attempt of one delivery, and what follows from it; while traces
    /// are exported, in a span of the approval's trace.
    async fn attempt(self, d: Delivery, permit: OwnedSemaphorePermit) {
        if !telemetry::enabled() {
            return self.attempt_untraced(d, permit).await;
        }
        let trace = self
            .store()
            .trace_of(&ApprovalId::trusted(d.approval_id.clone()))
            .await
            .ok()
            .flatten();
        let span = telemetry::approval_span_of(
            "webhook.deliver",
            &d.approval_id,
            &d.approval_type,
            trace.as_ref(),
        );
        span.record("webhook.endpoint", d.endpoint.as_str());
        self.attempt_untraced(d, permit).instrument(span).await
    }

    async fn attempt_untraced(self, mut d: Delivery, _permit: OwnedSemaphorePermit) {
        let endpoints = self.endpoints();
        let outcome = match endpoints.get(&d.endpoint) {
            Some(ep) => {
                let started = Instant::now();
                let sent = self.send(ep, &d).await;
                Some((ep, sent, started.elapsed().as_secs_f64()))
            }
            None => None,
        };
        let stored = match outcome {
            Some((ep, Ok(()), seconds)) => {
                self.inner.metrics.attempt(&ep.name, "ok", seconds);
                tracing::Span::current().record("webhook.outcome", "delivered");
                tracing::info!(
                    target: AUDIT_TARGET,
                    action = "webhook_delivered",
                    delivery = %d.id,
                    endpoint = %ep.name,
                    event = %d.event,
                    id = %d.approval_id,
                    attempts = d.attempts + 1,
                    "webhook delivered"
                );
                self.store().delivered(&d.id).await
            }
            Some((ep, Err(why), seconds)) => {
                d.attempts += 1;
                d.last_error = why;
                let delay = backoff(d.attempts);
                let horizon = Millis(d.planned_at).plus(ep.retry_for);
                if self.store().now().plus(delay) > horizon {
                    self.inner.metrics.attempt(&ep.name, "dead", seconds);
                    tracing::Span::current().record("webhook.outcome", "dead");
                    self.give_up(&d).await
                } else {
                    self.inner.metrics.attempt(&ep.name, "retry", seconds);
                    tracing::Span::current().record("webhook.outcome", "retry");
                    tracing::debug!(delivery = %d.id, endpoint = %ep.name, error = %d.last_error, ?delay, "webhook failed; retrying");
                    self.store().retry_later(&d, delay).await
                }
            }
            None => {
                d.last_error = "the endpoint is no longer in the configuration".into();
                self.give_up(&d).await
            }
        };
        if let Err(e) = stored {
            // The lease runs out and the delivery is taken again: at least
            // once still holds (a success may be sent twice).
            tracing::warn!(error = %e, delivery = %d.id, "webhooks: cannot record a delivery's outcome");
        }
        self.inner.wake.notify_one();
    }

    async fn give_up(&self, d: &Delivery) -> Result<(), DomainError> {
        tracing::warn!(
            target: AUDIT_TARGET,
            action = "webhook_dead",
            delivery = %d.id,
            endpoint = %d.endpoint,
            event = %d.event,
            id = %d.approval_id,
            attempts = d.attempts,
            error = %d.last_error,
            "webhook delivery given up (dead letter)"
        );
        self.store().bury(d).await
    }

    /// Sends one signed request; the reason when it did not succeed.
    async fn send(&self, ep: &Endpoint, d: &Delivery) -> Result<(), String> {
        let timestamp = (Millis::now().0 / 1000) as i64;
        let mut request = self
            .inner
            .http
            .post(ep.url.clone())
            .timeout(ep.timeout)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", timestamp.to_string());
        if !ep.secrets.is_empty() {
            request = request.header(
                "webhook-signature",
                signing::signature(&ep.secrets, &d.id, timestamp, &d.body),
            );
        }
        match request.body(d.body.clone()).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the endpoint answered HTTP {}", response.status())),
            Err(e) if e.is_timeout() => Err(format!(
                "no answer within {}",
                humantime::format_duration(ep.timeout)
            )),
            // Without the URL: it may hold a secret (Slack's do).
            Err(e) => Err(describe(&e.without_url())),
        }
    }

    // ---- configuration ---------------------------------------------------

    /// Re-reads the endpoints on SIGHUP and every `every` (when the file
    /// changed, they change). A file that does not load keeps the last good
    /// endpoints, and says why once.
    async fn run_reload(self, path: PathBuf, every: Option<Duration>) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last_error = String::new();
        loop {
            let tick = async {
                match every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<()>();
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tick => {}
                _ = hup => {}
            }
            match Endpoints::load(&path) {
                Ok(fresh) => {
                    last_error.clear();
                    if *self.endpoints() != fresh {
                        tracing::info!(
                            endpoints = fresh.list.len(),
                            "webhooks: configuration reloaded"
                        );
                        self.inner.endpoints.send_replace(Arc::new(fresh));
                    }
                }
                Err(e) if e != last_error => {
                    tracing::error!("webhooks: keeping the previous endpoints, the configuration file does not load: {e}");
                    last_error = e;
                }
                Err(_) => {}
            }
        }
    }
}

/// The delay before retry number `attempts` (1 = the first retry).
fn backoff(attempts: u32) -> Duration {
    let full = FIRST_RETRY
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(LONGEST_RETRY);
    let ms = full.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

/// An error and its causes, on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_ceiling() {
        for attempts in 1..=30 {
            let full = FIRST_RETRY
                .saturating_mul(1u32 << (attempts - 1).min(20))
                .min(LONGEST_RETRY);
            let d = backoff(attempts);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?}");
        }
        assert!(backoff(30) <= LONGEST_RETRY);
    }
}
