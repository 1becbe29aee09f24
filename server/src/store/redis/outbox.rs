//! The webhook outbox in Redis (see `store::outbox` for the two steps).
//!
//! Keys (`keys.rs`): each partition's event stream's consumer group
//! `webhooks` (its pending entries: events claimed, not yet planned; a
//! replica plans each partition's log apart, a blocking group read each);
//! in partition 0 only (one queue for the namespace): `hooks:due` (zset:
//! queued deliveries by due time or lease end) and `hooks:queued` (hash: the
//! same deliveries, JSON), capped at `MAX_QUEUED`; `hooks:dead` (hash: dead
//! letters, JSON) and `hooks:dead_order` (zset: the same by when they died),
//! capped at `MAX_DEAD`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoConsumersReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{AsyncCommands, RedisError, Script};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::RedisStore;
use crate::domain::{Cursor, DomainError, Event, Millis};
use crate::store::outbox::{
    DeadLetter, Delivery, Outbox, OutboxSizes, MAX_DEAD, MAX_QUEUED, STALE_CLAIM,
};

/// The consumer group of the replicas that plan deliveries.
const GROUP: &str = "webhooks";
/// How often a replica looks for events claimed by a replica that died.
const TAKEOVER_EVERY: Duration = Duration::from_secs(10);
/// A consumer (replica) idle this long with nothing claimed is forgotten, so
/// the group's list of consumers does not grow with every restart.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(3600);
/// How often a replica forgets the consumers of replicas long gone.
const FORGET_EVERY: Duration = Duration::from_secs(600);

const COMMON: &str = include_str!("outbox/common.lua");

/// This replica's side of the outbox: scripts, and each partition's
/// consumer group.
pub(super) struct OutboxLink {
    keys: [String; 4],
    scripts: OutboxScripts,
    /// Partition 0's first.
    groups: Vec<GroupLink>,
}

/// This replica's side of one partition's consumer group.
struct GroupLink {
    events: String,
    /// XREADGROUP BLOCK holds a connection while it waits: its own, with no
    /// response timeout (as the event pump's).
    blocking: Mutex<Option<super::link::Conn>>,
    group_ready: AtomicBool,
    last_takeover: Mutex<Option<Instant>>,
    last_forget: Mutex<Option<Instant>>,
}

struct OutboxScripts {
    plan: Script,
    take_due: Script,
    retry_later: Script,
    bury: Script,
    revive: Script,
}

impl OutboxLink {
    /// `keys`: partition 0's (the queue's); `parts`: every partition's.
    pub(super) fn new(keys: &super::keys::Keys, parts: &[super::keys::Keys]) -> Self {
        let script = |body: &str| Script::new(&format!("#!lua\n{COMMON}\n{body}"));
        Self {
            keys: keys.outbox(),
            groups: parts
                .iter()
                .map(|p| GroupLink {
                    events: p.events.clone(),
                    blocking: Mutex::new(None),
                    group_ready: AtomicBool::new(false),
                    last_takeover: Mutex::new(None),
                    last_forget: Mutex::new(None),
                })
                .collect(),
            scripts: OutboxScripts {
                plan: script(include_str!("outbox/plan.lua")),
                take_due: script(include_str!("outbox/take_due.lua")),
                retry_later: script(include_str!("outbox/retry_later.lua")),
                bury: script(include_str!("outbox/bury.lua")),
                revive: script(include_str!("outbox/revive.lua")),
            },
        }
    }

