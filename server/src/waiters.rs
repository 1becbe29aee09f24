//! Local waiters: the calls on this replica blocked until an approval is final.
//!
//! Who wakes whom: a decision on any replica appends a `resolved` event to
//! the store's log; every replica's `EventPump` reads it and calls
//! `Waiters::resolve`, which wakes the calls here waiting on that id. Nothing
//! polls: an idle waiter is one map entry and one parked task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::domain::{Approval, ApprovalId};

#[derive(Clone, Default)]
pub struct Waiters {
    slots: Arc<Mutex<HashMap<ApprovalId, Slot>>>,
}

struct Slot {
    tx: watch::Sender<Option<Approval>>,
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
            tx: watch::channel(None).0,
            waiting: 0,
        });
        slot.waiting += 1;
        Waiter {
            rx: slot.tx.subscribe(),
            id: id.clone(),
            waiters: self.clone(),
        }
    }

    /// Wakes every local waiter on this (final) approval.
    pub fn resolve(&self, approval: &Approval) {
        if let Some(slot) = self.slots().get(&approval.id) {
            slot.tx.send_replace(Some(approval.clone()));
        }
    }

    /// Number of calls waiting on this replica.
    pub fn count(&self) -> usize {
        self.slots().values().map(|s| s.waiting).sum()
    }
}

/// One waiting call. Dropping it (the call ended, or its client went away and
/// tonic dropped the handler) removes it from the registry.
pub struct Waiter {
    rx: watch::Receiver<Option<Approval>>,
    id: ApprovalId,
    waiters: Waiters,
}

impl Waiter {
    /// Resolves with the final approval once an event says so.
    pub async fn resolved(&mut self) -> Approval {
        loop {
            if let Some(a) = self.rx.borrow_and_update().clone() {
                return a;
            }
            if self.rx.changed().await.is_err() {
                // The sender lives in the registry as long as we do.
                std::future::pending::<()>().await;
            }
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
