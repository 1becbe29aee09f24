//! The production store: Redis (7.0 or newer), shared by every replica.
//!
//! Every change goes through one Lua script (create, decide, cancel, expire,
//! remind), so it is atomic and appears in the event stream in the order it happened.
//!
//! The rooms: `keys` (the key layout, and the builder every key goes
//! through), `scripts` (the writes, each one Lua script beside it), `log`
//! (the event stream: reading, bounds, cursors, the epoch), `list` (list
//! scanning), `probe` (health write probe, clock, eviction policy), `codec`
//! (how approvals and events are laid out and decoded), `errors` (what
//! Redis's errors mean for a caller), `link` (where Redis is: one server,
//! Sentinel or a Cluster), `durability` (`--redis-wait-replicas`), `outbox`
//! (the webhook outbox, with its own keys and scripts). The `Store` impl
//! below delegates to them.

mod body_cache;
mod codec;
mod durability;
mod errors;
mod keys;
mod link;
mod list;
mod log;
mod log_bound;
mod outbox;
mod probe;
mod scripts;

pub use durability::Durability;
pub use keys::MAX_PARTITIONS;
pub use link::BadRedisUrl;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use super::{Created, Retention, Store};
use crate::domain::{
    Approval, ApprovalId, Caller, Cursor, DomainError, Ending, Epoch, Event, Finished, Frontier,
    ListQuery, Millis, NewApproval, Page, TraceContext,
};
use codec::{HashFields, HASH_FIELDS};
use keys::Keys;
use scripts::Scripts;

#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub url: String,
    /// Namespace: every key is under the hash tag `{prefix}` (or
    /// `{prefix:k}`, partition k).
    pub prefix: String,
    /// `--redis-partitions`: how many hash tags approvals spread over (1:
    /// the layout of before partitions).
    pub partitions: usize,
    pub retention: Retention,
    /// Connect and command timeout (not used for blocking reads).
    pub timeout: Duration,
    /// `--redis-wait-replicas`: confirm writes only once replicas have them.
    pub durability: Option<Durability>,
    /// For tests only: pretend this replica's wall clock is off by this
    /// many milliseconds (Redis's clock still rules).
    pub clock_skew_ms: i64,
}

/// How long `get_many` asks again for a read whose answer timed out.
const LATE_READS_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisStore {
    link: link::Link,
    /// Only `read_events` with `block` uses them, one per partition: XREAD
    /// BLOCK holds a connection for as long as it waits, so each log's read
    /// gets one of its own with no response timeout (the event pump is the
    /// only caller).
    blocking: Vec<Mutex<Option<link::Conn>>>,
    /// Partition 0's keys (the event log, epoch, probe and outbox keys).
    keys: Keys,
    /// Every partition's keys, partition 0 first.
    parts: Vec<Keys>,
    /// The key recording the layout, and whether it was found to match.
    layout_key: String,
    layout_checked: AtomicBool,
    retention: Retention,
    timeout: Duration,
    durability: Option<durability::Waiter>,
    scripts: Scripts,
    /// Redis's clock minus this replica's, as last measured (ms).
    offset_ms: AtomicI64,
    clock_skew_ms: i64,
    outbox: outbox::OutboxLink,
    /// Each partition's log's bound in bytes, partition 0 first.
    log_bounds: Vec<log_bound::LogBound>,
    /// Bodies read lately, for completing events.
    bodies: body_cache::BodyCache,
}

impl RedisStore {
    /// Sets up the store. Does not need Redis to be up yet: the connection is
    /// made lazily and re-made after failures, and health reports it.
    pub fn connect(options: RedisOptions) -> Result<Self, BadRedisUrl> {
        let link = link::Link::open(&options.url, options.timeout)?;
        let partitions = options.partitions.clamp(1, MAX_PARTITIONS);
        let keys = Keys::new(&options.prefix, 0);
        let parts: Vec<Keys> = (0..partitions)
            .map(|k| Keys::new(&options.prefix, k))
            .collect();
        Ok(Self {
            layout_key: keys::layout_key(&options.prefix),
            layout_checked: AtomicBool::new(false),
            link,
            blocking: (0..partitions).map(|_| Mutex::new(None)).collect(),
            outbox: outbox::OutboxLink::new(&keys, &parts),
            parts,
            keys,
            log_bounds: (0..partitions)
                .map(|_| {
                    log_bound::LogBound::new(
                        options.retention.max_events,
                        options.retention.max_event_bytes,
                    )
                })
                .collect(),
            bodies: body_cache::BodyCache::default(),
            retention: options.retention,
            timeout: options.timeout,
            durability: options.durability.map(durability::Waiter::new),
            offset_ms: AtomicI64::new(0),
            clock_skew_ms: options.clock_skew_ms,
            scripts: Scripts::load(),
        })
    }

