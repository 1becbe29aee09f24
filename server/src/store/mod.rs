//! Where approvals live. Two stores implement one trait: Redis (production,
//! shared by every replica) and memory (one process, the default). The rules
//! are the same: every change is atomic, appended to an ordered, capped event
//! log, and an approval ends exactly once.

mod memory;
pub mod outbox;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    Approval, ApprovalId, Caller, Cursor, DomainError, Ending, Epoch, Event, Finished, Frontier,
    Limit, Limits, ListQuery, Millis, NewApproval, Page, TraceContext,
};

pub use self::memory::MemoryStore;
pub use self::redis::{BadRedisUrl, Durability, RedisOptions, RedisStore};

/// What `Store::create` did.
#[derive(Clone, Debug)]
pub struct Created {
    pub approval: Approval,
    /// False when an approval with the same requester and idempotency key
    /// existed and was returned instead.
    pub created: bool,
}

/// Time-bounded keeping of data: how long final approvals stay readable, and
/// how many events the log keeps.
#[derive(Clone, Debug)]
pub struct Retention {
    pub final_approvals: Duration,
    pub max_events: usize,
    /// The most bytes the event log may take (Redis: its stream's
    /// `MEMORY USAGE`, held approximately: see `redis/log_bound.rs`). The
    /// memory store's events share the approvals' memory: it ignores this.
    pub max_event_bytes: usize,
    /// The longest approval timeout: bounds how long a pending record lives.
    pub max_timeout: Duration,
}

impl Retention {
    /// How long final approvals stay readable (`--retention`).
    pub const DEFAULT_FINAL_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const DEFAULT_MAX_EVENTS: usize = 100_000;
    /// 64 MiB: the entries are small (no approval body: about 150 to 300
    /// bytes with a short reason), so 100,000 of them take about 20 to 30
    /// MB and the count bound governs; the byte bound only cuts in when
    /// entries grow (long reasons, many votes), and then holds the log to
    /// what a small Redis affords instead of gigabytes.
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
    /// The least `--event-log-max-bytes` accepts: a few stream nodes.
    pub const MIN_MAX_EVENT_BYTES: usize = 64 * 1024;
}

