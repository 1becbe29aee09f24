//! The webhook outbox of the embedded store: the same two steps as Redis
//! (see `store::outbox`), in this process, for as long as it runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::{Cursor, DomainError, Event, Millis};
use crate::store::outbox::{DeadLetter, Delivery, Outbox, OutboxSizes, MAX_DEAD, MAX_QUEUED};
use crate::store::Store;

#[derive(Default)]
pub(super) struct MemoryOutbox {
    state: Mutex<OutboxState>,
}

#[derive(Default)]
struct OutboxState {
    /// The newest event planned; `None` until webhooks start.
    planned: Option<Cursor>,
    /// Queued deliveries by due time (or lease end).
    due: BTreeSet<(Millis, String)>,
    queued: HashMap<String, (Millis, Delivery)>,
    dead: HashMap<String, DeadLetter>,
    /// Dead letters by when they died (caps `dead`).
    dead_order: BTreeSet<(u64, String)>,
}

impl OutboxState {
    fn schedule(&mut self, delivery: Delivery, at: Millis) {
        if let Some((old, _)) = self.queued.remove(&delivery.id) {
            self.due.remove(&(old, delivery.id.clone()));
        }
        self.due.insert((at, delivery.id.clone()));
        self.queued.insert(delivery.id.clone(), (at, delivery));
    }

    fn unqueue(&mut self, id: &str) -> Option<Delivery> {
        let (at, delivery) = self.queued.remove(id)?;
        self.due.remove(&(at, id.to_string()));
        Some(delivery)
    }

    fn keep_dead(&mut self, letter: DeadLetter) {
        let id = letter.delivery.id.clone();
        if let Some(old) = self.dead.remove(&id) {
            self.dead_order.remove(&(old.died_at, id.clone()));
        }
        self.dead_order.insert((letter.died_at, id.clone()));
        self.dead.insert(id, letter);
        while self.dead_order.len() > MAX_DEAD {
            if let Some((_, oldest)) = self.dead_order.pop_first() {
                self.dead.remove(&oldest);
            }
        }
    }
}

impl MemoryStore {
    fn outbox(&self) -> MutexGuard<'_, OutboxState> {
        // Every operation leaves the state consistent: keep serving after a
        // panic elsewhere.
        self.inner
            .outbox
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn unplanned_events(
        &self,
        _part: usize,
        _consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        let head = self.state().last;
        let after = *self.outbox().planned.get_or_insert(head);
        if self.check_cursor(0, after).await.is_err() {
            tracing::warn!(
                "webhook planning fell behind the event log's cap: some events were trimmed unsent"
            );
            self.outbox().planned = Some(head);
            return Ok(Vec::new());
        }
        self.read_events(0, after, limit, Some(block)).await
    }

    async fn plan(
        &self,
        _part: usize,
        event: Cursor,
        deliveries: &[Delivery],
    ) -> Result<(), DomainError> {
        let now = self.now();
        let mut o = self.outbox();
        for d in deliveries {
            if o.queued.contains_key(&d.id) || o.dead.contains_key(&d.id) {
                continue;
            }
            if o.queued.len() < MAX_QUEUED {
                o.schedule(d.clone(), now);
            } else {
                o.keep_dead(d.refused_as_full(now));
            }
        }
        if o.planned.is_none_or(|p| p < event) {
            o.planned = Some(event);
        }
        Ok(())
    }

    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>, DomainError> {
        let now = self.now();
        let mut o = self.outbox();
        let due: Vec<String> = o
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let mut taken = Vec::with_capacity(due.len());
        for id in due {
            if let Some(delivery) = o.unqueue(&id) {
                o.schedule(delivery.clone(), now.plus(lease));
                taken.push(delivery);
            }
        }
        Ok(taken)
    }

    async fn delivered(&self, id: &str) -> Result<(), DomainError> {
        self.outbox().unqueue(id);
        Ok(())
    }

    async fn retry_later(&self, delivery: &Delivery, delay: Duration) -> Result<(), DomainError> {
        let at = self.now().plus(delay);
        let mut o = self.outbox();
        if o.queued.contains_key(&delivery.id) {
            o.schedule(delivery.clone(), at);
        }
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery) -> Result<(), DomainError> {
        let now = self.now();
        let mut o = self.outbox();
        if o.unqueue(&delivery.id).is_some() {
            o.keep_dead(DeadLetter {
                delivery: delivery.clone(),
                died_at: now.0,
            });
        }
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, DomainError> {
        let o = self.outbox();
        Ok(o.dead_order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|(_, id)| o.dead.get(id).cloned())
            .collect())
    }

    async fn revive(&self, id: &str) -> Result<bool, DomainError> {
        let now = self.now();
        let mut o = self.outbox();
        let Some(letter) = o.dead.remove(id) else {
            return Ok(false);
        };
        o.dead_order.remove(&(letter.died_at, id.to_string()));
        o.schedule(letter.delivery.revived(now), now);
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<Millis>, DomainError> {
        Ok(self.outbox().due.first().map(|(at, _)| *at))
    }

    async fn outbox_sizes(&self) -> Result<OutboxSizes, DomainError> {
        let o = self.outbox();
        Ok(OutboxSizes {
            queued: o.queued.len() as u64,
            dead: o.dead.len() as u64,
        })
    }
}
