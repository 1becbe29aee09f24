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

mod codec;
mod durability;
mod errors;
mod keys;
mod link;
mod list;
mod log;
mod outbox;
mod probe;
mod scripts;

pub use durability::Durability;
pub use link::BadRedisUrl;

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use super::{Created, Retention, Store};
use crate::domain::{
    Approval, ApprovalId, Caller, Cursor, DomainError, Ending, Epoch, Event, Finished, ListQuery,
    Millis, NewApproval, Page,
};
use codec::{HashFields, HASH_FIELDS};
use keys::Keys;
use scripts::Scripts;

#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub url: String,
    /// Namespace: every key is under the hash tag `{prefix}`.
    pub prefix: String,
    pub retention: Retention,
    /// Connect and command timeout (not used for blocking reads).
    pub timeout: Duration,
    /// `--redis-wait-replicas`: confirm writes only once replicas have them.
    pub durability: Option<Durability>,
    /// For tests only: pretend this replica's wall clock is off by this
    /// many milliseconds (Redis's clock still rules).
    pub clock_skew_ms: i64,
}

pub struct RedisStore {
    link: link::Link,
    /// Only `read_events` with `block` uses it: XREAD BLOCK holds a connection
    /// for as long as it waits, so it gets one of its own with no response
    /// timeout (the event pump is the only caller).
    blocking: Mutex<Option<link::Conn>>,
    keys: Keys,
    retention: Retention,
    timeout: Duration,
    durability: Option<durability::Waiter>,
    scripts: Scripts,
    /// Redis's clock minus this replica's, as last measured (ms).
    offset_ms: AtomicI64,
    clock_skew_ms: i64,
    outbox: outbox::OutboxLink,
}

impl RedisStore {
    /// Sets up the store. Does not need Redis to be up yet: the connection is
    /// made lazily and re-made after failures, and health reports it.
    pub fn connect(options: RedisOptions) -> Result<Self, BadRedisUrl> {
        let link = link::Link::open(&options.url, options.timeout)?;
        let keys = Keys::new(&options.prefix);
        Ok(Self {
            link,
            blocking: Mutex::new(None),
            outbox: outbox::OutboxLink::new(&keys),
            keys,
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

    fn retention_ms(&self) -> u64 {
        self.retention.final_approvals.as_millis() as u64
    }

    /// The approvals with these ids, in order (`None`: gone), in one round
    /// trip.
    async fn fetch(
        &self,
        ids: &[impl AsRef<str> + Sync],
    ) -> Result<Vec<Option<Approval>>, DomainError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.keys.approval(id.as_ref()))
                .arg(&HASH_FIELDS[..]);
        }
        let rows: Vec<HashFields> = pipe.query_async(&mut self.conn()?).await?;
        rows.into_iter().map(codec::from_hash).collect()
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

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let fields: HashFields = redis::cmd("HMGET")
            .arg(self.keys.approval(id.as_str()))
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
        let ids: Vec<String> = self
            .conn()?
            .zrangebyscore_limit(&self.keys.pending, "-inf", now.0, 0, limit as isize)
            .await?;
        Ok(ids.into_iter().map(ApprovalId::trusted).collect())
    }

    async fn next_deadline(&self) -> Result<Option<Millis>, DomainError> {
        let first: Vec<(String, f64)> = self
            .conn()?
            .zrange_withscores(&self.keys.pending, 0, 0)
            .await?;
        Ok(first.first().map(|(_, score)| Millis(*score as u64)))
    }

    async fn remind(&self, id: &ApprovalId) -> Result<Option<(u32, Approval)>, DomainError> {
        RedisStore::remind(self, id).await
    }

    async fn due_reminders(
        &self,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ApprovalId>, DomainError> {
        let ids: Vec<String> = self
            .conn()?
            .zrangebyscore_limit(&self.keys.reminders, "-inf", now.0, 0, limit as isize)
            .await?;
        Ok(ids.into_iter().map(ApprovalId::trusted).collect())
    }

    async fn next_reminder(&self) -> Result<Option<Millis>, DomainError> {
        let first: Vec<(String, f64)> = self
            .conn()?
            .zrange_withscores(&self.keys.reminders, 0, 0)
            .await?;
        Ok(first.first().map(|(_, score)| Millis(*score as u64)))
    }

    async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Cursor), DomainError> {
        RedisStore::pending_ids(self).await
    }

    async fn get_many(&self, ids: &[ApprovalId]) -> Result<Vec<Option<Approval>>, DomainError> {
        let ids: Vec<&str> = ids.iter().map(ApprovalId::as_str).collect();
        self.fetch(&ids).await
    }

    async fn epoch(&self) -> Result<Epoch, DomainError> {
        RedisStore::epoch(self).await
    }

    async fn renew_epoch(&self, seen: Epoch) -> Result<Epoch, DomainError> {
        RedisStore::renew_epoch(self, seen).await
    }

    async fn pending_count(&self) -> Result<(u64, Cursor), DomainError> {
        RedisStore::pending_count(self).await
    }

    async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page, DomainError> {
        RedisStore::list(self, caller, query).await
    }

    async fn head(&self) -> Result<Cursor, DomainError> {
        RedisStore::head(self).await
    }

    async fn read_events(
        &self,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError> {
        RedisStore::read_events(self, after, limit, block).await
    }

    async fn check_cursor(&self, cursor: Cursor) -> Result<(), DomainError> {
        RedisStore::check_cursor(self, cursor).await
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
}
