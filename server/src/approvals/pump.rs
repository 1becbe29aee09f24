//! The event pump: the one reader of the store's event logs on a replica.
//!
//! It reads each partition's log (one, unless the Redis store has
//! `--redis-partitions` N > 1) with a blocking read of its own (no
//! polling), one read at a time per log, each log at its own position, and
//! passes every event on as it comes: events of one partition in their
//! log's order, events of different partitions in no set order (none
//! exists between logs). `resolved` events wake the local waiters,
//! `added` ones may wake the reaper earlier, and every event goes to the
//! local watchers through the feed. It reads the approvals' bodies (which
//! the log's entries leave out) only for the events that need them here,
//! a batch at a time. After a store outage it resumes from the
//! last event it saw; between reads it checks that the store's history is
//! still the one it read (the epoch did not change, the log did not rewind).
//!
//! Every event it passes on carries the pump's frontier right after it
//! (`Event::resume`: where it is in every log), set and sent under one
//! lock, so the frontiers along the feed only grow: a watcher that got an
//! event has seen, from the feed or from the store, every event up to that
//! frontier.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Approvals, STORE_RETRY};
use crate::domain::{Cursor, Detail, DomainError, Epoch, Event, EventKind, Frontier};

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

/// What the pump passes to local watchers, in each log's order.
#[derive(Clone)]
pub(super) enum Feed {
    Event(Arc<Event>),
    /// The pump could not read the events of partition `part`'s log up to
    /// `resumed_at` (trimmed while the store was unreachable): watchers
    /// behind it look in the store.
    Gap {
        part: usize,
        resumed_at: Cursor,
    },
    /// The store's history changed (wiped or restored): every watcher ends.
    HistoryChanged,
}

/// What the partitions' pumps share.
struct Shared {
    /// Where the pumps are in every log (the `resume` of what they send).
    /// Moved and the event sent under this lock.
    frontier: Mutex<Frontier>,
    /// The partitions whose reads fail now (bit k: partition k): the store
    /// is reachable again when none does.
    failing: AtomicU64,
    /// Each partition's pending approvals (the gauge is their sum).
    pending: Vec<AtomicI64>,
}

/// The pump of one partition's log and what it knows of it: where it is,
/// which history it reads, and up to where the pending gauge already
/// counts.
pub(super) struct EventPump {
    approvals: Approvals,
    shared: Arc<Shared>,
    part: usize,
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
    /// Runs the pump of every partition until shutdown.
    pub(super) async fn run(approvals: Approvals) {
        let partitions = approvals.store().partitions();
        let shared = Arc::new(Shared {
            frontier: Mutex::new(Frontier::start(partitions)),
            failing: AtomicU64::new(0),
            pending: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
        });
        let pumps = (0..partitions)
            .map(|part| Self::run_partition(approvals.clone(), shared.clone(), part));
        futures::future::join_all(pumps).await;
    }

