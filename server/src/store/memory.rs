//! The embedded store: everything in one process, same rules as Redis.
//! Used when no Redis URL is given, so `approvald` runs with one command.
//! The webhook outbox lives beside it (`memory/outbox.rs`).

mod outbox;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Created, Retention, Store};
use crate::domain::{
    Approval, ApprovalId, Caller, Cursor, Detail, DomainError, Ending, Epoch, Event, EventKind,
    Finished, Frontier, ListQuery, Millis, NewApproval, Page, PageToken, TraceContext,
};

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes `read_events` callers blocked for new events.
    appended: Notify,
    retention: Retention,
    /// Memory is never wiped under a running process: one epoch for life.
    epoch: Epoch,
    outbox: outbox::MemoryOutbox,
}

#[derive(Default)]
struct State {
    /// Every approval within retention, by id (ids sort by creation time).
    approvals: BTreeMap<ApprovalId, Approval>,
    /// The trace context each was created in, if any (bounded per approval,
    /// forgotten with it).
    traces: HashMap<ApprovalId, TraceContext>,
    /// Final approvals: when each ages out.
    forget_at: BTreeSet<(Millis, ApprovalId)>,
    /// Pending approvals by deadline.
    pending: BTreeSet<(Millis, ApprovalId)>,
    /// (requester, idempotency key) -> id.
    idempotency: HashMap<(String, String), ApprovalId>,
    /// The request fingerprint of each approval made with an idempotency
    /// key (`Approval::request_fingerprint`), forgotten with it.
    fingerprints: HashMap<ApprovalId, String>,
    /// Pending approvals per requester (absent when none).
    open: HashMap<String, usize>,
    /// Pending approvals with a reminder to come: (when, id), and how many
    /// reminders each got so far.
    reminders: BTreeSet<(Millis, ApprovalId)>,
    reminded: HashMap<ApprovalId, u32>,
    events: VecDeque<Event>,
    last: Cursor,
    /// The newest cursor trimmed out of `events`.
    trimmed: Option<Cursor>,
}

