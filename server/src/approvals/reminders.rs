//! The reminder task: writes each pending approval's reminders (its
//! policy's `remind_after`) as numbered `reminder` events, for
//! notifications.
//!
//! Every replica runs one; the store writes each reminder once. It sleeps
//! until the earliest reminder is due, or until the event pump sees an
//! approval whose first reminder comes earlier (`Alarm::deadline_added`),
//! then writes everything due. Like the reaper, it looks at the store once
//! a minute when nothing is planned.

use std::time::Duration;

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
                    self.trace_done("approval.remind", &a).await;
                }
            }
            if due.len() == BATCH && written > 0 {
                continue;
            }
            let at_least = match due.is_empty() || written > 0 {
                true => Duration::ZERO,
                false => EARLY,
            };
            let next = self.store().next_reminder();
            if !self
                .sleep_until_due(&self.inner.reminders, IDLE, at_least, next)
                .await
            {
                return;
            }
        }
    }
}