    fn conn(&self) -> Result<link::Conn, DomainError> {
        self.link.conn()
    }

    /// The keys of the partition the approval with this id lives in;
    /// `None` when the id names no partition of this namespace.
    fn keys_of(&self, id: &str) -> Option<&Keys> {
        self.partition_of(id).map(|(_, keys)| keys)
    }

    /// The partition the approval with this id lives in, and its keys.
    fn partition_of(&self, id: &str) -> Option<(usize, &Keys)> {
        let part = keys::partition_of(id, self.parts.len())?;
        Some((part, self.parts.get(part)?))
    }

    /// How many entries partition `part`'s log keeps now (`XADD MAXLEN ~`).
    fn cap_of(&self, part: usize) -> usize {
        self.log_bounds.get(part).map_or(1, |b| b.cap())
    }

    /// Compares the layout recorded in Redis with this store's partition
    /// count, recording it when none is (first start on this namespace).
    /// `Some(why)` when they differ: this replica must not run on this
    /// data. Data written before layouts were recorded counts as one
    /// partition.
    async fn layout_mismatch(&self) -> Result<Option<String>, DomainError> {
        if self.layout_checked.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mine = self.parts.len();
        let mut conn = self.conn()?;
        let mut recorded: Option<String> = conn.get(&self.layout_key).await?;
        if recorded.is_none() {
            // Older data (no record): laid out in one partition.
            let k = &self.keys;
            let old: bool = conn.exists(&[&k.epoch, &k.index, &k.events]).await?;
            let value = format!("partitions={}", if old { 1 } else { mine });
            let _: () = redis::cmd("SET")
                .arg(&self.layout_key)
                .arg(&value)
                .arg("NX")
                .query_async(&mut conn)
                .await?;
            recorded = conn.get(&self.layout_key).await?;
        }
        let theirs = recorded
            .as_deref()
            .and_then(|v| v.strip_prefix("partitions="))
            .and_then(|n| n.parse::<usize>().ok());
        match theirs {
            Some(n) if n == mine => {
                self.layout_checked.store(true, Ordering::Relaxed);
                Ok(None)
            }
            other => {
                let found = other.map_or_else(
                    || format!("an unreadable layout record ({recorded:?})"),
                    |n| format!("data laid out in {n} partition(s)"),
                );
                Ok(Some(format!(
                    "Redis key {} records {found}, but this replica was started with \
                     --redis-partitions {mine}. The partition count of live data cannot \
                     change: either restart with the recorded count, or migrate: drain \
                     (stop creating approvals, wait until none is pending and clients \
                     no longer read the old ones, then delete the namespace's keys) and \
                     start with the new count, or start with the new count under a new \
                     --redis-prefix and move clients over",
                    self.layout_key
                )))
            }
        }
    }

    fn retention_ms(&self) -> u64 {
        self.retention.final_approvals.as_millis() as u64
    }

    /// The approvals with these ids, in order (`None`: gone), in one round
    /// trip.
    async fn fetch(
        &self,
        ids: &[impl AsRef<str> + Sync],
    ) -> Result<Vec<Option<Approval>>, DomainError> {
        self.fetch_within(ids, Duration::ZERO).await
    }

