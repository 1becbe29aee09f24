//! The reminder task: writes each pending approval's reminders (its
//! policy's `remind_after`) as numbered `reminder` events, for
//! notifications.
//!
//! Every replica runs one; the store writes each reminder once. It sleeps
//! until the earliest reminder is due, or until the event pump sees an
//! approval whose first reminder comes earlier (`Alarm::deadline_added`),
//! then writes everything due. Like the reaper, it looks at the store once
//! a minute when nothing is planned.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Approvals, STORE_RETRY};
use crate::audit;

/// Longest sleep when no reminder is planned (new approvals wake it).
const IDLE: Duration = Duration::from_secs(60);
/// Pause when what looked due was not due yet by the store's clock.
const EARLY: Duration = Duration::from_millis(20);
/// Reminders written per round.
const BATCH: usize = 100;

impl Approvals {
    /// The reminder loop, until shutdown.
    pub(super) async fn run_reminders(self) {
        loop {
            let now = self.store().now();
            let due = match self.store().due_reminders(now, BATCH).await {
                Ok(ids) => ids,
                Err(_) => {
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let mut written = 0;
            for id in &due {
                if let Ok(Some((n, a))) = self.store().remind(id).await {
                    written += 1;
                    self.inner.metrics.reminders.inc();
                    audit::reminded(&a, n);
                }
            }
            if due.len() == BATCH && written > 0 {
                continue;
            }
            let at_least = match due.is_empty() || written > 0 {
                true => Duration::ZERO,
                false => EARLY,
            };
            // Publish the plan before reading the next reminder (see the
            // reaper: an approval added in between then wakes this task).
            let alarm = &self.inner.reminders;
            let idle = self.store().now().plus(IDLE);
            alarm.plan.store(idle.0, Ordering::Release);
            let next = match self.store().next_reminder().await {
                Ok(next) => next,
                Err(_) => {
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let wake_at = next.map_or(idle, |n| n.min(idle));
            alarm.plan.fetch_min(wake_at.0, Ordering::AcqRel);
            let sleep = Instant::now() + self.store().now().until(wake_at).max(at_least);
            tokio::select! {
                _ = tokio::time::sleep_until(sleep) => {}
                _ = alarm.wake.notified() => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
    }
}