    fn group(&self, part: usize) -> Result<&GroupLink, DomainError> {
        self.groups
            .get(part)
            .ok_or_else(|| DomainError::Internal(format!("no partition {part}")))
    }

    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, DomainError> {
    serde_json::from_str(raw)
        .map_err(|e| DomainError::Internal(format!("unreadable outbox record: {e}")))
}

fn is_no_group(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

impl RedisStore {
    fn outbox(&self) -> &OutboxLink {
        &self.outbox
    }

    /// Creates partition `part`'s consumer group, starting at the newest
    /// event, unless it exists (then it goes on where the replicas left it).
    async fn ensure_group(&self, part: usize) -> Result<(), DomainError> {
        let o = self.outbox().group(part)?;
        if o.group_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let created: Result<(), RedisError> = self
            .conn()?
            .xgroup_create_mkstream(&o.events, GROUP, "$")
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        o.group_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Events another replica claimed and left unplanned for `STALE_CLAIM`
    /// (it died), now claimed by `consumer`; checked every `TAKEOVER_EVERY`.
    async fn take_over(
        &self,
        part: usize,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<Event>, DomainError> {
        let o = self.outbox().group(part)?;
        {
            let mut last = o.last_takeover.lock().await;
            if last.is_some_and(|t| t.elapsed() < TAKEOVER_EVERY) {
                return Ok(Vec::new());
            }
            *last = Some(Instant::now());
        }
        let reply: StreamAutoClaimReply = self
            .conn()?
            .xautoclaim_options(
                &o.events,
                GROUP,
                consumer,
                STALE_CLAIM.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(limit),
            )
            .await?;
        if !reply.deleted_ids.is_empty() {
            // Trimmed from the log before anyone planned them: lost to
            // webhooks (the log's cap is far above what planning lags).
            tracing::warn!(
                events = reply.deleted_ids.len(),
                "webhook planning fell behind the event log's cap: some events were trimmed unsent"
            );
            let _: Result<(), RedisError> = self
                .conn()?
                .xack(&o.events, GROUP, &reply.deleted_ids)
                .await;
        }
        self.forget_gone_consumers(o, consumer).await;
        if !reply.claimed.is_empty() {
            tracing::info!(
                events = reply.claimed.len(),
                "taking over webhook planning of events another replica claimed and left"
            );
        }
        super::codec::events(reply.claimed, part, self.parts.len())
    }

    /// Deletes consumers idle past `FORGET_CONSUMER_AFTER` that hold no
    /// claimed event (replicas long gone). Best effort.
    async fn forget_gone_consumers(&self, o: &GroupLink, me: &str) {
        {
            let mut last = o.last_forget.lock().await;
            if last.is_some_and(|t| t.elapsed() < FORGET_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Ok(mut conn) = self.conn() else {
            return;
        };
        let info: Result<StreamInfoConsumersReply, RedisError> =
            conn.xinfo_consumers(&o.events, GROUP).await;
        let Ok(info) = info else {
            return;
        };
        for c in info.consumers {
            if c.name != me && c.pending == 0 && c.idle as u128 > FORGET_CONSUMER_AFTER.as_millis()
            {
                let _: Result<u64, RedisError> =
                    conn.xgroup_delconsumer(&o.events, GROUP, &c.name).await;
            }
        }
    }

    async fn read_group(
        &self,
        part: usize,
        consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        let o = self.outbox().group(part)?;
        let mut slot = o.blocking.lock().await;
        if slot.is_none() {
            *slot = Some(self.link.blocking_conn().await?);
        }
        let Some(conn) = slot.as_mut() else {
            return Ok(Vec::new());
        };
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(limit)
            .block(block.as_millis() as usize);
        // A silently dead connection would block forever: bound the wait.
        let read = tokio::time::timeout(
            block + self.timeout + Duration::from_secs(1),
            conn.xread_options::<_, _, Option<StreamReadReply>>(&[&o.events], &[">"], &options),
        )
        .await;
        let reply = match read {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                *slot = None;
                if is_no_group(&e) {
                    // The stream was wiped (with its group): start again.
                    o.group_ready.store(false, Ordering::Relaxed);
                }
                return Err(e.into());
            }
            Err(_) => {
                *slot = None;
                return Err(DomainError::Unavailable(
                    "Redis: blocking read of the webhook group timed out".into(),
                ));
            }
        };
        let entries = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        super::codec::events(entries, part, self.parts.len())
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn unplanned_events(
        &self,
        part: usize,
        consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        self.ensure_group(part).await?;
        let taken = self.take_over(part, consumer, limit).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
        self.read_group(part, consumer, limit, block).await
    }

    async fn plan(
        &self,
        part: usize,
        event: Cursor,
        deliveries: &[Delivery],
    ) -> Result<(), DomainError> {
        let o = self.outbox();
        let log = &o.group(part)?.events;
        let mut invocation = o.invocation(&o.scripts.plan);
        // Partition 0's events are marked planned in the same script (same
        // slot); another partition's log is in another slot: marked after.
        invocation
            .key(&o.group(0)?.events)
            .arg(GROUP)
            .arg(if part == 0 {
                event.to_string()
            } else {
                String::new()
            })
            .arg(MAX_QUEUED)
            .arg(MAX_DEAD);
        let now = self.now();
        for d in deliveries {
            invocation
                .arg(&d.id)
                .arg(to_json(d))
                .arg(to_json(&d.refused_as_full(now)));
        }
        let _queued: u64 = invocation.invoke_async(&mut self.conn()?).await?;
        if part != 0 {
            let _: u64 = self.conn()?.xack(log, GROUP, &[event.to_string()]).await?;
        }
        Ok(())
    }

    async fn take_due(&self, limit: usize, lease: Duration) -> Result<Vec<Delivery>, DomainError> {
        let o = self.outbox();
        let raw: Vec<String> = o
            .invocation(&o.scripts.take_due)
            .arg(limit)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.conn()?)
            .await?;
        raw.iter().map(|r| from_json(r)).collect()
    }

    async fn delivered(&self, id: &str) -> Result<(), DomainError> {
        let o = self.outbox();
        let _: () = redis::pipe()
            .atomic()
            .zrem(&o.keys[0], id)
            .ignore()
            .hdel(&o.keys[1], id)
            .ignore()
            .query_async(&mut self.conn()?)
            .await?;
        Ok(())
    }

    async fn retry_later(&self, delivery: &Delivery, delay: Duration) -> Result<(), DomainError> {
        let o = self.outbox();
        let _: u64 = o
            .invocation(&o.scripts.retry_later)
            .arg(&delivery.id)
            .arg(to_json(delivery))
            .arg(delay.as_millis() as u64)
            .invoke_async(&mut self.conn()?)
            .await?;
        Ok(())
    }

    async fn bury(&self, delivery: &Delivery) -> Result<(), DomainError> {
        let o = self.outbox();
        let letter = DeadLetter {
            delivery: delivery.clone(),
            died_at: self.now().0,
        };
        let _: u64 = o
            .invocation(&o.scripts.bury)
            .arg(&delivery.id)
            .arg(to_json(&letter))
            .arg(MAX_DEAD)
            .invoke_async(&mut self.conn()?)
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, DomainError> {
        let o = self.outbox();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self
            .conn()?
            .zrevrange(&o.keys[3], 0, limit as isize - 1)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&o.keys[2])
            .arg(&ids)
            .query_async(&mut self.conn()?)
            .await?;
        rows.iter().flatten().map(|r| from_json(r)).collect()
    }

    async fn revive(&self, id: &str) -> Result<bool, DomainError> {
        let o = self.outbox();
        let raw: Option<String> = self.conn()?.hget(&o.keys[2], id).await?;
        let Some(raw) = raw else {
            return Ok(false);
        };
        let letter: DeadLetter = from_json(&raw)?;
        let delivery = letter.delivery.revived(self.now());
        let revived: u64 = o
            .invocation(&o.scripts.revive)
            .arg(id)
            .arg(to_json(&delivery))
            .invoke_async(&mut self.conn()?)
            .await?;
        Ok(revived == 1)
    }

    async fn next_due(&self) -> Result<Option<Millis>, DomainError> {
        let o = self.outbox();
        let first: Vec<(String, f64)> = self.conn()?.zrange_withscores(&o.keys[0], 0, 0).await?;
        Ok(first.first().map(|(_, at)| Millis(at.max(0.0) as u64)))
    }

    async fn outbox_sizes(&self) -> Result<OutboxSizes, DomainError> {
        let o = self.outbox();
        let (queued, dead): (u64, u64) = redis::pipe()
            .zcard(&o.keys[0])
            .zcard(&o.keys[3])
            .query_async(&mut self.conn()?)
            .await?;
        Ok(OutboxSizes { queued, dead })
    }
}
