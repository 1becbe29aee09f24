//! The approval desk: every use case of the API, over a store, on one
//! replica. The gRPC layer (`api`) converts and delegates to this.
//!
//! Background tasks (started by `Approvals::start`):
//! - the `EventPump` reads the store's event log (blocking read, no polling),
//!   wakes local waiters on `resolved` events and feeds local watchers;
//! - the reaper sleeps until the earliest pending deadline and expires what
//!   is due; every replica runs one, the store makes each expiry happen once;
//! - the reminder task sleeps until the earliest reminder is due and writes
//!   it (a `reminder` event, for notifications); the store writes each once;
//! - the health monitor pings the store and reports reachability.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;

use crate::config_file::SharedPolicies;
use crate::domain::{
    Approval, ApprovalId, Caller, ContextDigest, Cursor, Decision, DomainError, Ending, Epoch,
    Event, EventKind, Filter, Finished, Limits, ListQuery, NewApproval, OnTimeout, Page, Policies,
    Position, Principal, Reason, Status,
};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::shutdown::Shutdown;
use crate::store::{Created, Store};
use crate::waiters::Waiters;
use crate::watch_queue;
use crate::AUDIT_TARGET;

/// How many events a local watcher may fall behind before it re-reads the
/// store to catch up. The feed keeps up to this many events alive for a
/// lagging watcher, whatever their size: keep it small.
const FEED_CAPACITY: usize = 256;
/// Events the pump reads from the store at once.
const READ_BATCH: usize = 100;
/// How long one blocking read of the event log waits (and so, at most, how
/// long a wiped store goes unnoticed).
const PUMP_BLOCK: Duration = Duration::from_secs(2);
/// How often the pump checks that the store's history did not change.
const HISTORY_CHECK: Duration = Duration::from_secs(1);
/// Pause between retries while the store is unreachable.
const STORE_RETRY: Duration = Duration::from_millis(500);
/// Longest reaper sleep when nothing is pending (new approvals wake it).
const REAPER_IDLE: Duration = Duration::from_secs(60);
/// Pause of the reaper when what looked due was not due yet by the store's
/// clock.
const REAPER_EARLY: Duration = Duration::from_millis(20);
/// How often this replica measures its clock against the store's.
const CLOCK_SYNC: Duration = Duration::from_secs(30);
/// Approvals expired per reaper round.
const REAPER_BATCH: usize = 100;
/// How long a write whose outcome is unknown is retried to learn the truth
/// (at most; never past the caller's deadline).
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// Pause between those retries.
const SETTLE_RETRY: Duration = Duration::from_millis(200);

/// A human's answer to one approval, as `Respond` carries it.
pub struct Answer {
    pub decision: Decision,
    pub responder: Principal,
    pub reason: Reason,
    /// The context digest the responder saw, when their client sent it.
    pub expected_digest: Option<ContextDigest>,
}

#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    limits: Limits,
    /// The configuration file's policies, as last loaded.
    policies: SharedPolicies,
    waiters: Waiters,
    /// Every event, as the pump reads it, for local watchers.
    feed: broadcast::Sender<Feed>,
    /// Bumped after the pump recovers from a store outage: waiters re-read.
    resync: watch::Sender<u64>,
    /// Whether this replica should get calls (store reachable, writes accepted).
    readiness: Readiness,
    /// When the reaper plans to wake next (ms); the pump wakes it earlier
    /// when an approval with an earlier deadline arrives.
    reaper_plan: AtomicU64,
    reaper_wake: Notify,
    /// The same for the reminder task.
    reminder_plan: AtomicU64,
    reminder_wake: Notify,
    metrics: Metrics,
    shutdown: Shutdown,
    /// Open `WatchPending` streams, in all and per principal.
    watchers: std::sync::Mutex<OpenWatchers>,
}

/// What one look at an awaited approval found.
enum Look {
    Final(Box<Approval>),
    Again(Option<Duration>),
}

/// One item of a `WatchPending` stream.
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// A pending approval of the snapshot (no cursor).
    Pending(Box<Approval>),
    /// The snapshot is complete as of this position.
    Synced(Cursor),
    /// A live change, shared by every watcher that gets it.
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
    Snapshot(Vec<ApprovalId>, Cursor),
    Resume(Cursor),
}

