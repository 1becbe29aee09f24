//! The approval desk: every use case of the API, over a store, on one
//! replica. The gRPC layer (`api`) converts and delegates to this.
//!
//! The use cases are here; the rest has a room of its own:
//! - `watch`: `WatchPending`, a snapshot then live changes;
//! - `looks`: the reads of waiting calls, batched (a crowd of waiters at
//!   once makes a few pipelined reads, not one round trip each);
//! - `pump`: the `EventPump` reads the store's event logs (one per
//!   partition, a blocking read each, no polling), wakes local waiters on
//!   `resolved` events and feeds local watchers;
//! - `reaper`: sleeps until the earliest pending deadline and expires what
//!   is due; every replica runs one, the store makes each expiry happen once;
//! - `reminders`: sleeps until the earliest reminder is due and writes it (a
//!   `reminder` event, for notifications); the store writes each once;
//! - the health monitor (`Readiness::monitor`) pings the store and reports
//!   reachability.
//!
//! `Approvals::start` starts the four background tasks (`Approvals::new`
//! the batcher of `looks`).

mod looks;
mod pump;
mod reaper;
mod reminders;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch as latest};
use tokio::time::Instant;

use crate::audit;
use crate::domain::{
    Approval, ApprovalId, Caller, ContextDigest, DomainError, Ending, Finished, Limits, ListQuery,
    NewApproval, OnTimeout, Page, Policies, Principal, Reason, Status, TraceContext, Verdict,
};
use crate::metrics::{GaugeGuard, Metrics};
use crate::readiness::Readiness;
use crate::shutdown::Shutdown;
use crate::store::{Created, Store};
use crate::telemetry;
use crate::waiters::{Waiter, Waiters};
use crate::watch_queue::WatcherQuota;

pub use watch::{Watch, WatchItem, WatcherLease};

/// Pause between retries while the store is unreachable.
const STORE_RETRY: Duration = Duration::from_millis(500);
/// How long a write whose outcome is unknown is retried to learn the truth
/// (at most; never past the caller's deadline).
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// Pause between those retries.
const SETTLE_RETRY: Duration = Duration::from_millis(200);
/// What a write attempt cut short by the call's deadline says.
const CUT_SHORT: &str = "the store had not answered by the call's deadline";

/// The policies in force, swapped whole when the configuration file is
/// re-read (`config_file`); read by every create.
pub type SharedPolicies = Arc<arc_swap::ArcSwap<Policies>>;

/// A human's answer to one approval, as `Respond` carries it.
pub struct Answer {
    pub verdict: Verdict,
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
    /// The reads of waiting calls, batched.
    looks: looks::Looks,
    /// Every event, as the pump reads it, for local watchers.
    feed: broadcast::Sender<pump::Feed>,
    /// Bumped after the pump recovers from a store outage: waiters re-read.
    resync: latest::Sender<u64>,
    /// Whether this replica should get calls (store reachable, writes accepted).
    readiness: Arc<Readiness>,
    /// When the reaper plans to wake next; the pump wakes it earlier when an
    /// approval with an earlier deadline arrives.
    reaper: reaper::Alarm,
    /// The same for the reminder task (the pump wakes it for an approval
    /// whose first reminder comes earlier).
    reminders: reaper::Alarm,
    metrics: Metrics,
    shutdown: Shutdown,
    /// The caps on open `WatchPending` streams, in all and per principal.
    watchers: WatcherQuota,
}

/// What one look at an awaited approval found.
enum Look {
    Final(Box<Approval>),
    Again(Option<Duration>),
}

