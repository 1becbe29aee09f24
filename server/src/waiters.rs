//! Local waiters: the calls on this replica blocked until an approval is final.
//!
//! Who wakes whom: a decision on any replica appends a `resolved` event to
//! the store's log; every replica's `EventPump` reads it and calls
//! `Waiters::resolve`, which wakes the calls here waiting on that id. Nothing
//! polls: an idle waiter is one map entry and one parked task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;

use crate::domain::{Approval, ApprovalId};

#[derive(Clone, Default)]
pub struct Waiters {
    slots: Arc<Mutex<HashMap<ApprovalId, Slot>>>,
}

/// What the waiters on one id share: the outcome once it is known, and a
/// `Notify` to wake them. Kept small on purpose (no channel, the approval
/// behind an `Arc`): an idle waiter should cost a few hundred bytes.
#[derive(Default)]
struct Outcome {
    approval: OnceLock<Arc<Approval>>,
    ready: Notify,
}

struct Slot {
    outcome: Arc<Outcome>,
    waiting: usize,
}

impl Waiters {
    fn slots(&self) -> MutexGuard<'_, HashMap<ApprovalId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers interest in `id`. Register first, then read the approval:
    /// a decision that lands in between still wakes the returned `Waiter`.
    pub fn register(&self, id: &ApprovalId) -> Waiter {
        let mut slots = self.slots();
        let slot = slots.entry(id.clone()).or_insert_with(|| Slot {
            outcome: Arc::default(),
            waiting: 0,
        });
        slot.waiting += 1;
        Waiter {
            outcome: slot.outcome.clone(),
            id: id.clone(),
            waiters: self.clone(),
        }
    }

    /// Whether a call on this replica waits for `id`.
    pub fn waits_for(&self, id: &ApprovalId) -> bool {
        self.slots().contains_key(id)
    }

    /// Wakes every local waiter on this (final) approval.
    pub fn resolve(&self, approval: &Approval) {
        let outcome = match self.slots().get(&approval.id) {
            Some(slot) => slot.outcome.clone(),
            None => return,
        };
        // An approval ends once: a second event for it carries the same end.
        let _ = outcome.approval.set(Arc::new(approval.clone()));
        outcome.ready.notify_waiters();
    }

    /// Number of calls waiting on this replica.
    pub fn count(&self) -> usize {
        self.slots().values().map(|s| s.waiting).sum()
    }
}

/// One waiting call. Dropping it (the call ended, or its client went away and
/// tonic dropped the handler) removes it from the registry.
pub struct Waiter {
    outcome: Arc<Outcome>,
    id: ApprovalId,
    waiters: Waiters,
}

impl Waiter {
    /// Resolves with the final approval once an event says so.
    pub async fn resolved(&mut self) -> Approval {
        loop {
            // Created before the check, so a `notify_waiters` right after
            // the check still wakes it.
            let ready = self.outcome.ready.notified();
            if let Some(a) = self.outcome.approval.get() {
                return Approval::clone(a);
            }
            ready.await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut slots = self.waiters.slots();
        if let Some(slot) = slots.get_mut(&self.id) {
            slot.waiting -= 1;
            if slot.waiting == 0 {
                slots.remove(&self.id);
            }
        }
    }
}