    /// Runs the pump of partition `part`'s log until shutdown.
    async fn run_partition(approvals: Approvals, shared: Arc<Shared>, part: usize) {
        let Some(mut pump) = Self::start(approvals, shared, part).await else {
            return;
        };
        // Waiters that began before the pump found the log's head may have
        // missed what was written in between: they look again. (Watchers
        // got the Gap that `start` sent.)
        pump.approvals.inner.resync.send_modify(|g| *g += 1);
        pump.counted_through = pump.refresh_pending_count().await;
        loop {
            let read = tokio::select! {
                _ = pump.approvals.inner.shutdown.cancelled() => return,
                r = pump.approvals.store().read_events(pump.part, pump.position, READ_BATCH, Some(PUMP_BLOCK)) => r,
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
    async fn start(approvals: Approvals, shared: Arc<Shared>, part: usize) -> Option<Self> {
        let mut warned = false;
        loop {
            let read = async {
                let store = approvals.store();
                Ok::<_, DomainError>((store.epoch().await?, store.head(part).await?))
            };
            match read.await {
                Ok((epoch, position)) => {
                    // A watcher that opened before this read may be behind
                    // `position`: what it lacks is in the store, not in the
                    // feed (this pump sends only what comes after).
                    let mut frontier = shared.lock_frontier();
                    frontier.advance(part, position);
                    let _ = approvals.inner.feed.send(Feed::Gap {
                        part,
                        resumed_at: position,
                    });
                    drop(frontier);
                    return Some(Self {
                        approvals,
                        shared,
                        part,
                        epoch,
                        position,
                        counted_through: Cursor::START,
                        failing: false,
                        checked_at: Instant::now(),
                    });
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
                partition = self.part,
                "event pump: store reachable again, resuming at {}",
                self.position
            );
            let bit = 1u64 << self.part;
            if self.shared.failing.fetch_and(!bit, Ordering::AcqRel) == bit {
                self.approvals.set_healthy(true);
            }
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
                {
                    // Back to the new history's head: every watcher ends.
                    let mut frontier = self.shared.lock_frontier();
                    frontier.reset(self.part, head);
                    let _ = inner.feed.send(Feed::HistoryChanged);
                }
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
            tracing::warn!(error = %e, partition = self.part, "event pump: store unreachable; waiters keep waiting");
        }
        self.failing = true;
        self.shared
            .failing
            .fetch_or(1u64 << self.part, Ordering::AcqRel);
        approvals.set_healthy(false);
        if !approvals.pause(STORE_RETRY).await {
            return false;
        }
        let (part, position) = (self.part, self.position);
        if let Err(DomainError::CursorExpired(_) | DomainError::CursorAhead { .. }) =
            approvals.store().check_cursor(part, position).await
        {
            // Events we never saw were trimmed: start from now. Watchers
            // behind `head` look for them in the store (and end if they are
            // gone); the resync after recovery makes waiters re-read.
            if let Ok(head) = approvals.store().head(part).await {
                tracing::warn!(
                    partition = part,
                    "event pump: events after {position} were trimmed; continuing at {head}"
                );
                self.position = head;
                let mut frontier = self.shared.lock_frontier();
                frontier.advance(part, head);
                let _ = approvals.inner.feed.send(Feed::Gap {
                    part,
                    resumed_at: head,
                });
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
        let head = store.head(self.part).await?;
        if now != self.epoch {
            return Ok(Some((now, head)));
        }
        if head < self.position {
            return Ok(Some((store.renew_epoch(self.epoch).await?, head)));
        }
        Ok(None)
    }

    /// Sets this partition's share of the pending gauge from the store;
    /// returns the event the count reflects, so the pump does not count
    /// events up to it a second time.
    async fn refresh_pending_count(&self) -> Cursor {
        match self.approvals.store().pending_count(self.part).await {
            Ok((n, at)) => {
                self.count_pending(|c| c.store(n as i64, Ordering::Relaxed));
                at
            }
            Err(_) => Cursor::START,
        }
    }

    /// Changes this partition's pending count, and the gauge with it.
    fn count_pending(&self, change: impl FnOnce(&AtomicI64)) {
        if let Some(mine) = self.shared.pending.get(self.part) {
            change(mine);
        }
        let total = self
            .shared
            .pending
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        self.approvals.inner.metrics.pending.set(total);
    }

    fn dispatch(&self, mut e: Event) {
        let inner = &self.approvals.inner;
        let count = e.cursor > self.counted_through;
        match e.kind {
            EventKind::Added => {
                if count {
                    self.count_pending(|c| {
                        c.fetch_add(1, Ordering::Relaxed);
                    });
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
                    self.count_pending(|c| {
                        c.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                // Only with what a waiter returns: a waiter that missed
                // the look in `complete` reads the approval itself.
                if e.detail != Detail::Summary {
                    inner.waiters.resolve(&e.approval);
                }
            }
        }
        let mut frontier = self.shared.lock_frontier();
        frontier.advance(self.part, e.cursor);
        e.resume = frontier.clone();
        // No receivers is fine: nobody is watching on this replica.
        let _ = inner.feed.send(Feed::Event(Arc::new(e)));
    }
}

impl Shared {
    fn lock_frontier(&self) -> std::sync::MutexGuard<'_, Frontier> {
        // Held only to move a position and send: never poisoned mid-way.
        self.frontier.lock().unwrap_or_else(|e| e.into_inner())
    }
}
