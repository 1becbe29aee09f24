//! The webhook outbox: deliveries waiting to go out, shared by the replicas
//! through the store (Redis), or kept by the one process (memory).
//!
//! Two steps, each safe against a replica dying in the middle:
//! 1. planning: a replica claims events from the event log that no replica
//!    planned yet (Redis: a consumer group on the event stream; entries a
//!    dead replica claimed are taken over after `Outbox::STALE_CLAIM`), turns
//!    each into zero or more deliveries (one per matching endpoint) and
//!    queues them in one atomic step that also marks the event planned;
//! 2. delivering: a replica takes due deliveries with a lease; a delivery
//!    whose lease ran out (its replica died mid-request) is due again and
//!    another replica takes it. Success removes it; failure schedules it
//!    again or moves it to the bounded dead letters.
//!
//! So every delivery is attempted until it succeeds or passes its endpoint's
//! retry horizon: at least once, never silently dropped (except when the
//! queue or the event log is over its cap, which is counted and logged).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Cursor, DomainError, Event, Millis};

/// One message for one endpoint, as queued. The body is rendered when the
/// delivery is planned, so a config change never alters a queued message;
/// the URL and secret are looked up by endpoint name when it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The `webhook-id`: the same on every attempt, so receivers can
    /// deduplicate (derived from the event's position and the endpoint).
    pub id: String,
    pub endpoint: String,
    /// `approval.created`, `approval.approved`...
    pub event: String,
    pub approval_id: String,
    /// Its type (for the delivery's span; empty in deliveries queued before
    /// it was kept).
    #[serde(default)]
    pub approval_type: String,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the delivery was planned (the retry horizon counts from here).
    pub planned_at: u64,
    /// Why the last attempt failed (empty before any).
    #[serde(default)]
    pub last_error: String,
}

impl Delivery {
    /// The webhook id of the message to `endpoint` of the event at
    /// `event` in partition `part`'s log (partition 0's ids are those of
    /// before partitions).
    pub fn id_for(part: usize, event: Cursor, endpoint: &str) -> String {
        match part {
            0 => format!("msg_{}_{}_{endpoint}", event.ms, event.seq),
            k => format!("msg_{}_{}_p{k}_{endpoint}", event.ms, event.seq),
        }
    }

    /// A dead letter sent again: no failed attempts, a new retry horizon.
    pub fn revived(mut self, now: Millis) -> Self {
        self.attempts = 0;
        self.planned_at = now.0;
        self.last_error.clear();
        self
    }

    /// The dead letter of a delivery that found the queue full.
    pub fn refused_as_full(&self, now: Millis) -> DeadLetter {
        let mut delivery = self.clone();
        delivery.last_error =
            format!("not sent: the webhook queue was full ({MAX_QUEUED} deliveries waiting)");
        DeadLetter {
            delivery,
            died_at: now.0,
        }
    }
}

/// A delivery that was given up on: it failed until its retry horizon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub delivery: Delivery,
    /// When it was given up on (ms).
    pub died_at: u64,
}

/// How many deliveries the outbox holds, waiting or dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxSizes {
    pub queued: u64,
    pub dead: u64,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Events of partition `part`'s log after the last planned one that
    /// no live replica is planning, claimed by `consumer` (this replica),
    /// oldest first. With `block`, waits up to that long when there are
    /// none (one caller per partition at a time). The first call starts
    /// from the newest event: what happened before webhooks were on is not
    /// sent.
    async fn unplanned_events(
        &self,
        part: usize,
        consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError>;

    /// Queues `deliveries` (due at once) and marks the event at `event` in
    /// partition `part`'s log planned: atomically for partition 0's events
    /// (the queue's partition); for another partition's, the mark follows
    /// the queueing, so a replica dying between the two leaves the event to
    /// be planned again (deliveries still queued are not queued twice; one
    /// already sent may be sent again, with the same `webhook-id`: at least
    /// once). Deliveries over `MAX_QUEUED` go to the dead letters with
    /// their `last_error` saying so.
    async fn plan(
        &self,
        part: usize,
        event: Cursor,
        deliveries: &[Delivery],
    ) -> Result<(), DomainError>;

    /// Up to `limit` deliveries due now, each leased to the caller for
    /// `lease`: past it, another replica may take it.
    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>, DomainError>;

    /// The delivery succeeded: forget it.
    async fn delivered(&self, id: &str) -> Result<(), DomainError>;

    /// The delivery failed (`delivery.attempts` and `last_error` updated):
    /// due again after `delay`. Nothing happens if it is no longer queued
    /// (another replica delivered it meanwhile).
    async fn retry_later(&self, delivery: &Delivery, delay: Duration) -> Result<(), DomainError>;

    /// The delivery failed for good: moves it to the dead letters, which
    /// keep the newest `MAX_DEAD`.
    async fn bury(&self, delivery: &Delivery) -> Result<(), DomainError>;

    /// The newest dead letters first, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, DomainError>;

    /// Queues a dead letter again (due now, attempts reset, horizon from
    /// now); false when there is no dead letter with this id.
    async fn revive(&self, id: &str) -> Result<bool, DomainError>;

    /// When the earliest queued delivery is due (or its lease ends).
    async fn next_due(&self) -> Result<Option<Millis>, DomainError>;

    async fn outbox_sizes(&self) -> Result<OutboxSizes, DomainError>;
}

/// Most deliveries queued at once (all endpoints, all replicas): past it,
/// new ones go straight to the dead letters. With a receiver down for the
/// whole retry horizon this is what the outbox holds, about this many
/// approvals' worth of JSON.
pub const MAX_QUEUED: usize = 10_000;
/// Dead letters kept (the newest).
pub const MAX_DEAD: usize = 1_000;

/// How long an event claimed by a replica may stay unplanned before another
/// replica takes it over (planning takes milliseconds; a claim this old
/// belongs to a replica that died).
pub const STALE_CLAIM: Duration = Duration::from_secs(30);
