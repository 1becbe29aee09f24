//! The webhook outbox in Redis (see `store::outbox` for the two steps).
//!
//! Keys (`keys.rs`): the event stream's consumer group `webhooks` (its
//! pending entries: events claimed, not yet planned); `hooks:due` (zset:
//! queued deliveries by due time or lease end) and `hooks:queued` (hash: the
//! same deliveries, JSON), capped at `MAX_QUEUED`; `hooks:dead` (hash: dead
//! letters, JSON) and `hooks:dead_order` (zset: the same by when they died),
//! capped at `MAX_DEAD`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoConsumersReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisError, Script};
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

/// This replica's side of the outbox: scripts, and the connection its
/// blocking reads hold.
pub(super) struct OutboxLink {
    keys: [String; 4],
    events: String,
    scripts: OutboxScripts,
    /// XREADGROUP BLOCK holds a connection while it waits: its own, with no
    /// response timeout (as the event pump's).
    blocking: Mutex<Option<MultiplexedConnection>>,
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
    pub(super) fn new(keys: &super::keys::Keys) -> Self {
        let script = |body: &str| Script::new(&format!("#!lua\n{COMMON}\n{body}"));
        Self {
            keys: keys.outbox(),
            events: keys.events.clone(),
            scripts: OutboxScripts {
                plan: script(include_str!("outbox/plan.lua")),
                take_due: script(include_str!("outbox/take_due.lua")),
                retry_later: script(include_str!("outbox/retry_later.lua")),
                bury: script(include_str!("outbox/bury.lua")),
                revive: script(include_str!("outbox/revive.lua")),
            },
            blocking: Mutex::new(None),
            group_ready: AtomicBool::new(false),
            last_takeover: Mutex::new(None),
            last_forget: Mutex::new(None),
        }
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

    /// Creates the consumer group, starting at the newest event, unless it
    /// exists (then it goes on where the replicas left it).
    async fn ensure_group(&self) -> Result<(), DomainError> {
        let o = self.outbox();
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
    async fn take_over(&self, consumer: &str, limit: usize) -> Result<Vec<Event>, DomainError> {
        let o = self.outbox();
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
        self.forget_gone_consumers(consumer).await;
        if !reply.claimed.is_empty() {
            tracing::info!(
                events = reply.claimed.len(),
                "taking over webhook planning of events another replica claimed and left"
            );
        }
        super::codec::events(reply.claimed)
    }

    /// Deletes consumers idle past `FORGET_CONSUMER_AFTER` that hold no
    /// claimed event (replicas long gone). Best effort.
    async fn forget_gone_consumers(&self, me: &str) {
        let o = self.outbox();
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
        consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        let o = self.outbox();
        let mut slot = o.blocking.lock().await;
        if slot.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(None);
            *slot = Some(
                self.link
                    .node()?
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
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
        super::codec::events(entries)
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn unplanned_events(
        &self,
        consumer: &str,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        self.ensure_group().await?;
        let taken = self.take_over(consumer, limit).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
        self.read_group(consumer, limit, block).await
    }

    async fn plan(&self, event: Cursor, deliveries: &[Delivery]) -> Result<(), DomainError> {
        let o = self.outbox();
        let mut invocation = o.invocation(&o.scripts.plan);
        invocation
            .key(&o.events)
            .arg(GROUP)
            .arg(event.to_string())
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
