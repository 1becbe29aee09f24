//! `WatchPending`: a snapshot of what is pending, then live changes.
//!
//! A watcher's producer task reads the snapshot from the store a page at a
//! time, then follows the pump's feed (`pump::Feed`), falling back to the
//! store's logs whenever the feed cannot be trusted to be complete. Its
//! position is a `Frontier` (one position per partition's log): changes
//! of one partition come in their log's order, changes of different
//! partitions in no set order; each change's cursor is the watcher's
//! frontier right after it, so a resume gets every later event of every
//! partition once. Items go
//! through a queue bounded in bytes (`watch_queue`); a watcher that stops
//! reading is ended with `WatcherBehind`, never buffered without bound.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::pump::Feed;
use super::Approvals;
use crate::domain::{
    Approval, ApprovalId, Caller, Detail, DomainError, Epoch, Event, EventKind, Filter, Frontier,
    Limits, Position,
};
use crate::metrics::GaugeGuard;
use crate::watch_queue::{self, WatcherSlot};
/// Whether `WatchPending` shows events of this kind (reminders are for
/// notifications only).
fn shown(e: &Event) -> bool {
    !matches!(e.kind, EventKind::Reminder(_))
}

/// One item of a `WatchPending` stream.
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// A pending approval of the snapshot (no cursor).
    Pending(Box<Approval>),
    /// The snapshot is complete as of this position.
    Synced(Frontier),
    /// A live change, shared by every watcher that gets it (its cursor:
    /// `Event::resume`).
    Change(Arc<Event>),
}

/// An open `WatchPending` stream: its items, and the epoch its cursors
/// belong to.
pub struct Watch {
    pub epoch: Epoch,
    pub items: watch_queue::Receiver<Result<WatchItem, DomainError>, WatcherLease>,
}

type WatchSender = watch_queue::Sender<Result<WatchItem, DomainError>>;

/// What a watch starts from.
enum Start {
    /// No cursor: the ids pending at a position, and that position.
    Snapshot(Vec<ApprovalId>, Frontier),
    Resume(Frontier),
}

/// What an open watcher holds until its response stream is dropped: its
/// place under the caps, and the gauge. Held by the stream, not by the
/// producer, so a watcher that was ended but whose HTTP/2 stream still
/// buffers data keeps counting.
pub struct WatcherLease {
    _slot: WatcherSlot,
    _open: GaugeGuard,
}