/// What the pump passes to local watchers, in log order.
#[derive(Clone)]
enum Feed {
    Event(Arc<Event>),
    /// The pump could not read the events up to `resumed_at` (trimmed while
    /// the store was unreachable): watchers behind it look in the store.
    Gap {
        resumed_at: Cursor,
    },
    /// The store's history changed (wiped or restored): every watcher ends.
    HistoryChanged,
}

/// What an open watcher holds until its response stream is dropped: its
/// place under the caps, and the gauge. Held by the stream, not by the
/// producer, so a watcher that was ended but whose HTTP/2 stream still
/// buffers data keeps counting.
pub struct WatcherLease {
    _slot: WatcherSlot,
    _open: GaugeGuard,
}

/// Keeps a gauge up while a call is open.
struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl GaugeGuard {
    fn new(g: &prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Approvals {
    pub fn new(
        store: Arc<dyn Store>,
        limits: Limits,
        policies: SharedPolicies,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                limits,
                policies,
                waiters: Waiters::default(),
                feed: broadcast::channel(FEED_CAPACITY).0,
                resync: watch::channel(0).0,
                readiness: Readiness::new(metrics.clone()),
                reaper_plan: AtomicU64::new(0),
                reaper_wake: Notify::new(),
                reminder_plan: AtomicU64::new(0),
                reminder_wake: Notify::new(),
                metrics,
                shutdown,
                watchers: Default::default(),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The policies in force now (a new approval copies its own).
    pub fn policies(&self) -> Arc<Policies> {
        self.inner.policies.load_full()
    }

    /// Readiness (store reachable and accepting writes), for health reporting.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.inner.readiness.subscribe()
    }

    /// Starts the event pump, the reaper, the reminder task and the health
    /// monitor.
    pub fn start(&self, health_interval: Duration) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().run_pump()),
            tokio::spawn(self.clone().run_reaper()),
            tokio::spawn(self.clone().run_reminders()),
            tokio::spawn(self.clone().run_health(health_interval)),
        ]
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Counts a failed store call, passing the error on; a refused write
    /// turns readiness NOT_SERVING at once (the health probe turns it back).
    fn note<T>(&self, r: Result<T, DomainError>) -> Result<T, DomainError> {
        match &r {
            Err(DomainError::Unavailable(_)) => {
                self.inner.metrics.store_errors.inc();
            }
            Err(DomainError::WritesRefused {
                cause,
                message,
                detail,
            }) => {
                self.inner.metrics.store_errors.inc();
                self.inner.readiness.writes_refused(cause, message, detail);
            }
            _ => {}
        }
        r
    }

    // ---- use cases -------------------------------------------------------

    /// Creates an approval, or attaches to the requester's one with the same
    /// idempotency key. When the store's answer is lost, the same write (same
    /// id) is repeated until the store says what happened, within
    /// `call_deadline`.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewApproval,
        call_deadline: Option<Instant>,
    ) -> Result<Created, DomainError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(DomainError::ShuttingDown);
        }
        audit_refusal(caller, "create", caller.may_create())?;
        let id = ApprovalId::generate_at(self.store().now());
        let advice = match new.idempotency_key {
            Some(_) => "retry with the same idempotency_key: it re-attaches to the approval if it was created",
            None => "look for it (ListApprovals) before retrying: this request had no idempotency_key, so a retry may create a second approval",
        };
        let max_open = self.inner.limits.max_open_per_requester;
        let created = self
            .settle(call_deadline, advice, || {
                self.store().create(id.clone(), new.clone(), max_open)
            })
            .await?;
        if created.created {
            self.inner.metrics.created.inc();
            audit(
                "created",
                &created.approval,
                &created.approval.requester,
                caller,
            );
        }
        Ok(created)
    }

    /// Waits until the approval is final. Returns `CallDeadline` at
    /// `call_deadline` (the approval stays pending), `ShuttingDown` on
    /// shutdown. While the store is unreachable it keeps waiting: it never
    /// makes up an outcome.
    pub async fn wait_final(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        call_deadline: Option<Instant>,
    ) -> Result<Approval, DomainError> {
        // Register before reading, so a decision in between still wakes us.
        let mut waiter = self.inner.waiters.register(id);
        let _open = GaugeGuard::new(&self.inner.metrics.waiters);
        let mut resync = self.inner.resync.subscribe();
        let mut first_look = true;
        loop {
            // Boxed: a look holds approvals and store calls only while it
            // runs, so what stays parked while the call waits is small.
            let expire_in = match Box::pin(self.look(caller, id, first_look)).await? {
                Look::Final(a) => return Ok(*a),
                Look::Again(expire_in) => expire_in,
            };
            first_look = false;
            // One timer per waiter: the next look, or the call's deadline.
            let look_again = Instant::now() + expire_in.unwrap_or(STORE_RETRY);
            let wake = call_deadline.map_or(look_again, |d| d.min(look_again));
            tokio::select! {
                a = waiter.resolved() => {
                    if matches!(a.status, Status::Approved | Status::Rejected) {
                        if let Some(r) = &a.resolution {
                            let latency = r.decided_at.until(self.store().now());
                            self.inner.metrics.decision_latency.observe(latency.as_secs_f64());
                        }
                    }
                    return Ok(a);
                }
                _ = resync.changed() => {}
                _ = tokio::time::sleep_until(wake) => {
                    if call_deadline.is_some_and(|d| d <= Instant::now()) {
                        return Err(DomainError::CallDeadline(id.clone()));
                    }
                }
                _ = self.inner.shutdown.cancelled() => return Err(DomainError::ShuttingDown),
            }
        }
    }

    /// One read of the approval for `wait_final`: final (or expired by this
    /// call), or how long until it should be looked at again (`None`: after
    /// STORE_RETRY, for store trouble or an expiry that has not landed yet).
    async fn look(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        first_look: bool,
    ) -> Result<Look, DomainError> {
        let now = self.store().now();
        let found = self.note(self.store().get(id).await);
        if let (true, Ok(Some(a))) = (first_look, &found) {
            audit_refusal(caller, "read", caller.check_see(a))?;
        }
        let expire_in = match found {
            Ok(Some(a)) if a.is_final() => return Ok(Look::Final(Box::new(a))),
            Ok(Some(a)) if a.deadline > now => Some(now.until(a.deadline)),
            Ok(Some(_)) => match self.note(self.store().expire(id).await) {
                Ok(Some(a)) => {
                    self.expired(&a);
                    return Ok(Look::Final(Box::new(a)));
                }
                // Someone else expired it (or is about to): read again.
                Ok(None) => Some(Duration::from_millis(10)),
                Err(_) => None,
            },
            Ok(None) => return Err(DomainError::NotFound(id.clone())),
            Err(e) if first_look => return Err(e),
            Err(_) => None,
        };
        Ok(Look::Again(expire_in))
    }

    pub async fn respond(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        answer: Answer,
        call_deadline: Option<Instant>,
    ) -> Result<Approval, DomainError> {
        let Answer {
            decision,
            responder,
            reason,
            expected_digest,
        } = answer;
        if matches!(caller, Caller::Known { .. }) || expected_digest.is_some() {
            let approval = self.get_unchecked(id).await?;
            if let Caller::Known { .. } = caller {
                audit_refusal(caller, "decide", caller.may_decide(&approval))?;
            }
            // The context of an id never changes, so checking before the
            // atomic finish cannot race with another writer.
            if let Some(expected) = expected_digest {
                if expected != approval.context_digest {
                    return Err(DomainError::ContextDigestMismatch {
                        id: id.clone(),
                        expected: expected.into_string(),
                        actual: approval.context_digest.into_string(),
                    });
                }
            }
        }
        let ending = Ending::Decided {
            decision,
            by: responder.into_string(),
            reason: reason.into_string(),
        };
        self.finish(caller, id, ending, call_deadline).await
    }

    /// Withdraws a pending approval. `by` is the canceller (today: the
    /// approval's requester, since nobody is authenticated).
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        reason: Reason,
        call_deadline: Option<Instant>,
    ) -> Result<Approval, DomainError> {
        let approval = self.get_unchecked(id).await?;
        audit_refusal(caller, "cancel", caller.may_cancel(&approval))?;
        let by = caller
            .principal()
            .map_or(approval.requester, |p| p.as_str().to_string());
        let ending = Ending::Cancelled {
            by,
            reason: reason.into_string(),
        };
        self.finish(caller, id, ending, call_deadline).await
    }

    /// Applies `ending`. When the store's answer is lost, the same ending is
    /// applied again until the store says what happened (within
    /// `call_deadline`): a repeat of what landed is OK, as for a client retry.
    async fn finish(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        ending: Ending,
        call_deadline: Option<Instant>,
    ) -> Result<Approval, DomainError> {
        let advice = match ending {
            Ending::Decided { .. } => "the same Respond (same responder and decision) is safe to retry: it returns OK if this decision was recorded",
            Ending::Cancelled { .. } => "the same CancelApproval is safe to retry: it returns OK if the approval was cancelled",
        };
        let finished = self
            .settle(call_deadline, advice, || self.store().finish(id, &ending))
            .await?;
        match finished {
            Finished::Done(a) => {
                if let Ending::Decided { decision, .. } = &ending {
                    self.inner.metrics.vote(*decision);
                }
                self.inner.metrics.finished(a.status);
                audit(a.status.name(), &a, ending.by(), caller);
                Ok(a)
            }
            Finished::Voted(a) => {
                if let Ending::Decided { decision, .. } = &ending {
                    self.inner.metrics.vote(*decision);
                }
                audit("voted", &a, ending.by(), caller);
                Ok(a)
            }
            Finished::AlreadyFinal(a) | Finished::AlreadyVoted(a) if ending.is_repeat_of(&a) => {
                Ok(a)
            }
            Finished::AlreadyVoted(a) => match a.vote_of(ending.by()) {
                Some(v) => Err(DomainError::VoteChanged {
                    id: a.id.clone(),
                    voter: v.voter.clone(),
                    previous: v.decision,
                    at: v.at,
                    required: a.policy.required_approvals,
                }),
                None => Err(DomainError::Internal(format!(
                    "the store reported a vote by {} on {} that the approval does not hold",
                    ending.by(),
                    a.id
                ))),
            },
            Finished::Expired(a) => {
                self.expired(&a);
                Err(DomainError::AlreadyFinal(Box::new(a)))
            }
            Finished::AlreadyFinal(a) => Err(DomainError::AlreadyFinal(Box::new(a))),
            Finished::NotFound => Err(DomainError::NotFound(id.clone())),
        }
    }

    /// Counts and audits an expiry this replica made. Under a policy whose
    /// `on_timeout` is `approve` the gate proceeds: audited like a decision,
    /// by the policy.
    fn expired(&self, a: &Approval) {
        self.inner.metrics.finished(Status::Expired);
        match a.policy.on_timeout {
            OnTimeout::Reject => audit("expired", a, SYSTEM, &Caller::Open),
            OnTimeout::Approve => {
                self.inner.metrics.auto_decided(a.policy.on_timeout);
                audit(
                    "auto-approved",
                    a,
                    &format!("policy:{}", a.policy.name),
                    &Caller::Open,
                );
            }
        }
    }

    /// Runs a store write that is safe to repeat. When its outcome is
    /// unknown (sent, no answer), repeats it until the store answers for
    /// sure, Redis is found down (a connection refused), `SETTLE_WITHIN`
    /// passes or `call_deadline` nears; then says the outcome is unknown,
    /// with `advice`, rather than that nothing happened.
    async fn settle<T, F, Fut>(
        &self,
        call_deadline: Option<Instant>,
        advice: &str,
        mut write: F,
    ) -> Result<T, DomainError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DomainError>>,
    {
        // Every attempt ends by the caller's deadline: an answer after it
        // would reach nobody.
        let mut attempt = |until: Option<Instant>| {
            let write = write();
            async move {
                let Some(until) = until else {
                    return write.await;
                };
                tokio::time::timeout_at(until, write)
                    .await
                    .unwrap_or_else(|_| {
                        Err(DomainError::OutcomeUnknown {
                            detail: "the store had not answered by the call's deadline".into(),
                            advice: String::new(),
                        })
                    })
            }
        };
        let mut detail = match self.note(attempt(call_deadline).await) {
            Err(DomainError::OutcomeUnknown { detail, .. }) => detail,
            other => return other,
        };
        let give_up = call_deadline.map_or(Instant::now() + SETTLE_WITHIN, |d| {
            d.min(Instant::now() + SETTLE_WITHIN)
        });
        while Instant::now() + SETTLE_RETRY < give_up && self.pause(SETTLE_RETRY).await {
            match self.note(attempt(Some(give_up)).await) {
                Err(DomainError::OutcomeUnknown { detail: d, .. })
                | Err(DomainError::WritesRefused { message: d, .. }) => detail = d,
                Err(DomainError::Unavailable(d)) => {
                    detail = format!("{detail}, then {d}");
                    break;
                }
                settled => {
                    self.inner.metrics.outcomes_settled.inc();
                    return settled;
                }
            }
        }
        self.inner.metrics.outcomes_unknown.inc();
        tracing::warn!(%detail, "a write's outcome stays unknown: told the caller so");
        Err(DomainError::OutcomeUnknown {
            detail,
            advice: advice.to_string(),
        })
    }

    pub async fn get(&self, caller: &Caller, id: &ApprovalId) -> Result<Approval, DomainError> {
        let approval = self.get_unchecked(id).await?;
        audit_refusal(caller, "read", caller.check_see(&approval))?;
        Ok(approval)
    }

    async fn get_unchecked(&self, id: &ApprovalId) -> Result<Approval, DomainError> {
        self.note(self.store().get(id).await)?
            .ok_or_else(|| DomainError::NotFound(id.clone()))
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, DomainError> {
        self.note(self.store().list(query).await)
    }

    /// Starts a `WatchPending` stream: a snapshot then live changes (no
    /// cursor), or the changes after `cursor`. The stream ends when the
    /// receiver is dropped, on shutdown, when the watcher falls behind
    /// (`WatcherBehind`), or when it would skip events (`CursorExpired`,
    /// `HistoryChanged`): it never goes on past a gap.
    pub async fn watch(
        &self,
        watcher: Option<String>,
        filter: Filter,
        cursor: Option<Position>,
    ) -> Result<Watch, DomainError> {
        let slot = WatcherSlot::take(self, watcher)?;
        // Subscribe before reading the store: every event after what the
        // reads below return is then in `feed`.
        let feed = self.inner.feed.subscribe();
        let epoch = self.note(self.store().epoch().await)?;
        let start = match cursor {
            Some(p) => {
                if p.epoch.is_some_and(|e| e != epoch) {
                    return Err(DomainError::HistoryChanged);
                }
                self.note(self.store().check_cursor(p.at).await)?;
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
        tokio::spawn(async move {
            let mut skipped = HashSet::new();
            let position = match start {
                Start::Resume(at) => at,
                Start::Snapshot(ids, at) => {
                    if !this
                        .send_snapshot(&filter, ids, at, &tx, &mut skipped)
                        .await
                    {
                        return;
                    }
                    at
                }
            };
            this.follow(filter, position, feed, &tx, skipped).await;
        });
        Ok(Watch { epoch, items })
    }

    /// The snapshot: the approvals pending at `at` that match `filter`,
    /// oldest first, then `synced` at `at`. Read a page at a time as the
    /// client takes them, so a watcher holds ids, never the whole set.
    ///
    /// An approval pending at `at` may be final by the time its page is
    /// read: it is left out and noted in `skipped`, so that its `resolved`
    /// event (after `at`) is not sent either.
    async fn send_snapshot(
        &self,
        filter: &Filter,
        ids: Vec<ApprovalId>,
        at: Cursor,
        tx: &WatchSender,
        skipped: &mut HashSet<ApprovalId>,
    ) -> bool {
        for page in ids.chunks(self.page_len()) {
            let approvals = match self.note(self.store().get_many(page).await) {
                Ok(approvals) => approvals,
                Err(e) => return self.end(tx, e).await,
            };
            for (id, approval) in page.iter().zip(approvals) {
                match approval {
                    Some(a) if !a.is_final() => {
                        if filter.matches(&a) {
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
        }
        self.deliver(tx, WatchItem::Synced(at), 0).await
    }

    /// Live part of a watch: events after `position`, from the local feed,
    /// falling back to the store whenever the feed cannot be trusted to be
    /// complete (at the start, after this watcher lagged behind it, after
    /// the pump lost events).
    async fn follow(
        &self,
        filter: Filter,
        mut position: Cursor,
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
            filter.matches(&e.approval)
        };
        'catch_up: loop {
            // Everything the store has after `position`...
            loop {
                let events = match self.read_after(position, self.page_len()).await {
                    Ok(events) => events,
                    Err(e) => {
                        self.end(tx, e).await;
                        return;
                    }
                };
                if events.is_empty() {
                    break;
                }
                for e in events {
                    if wanted(&e) {
                        let bytes = e.approval.wire_bytes();
                        let cursor = e.cursor;
                        if !self
                            .deliver(tx, WatchItem::Change(Arc::new(e)), bytes)
                            .await
                        {
                            return;
                        }
                        position = cursor;
                    } else {
                        position = e.cursor;
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
                match received {
                    Ok(Feed::Event(e)) if e.cursor <= position => {}
                    Ok(Feed::Event(e)) => {
                        if wanted(&e) {
                            let bytes = e.approval.wire_bytes();
                            if !self.deliver(tx, WatchItem::Change(e.clone()), bytes).await {
                                return;
                            }
                        }
                        position = e.cursor;
                    }
                    // The pump lost events: read them from the store, or
                    // find that they are gone.
                    Ok(Feed::Gap { resumed_at }) if position < resumed_at => continue 'catch_up,
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

    /// Events after `position`, or `CursorExpired` if some were trimmed.
    async fn read_after(&self, position: Cursor, limit: usize) -> Result<Vec<Event>, DomainError> {
        let events = self.note(self.store().read_events(position, limit, None).await)?;
        // Read first, then check: trimming only ever removes the oldest
        // events, so if nothing after `position` is trimmed now, nothing was
        // when the read ran, and `events` starts right after `position`.
        if let Err(e) = self.note(self.store().check_cursor(position).await) {
            if let DomainError::CursorExpired(_) = e {
                self.inner.metrics.watchers_ended("events_trimmed");
            }
            return Err(e);
        }
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

    // ---- background tasks -----------------------------------------------

    fn set_healthy(&self, ok: bool) {
        self.inner.readiness.reachable(ok);
    }

    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.inner.shutdown.cancelled() => false,
        }
    }

    /// The event pump: one blocking read of the log at a time, resuming from
    /// the last event it saw after any failure. Between reads it checks
    /// that the store's history is still the one it read (the epoch did not
    /// change, the log did not rewind).
    async fn run_pump(self) {
        let mut warned = false;
        let (mut epoch, mut position) = loop {
            let read = async {
                Ok::<_, DomainError>((self.store().epoch().await?, self.store().head().await?))
            };
            match read.await {
                Ok(start) => break start,
                Err(e) => {
                    self.set_healthy(false);
                    if !warned {
                        warned = true;
                        tracing::warn!(error = %e, "event pump: cannot read the event log yet; retrying");
                    }
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                }
            }
        };
        let mut counted_through = self.refresh_pending_count().await;
        let mut failing = false;
        let mut checked_at = Instant::now();
        loop {
            let read = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                r = self.store().read_events(position, READ_BATCH, Some(PUMP_BLOCK)) => r,
            };
            match read {
                Ok(events) => {
                    if failing {
                        failing = false;
                        tracing::info!("event pump: store reachable again, resuming at {position}");
                        self.set_healthy(true);
                        // Waiters re-read in case what they wait for is gone
                        // from the log; the count may have drifted.
                        self.inner.resync.send_modify(|g| *g += 1);
                        counted_through = self.refresh_pending_count().await;
                    }
                    let idle = events.is_empty();
                    for e in events {
                        position = e.cursor;
                        self.dispatch(e, counted_through);
                    }
                    if idle || checked_at.elapsed() >= HISTORY_CHECK {
                        checked_at = Instant::now();
                        if let Ok(Some((new_epoch, head))) =
                            self.history_changed(epoch, position).await
                        {
                            tracing::warn!(
                                "event pump: the store's history changed (wiped or restored; epoch {:x} -> {:x}); \
                                 ending every watch and re-reading what waiters wait for",
                                epoch.0, new_epoch.0
                            );
                            epoch = new_epoch;
                            position = head;
                            let _ = self.inner.feed.send(Feed::HistoryChanged);
                            self.inner.resync.send_modify(|g| *g += 1);
                            counted_through = self.refresh_pending_count().await;
                        }
                    }
                }
                Err(e) => {
                    self.inner.metrics.store_errors.inc();
                    if !failing {
                        tracing::warn!(error = %e, "event pump: store unreachable; waiters keep waiting");
                    }
                    failing = true;
                    self.set_healthy(false);
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    if let Err(DomainError::CursorExpired(_) | DomainError::CursorAhead { .. }) =
                        self.store().check_cursor(position).await
                    {
                        // Events we never saw were trimmed: start from now.
                        // Watchers behind `head` look for them in the store
                        // (and end if they are gone); the resync after
                        // recovery makes waiters re-read.
                        if let Ok(head) = self.store().head().await {
                            tracing::warn!("event pump: events after {position} were trimmed; continuing at {head}");
                            position = head;
                            let _ = self.inner.feed.send(Feed::Gap { resumed_at: head });
                        }
                    }
                }
            }
        }
    }

    /// Whether the store's history is no longer the one of `epoch` read up
    /// to `position`: the epoch changed (the store was wiped: the next
    /// reader drew a new one), or the log ends before `position` (restored
    /// from an older copy: this pump draws a new epoch). Returns the new
    /// epoch and the log's head.
    async fn history_changed(
        &self,
        epoch: Epoch,
        position: Cursor,
    ) -> Result<Option<(Epoch, Cursor)>, DomainError> {
        let now = self.store().epoch().await?;
        let head = self.store().head().await?;
        if now != epoch {
            return Ok(Some((now, head)));
        }
        if head < position {
            return Ok(Some((self.store().renew_epoch(epoch).await?, head)));
        }
        Ok(None)
    }

    /// Sets the pending gauge from the store; returns the event the count
    /// reflects, so the pump does not count events up to it a second time.
    async fn refresh_pending_count(&self) -> Cursor {
        match self.store().pending_count().await {
            Ok((n, at)) => {
                self.inner.metrics.pending.set(n as i64);
                at
            }
            Err(_) => Cursor::START,
        }
    }

    fn dispatch(&self, e: Event, counted_through: Cursor) {
        let count = e.cursor > counted_through;
        match e.kind {
            EventKind::Added => {
                if count {
                    self.inner.metrics.pending.inc();
                }
                let deadline = e.approval.deadline.0;
                if deadline < self.inner.reaper_plan.load(Ordering::Acquire) {
                    self.inner.reaper_plan.store(deadline, Ordering::Release);
                    self.inner.reaper_wake.notify_one();
                }
                let a = &e.approval;
                if let Some(first) = a.policy.remind_after.first() {
                    let at = a.created_at.plus(*first).0;
                    if at < self.inner.reminder_plan.load(Ordering::Acquire) {
                        self.inner.reminder_plan.store(at, Ordering::Release);
                        self.inner.reminder_wake.notify_one();
                    }
                }
            }
            EventKind::Updated | EventKind::Reminder(_) => {}
            EventKind::Resolved => {
                if count {
                    self.inner.metrics.pending.dec();
                }
                self.inner.waiters.resolve(&e.approval);
            }
        }
        // No receivers is fine: nobody is watching on this replica.
        let _ = self.inner.feed.send(Feed::Event(Arc::new(e)));
    }

    /// The reaper: sleeps until the earliest pending deadline (or until the
    /// pump reports an earlier one), then expires everything due.
    async fn run_reaper(self) {
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
            let next = match self.store().next_deadline().await {
                Ok(next) => next,
                Err(_) => {
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let idle = self.store().now().plus(REAPER_IDLE);
            let wake_at = next.map_or(idle, |n| n.min(idle));
            self.inner.reaper_plan.store(wake_at.0, Ordering::Release);
            let sleep = Instant::now() + self.store().now().until(wake_at).max(at_least);
            tokio::select! {
                _ = tokio::time::sleep_until(sleep) => {}
                _ = self.inner.reaper_wake.notified() => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
    }

    /// The reminder task: sleeps until the earliest reminder is due (or
    /// until the pump reports an approval with an earlier one), then writes
    /// every due reminder. Every replica runs one; the store writes each
    /// reminder once.
    async fn run_reminders(self) {
        loop {
            let now = self.store().now();
            let due = match self.store().due_reminders(now, REAPER_BATCH).await {
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
                    tracing::info!(
                        target: AUDIT_TARGET,
                        action = "reminded",
                        id = %a.id,
                        approval_type = %a.approval_type,
                        reminder = n,
                        policy = %a.policy.name,
                        "approval reminder {n} due"
                    );
                }
            }
            if due.len() == REAPER_BATCH && written > 0 {
                continue;
            }
            let at_least = match due.is_empty() || written > 0 {
                true => Duration::ZERO,
                false => REAPER_EARLY,
            };
            let next = match self.store().next_reminder().await {
                Ok(next) => next,
                Err(_) => {
                    if !self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let idle = self.store().now().plus(REAPER_IDLE);
            let wake_at = next.map_or(idle, |n| n.min(idle));
            self.inner.reminder_plan.store(wake_at.0, Ordering::Release);
            let sleep = Instant::now() + self.store().now().until(wake_at).max(at_least);
            tokio::select! {
                _ = tokio::time::sleep_until(sleep) => {}
                _ = self.inner.reminder_wake.notified() => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
        }
    }

    /// The health monitor: a write probe every `interval` feeds readiness;
    /// each time the store becomes reachable, its eviction policy is checked.
    async fn run_health(self, interval: Duration) {
        let mut was_reachable = false;
        let mut last_sync = Instant::now();
        loop {
            let reachable = match self.store().ping().await {
                Ok(()) => {
                    self.inner.readiness.writes_accepted();
                    true
                }
                Err(DomainError::WritesRefused {
                    cause,
                    message,
                    detail,
                }) => {
                    self.inner
                        .readiness
                        .writes_refused(cause, &message, &detail);
                    true
                }
                Err(_) => {
                    self.set_healthy(false);
                    false
                }
            };
            if reachable && !was_reachable {
                self.check_eviction().await;
            }
            if reachable && (!was_reachable || last_sync.elapsed() >= CLOCK_SYNC) {
                match self.store().sync_clock().await {
                    Ok(()) => last_sync = Instant::now(),
                    Err(e) => tracing::debug!(error = %e, "cannot read the store's clock"),
                }
            }
            was_reachable = reachable;
            if !self.pause(interval).await {
                return;
            }
        }
    }

    /// Warns loudly when the store may evict keys: eviction silently loses
    /// approvals (pending ones vanish, decisions are forgotten).
    async fn check_eviction(&self) {
        match self.store().eviction_policy().await {
            Ok(Some(policy)) => {
                self.inner.metrics.store_evicting.set(1);
                tracing::error!(
                    policy = %policy,
                    "Redis maxmemory-policy is {policy:?}: under memory pressure Redis EVICTS keys, \
                     silently losing approvals (pending ones vanish, decisions are forgotten). \
                     Set maxmemory-policy noeviction: a full Redis then refuses writes \
                     (UNAVAILABLE, readiness NOT_SERVING) instead of losing data"
                );
            }
            Ok(None) => {
                self.inner.metrics.store_evicting.set(0);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read Redis maxmemory-policy"),
        }
    }

    /// Calls waiting on this replica.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.count()
    }
}

/// The name the service itself acts under in the audit log (expiry).
const SYSTEM: &str = "approvald";

/// One audit record: an approval was created or became final.
fn audit(action: &str, a: &Approval, principal: &str, caller: &Caller) {
    let method = match caller {
        Caller::Open => "none",
        Caller::Known { identity, .. } => identity.method.name(),
    };
    tracing::info!(
        target: AUDIT_TARGET,
        action,
        id = %a.id,
        approval_type = %a.approval_type,
        principal,
        auth = method,
        requester = %a.requester,
        status = a.status.name(),
        "approval {action}"
    );
}

/// Passes `check` on, recording a refusal in the audit log.
fn audit_refusal(
    caller: &Caller,
    action: &str,
    check: Result<(), DomainError>,
) -> Result<(), DomainError> {
    if let Err(e) = &check {
        tracing::info!(
            target: AUDIT_TARGET,
            action = "refused",
            attempted = action,
            principal = caller.principal().map_or("", |p| p.as_str()),
            reason = %e,
            "refused"
        );
    }
    check
}

#[derive(Default)]
struct OpenWatchers {
    total: usize,
    per_principal: HashMap<String, usize>,
}

/// A place among the replica's open watchers (and its principal's, when
/// known), given back on drop.
struct WatcherSlot {
    approvals: Approvals,
    key: Option<String>,
}

impl WatcherSlot {
    fn take(approvals: &Approvals, key: Option<String>) -> Result<Self, DomainError> {
        let limits = &approvals.inner.limits;
        let mut open = approvals
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if open.total >= limits.max_watchers {
            return Err(DomainError::ResourceExhausted(format!(
                "this replica already has {} WatchPending streams open (--max-watchers): retry later or on another replica",
                limits.max_watchers
            )));
        }
        if let Some(key) = &key {
            let max = limits.max_watchers_per_principal;
            let n = open.per_principal.entry(key.clone()).or_default();
            if *n >= max {
                return Err(DomainError::ResourceExhausted(format!(
                    "{key} already has {max} WatchPending streams open on this replica: close one first"
                )));
            }
            *n += 1;
        }
        open.total += 1;
        Ok(Self {
            approvals: approvals.clone(),
            key,
        })
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        let mut open = self
            .approvals
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(key) = &self.key {
            if let Some(n) = open.per_principal.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.per_principal.remove(key);
                }
            }
        }
    }
}