#[async_trait]
pub trait Store: outbox::Outbox + Send + Sync + 'static {
    /// Creates the approval, or returns the one with the same requester and
    /// idempotency key when it was created by the same request (same
    /// `Approval::request_fingerprint`, of the timeout as requested); fails
    /// with `IdempotencyConflict`
    /// when the key belongs to a different request. Appends an `added` event
    /// when it creates. Fails with `OpenQuota` when the requester
    /// already has `max_open` pending approvals.
    /// `id` is the new approval's: a retry of a write whose outcome was
    /// unknown passes the same id, and finds it created instead of making a
    /// second one.
    async fn create(
        &self,
        id: ApprovalId,
        new: NewApproval,
        max_open: usize,
    ) -> Result<Created, DomainError>;

    /// The id a new approval of `requester` gets when `id` was drawn for
    /// it: the store may place it in one of its partitions, which the id
    /// then names (Redis with `--redis-partitions` > 1). Placing a placed
    /// id again changes nothing, so a retry keeps its id.
    fn place(&self, id: ApprovalId, requester: &str) -> ApprovalId {
        let _ = requester;
        id
    }

    /// How many partitions (event logs) the store has: events of partition
    /// `k` are read from log `k` (`read_events`), each in order, with no
    /// order between logs. One unless the Redis store has
    /// `--redis-partitions` N > 1.
    fn partitions(&self) -> usize {
        1
    }

    /// Checks that the store's data is laid out as this replica expects
    /// (Redis: the partition count), recording the layout on first use.
    /// `Ok(Some(why))`: it is not, and this replica must not start.
    async fn check_layout(&self) -> Result<Option<String>, DomainError> {
        Ok(None)
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError>;

    /// The trace context its creating call carried (`NewApproval::trace`),
    /// kept beside the approval for as long as it is. Read only while
    /// traces are exported (one more store call).
    async fn trace_of(&self, id: &ApprovalId) -> Result<Option<TraceContext>, DomainError>;

    /// Applies `ending` atomically if the approval is pending and before its
    /// deadline; past its deadline it expires it instead. A decision is a
    /// vote (`Approval::cast`): it ends the approval, or is recorded with an
    /// `updated` event while more approvals are needed. Appends a
    /// `resolved` event when it ends it. Repeating it is safe: a second
    /// call finds the vote or the ending there (`Ending::is_repeat_of`).
    ///
    /// Writes (`create`, `finish`, `expire`) fail with `OutcomeUnknown` when
    /// the request was sent but no answer came (timeout, connection lost).
    async fn finish(&self, id: &ApprovalId, ending: &Ending) -> Result<Finished, DomainError>;

    /// Expires the approval if it is pending and its deadline has passed (by
    /// the store's clock); returns it when this call expired it. Safe to
    /// race: only one caller across all replicas gets `Some`.
    async fn expire(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError>;

    /// The store's clock: the one time source of the deployment. Creation
    /// times, deadlines, decisions and expiry follow it (Redis: its `TIME`,
    /// inside the scripts), so replicas whose wall clocks disagree still
    /// agree on every deadline. This is this replica's estimate of it, for
    /// scheduling (when to look again, when the reaper wakes); the store
    /// itself decides what is due.
    fn now(&self) -> Millis;

    /// Measures this replica's clock against the store's, for `now`
    /// (Redis: `TIME`). The health monitor calls it now and then.
    async fn sync_clock(&self) -> Result<(), DomainError> {
        Ok(())
    }

    /// Pending approvals whose deadline is at or before `now`, earliest first.
    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ApprovalId>, DomainError>;

    /// The earliest deadline among pending approvals.
    async fn next_deadline(&self) -> Result<Option<Millis>, DomainError>;

    /// Writes the approval's next reminder (a `reminder` event) if it is
    /// due by the store's clock and the approval still pending; returns its
    /// number (1-based) and the approval when this call wrote it. Safe to
    /// race: each reminder is written once across all replicas.
    async fn remind(&self, id: &ApprovalId) -> Result<Option<(u32, Approval)>, DomainError>;

    /// Approvals whose next reminder is due at or before `now`.
    async fn due_reminders(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ApprovalId>, DomainError>;

    /// When the earliest reminder to come is due.
    async fn next_reminder(&self) -> Result<Option<Millis>, DomainError>;

    /// The ids of every pending approval, oldest first, and the newest
    /// event of each partition's log that set reflects (each partition's
    /// ids and position read together, atomically). Ids only: a snapshot
    /// reads the approvals themselves page by page (`get_many`).
    async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Frontier), DomainError>;

    /// The approvals with these ids, in the same order (`None`: gone).
    async fn get_many(&self, ids: &[ApprovalId]) -> Result<Vec<Option<Approval>>, DomainError>;

    /// About how many bytes each of these approvals takes once read, in
    /// the same order (0: gone), without reading them: a snapshot sizes
    /// its pages by it (`Approval::wire_bytes` is the measure).
    async fn sizes(&self, ids: &[ApprovalId]) -> Result<Vec<usize>, DomainError>;

    /// The epoch of the event log's history, drawn and recorded when the
    /// store has none (first start, or its data was wiped).
    async fn epoch(&self) -> Result<Epoch, DomainError>;

    /// Draws a new epoch if the recorded one is still `seen` (the caller
    /// found the history rewound); returns the epoch now recorded.
    async fn renew_epoch(&self, seen: Epoch) -> Result<Epoch, DomainError>;

    /// How many approvals of partition `part` are pending, and the newest
    /// event of its log that count reflects (read together, atomically).
    async fn pending_count(&self, part: usize) -> Result<(u64, Cursor), DomainError>;

    /// A page of the approvals that `caller` may see and `query` matches
    /// (`caller.may_see(a) && query.matches(a)`), newest first.
    async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page, DomainError>;

    /// The position of the newest event of partition `part`'s log
    /// (`Cursor::START` when there is none).
    async fn head(&self, part: usize) -> Result<Cursor, DomainError>;

    /// Events of partition `part`'s log after `after`, oldest first, at
    /// most `limit`. With `block`, waits up to that long for one to arrive
    /// when there is none yet (a blocking read holds a connection of its
    /// own per partition: one caller per partition at a time).
    async fn read_events(
        &self,
        part: usize,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError>;

    /// Fills in the approval of every `Detail::Summary` event among
    /// `events` that `wanted` picks, from the approvals' records, in one
    /// round trip; an event whose record is gone becomes `Detail::Gone`.
    /// The memory store's events are always `Full`: nothing to do.
    async fn complete_events(
        &self,
        events: &mut [Event],
        wanted: &(dyn for<'e> Fn(&'e Event) -> bool + Sync),
    ) -> Result<(), DomainError> {
        let _ = (events, wanted);
        Ok(())
    }

    /// Succeeds when events after `cursor` are all still in partition
    /// `part`'s log; fails with `CursorExpired` when some were trimmed, or
    /// `CursorAhead` when the cursor is not from this log (ahead of it).
    async fn check_cursor(&self, part: usize, cursor: Cursor) -> Result<(), DomainError>;

    /// Cheap check, for readiness: the store answers and accepts writes
    /// (`WritesRefused` when it answers but refuses them).
    async fn ping(&self) -> Result<(), DomainError>;

    /// The store's eviction policy when it may drop data under memory
    /// pressure (Redis `maxmemory-policy` other than `noeviction`), which
    /// would silently lose approvals; `None` when it never evicts.
    async fn eviction_policy(&self) -> Result<Option<String>, DomainError>;
}

/// The error both stores give when an idempotency key is reused for a
/// different request (`existing` holds the key).
fn key_reused(existing: Approval) -> DomainError {
    DomainError::IdempotencyConflict {
        key: existing.idempotency_key,
        existing: existing.id,
        existing_type: existing.approval_type,
    }
}

/// Whether a list page of `len` approvals and `bytes` (their `wire_size`)
/// is complete before one of `next_bytes` more: it holds `page_size`, or
/// one more would pass `Limits::MAX_PAGE_BYTES` (a page holds at least one).
fn page_full(query: &ListQuery, len: usize, bytes: usize, next_bytes: usize) -> bool {
    len >= query.page_size || (len > 0 && bytes + next_bytes > Limits::MAX_PAGE_BYTES)
}

/// A fresh epoch: random, so two stores (or one wiped store) never share one.
fn new_epoch() -> Epoch {
    // The low 64 bits of a UUIDv7 are random.
    Epoch(uuid::Uuid::now_v7().as_u128() as u64)
}

/// The error both stores give when a requester is at its quota.
fn quota_error(requester: &str, max_open: usize) -> DomainError {
    Limit::OpenQuota {
        requester: requester.to_string(),
        max_open,
    }
    .into()
}
