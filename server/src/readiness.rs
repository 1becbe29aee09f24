//! Readiness: whether this replica should be sent calls (gRPC health of the
//! API service). Two facts feed it, from several places:
//! - the store answers: the health probe and the event pump report it;
//! - the store accepts writes: the health probe (a small write) and every
//!   call that was refused (Redis out of memory, read-only, loading...).
//!
//! The replica is ready when both hold. Writes refused are said three ways:
//! NOT_SERVING, a metric (`approvald_store_writable`, refusals by cause) and
//! one log line when it starts and one when it ends.
//!
//! The health monitor (`Readiness::monitor`, started by `Approvals::start`)
//! probes the store every `--health-interval`, checks its eviction policy
//! when it becomes reachable, and keeps this replica's estimate of the
//! store's clock fresh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::DomainError;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// How often this replica measures its clock against the store's.
const CLOCK_SYNC: Duration = Duration::from_secs(30);

pub struct Readiness {
    state: Mutex<State>,
    ready: watch::Sender<bool>,
    metrics: Metrics,
}

struct State {
    reachable: bool,
    /// Why the store refuses writes, while it does.
    refusing: Option<&'static str>,
}

impl Readiness {
    pub fn new(metrics: Metrics) -> Self {
        metrics.store_writable.set(1);
        Self {
            state: Mutex::new(State {
                reachable: true,
                refusing: None,
            }),
            ready: watch::channel(true).0,
            metrics,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    pub fn reachable(&self, ok: bool) {
        self.update(|s| s.reachable = ok);
    }

    /// A write was refused by the store for `cause` (`detail`: its own words).
    pub fn writes_refused(&self, cause: &'static str, message: &str, detail: &str) {
        self.metrics.refused(cause);
        self.update(|s| {
            s.reachable = true;
            if s.refusing.is_none() {
                tracing::error!(
                    cause,
                    redis = detail,
                    "the store refuses writes: {message}; readiness is NOT_SERVING until a write succeeds"
                );
            }
            s.refusing = Some(cause);
        });
        self.metrics.store_writable.set(0);
    }

    /// A write succeeded.
    pub fn writes_accepted(&self) {
        self.update(|s| {
            s.reachable = true;
            if let Some(cause) = s.refusing.take() {
                tracing::warn!(
                    previous_cause = cause,
                    "the store accepts writes again; readiness follows reachability"
                );
            }
        });
        self.metrics.store_writable.set(1);
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut s);
        let ready = s.reachable && s.refusing.is_none();
        self.ready.send_if_modified(|r| {
            let changed = *r != ready;
            *r = ready;
            changed
        });
    }
}

impl Readiness {
    /// The health monitor: a write probe every `interval` feeds readiness;
    /// each time the store becomes reachable, its eviction policy is checked.
    pub async fn monitor(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        shutdown: Shutdown,
        interval: Duration,
    ) {
        let mut was_reachable = false;
        let mut last_sync = Instant::now();
        loop {
            let reachable = match store.ping().await {
                Ok(()) => {
                    self.writes_accepted();
                    true
                }
                Err(DomainError::WritesRefused {
                    cause,
                    message,
                    detail,
                }) => {
                    self.writes_refused(cause, &message, &detail);
                    true
                }
                Err(_) => {
                    self.reachable(false);
                    false
                }
            };
            if reachable && !was_reachable {
                self.check_eviction(store.as_ref()).await;
            }
            if reachable && (!was_reachable || last_sync.elapsed() >= CLOCK_SYNC) {
                match store.sync_clock().await {
                    Ok(()) => last_sync = Instant::now(),
                    Err(e) => tracing::debug!(error = %e, "cannot read the store's clock"),
                }
            }
            was_reachable = reachable;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Warns loudly when the store may evict keys: eviction silently loses
    /// approvals (pending ones vanish, decisions are forgotten).
    async fn check_eviction(&self, store: &dyn Store) {
        match store.eviction_policy().await {
            Ok(Some(policy)) => {
                self.metrics.store_evicting.set(1);
                tracing::error!(
                    policy = %policy,
                    "Redis maxmemory-policy is {policy:?}: under memory pressure Redis EVICTS keys, \
                     silently losing approvals (pending ones vanish, decisions are forgotten). \
                     Set maxmemory-policy noeviction: a full Redis then refuses writes \
                     (UNAVAILABLE, readiness NOT_SERVING) instead of losing data"
                );
            }
            Ok(None) => {
                self.metrics.store_evicting.set(0);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read Redis maxmemory-policy"),
        }
    }
}
