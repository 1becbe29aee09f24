//! Readiness: whether this replica should be sent calls (gRPC health of the
//! API service). Two facts feed it, from several places:
//! - the store answers: the health probe and the event pump report it;
//! - the store accepts writes: the health probe (a small write) and every
//!   call that was refused (Redis out of memory, read-only, loading...).
//!
//! The replica is ready when both hold. Writes refused are said three ways:
//! NOT_SERVING, a metric (`approvald_store_writable`, refusals by cause) and
//! one log line when it starts and one when it ends.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::metrics::Metrics;

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