impl MemoryStore {
    pub fn new(retention: Retention) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                appended: Notify::new(),
                retention,
                epoch: super::new_epoch(),
                outbox: Default::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this file; the
        // state is still consistent per operation, so keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, state: &mut State, kind: EventKind, approval: &Approval, now: Millis) {
        let cursor = if now.0 > state.last.ms {
            Cursor { ms: now.0, seq: 0 }
        } else {
            Cursor {
                ms: state.last.ms,
                seq: state.last.seq + 1,
            }
        };
        state.last = cursor;
        state.events.push_back(Event {
            cursor,
            partition: 0,
            resume: Frontier::single(cursor),
            kind,
            approval: approval.clone(),
            // Events hold the approval itself here: no byte issue in one
            // process (the log is capped in count).
            detail: Detail::Full,
        });
        while state.events.len() > self.inner.retention.max_events {
            if let Some(old) = state.events.pop_front() {
                state.trimmed = Some(old.cursor);
            }
        }
        self.inner.appended.notify_waiters();
    }

    /// Drops final approvals past retention.
    fn forget_old(&self, state: &mut State, now: Millis) {
        while let Some((at, id)) = state.forget_at.first().cloned() {
            if at > now {
                break;
            }
            state.forget_at.pop_first();
            state.traces.remove(&id);
            state.fingerprints.remove(&id);
            if let Some(a) = state.approvals.remove(&id) {
                if !a.idempotency_key.is_empty() {
                    state
                        .idempotency
                        .remove(&(a.requester.clone(), a.idempotency_key.clone()));
                }
            }
        }
    }

    /// When reminder `n` (1-based) of `a` is due, if it comes before its
    /// deadline.
    fn reminder_at(a: &Approval, n: u32) -> Option<Millis> {
        let offset = a.policy.remind_after.get(n.checked_sub(1)? as usize)?;
        let at = a.created_at.plus(*offset);
        (at < a.deadline).then_some(at)
    }

    fn make_final(&self, state: &mut State, approval: &Approval, now: Millis) {
        state
            .pending
            .remove(&(approval.deadline, approval.id.clone()));
        if let Some(n) = state.reminded.remove(&approval.id) {
            if let Some(at) = Self::reminder_at(approval, n + 1) {
                state.reminders.remove(&(at, approval.id.clone()));
            }
        }
        state.forget_at.insert((
            now.plus(self.inner.retention.final_approvals),
            approval.id.clone(),
        ));
        state
            .approvals
            .insert(approval.id.clone(), approval.clone());
        self.append(state, EventKind::Resolved, approval, now);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(
        &self,
        id: ApprovalId,
        new: NewApproval,
        max_open: usize,
    ) -> Result<Created, DomainError> {
        let now = Millis::now();
        let mut state = self.state();
        self.forget_old(&mut state, now);
        let key = new
            .idempotency_key
            .as_ref()
            .map(|k| (new.requester.as_str().to_string(), k.as_str().to_string()));
        if let Some(existing) = state.approvals.get(&id) {
            return Ok(Created {
                approval: existing.clone(),
                created: true,
            });
        }
        let trace = new.trace.clone();
        let requested = new.timeout.as_requested();
        let approval = new.into_approval_with_id(id, now);
        let fingerprint = approval.request_fingerprint(requested);
        if let Some(key) = &key {
            if let Some(existing) = state
                .idempotency
                .get(key)
                .and_then(|id| state.approvals.get(id))
            {
                if state.fingerprints.get(&existing.id) != Some(&fingerprint) {
                    return Err(super::key_reused(existing.clone()));
                }
                return Ok(Created {
                    approval: existing.clone(),
                    created: false,
                });
            }
        }
        let open = state.open.get(&approval.requester).copied().unwrap_or(0);
        if open >= max_open {
            return Err(super::quota_error(&approval.requester, max_open));
        }
        *state.open.entry(approval.requester.clone()).or_default() += 1;
        if let Some(key) = key {
            state.idempotency.insert(key, approval.id.clone());
            state.fingerprints.insert(approval.id.clone(), fingerprint);
        }
        state
            .approvals
            .insert(approval.id.clone(), approval.clone());
        if let Some(trace) = trace {
            state.traces.insert(approval.id.clone(), trace);
        }
        state
            .pending
            .insert((approval.deadline, approval.id.clone()));
        if let Some(at) = Self::reminder_at(&approval, 1) {
            state.reminders.insert((at, approval.id.clone()));
            state.reminded.insert(approval.id.clone(), 0);
        }
        self.append(&mut state, EventKind::Added, &approval, now);
        Ok(Created {
            approval,
            created: true,
        })
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let mut state = self.state();
        self.forget_old(&mut state, Millis::now());
        Ok(state.approvals.get(id).cloned())
    }

    async fn finish(&self, id: &ApprovalId, ending: &Ending) -> Result<Finished, DomainError> {
        let now = Millis::now();
        let mut state = self.state();
        let Some(mut approval) = state.approvals.get(id).cloned() else {
            return Ok(Finished::NotFound);
        };
        let outcome = approval.finish(ending, now);
        match &outcome {
            Finished::Done(a) | Finished::Expired(a) => self.make_final(&mut state, a, now),
            Finished::Voted(a) => {
                state.approvals.insert(a.id.clone(), a.clone());
                self.append(&mut state, EventKind::Updated, a, now);
            }
            _ => {}
        }
        Ok(outcome)
    }

    async fn remind(&self, id: &ApprovalId) -> Result<Option<(u32, Approval)>, DomainError> {
        let now = Millis::now();
        let mut state = self.state();
        let (Some(a), Some(&done)) = (state.approvals.get(id).cloned(), state.reminded.get(id))
        else {
            return Ok(None);
        };
        let n = done + 1;
        let Some(at) = Self::reminder_at(&a, n).filter(|at| *at <= now && !a.is_final()) else {
            return Ok(None);
        };
        state.reminders.remove(&(at, id.clone()));
        state.reminded.insert(id.clone(), n);
        if let Some(next) = Self::reminder_at(&a, n + 1) {
            state.reminders.insert((next, id.clone()));
        }
        self.append(&mut state, EventKind::Reminder(n), &a, now);
        Ok(Some((n, a)))
    }

    async fn due_reminders(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ApprovalId>, DomainError> {
        let state = self.state();
        Ok(state
            .reminders
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect())
    }

    async fn next_reminder(&self) -> Result<Option<Millis>, DomainError> {
        Ok(self.state().reminders.first().map(|(at, _)| *at))
    }

    async fn expire(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let now = Millis::now();
        let mut state = self.state();
        let Some(approval) = state.approvals.get_mut(id) else {
            return Ok(None);
        };
        if approval.is_final() || approval.deadline > now {
            return Ok(None);
        }
        approval.expire();
        let approval = approval.clone();
        self.make_final(&mut state, &approval, now);
        Ok(Some(approval))
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ApprovalId>, DomainError> {
        let state = self.state();
        Ok(state
            .pending
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect())
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, DomainError> {
        Ok(self.state().pending.first().map(|(d, _)| *d))
    }

    async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Frontier), DomainError> {
        let state = self.state();
        let mut ids: Vec<ApprovalId> = state.pending.iter().map(|(_, id)| id.clone()).collect();
        ids.sort();
        Ok((ids, Frontier::single(state.last)))
    }

    async fn get_many(&self, ids: &[ApprovalId]) -> Result<Vec<Option<Approval>>, DomainError> {
        let state = self.state();
        Ok(ids
            .iter()
            .map(|id| state.approvals.get(id).cloned())
            .collect())
    }

    async fn sizes(&self, ids: &[ApprovalId]) -> Result<Vec<usize>, DomainError> {
        let state = self.state();
        Ok(ids
            .iter()
            .map(|id| state.approvals.get(id).map_or(0, Approval::wire_bytes))
            .collect())
    }

    async fn epoch(&self) -> Result<Epoch, DomainError> {
        Ok(self.inner.epoch)
    }

    async fn renew_epoch(&self, _seen: Epoch) -> Result<Epoch, DomainError> {
        Ok(self.inner.epoch)
    }

    // One partition: `part` is 0.
    async fn pending_count(&self, _part: usize) -> Result<(u64, Cursor), DomainError> {
        let state = self.state();
        Ok((state.pending.len() as u64, state.last))
    }

    async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page, DomainError> {
        let mut state = self.state();
        self.forget_old(&mut state, Millis::now());
        let upper = match &query.after {
            Some(PageToken(id)) => std::ops::Bound::Excluded(id.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let matching = state
            .approvals
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .map(|(_, a)| a)
            .filter(|a| caller.may_see(a) && query.matches(a));
        let (mut approvals, mut bytes, mut more) = (Vec::new(), 0, false);
        for a in matching {
            let size = a.wire_size();
            if super::page_full(query, approvals.len(), bytes, size) {
                more = true;
                break;
            }
            bytes += size;
            approvals.push(a.clone());
        }
        let next = match (more, approvals.last()) {
            (true, Some(last)) => Some(PageToken(last.id.clone())),
            _ => None,
        };
        Ok(Page { approvals, next })
    }

    async fn head(&self, _part: usize) -> Result<Cursor, DomainError> {
        Ok(self.state().last)
    }

    async fn read_events(
        &self,
        _part: usize,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError> {
        loop {
            // Register interest before looking, so an append between the look
            // and the wait still wakes us.
            let appended = self.inner.appended.notified();
            {
                let state = self.state();
                let start = state.events.partition_point(|e| e.cursor <= after);
                let events: Vec<Event> = state.events.range(start..).take(limit).cloned().collect();
                if !events.is_empty() || block.is_none() {
                    return Ok(events);
                }
            }
            let Some(block) = block else {
                return Ok(Vec::new());
            };
            if tokio::time::timeout(block, appended).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn check_cursor(&self, _part: usize, cursor: Cursor) -> Result<(), DomainError> {
        let state = self.state();
        if cursor > state.last {
            return Err(DomainError::CursorAhead {
                cursor: cursor.to_string(),
                newest: state.last.to_string(),
            });
        }
        if state.trimmed.is_some_and(|t| t > cursor) {
            return Err(DomainError::CursorExpired(cursor.to_string()));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), DomainError> {
        Ok(())
    }

    /// One process, one clock: its own.
    fn now(&self) -> Millis {
        Millis::now()
    }

    async fn eviction_policy(&self) -> Result<Option<String>, DomainError> {
        Ok(None)
    }

    async fn trace_of(&self, id: &ApprovalId) -> Result<Option<TraceContext>, DomainError> {
        Ok(self.state().traces.get(id).cloned())
    }
}