impl Approvals {
    pub fn new(
        store: Arc<dyn Store>,
        limits: Limits,
        policies: SharedPolicies,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> Self {
        let watchers = WatcherQuota::new(limits.max_watchers, limits.max_watchers_per_principal);
        Self {
            inner: Arc::new(Inner {
                looks: looks::Looks::start(store.clone()),
                store,
                limits,
                policies,
                waiters: Waiters::default(),
                feed: broadcast::channel(pump::FEED_CAPACITY).0,
                resync: latest::channel(0).0,
                readiness: Arc::new(Readiness::new(metrics.clone())),
                reaper: reaper::Alarm::default(),
                reminders: reaper::Alarm::default(),
                metrics,
                shutdown,
                watchers,
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
    pub fn health(&self) -> latest::Receiver<bool> {
        self.inner.readiness.subscribe()
    }

    /// Starts the event pump, the reaper, the reminder task and the health
    /// monitor.
    pub fn start(&self, health_interval: Duration) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(pump::EventPump::run(self.clone())),
            tokio::spawn(self.clone().run_reaper()),
            tokio::spawn(self.clone().run_reminders()),
            tokio::spawn(self.inner.readiness.clone().monitor(
                self.inner.store.clone(),
                self.inner.shutdown.clone(),
                health_interval,
            )),
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
        let id = self.store().place(
            ApprovalId::generate_at(self.store().now()),
            new.requester.as_str(),
        );
        self.create_as(caller, id, new, call_deadline).await
    }

    /// `RequestApproval`: creates the approval, then waits until it is
    /// final. The waiter is registered under the new id before the write,
    /// so a decision right after it still wakes the call, and the write's
    /// own answer is the first look: no read follows the write.
    /// `created` is told what was created (or found) before the wait.
    pub async fn request(
        &self,
        caller: &Caller,
        new: NewApproval,
        call_deadline: Option<Instant>,
        created: impl FnOnce(&Approval),
    ) -> Result<Approval, DomainError> {
        let id = self.store().place(
            ApprovalId::generate_at(self.store().now()),
            new.requester.as_str(),
        );
        let waiter = self.inner.waiters.register(&id);
        let resync = self.inner.resync.subscribe();
        let made = self
            .create_as(caller, id.clone(), new, call_deadline)
            .await?;
        created(&made.approval);
        let approval = made.approval;
        if approval.id != id {
            // The idempotency key's approval, made by an earlier call: it
            // may have changed since the write read it.
            drop(waiter);
            return self.wait_final(caller, &approval.id, call_deadline).await;
        }
        audit::refusal(caller, "read", caller.check_see(&approval))?;
        let now = self.store().now();
        let first = match approval {
            a if a.is_final() => return Ok(a),
            a if a.deadline > now => Some(Look::Again(Some(now.until(a.deadline)))),
            // Past its deadline already (a retried write): look, to expire it.
            _ => None,
        };
        self.wait(caller, &id, waiter, resync, first, call_deadline)
            .await
    }

    /// Creates the approval with this id (`create`).
    async fn create_as(
        &self,
        caller: &Caller,
        id: ApprovalId,
        new: NewApproval,
        call_deadline: Option<Instant>,
    ) -> Result<Created, DomainError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(DomainError::ShuttingDown);
        }
        audit::refusal(caller, "create", caller.may_create())?;
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
            audit::record(
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
        let waiter = self.inner.waiters.register(id);
        let resync = self.inner.resync.subscribe();
        self.wait(caller, id, waiter, resync, None, call_deadline)
            .await
    }

    /// The wait of `wait_final`, once registered; `known` is the first look
    /// when the caller knows it already (`None`: read the approval first).
    async fn wait(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        mut waiter: Waiter,
        mut resync: latest::Receiver<u64>,
        mut known: Option<Look>,
        call_deadline: Option<Instant>,
    ) -> Result<Approval, DomainError> {
        let _open = GaugeGuard::new(&self.inner.metrics.waiters);
        let mut first_look = known.is_none();
        loop {
            let look = match known.take() {
                Some(look) => look,
                // Boxed: a look holds approvals and store calls only while
                // it runs, so what stays parked while the call waits is small.
                None => Box::pin(self.look(caller, id, first_look)).await?,
            };
            let expire_in = match look {
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
        let found = self.note(self.inner.looks.get(id).await);
        if let (true, Ok(Some(a))) = (first_look, &found) {
            audit::refusal(caller, "read", caller.check_see(a))?;
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
            verdict,
            responder,
            reason,
            expected_digest,
        } = answer;
        if matches!(caller, Caller::Known { .. }) || expected_digest.is_some() {
            let approval = self.get_unchecked(id).await?;
            if let Caller::Known { .. } = caller {
                audit::refusal(caller, "decide", caller.may_decide(&approval))?;
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
            verdict,
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
        audit::refusal(caller, "cancel", caller.may_cancel(&approval))?;
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
        self.link_to_requester(id).await;
        let advice = match ending {
            Ending::Decided { .. } => "the same Respond (same responder and decision) is safe to retry: it returns OK if this decision was recorded",
            Ending::Cancelled { .. } => "the same CancelApproval is safe to retry: it returns OK if the approval was cancelled",
        };
        let finished = self
            .settle(call_deadline, advice, || self.store().finish(id, &ending))
            .await?;
        match finished {
            Finished::Done(a) => {
                if let Ending::Decided { verdict, .. } = &ending {
                    self.inner.metrics.vote(*verdict);
                }
                self.inner.metrics.finished(a.status);
                audit::record(a.status.as_str(), &a, ending.by(), caller);
                Ok(a)
            }
            Finished::Voted(a) => {
                if let Ending::Decided { verdict, .. } = &ending {
                    self.inner.metrics.vote(*verdict);
                }
                audit::record("voted", &a, ending.by(), caller);
                Ok(a)
            }
            Finished::AlreadyFinal(a) | Finished::AlreadyVoted(a) if ending.is_repeat_of(&a) => {
                Ok(a)
            }
            Finished::AlreadyVoted(a) => match a.vote_of(ending.by()) {
                Some(v) => Err(DomainError::VoteChanged {
                    id: a.id.clone(),
                    voter: v.voter.clone(),
                    previous: v.verdict,
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
            OnTimeout::Reject => audit::expired(a),
            OnTimeout::Approve => {
                self.inner.metrics.auto_decided(a.policy.on_timeout);
                audit::auto_approved(a);
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
                            detail: CUT_SHORT.into(),
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
                | Err(DomainError::WritesRefused { message: d, .. }) => {
                    // A retry cut short by the deadline says less than the
                    // answers before it (say, too few Redis replicas).
                    if d != CUT_SHORT {
                        detail = d;
                    }
                }
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
        audit::refusal(caller, "read", caller.check_see(&approval))?;
        Ok(approval)
    }

    async fn get_unchecked(&self, id: &ApprovalId) -> Result<Approval, DomainError> {
        self.note(self.store().get(id).await)?
            .ok_or_else(|| DomainError::NotFound(id.clone()))
    }

    /// A page of the approvals that match `query` and that `caller` may see.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page, DomainError> {
        self.note(self.store().list(caller, query).await)
    }

    fn set_healthy(&self, ok: bool) {
        self.inner.readiness.reachable(ok);
    }

    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.inner.shutdown.cancelled() => false,
        }
    }

    /// The trace context `id` was created in, while traces are exported
    /// (`None` otherwise, without asking the store).
    pub(crate) async fn requester_trace(&self, id: &ApprovalId) -> Option<TraceContext> {
        if !telemetry::enabled() {
            return None;
        }
        self.store().trace_of(id).await.ok().flatten()
    }

    /// Links the current call's span to the trace that created `id`.
    pub async fn link_to_requester(&self, id: &ApprovalId) {
        if let Some(trace) = self.requester_trace(id).await {
            telemetry::link_current(&trace);
        }
    }

    /// A span, in the requester's trace, for `name` (expiry, a reminder)
    /// that already happened to `a` on this replica, with its outcome.
    async fn trace_done(&self, name: &'static str, a: &Approval) {
        if !telemetry::enabled() {
            return;
        }
        let trace = self.requester_trace(&a.id).await;
        let span = telemetry::approval_span(name, a, trace.as_ref());
        if a.is_final() {
            span.record("approval.outcome", a.status.as_str());
        }
    }

    /// Calls waiting on this replica.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.count()
    }
}