    /// One pipeline per partition (a Cluster takes a pipeline to one slot
    /// only), each with what `add` asks of the approvals of `ids` in that
    /// partition, by their hash's key, and the indexes in `ids` of those
    /// approvals. Ids of no partition of this namespace are left out.
    fn pipelines_by_partition(
        &self,
        ids: &[impl AsRef<str>],
        add: impl Fn(&mut redis::Pipeline, &str),
    ) -> Vec<(redis::Pipeline, Vec<usize>)> {
        let mut groups: Vec<(redis::Pipeline, Vec<usize>)> = (0..self.parts.len())
            .map(|_| (redis::pipe(), Vec::new()))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if let Some((part, keys)) = self.partition_of(id.as_ref()) {
                let (pipe, members) = &mut groups[part];
                add(pipe, &keys.approval(id.as_ref()));
                members.push(i);
            }
        }
        groups
    }

    /// The length of each approval's `body` and `votes` (what its size
    /// grows with; the other fields are short and bounded), plus what
    /// `Approval::wire_bytes` adds for them; 0 for a gone approval. One
    /// pipeline per partition, out together, as `fetch_within`.
    async fn sizes(&self, ids: &[ApprovalId]) -> Result<Vec<usize>, DomainError> {
        /// What the id, type, names, times and status add, about.
        const SMALL_FIELDS: usize = 256;
        let names: Vec<&str> = ids.iter().map(ApprovalId::as_str).collect();
        let groups = self.pipelines_by_partition(&names, |pipe, key| {
            pipe.cmd("HSTRLEN").arg(key).arg("body");
            pipe.cmd("HSTRLEN").arg(key).arg("votes");
        });
        let reads = groups
            .iter()
            .filter(|(_, members)| !members.is_empty())
            .map(|(pipe, members)| async move {
                let lengths: Vec<usize> = pipe.query_async(&mut self.conn()?).await?;
                Ok::<_, DomainError>((members, lengths))
            });
        let mut sizes = vec![0; ids.len()];
        for (members, lengths) in futures::future::try_join_all(reads).await? {
            for (&i, pair) in members.iter().zip(lengths.chunks(2)) {
                // No body: the approval is gone.
                if pair[0] > 0 {
                    sizes[i] = pair.iter().sum::<usize>() + SMALL_FIELDS;
                }
            }
        }
        Ok(sizes)
    }

    /// `fetch`, asked again while its answer times out, for up to `patience`
    /// (a read is safe to repeat). A crowd of calls at once (a replica
    /// restart brings every waiter back in one instant) can keep this
    /// process too busy to take Redis's answer in time: a later attempt
    /// gets it. Any other failure (Redis down) returns at once.
    async fn fetch_within(
        &self,
        ids: &[impl AsRef<str> + Sync],
        patience: Duration,
    ) -> Result<Vec<Option<Approval>>, DomainError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.pipelines_by_partition(ids, |pipe, key| {
            pipe.cmd("HMGET").arg(key).arg(&HASH_FIELDS[..]);
        });
        let started = tokio::time::Instant::now();
        let reads = groups
            .iter()
            .filter(|(_, members)| !members.is_empty())
            .map(|(pipe, members)| async move {
                loop {
                    match pipe.query_async::<Vec<HashFields>>(&mut self.conn()?).await {
                        Err(e) if e.is_timeout() && started.elapsed() < patience => {
                            tracing::debug!(ids = members.len(), "a read timed out: asking again");
                        }
                        rows => break Ok::<_, DomainError>((members, rows?)),
                    }
                }
            });
        let mut rows: Vec<Option<HashFields>> = (0..ids.len()).map(|_| None).collect();
        for (members, got) in futures::future::try_join_all(reads).await? {
            for (&i, row) in members.iter().zip(got) {
                rows[i] = Some(row);
            }
        }
        ids.iter()
            .zip(rows)
            .map(|(id, row)| match row {
                Some(row) => {
                    // A pending approval read here is mostly a waiter's first
                    // look: keep its body, so the `resolved` event that wakes
                    // the waiter needs no read of its own.
                    if let (Some(body), Some("pending")) = (&row.0, row.1.as_deref()) {
                        self.bodies.put(id.as_ref(), Arc::from(body.as_slice()));
                    }
                    codec::from_hash(row)
                }
                None => Ok(None),
            })
            .collect()
    }
}

