//! The event pump: the one reader of the store's event log on a replica.
//!
//! It reads the log with a blocking read (no polling), one read at a time,
//! and passes every event on: `resolved` events wake the local waiters,
//! `added` ones may wake the reaper earlier, and every event goes to the
//! local watchers through the feed. It reads the approvals' bodies (which
//! the log's entries leave out) only for the events that need them here,
//! a batch at a time. After a store outage it resumes from the
//! last event it saw; between reads it checks that the store's history is
//! still the one it read (the epoch did not change, the log did not rewind).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Approvals, STORE_RETRY};
use crate::domain::{Cursor, Detail, DomainError, Epoch, Event, EventKind};

/// How many events a local watcher may fall behind before it re-reads the
/// store to catch up. The feed keeps up to this many events alive for a
/// lagging watcher, whatever their size: keep it small.
pub(super) const FEED_CAPACITY: usize = 256;
/// Events the pump reads from the store at once.
const READ_BATCH: usize = 100;
/// How long one blocking read of the event log waits (and so, at most, how
/// long a wiped store goes unnoticed).
const PUMP_BLOCK: Duration = Duration::from_secs(2);
/// How often the pump checks that the store's history did not change.
const HISTORY_CHECK: Duration = Duration::from_secs(1);

/// What the pump passes to local watchers, in log order.
#[derive(Clone)]
pub(super) enum Feed {
    Event(Arc<Event>),
    /// The pump could not read the events up to `resumed_at` (trimmed while
    /// the store was unreachable): watchers behind it look in the store.
    Gap {
        resumed_at: Cursor,
    },
    /// The store's history changed (wiped or restored): every watcher ends.
    HistoryChanged,
}

/// The pump and what it knows of the log: where it is, which history it
/// reads, and up to where the pending gauge already counts.
pub(super) struct EventPump {
    approvals: Approvals,
    epoch: Epoch,
    /// The last event read.
    position: Cursor,
    /// The event the pending gauge reflects (read from the store): events
    /// up to it are not counted a second time.
    counted_through: Cursor,
    /// Whether the last read failed (the store is unreachable).
    failing: bool,
    /// When the history was last checked.
    checked_at: Instant,
}

impl EventPump {
    /// Runs the pump until shutdown.
    pub(super) async fn run(approvals: Approvals) {
        let Some(mut pump) = Self::start(approvals).await else {
            return;
        };
        // Watchers and waiters that began before the pump found the log's
        // head may hold an older position: what was written in between was
        // never fed to them. Watchers behind it read the store; waiters
        // look again.
        let inner = &pump.approvals.inner;
        let _ = inner.feed.send(Feed::Gap {
            resumed_at: pump.position,
        });
        inner.resync.send_modify(|g| *g += 1);
        pump.counted_through = pump.refresh_pending_count().await;
        loop {
            let read = tokio::select! {
                _ = pump.approvals.inner.shutdown.cancelled() => return,
                r = pump.approvals.store().read_events(pump.position, READ_BATCH, Some(PUMP_BLOCK)) => r,
            };
            let read = match read {
                Ok(events) => pump.complete(events).await,
                Err(e) => Err(e),
            };
            let go_on = match read {
                Ok(events) => {
                    pump.deliver(events).await;
                    true
                }
                Err(e) => pump.recover(e).await,
            };
            if !go_on {
                return;
            }
        }
    }