impl Approvals {
    /// Starts a `WatchPending` stream: a snapshot then live changes (no
    /// cursor), or the changes after `cursor`. The stream ends when the
    /// receiver is dropped, on shutdown, when the watcher falls behind
    /// (`WatcherBehind`), or when it would skip events (`CursorExpired`,
    /// `HistoryChanged`): it never goes on past a gap. It carries only what
    /// `caller` may see, and counts under `caller`'s watcher cap.
    pub async fn watch(
        &self,
        caller: &Caller,
        filter: Filter,
        cursor: Option<Position>,
    ) -> Result<Watch, DomainError> {
        let watcher = caller.principal().map(|p| p.as_str().to_string());
        let slot = self.inner.watchers.take(watcher)?;
        // Subscribe before reading the store: every event after what the
        // reads below return is then in `feed`.
        let feed = self.inner.feed.subscribe();
        let epoch = self.note(self.store().epoch().await)?;
        let start = match cursor {
            Some(p) => {
                if p.epoch.is_some_and(|e| e != epoch) {
                    return Err(DomainError::HistoryChanged);
                }
                let partitions = self.store().partitions();
                if p.at.partitions() != partitions {
                    return Err(DomainError::invalid(
                        "cursor",
                        format!(
                            "names positions in {} event log(s), but this service has {partitions}: \
                             not a cursor this service returned",
                            p.at.partitions()
                        ),
                    ));
                }
                for (part, at) in p.at.iter() {
                    self.note(self.store().check_cursor(part, at).await)?;
                }
                Start::Resume(p.at)
            }
            None => {
                let (ids, at) = self.note(self.store().pending_ids().await)?;
                Start::Snapshot(ids, at)
            }
        };
        let lease = WatcherLease {
            _slot: slot,
            _open: GaugeGuard::new(&self.inner.metrics.watchers),
        };
        let (tx, items) = watch_queue::channel(
            Limits::WATCHER_QUEUE_BYTES,
            self.inner.limits.watcher_stall,
            lease,
        );
        let this = self.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let mut skipped = HashSet::new();
            let position = match start {
                Start::Resume(at) => at,
                Start::Snapshot(ids, at) => {
                    if !this
                        .send_snapshot(&caller, &filter, ids, at.clone(), &tx, &mut skipped)
                        .await
                    {
                        return;
                    }
                    at
                }
            };
            this.follow(&caller, filter, position, feed, &tx, skipped)
                .await;
        });
        Ok(Watch { epoch, items })
    }

    /// The snapshot: the approvals pending at `at` that `caller` may see
    /// and that match `filter`, oldest first, then `synced` at `at`. Read a
    /// page at a time as the client takes them, so a watcher holds ids,
    /// never the whole set: the store says how large the next approvals
    /// are (`Store::sizes`, a window of ids at a time), and a page is as
    /// many as fit in `Limits::WATCHER_PAGE_BYTES` (at least one). Pages
    /// sized for the largest context allowed instead would be a few
    /// approvals each: one round trip per few approvals.
    ///
    /// An approval pending at `at` may be final by the time its page is
    /// read: it is left out and noted in `skipped`, so that its `resolved`
    /// event (after `at`) is not sent either.
    async fn send_snapshot(
        &self,
        caller: &Caller,
        filter: &Filter,
        ids: Vec<ApprovalId>,
        at: Frontier,
        tx: &WatchSender,
        skipped: &mut HashSet<ApprovalId>,
    ) -> bool {
        for window in ids.chunks(SIZES_WINDOW) {
            let sizes = match self.note(self.store().sizes(window).await) {
                Ok(sizes) => sizes,
                Err(e) => return self.end(tx, e).await,
            };
            for page in pages(window, &sizes, Limits::WATCHER_PAGE_BYTES) {
                if !self.send_page(caller, filter, page, tx, skipped).await {
                    return false;
                }
            }
        }
        self.deliver(tx, WatchItem::Synced(at), 0).await
    }

    /// Reads one page of the snapshot and queues what the caller may see.
    async fn send_page(
        &self,
        caller: &Caller,
        filter: &Filter,
        page: &[ApprovalId],
        tx: &WatchSender,
        skipped: &mut HashSet<ApprovalId>,
    ) -> bool {
        let approvals = match self.note(self.store().get_many(page).await) {
            Ok(approvals) => approvals,
            Err(e) => return self.end(tx, e).await,
        };
        for (id, approval) in page.iter().zip(approvals) {
            match approval {
                Some(a) if !a.is_final() => {
                    if caller.may_see(&a) && filter.matches(&a) {
                        let bytes = a.wire_bytes();
                        if !self
                            .deliver(tx, WatchItem::Pending(Box::new(a)), bytes)
                            .await
                        {
                            return false;
                        }
                    }
                }
                _ => {
                    skipped.insert(id.clone());
                }
            }
        }
        true
    }

    /// Live part of a watch: events after `position`, from the local feed,
    /// falling back to the store whenever the feed cannot be trusted to be
    /// complete (at the start, after this watcher lagged behind it, after
    /// the pump lost events).
    async fn follow(
        &self,
        caller: &Caller,
        filter: Filter,
        mut position: Frontier,
        mut feed: broadcast::Receiver<Feed>,
        tx: &WatchSender,
        mut skipped: HashSet<ApprovalId>,
    ) {
        let mut wanted = |e: &Event| {
            match e.kind {
                // For notifications only.
                EventKind::Reminder(_) => return false,
                // Not sent in the snapshot (it ended meanwhile): neither
                // are its changes.
                EventKind::Updated if skipped.contains(&e.approval.id) => return false,
                EventKind::Resolved if skipped.remove(&e.approval.id) => return false,
                _ => {}
            }
            caller.may_see(&e.approval) && filter.matches(&e.approval)
        };
        'catch_up: loop {
            // Everything the store has after `position`...
            loop {
                let events = match self.read_after(&position, self.page_len()).await {
                    Ok(events) => events,
                    Err(e) => {
                        self.end(tx, e).await;
                        return;
                    }
                };
                if events.is_empty() {
                    break;
                }
                for mut e in events {
                    position.advance(e.partition, e.cursor);
                    if wanted(&e) {
                        let bytes = e.approval.wire_bytes();
                        e.resume = position.clone();
                        if !self
                            .deliver(tx, WatchItem::Change(Arc::new(e)), bytes)
                            .await
                        {
                            return;
                        }
                    }
                }
            }
            // ...then whatever the pump reads next.
            loop {
                let received = tokio::select! {
                    _ = tx.closed() => return,
                    _ = self.inner.shutdown.cancelled() => {
                        self.end(tx, DomainError::ShuttingDown).await;
                        return;
                    }
                    received = feed.recv() => received,
                };
                // Every event up to an event's `resume` came before it in
                // the feed (the pump's frontiers only grow) or was read
                // from the store before (its events, up to when this
                // watcher subscribed, are covered by the reads above).
                match received {
                    Ok(Feed::Event(e)) if e.cursor <= position.get(e.partition) => {
                        position.advance_to(&e.resume);
                    }
                    Ok(Feed::Event(e)) => {
                        let e = match self.completed(e).await {
                            Ok(e) => e,
                            Err(e) => {
                                self.end(tx, e).await;
                                return;
                            }
                        };
                        position.advance_to(&e.resume);
                        if wanted(&e) {
                            // Ahead of the pump in another log (read from
                            // the store): this watcher's own cursor.
                            let e = match position == e.resume {
                                true => e,
                                false => Arc::new(Event {
                                    resume: position.clone(),
                                    ..Event::clone(&e)
                                }),
                            };
                            let bytes = e.approval.wire_bytes();
                            if !self.deliver(tx, WatchItem::Change(e), bytes).await {
                                return;
                            }
                        }
                    }
                    // The pump lost events: read them from the store, or
                    // find that they are gone.
                    Ok(Feed::Gap { part, resumed_at }) if position.get(part) < resumed_at => {
                        continue 'catch_up
                    }
                    Ok(Feed::Gap { .. }) => {}
                    Ok(Feed::HistoryChanged) => {
                        self.inner.metrics.watchers_ended("history_changed");
                        self.end(tx, DomainError::HistoryChanged).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        feed = self.inner.feed.subscribe();
                        continue 'catch_up;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    /// How many approvals (or events) a watcher reads from the store at once
    /// and holds until they are queued: as many as fit in
    /// `Limits::WATCHER_PAGE_BYTES` at the largest context allowed.
    fn page_len(&self) -> usize {
        (Limits::WATCHER_PAGE_BYTES / self.inner.limits.max_context_bytes.max(1)).clamp(1, 64)
    }

    /// `e` with all of its approval, when the pump read only its log entry
    /// (no watcher was open here then). Once per watcher, in that race only.
    async fn completed(&self, e: Arc<Event>) -> Result<Arc<Event>, DomainError> {
        if e.detail != Detail::Summary || !shown(&e) {
            return Ok(e);
        }
        let mut events = [Event::clone(&e)];
        self.note(self.store().complete_events(&mut events, &shown).await)?;
        let [e] = events;
        Ok(Arc::new(e))
    }

    /// Up to `limit` events after `position`, taken from the partitions'
    /// logs in turn (with their approvals, read in one round trip), or
    /// `CursorExpired` if some were trimmed. None: nothing after `position`
    /// in any log.
    async fn read_after(
        &self,
        position: &Frontier,
        limit: usize,
    ) -> Result<Vec<Event>, DomainError> {
        let mut events = Vec::new();
        for (part, at) in position.iter() {
            if events.len() >= limit {
                break;
            }
            let read = self
                .store()
                .read_events(part, at, limit - events.len(), None);
            events.extend(self.note(read.await)?);
            // Read first, then check: trimming only ever removes the oldest
            // events, so if nothing after `at` is trimmed now, nothing was
            // when the read ran, and the events start right after `at`.
            if let Err(e) = self.note(self.store().check_cursor(part, at).await) {
                if let DomainError::CursorExpired(_) = e {
                    self.inner.metrics.watchers_ended("events_trimmed");
                }
                return Err(e);
            }
        }
        self.note(self.store().complete_events(&mut events, &shown).await)?;
        Ok(events)
    }

    /// Queues one item for the watcher; false when the watch is over (the
    /// client left, or it fell behind and was ended).
    async fn deliver(&self, tx: &WatchSender, item: WatchItem, bytes: usize) -> bool {
        match tx.send(Ok(item), bytes).await {
            Ok(()) => true,
            Err(watch_queue::SendError::Closed) => false,
            Err(watch_queue::SendError::Stalled { queued_bytes }) => {
                self.inner.metrics.watchers_ended("behind");
                let stalled_for = self.inner.limits.watcher_stall;
                tracing::info!(
                    queued_bytes,
                    "ending a watcher that read nothing for {}s",
                    stalled_for.as_secs()
                );
                tx.end_with(Err(DomainError::WatcherBehind {
                    stalled_for,
                    queued_bytes,
                }));
                false
            }
        }
    }

    /// Ends the watch with `e` after what is already queued; always false.
    async fn end(&self, tx: &WatchSender, e: DomainError) -> bool {
        // Zero bytes: a final status always fits.
        let _ = tx.send(Err(e), 0).await;
        false
    }
}

/// How many ids of a snapshot have their sizes asked at once.
const SIZES_WINDOW: usize = 1024;

/// `ids` cut into pages of consecutive ids whose `sizes` add up to at most
/// `budget` bytes (a page holds at least one id, however large).
fn pages<'a>(
    ids: &'a [ApprovalId],
    sizes: &'a [usize],
    budget: usize,
) -> impl Iterator<Item = &'a [ApprovalId]> + 'a {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= ids.len() {
            return None;
        }
        let mut end = start + 1;
        let mut bytes = sizes[start];
        while end < ids.len() && bytes + sizes[end] <= budget {
            bytes += sizes[end];
            end += 1;
        }
        let page = &ids[start..end];
        start = end;
        Some(page)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<ApprovalId> {
        (0..n)
            .map(|i| ApprovalId::generate_at(crate::domain::Millis(i as u64)))
            .collect()
    }

    fn cut(sizes: &[usize], budget: usize) -> Vec<usize> {
        let ids = ids(sizes.len());
        let pages: Vec<&[ApprovalId]> = pages(&ids, sizes, budget).collect();
        // In order, each id once.
        assert_eq!(pages.concat(), ids);
        pages.iter().map(|p| p.len()).collect()
    }

    #[test]
    fn a_snapshot_page_holds_as_many_approvals_as_fit_in_the_budget() {
        assert_eq!(cut(&[100; 10], 1000), vec![10]);
        assert_eq!(cut(&[100; 10], 250), vec![2, 2, 2, 2, 2]);
        assert_eq!(cut(&[600, 300, 200, 900, 50], 1000), vec![2, 1, 2]);
    }

    #[test]
    fn an_approval_larger_than_the_budget_is_a_page_of_its_own() {
        assert_eq!(cut(&[10, 5000, 10], 1000), vec![1, 1, 1]);
        assert_eq!(cut(&[], 1000), Vec::<usize>::new());
    }

    #[test]
    fn gone_approvals_take_no_room() {
        assert_eq!(cut(&[0, 0, 500, 0, 500, 0], 1000), vec![6]);
    }
}