impl RedisStore {
    /// The members of one time index (`index` of each partition's keys)
    /// due at or before `now`, earliest first over every partition, at most
    /// `limit`. The reaper and the reminders serve every partition this way.
    async fn due_in(
        &self,
        index: impl Fn(&Keys) -> &String,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ApprovalId>, DomainError> {
        let mut conn = self.conn()?;
        let mut due: Vec<(String, f64)> = Vec::new();
        for keys in &self.parts {
            let part: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(index(keys))
                .arg("-inf")
                .arg(now.0)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            due.extend(part);
        }
        if self.parts.len() > 1 {
            due.sort_by(|a, b| a.1.total_cmp(&b.1));
            due.truncate(limit);
        }
        Ok(due
            .into_iter()
            .map(|(id, _)| ApprovalId::trusted(id))
            .collect())
    }

    /// The earliest score in one time index over every partition.
    async fn first_in(
        &self,
        index: impl Fn(&Keys) -> &String,
    ) -> Result<Option<Millis>, DomainError> {
        let mut conn = self.conn()?;
        let mut first: Option<Millis> = None;
        for keys in &self.parts {
            let head: Vec<(String, f64)> = conn.zrange_withscores(index(keys), 0, 0).await?;
            if let Some((_, score)) = head.first() {
                let at = Millis(*score as u64);
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        Ok(first)
    }
}

/// Each method is the inherent method of the same name, in the module that
/// owns it (inherent methods take precedence, so these do not recurse).
#[async_trait]
impl Store for RedisStore {
    async fn create(
        &self,
        id: ApprovalId,
        new: NewApproval,
        max_open: usize,
    ) -> Result<Created, DomainError> {
        RedisStore::create(self, id, new, max_open).await
    }

    fn partitions(&self) -> usize {
        self.parts.len()
    }

    fn place(&self, id: ApprovalId, requester: &str) -> ApprovalId {
        if self.parts.len() <= 1 {
            return id;
        }
        let part = keys::partition_of_requester(requester, self.parts.len());
        ApprovalId::trusted(keys::place_in(id.as_str(), part))
    }

    async fn check_layout(&self) -> Result<Option<String>, DomainError> {
        self.layout_mismatch().await
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let Some(keys) = self.keys_of(id.as_str()) else {
            return Ok(None);
        };
        let fields: HashFields = redis::cmd("HMGET")
            .arg(keys.approval(id.as_str()))
            .arg(&HASH_FIELDS[..])
            .query_async(&mut self.conn()?)
            .await?;
        codec::from_hash(fields)
    }

    async fn finish(&self, id: &ApprovalId, ending: &Ending) -> Result<Finished, DomainError> {
        RedisStore::finish(self, id, ending).await
    }

    async fn expire(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        RedisStore::expire(self, id).await
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<ApprovalId>, DomainError> {
        self.due_in(|k| &k.pending, now, limit).await
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, DomainError> {
        self.first_in(|k| &k.pending).await
    }

    async fn remind(&self, id: &ApprovalId) -> Result<Option<(u32, Approval)>, DomainError> {
        RedisStore::remind(self, id).await
    }

    async fn due_reminders(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ApprovalId>, DomainError> {
        self.due_in(|k| &k.reminders, now, limit).await
    }

    async fn next_reminder(&self) -> Result<Option<Millis>, DomainError> {
        self.first_in(|k| &k.reminders).await
    }

    async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Frontier), DomainError> {
        RedisStore::pending_ids(self).await
    }

    async fn get_many(&self, ids: &[ApprovalId]) -> Result<Vec<Option<Approval>>, DomainError> {
        let ids: Vec<&str> = ids.iter().map(ApprovalId::as_str).collect();
        self.fetch_within(&ids, LATE_READS_WITHIN).await
    }

    async fn sizes(&self, ids: &[ApprovalId]) -> Result<Vec<usize>, DomainError> {
        RedisStore::sizes(self, ids).await
    }

    async fn epoch(&self) -> Result<Epoch, DomainError> {
        RedisStore::epoch(self).await
    }

    async fn renew_epoch(&self, seen: Epoch) -> Result<Epoch, DomainError> {
        RedisStore::renew_epoch(self, seen).await
    }

    async fn pending_count(&self, part: usize) -> Result<(u64, Cursor), DomainError> {
        RedisStore::pending_count(self, part).await
    }

    async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page, DomainError> {
        RedisStore::list(self, caller, query).await
    }

    async fn head(&self, part: usize) -> Result<Cursor, DomainError> {
        RedisStore::head(self, part).await
    }

    async fn complete_events(
        &self,
        events: &mut [Event],
        wanted: &(dyn for<'e> Fn(&'e Event) -> bool + Sync),
    ) -> Result<(), DomainError> {
        RedisStore::complete_events(self, events, wanted).await
    }

    async fn read_events(
        &self,
        part: usize,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError> {
        RedisStore::read_events(self, part, after, limit, block).await
    }

    async fn check_cursor(&self, part: usize, cursor: Cursor) -> Result<(), DomainError> {
        RedisStore::check_cursor(self, part, cursor).await
    }

    async fn ping(&self) -> Result<(), DomainError> {
        RedisStore::ping(self).await
    }

    fn now(&self) -> Millis {
        RedisStore::now(self)
    }

    async fn sync_clock(&self) -> Result<(), DomainError> {
        RedisStore::sync_clock(self).await
    }

    async fn eviction_policy(&self) -> Result<Option<String>, DomainError> {
        RedisStore::eviction_policy(self).await
    }

    async fn trace_of(&self, id: &ApprovalId) -> Result<Option<TraceContext>, DomainError> {
        let Some(keys) = self.keys_of(id.as_str()) else {
            return Ok(None);
        };
        let raw: Option<String> = self
            .conn()?
            .hget(keys.approval(id.as_str()), codec::TRACE_FIELD)
            .await?;
        Ok(raw.as_deref().and_then(TraceContext::from_stored))
    }
}