    /// Reads where the log is now, retrying while the store is unreachable;
    /// `None` on shutdown.
    async fn start(approvals: Approvals) -> Option<Self> {
        let mut warned = false;
        loop {
            let read = async {
                let store = approvals.store();
                Ok::<_, DomainError>((store.epoch().await?, store.head().await?))
            };
            match read.await {
                Ok((epoch, position)) => {
                    return Some(Self {
                        approvals,
                        epoch,
                        position,
                        counted_through: Cursor::START,
                        failing: false,
                        checked_at: Instant::now(),
                    })
                }
                Err(e) => {
                    approvals.set_healthy(false);
                    if !warned {
                        warned = true;
                        tracing::warn!(error = %e, "event pump: cannot read the event log yet; retrying");
                    }
                    if !approvals.pause(STORE_RETRY).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads the approvals' bodies that this replica needs, for the whole
    /// batch in one round trip (the log's entries leave them out): every
    /// event a watcher may show, when watchers are open here, and the
    /// `resolved` events of approvals waited for here. A replica with
    /// neither reads the small entries only. A watcher that opens after
    /// this look completes what it gets itself (`Detail::Summary`); a
    /// waiter that registers after it finds the approval final in its
    /// first read (it registers first, and the event was already written).
    async fn complete(&self, mut events: Vec<Event>) -> Result<Vec<Event>, DomainError> {
        let inner = &self.approvals.inner;
        let watched = inner.feed.receiver_count() > 0;
        let waiters = &inner.waiters;
        let needed = |e: &Event| match e.kind {
            EventKind::Reminder(_) => false,
            EventKind::Resolved => watched || waiters.waits_for(&e.approval.id),
            EventKind::Added | EventKind::Updated => watched,
        };
        self.approvals
            .store()
            .complete_events(&mut events, &needed)
            .await?;
        Ok(events)
    }

    /// Passes on what one read returned (nothing: the read timed out), then
    /// checks the history when idle or when a check is due.
    async fn deliver(&mut self, events: Vec<Event>) {
        let inner = &self.approvals.inner;
        if self.failing {
            self.failing = false;
            tracing::info!(
                "event pump: store reachable again, resuming at {}",
                self.position
            );
            self.approvals.set_healthy(true);
            // Waiters re-read in case what they wait for is gone from the
            // log; the count may have drifted.
            inner.resync.send_modify(|g| *g += 1);
            self.counted_through = self.refresh_pending_count().await;
        }
        let idle = events.is_empty();
        for e in events {
            self.position = e.cursor;
            self.dispatch(e);
        }
        if idle || self.checked_at.elapsed() >= HISTORY_CHECK {
            self.checked_at = Instant::now();
            if let Ok(Some((new_epoch, head))) = self.history_changed().await {
                tracing::warn!(
                    "event pump: the store's history changed (wiped or restored; epoch {:x} -> {:x}); \
                     ending every watch and re-reading what waiters wait for",
                    self.epoch.0, new_epoch.0
                );
                self.epoch = new_epoch;
                self.position = head;
                let _ = inner.feed.send(Feed::HistoryChanged);
                inner.resync.send_modify(|g| *g += 1);
                self.counted_through = self.refresh_pending_count().await;
            }
        }
    }

    /// After a failed read: reports the store unreachable, waits, and skips
    /// to the log's head if events after the position were trimmed. False
    /// on shutdown.
    async fn recover(&mut self, e: DomainError) -> bool {
        let approvals = &self.approvals;
        approvals.inner.metrics.store_errors.inc();
        if !self.failing {
            tracing::warn!(error = %e, "event pump: store unreachable; waiters keep waiting");
        }
        self.failing = true;
        approvals.set_healthy(false);
        if !approvals.pause(STORE_RETRY).await {
            return false;
        }
        let position = self.position;
        if let Err(DomainError::CursorExpired(_) | DomainError::CursorAhead { .. }) =
            approvals.store().check_cursor(position).await
        {
            // Events we never saw were trimmed: start from now. Watchers
            // behind `head` look for them in the store (and end if they are
            // gone); the resync after recovery makes waiters re-read.
            if let Ok(head) = approvals.store().head().await {
                tracing::warn!(
                    "event pump: events after {position} were trimmed; continuing at {head}"
                );
                self.position = head;
                let _ = approvals.inner.feed.send(Feed::Gap { resumed_at: head });
            }
        }
        true
    }

    /// Whether the store's history is no longer the one of `epoch` read up
    /// to `position`: the epoch changed (the store was wiped: the next
    /// reader drew a new one), or the log ends before `position` (restored
    /// from an older copy: this pump draws a new epoch). Returns the new
    /// epoch and the log's head.
    async fn history_changed(&self) -> Result<Option<(Epoch, Cursor)>, DomainError> {
        let store = self.approvals.store();
        let now = store.epoch().await?;
        let head = store.head().await?;
        if now != self.epoch {
            return Ok(Some((now, head)));
        }
        if head < self.position {
            return Ok(Some((store.renew_epoch(self.epoch).await?, head)));
        }
        Ok(None)
    }

    /// Sets the pending gauge from the store; returns the event the count
    /// reflects, so the pump does not count events up to it a second time.
    async fn refresh_pending_count(&self) -> Cursor {
        match self.approvals.store().pending_count().await {
            Ok((n, at)) => {
                self.approvals.inner.metrics.pending.set(n as i64);
                at
            }
            Err(_) => Cursor::START,
        }
    }

    fn dispatch(&self, e: Event) {
        let inner = &self.approvals.inner;
        let count = e.cursor > self.counted_through;
        match e.kind {
            EventKind::Added => {
                if count {
                    inner.metrics.pending.inc();
                }
                inner.reaper.deadline_added(e.approval.deadline);
                let a = &e.approval;
                if let Some(first) = a.policy.remind_after.first() {
                    inner.reminders.deadline_added(a.created_at.plus(*first));
                }
            }
            EventKind::Updated | EventKind::Reminder(_) => {}
            EventKind::Resolved => {
                if count {
                    inner.metrics.pending.dec();
                }
                // Only with what a waiter returns: a waiter that missed
                // the look in `complete` reads the approval itself.
                if e.detail != Detail::Summary {
                    inner.waiters.resolve(&e.approval);
                }
            }
        }
        // No receivers is fine: nobody is watching on this replica.
        let _ = inner.feed.send(Feed::Event(Arc::new(e)));
    }
}
