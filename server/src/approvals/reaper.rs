//! The reaper: expires pending approvals whose deadline passed.
//!
//! Every replica runs one; the store makes each expiry happen once. It
//! sleeps until the earliest pending deadline, or until the event pump sees
//! an approval with an earlier one (`Alarm::deadline_added`), then expires
//! everything due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Approvals, STORE_RETRY};
use crate::domain::Millis;

/// Longest reaper sleep when nothing is pending (new approvals wake it).
const REAPER_IDLE: Duration = Duration::from_secs(60);
/// Pause of the reaper when what looked due was not due yet by the store's
/// clock.
const REAPER_EARLY: Duration = Duration::from_millis(20);
/// Approvals expired per reaper round.
const REAPER_BATCH: usize = 100;

/// When the reaper (or the reminder task) plans to wake next, and how the
/// pump wakes it earlier.
#[derive(Default)]
pub(super) struct Alarm {
    /// The planned wake-up (ms, by the store's clock).
    pub(super) plan: AtomicU64,
    pub(super) wake: Notify,
}

impl Alarm {
    /// An approval due at `deadline` was added: wakes the reaper if it
    /// planned to sleep past it.
    pub(super) fn deadline_added(&self, deadline: Millis) {
        if deadline.0 < self.plan.load(Ordering::Acquire) {
            self.plan.store(deadline.0, Ordering::Release);
            self.wake.notify_one();
        }
    }
}

impl Approvals {
    /// The reaper loop, until shutdown.
    pub(super) async fn run_reaper(self) {
        loop {
            // Candidates by this replica's estimate of the store's clock;
            // the store decides by its own clock what is really due.
            let now = self.store().now();
            let due = match self.store().due(now, REAPER_BATCH).await {
                Ok(ids) => ids,
                Err(_) => {
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let mut expired = 0;
            for id in &due {
                if let Ok(Some(a)) = self.store().expire(id).await {
                    expired += 1;
                    self.expired(&a);
                    self.trace_done("approval.expire", &a).await;
                }
            }
            if due.len() == REAPER_BATCH && expired > 0 {
                continue;
            }
            // Due by the estimate but not by the store's clock: the estimate
            // runs a little ahead. Look again shortly, not in a tight loop.
            let at_least = match due.is_empty() || expired > 0 {
                true => Duration::ZERO,
                false => REAPER_EARLY,
            };
            let next = self.store().next_deadline();
            if !self
                .sleep_until_due(&self.inner.reaper, REAPER_IDLE, at_least, next)
                .await
            {
                return;
            }
        }
    }
}

impl Approvals {
    /// The wait of a task that wakes at due times (the reaper, reminders):
    /// publishes its plan (`idle` from now at the latest), reads the next
    /// due time with `next_due`, then sleeps until then (at least
    /// `at_least`), until `alarm` rings, or until shutdown. False on
    /// shutdown.
    ///
    /// The plan is published before `next_due` runs (futures are lazy): an
    /// item added after this is compared with the plan (and rings the alarm
    /// if earlier); one added before is in what `next_due` reads.
    /// Publishing after the read would miss an item added in between, for up
    /// to `idle`.
    pub(super) async fn sleep_until_due(
        &self,
        alarm: &Alarm,
        idle: Duration,
        at_least: Duration,
        next_due: impl std::future::Future<Output = Result<Option<Millis>, crate::domain::DomainError>>,
    ) -> bool {
        let idle = self.store().now().plus(idle);
        alarm.plan.store(idle.0, Ordering::Release);
        let next = match next_due.await {
            Ok(next) => next,
            Err(_) => return self.pause(STORE_RETRY).await,
        };
        let wake_at = next.map_or(idle, |n| n.min(idle));
        alarm.plan.fetch_min(wake_at.0, Ordering::AcqRel);
        let sleep = Instant::now() + self.store().now().until(wake_at).max(at_least);
        tokio::select! {
            _ = tokio::time::sleep_until(sleep) => true,
            _ = alarm.wake.notified() => true,
            _ = self.inner.shutdown.cancelled() => false,
        }
    }
}
