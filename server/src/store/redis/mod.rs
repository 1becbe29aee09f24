//! The production store: Redis (7.0 or newer), shared by every replica.
//!
//! Layout, every key under one hash tag `{prefix}` so each Lua script touches
//! one Cluster slot:
//!
//! | key                         | type   | bound                                  |
//! |-----------------------------|--------|----------------------------------------|
//! | `{p}:approval:<id>`         | hash   | TTL: deadline + retention, then retention once final |
//! | `{p}:idem:<requester>:<key>`| string | TTL: as the approval when created      |
//! | `{p}:pending`               | zset   | pending approvals only (by deadline)   |
//! | `{p}:index`                 | zset   | ids within retention (lexicographic)   |
//! | `{p}:open`                  | hash   | one field per requester with pending approvals |
//! | `{p}:reminders`             | zset   | pending approvals with a reminder to come (by when) |
//! | `{p}:events`                | stream | capped (`MAXLEN ~`)                    |
//! | `{p}:epoch`                 | string | one value: the history's epoch (hex)   |
//! | `{p}:writable`              | string | TTL: one minute (the health write probe) |
//!
//! Every change goes through one Lua script (create, decide, cancel, expire,
//! remind),
//! so it is atomic and appears in the event stream in the order it happened.

mod codec;
mod link;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisError, Script, Value};
use tokio::sync::Mutex;

use super::{Created, Retention, Store};
use crate::domain::{
    Approval, ApprovalId, Cursor, DomainError, Ending, Epoch, Event, EventKind, Finished,
    ListQuery, Millis, NewApproval, Page, PageToken,
};

const FINISH: &str = include_str!("finish.lua");
/// A difference between this replica's clock and Redis's worth a log line.
const CLOCK_WARN_MS: i64 = 1000;
/// TTL of the key the health probe writes.
const WRITABLE_PROBE_TTL_MS: u64 = 60_000;

/// How to reach Redis and where in it to keep data.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    pub url: String,
    /// Namespace: every key is under the hash tag `{prefix}`.
    pub prefix: String,
    pub retention: Retention,
    /// Connect and command timeout (not used for blocking reads).
    pub timeout: Duration,
    /// For tests only: pretend this replica's wall clock is off by this
    /// many milliseconds (Redis's clock still rules).
    pub clock_skew_ms: i64,
}

pub struct RedisStore {
    link: link::Link,
    /// Only `read_events` with `block` uses it: XREAD BLOCK holds a connection
    /// for as long as it waits, so it gets one of its own with no response
    /// timeout (the event pump is the only caller).
    blocking: Mutex<Option<MultiplexedConnection>>,
    keys: Keys,
    retention: Retention,
    timeout: Duration,
    scripts: Scripts,
    /// Redis's clock minus this replica's, as last measured (ms).
    offset_ms: AtomicI64,
    clock_skew_ms: i64,
}

struct Scripts {
    create: Script,
    decide: Script,
    cancel: Script,
    expire: Script,
    remind: Script,
    renew_epoch: Script,
}

struct Keys {
    tag: String,
    pending: String,
    index: String,
    events: String,
    open: String,
    reminders: String,
    epoch: String,
    writable: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        Self {
            pending: format!("{tag}:pending"),
            index: format!("{tag}:index"),
            events: format!("{tag}:events"),
            open: format!("{tag}:open"),
            reminders: format!("{tag}:reminders"),
            epoch: format!("{tag}:epoch"),
            writable: format!("{tag}:writable"),
            tag,
        }
    }

    fn approval(&self, id: &ApprovalId) -> String {
        format!("{}{id}", self.approval_prefix())
    }

    /// An approval's key without its id.
    fn approval_prefix(&self) -> String {
        format!("{}:approval:", self.tag)
    }

    fn idempotency(&self, requester: &str, key: &str) -> String {
        // Length-prefixed so that no two (requester, key) pairs collide.
        format!("{}:idem:{}:{requester}:{key}", self.tag, requester.len())
    }
}

/// Redis answering that it will not write now, in words a person
/// understands, with a stable cause name; `None` for any other error.
fn write_refusal(e: &RedisError) -> Option<DomainError> {
    let (cause, message) = match e.code()? {
        "OOM" => (
            "out_of_memory",
            "Redis is out of memory (maxmemory reached, and under maxmemory-policy noeviction it \
             refuses writes): an operator must raise maxmemory or free memory",
        ),
        "READONLY" => (
            "read_only",
            "Redis is a read-only replica, not the master (a failover may be under way)",
        ),
        "LOADING" => (
            "loading",
            "Redis is loading its data set into memory (it restarted)",
        ),
        "MASTERDOWN" => (
            "master_down",
            "the Redis replica in use lost its link to the master",
        ),
        "BUSY" => ("busy", "Redis is busy running a long script"),
        "MISCONF" => (
            "cannot_persist",
            "Redis cannot save to disk and refuses writes (stop-writes-on-bgsave-error)",
        ),
        "NOREPLICAS" => (
            "not_enough_replicas",
            "Redis has fewer healthy replicas than its min-replicas-to-write",
        ),
        _ => return None,
    };
    Some(DomainError::WritesRefused {
        cause,
        message: message.to_string(),
        detail: e.to_string(),
    })
}

/// A failed write: refused, not sent (no connection could be made), or
/// sent with no answer (timeout, connection lost), when nobody can tell
/// whether Redis applied it.
fn write_error(e: RedisError) -> DomainError {
    if write_refusal(&e).is_some() || e.is_connection_refusal() {
        return e.into();
    }
    if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
    {
        return DomainError::OutcomeUnknown {
            detail: format!("Redis did not answer ({e})"),
            advice: "read the approval back before acting on this failure".into(),
        };
    }
    e.into()
}

/// Redis refusing writes and connection trouble are UNAVAILABLE (retry);
/// anything else is a bug here.
impl From<RedisError> for DomainError {
    fn from(e: RedisError) -> Self {
        if let Some(refused) = write_refusal(&e) {
            return refused;
        }
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        {
            DomainError::Unavailable(format!("Redis: {e}"))
        } else {
            DomainError::Internal(format!("Redis: {e}"))
        }
    }
}

type HashFields = (
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const HASH_FIELDS: [&str; 8] = [
    "body", "status", "by", "reason", "at", "created", "deadline", "votes",
];

fn from_hash(fields: HashFields) -> Result<Option<Approval>, DomainError> {
    let (Some(body), Some(status), by, reason, at, created, deadline, votes) = fields else {
        return Ok(None);
    };
    codec::decode(
        &body,
        codec::StateFields {
            status,
            by: by.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
            at: at.unwrap_or_default(),
            created: created.unwrap_or_default(),
            deadline: deadline.unwrap_or_default(),
            votes: votes.unwrap_or_default(),
        },
    )
    .map(Some)
}

fn parse_epoch(raw: &str) -> Result<Epoch, DomainError> {
    u64::from_str_radix(raw, 16)
        .map(Epoch)
        .map_err(|_| DomainError::Internal(format!("unexpected epoch {raw:?}")))
}

fn parse_cursor(id: &str) -> Result<Cursor, DomainError> {
    id.parse()
        .map_err(|_| DomainError::Internal(format!("unexpected stream id {id:?}")))
}

impl RedisStore {
    /// Sets up the store. Does not need Redis to be up yet: the connection is
    /// made lazily and re-made after failures, and health reports it.
    pub fn connect(options: RedisOptions) -> Result<Self, DomainError> {
        let link = link::Link::open(&options.url, options.timeout)?;
        // `#!lua` declares each a write script (Redis 7): when Redis refuses
        // writes (OOM, READONLY...) it refuses the script before it runs,
        // so none is ever half applied.
        let script = |body: &str| Script::new(&format!("#!lua\n{FINISH}\n{body}"));
        Ok(Self {
            link,
            blocking: Mutex::new(None),
            keys: Keys::new(&options.prefix),
            retention: options.retention,
            timeout: options.timeout,
            offset_ms: AtomicI64::new(0),
            clock_skew_ms: options.clock_skew_ms,
            scripts: Scripts {
                create: Script::new(&format!("#!lua\n{}", include_str!("create.lua"))),
                decide: script(include_str!("decide.lua")),
                cancel: script(include_str!("cancel.lua")),
                expire: script(include_str!("expire.lua")),
                remind: Script::new(&format!("#!lua\n{}", include_str!("remind.lua"))),
                renew_epoch: Script::new(include_str!("renew_epoch.lua")),
            },
        })
    }

    fn conn(&self) -> Result<ConnectionManager, DomainError> {
        self.link.conn()
    }

    fn retention_ms(&self) -> u64 {
        self.retention.final_approvals.as_millis() as u64
    }

    async fn fetch(&self, ids: &[String]) -> Result<Vec<Option<Approval>>, DomainError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(format!("{}{id}", self.keys.approval_prefix()))
                .arg(&HASH_FIELDS[..]);
        }
        let rows: Vec<HashFields> = pipe.query_async(&mut self.conn()?).await?;
        rows.into_iter().map(from_hash).collect()
    }

    fn events_from(
        &self,
        entries: Vec<redis::streams::StreamId>,
    ) -> Result<Vec<Event>, DomainError> {
        entries
            .into_iter()
            .map(|entry| {
                let field = |name: &str| match entry.map.get(name) {
                    Some(Value::BulkString(k)) => k.as_slice(),
                    _ => b"",
                };
                let kind = match field("kind") {
                    b"added" => EventKind::Added,
                    b"updated" => EventKind::Updated,
                    b"reminder" => EventKind::Reminder(
                        std::str::from_utf8(field("reminder"))
                            .ok()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    ),
                    _ => EventKind::Resolved,
                };
                Ok(Event {
                    cursor: parse_cursor(&entry.id)?,
                    kind,
                    approval: codec::decode_entry(&entry.map)?,
                })
            })
            .collect()
    }

    async fn blocking_read(
        &self,
        after: Cursor,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        let mut slot = self.blocking.lock().await;
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
            .count(limit)
            .block(block.as_millis() as usize);
        let after = after.to_string();
        // A silently dead connection would block forever: bound the wait.
        let read = tokio::time::timeout(
            block + self.timeout + Duration::from_secs(1),
            conn.xread_options::<_, _, Option<StreamReadReply>>(
                &[&self.keys.events],
                &[&after],
                &options,
            ),
        )
        .await;
        let reply = match read {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                *slot = None;
                return Err(e.into());
            }
            Err(_) => {
                *slot = None;
                return Err(DomainError::Unavailable(
                    "Redis: blocking read timed out".into(),
                ));
            }
        };
        let entries = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        self.events_from(entries)
    }

    /// What the event stream still holds: `None` when it does not exist.
    async fn stream_bounds(&self) -> Result<Option<StreamBounds>, DomainError> {
        let info: Result<Value, RedisError> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.keys.events)
            .query_async(&mut self.conn()?)
            .await;
        let info = match info {
            Ok(v) => v,
            // No stream yet: nothing was ever written (or Redis was wiped).
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let pairs: Vec<(String, Value)> = match info {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => text(k).map(|k| (k, v.clone())),
                    _ => None,
                })
                .collect(),
            Value::Map(items) => items
                .into_iter()
                .filter_map(|(k, v)| text(&k).map(|k| (k, v)))
                .collect(),
            _ => Vec::new(),
        };
        let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let number = |name: &str| -> u64 {
            match field(name) {
                Some(Value::Int(n)) => *n as u64,
                Some(v) => text(v).and_then(|t| t.parse().ok()).unwrap_or(0),
                None => 0,
            }
        };
        let cursor = |name: &str| field(name).and_then(text).and_then(|t| t.parse().ok());
        Ok(Some(StreamBounds {
            first: cursor("recorded-first-entry-id"),
            last: cursor("last-generated-id").unwrap_or(Cursor::START),
            trimmed: number("entries-added") > number("length"),
        }))
    }
}

/// The part of the event log a stream still holds.
struct StreamBounds {
    first: Option<Cursor>,
    last: Cursor,
    /// Whether any entry was ever trimmed away (all of them precede `first`).
    trimmed: bool,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create(
        &self,
        id: ApprovalId,
        new: NewApproval,
        max_open: usize,
    ) -> Result<Created, DomainError> {
        let now = self.now();
        let requester = new.requester.as_str().to_string();
        let idem = new
            .idempotency_key
            .as_ref()
            .map(|k| self.keys.idempotency(&requester, k.as_str()));
        let ttl = now
            .until(now.plus(new.timeout.get()))
            .saturating_add(self.retention.final_approvals)
            .as_millis() as u64;
        let cutoff = ApprovalId::lower_bound_at(Millis(
            now.0
                .saturating_sub(self.retention_ms())
                .saturating_sub(self.retention.max_timeout.as_millis() as u64),
        ));
        let timeout_ms = new.timeout.get().as_millis() as u64;
        let mut approval = new.into_approval_with_id(id, now);
        let policy = &approval.policy;
        let expiry_reason = match policy.expiry_reason() {
            r if r == Approval::EXPIRED_REASON => String::new(),
            r => r,
        };
        let reminders = policy
            .remind_after
            .iter()
            .map(|d| d.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let required = policy.required_approvals.max(1);
        let fingerprint = approval.request_fingerprint();
        let body = codec::encode_body(&approval);
        let reply: Vec<Vec<u8>> = self
            .scripts
            .create
            .key(self.keys.approval(&approval.id))
            .key(
                idem.clone()
                    .unwrap_or_else(|| format!("{}:idem:-", self.keys.tag)),
            )
            .key(&self.keys.pending)
            .key(&self.keys.index)
            .key(&self.keys.events)
            .key(&self.keys.open)
            .key(&self.keys.reminders)
            .arg(approval.id.as_str())
            .arg(&body)
            .arg(timeout_ms)
            .arg(ttl)
            .arg(&cutoff)
            .arg(self.retention.max_events)
            .arg(if idem.is_some() { "1" } else { "0" })
            .arg(&requester)
            .arg(max_open)
            .arg(&fingerprint)
            .arg(self.keys.approval_prefix())
            .arg(required)
            .arg(&expiry_reason)
            .arg(&reminders)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"created") => {
                // The times Redis stamped, by its clock.
                let time = |i: usize| {
                    reply
                        .get(i)
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                        .map(Millis)
                };
                if let (Some(created), Some(deadline)) = (time(1), time(2)) {
                    approval.created_at = created;
                    approval.deadline = deadline;
                }
                Ok(Created {
                    approval,
                    created: true,
                })
            }
            Some(b"exists") => {
                let existing = codec::decode_reply(&reply)?;
                // This very id: an earlier attempt of this call landed.
                let created = existing.id == approval.id;
                // Records written before fingerprints were stored: compare here.
                if !created && existing.request_fingerprint() != fingerprint {
                    return Err(super::key_reused(existing));
                }
                Ok(Created {
                    approval: existing,
                    created,
                })
            }
            Some(b"conflict") => Err(super::key_reused(codec::decode_reply(&reply)?)),
            Some(b"quota") => Err(super::quota_error(&requester, max_open)),
            other => Err(DomainError::Internal(format!(
                "create.lua replied {:?}",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }

    async fn get(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let fields: HashFields = redis::cmd("HMGET")
            .arg(self.keys.approval(id))
            .arg(&HASH_FIELDS[..])
            .query_async(&mut self.conn()?)
            .await?;
        from_hash(fields)
    }

    async fn finish(&self, id: &ApprovalId, ending: &Ending) -> Result<Finished, DomainError> {
        let (script, reason) = match ending {
            Ending::Decided { reason, .. } => (&self.scripts.decide, reason),
            Ending::Cancelled { reason, .. } => (&self.scripts.cancel, reason),
        };
        let reply: Vec<Vec<u8>> = script
            .key(self.keys.approval(id))
            .key(&self.keys.pending)
            .key(&self.keys.events)
            .key(&self.keys.open)
            .arg(id.as_str())
            .arg(ending.status().name())
            .arg(ending.by())
            .arg(reason)
            .arg(self.retention_ms())
            .arg(self.retention.max_events)
            .arg(Approval::EXPIRED_REASON)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"done") => Ok(Finished::Done(codec::decode_reply(&reply)?)),
            Some(b"expired") => Ok(Finished::Expired(codec::decode_reply(&reply)?)),
            Some(b"final") => Ok(Finished::AlreadyFinal(codec::decode_reply(&reply)?)),
            Some(b"recorded") => Ok(Finished::Voted(codec::decode_reply(&reply)?)),
            Some(b"voted") => Ok(Finished::AlreadyVoted(codec::decode_reply(&reply)?)),
            Some(b"missing") => Ok(Finished::NotFound),
            other => Err(DomainError::Internal(format!(
                "finish script replied {:?}",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }

    async fn expire(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let reply: Vec<Vec<u8>> = self
            .scripts
            .expire
            .key(self.keys.approval(id))
            .key(&self.keys.pending)
            .key(&self.keys.events)
            .key(&self.keys.open)
            .arg(id.as_str())
            .arg(self.retention_ms())
            .arg(self.retention.max_events)
            .arg(Approval::EXPIRED_REASON)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"expired") => Ok(Some(codec::decode_reply(&reply)?)),
            _ => Ok(None),
        }
    }

    async fn remind(&self, id: &ApprovalId) -> Result<Option<(u32, Approval)>, DomainError> {
        let mut reply: Vec<Vec<u8>> = self
            .scripts
            .remind
            .key(self.keys.approval(id))
            .key(&self.keys.reminders)
            .key(&self.keys.events)
            .arg(id.as_str())
            .arg(self.retention.max_events)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        if reply.first().map(Vec::as_slice) != Some(b"reminded") {
            return Ok(None);
        }
        let n = std::str::from_utf8(&reply.remove(1))
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Some((n, codec::decode_reply(&reply)?)))
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

    async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Cursor), DomainError> {
        let (ids, last): (Vec<String>, StreamRangeReply) = redis::pipe()
            .atomic()
            .zrange(&self.keys.pending, 0, -1)
            .xrevrange_count(&self.keys.events, "+", "-", 1)
            .query_async(&mut self.conn()?)
            .await?;
        let at = match last.ids.first() {
            Some(entry) => parse_cursor(&entry.id)?,
            None => Cursor::START,
        };
        // UUIDv7 text sorts by creation time.
        let mut ids: Vec<ApprovalId> = ids.into_iter().map(ApprovalId::trusted).collect();
        ids.sort();
        Ok((ids, at))
    }

    async fn get_many(&self, ids: &[ApprovalId]) -> Result<Vec<Option<Approval>>, DomainError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
        self.fetch(&ids).await
    }

    async fn epoch(&self) -> Result<Epoch, DomainError> {
        let fresh = super::new_epoch();
        let (recorded,): (String,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&self.keys.epoch)
            .arg(format!("{:x}", fresh.0))
            .arg("NX")
            .ignore()
            .get(&self.keys.epoch)
            .query_async(&mut self.conn()?)
            .await?;
        parse_epoch(&recorded)
    }

    async fn renew_epoch(&self, seen: Epoch) -> Result<Epoch, DomainError> {
        let fresh = super::new_epoch();
        let recorded: String = self
            .scripts
            .renew_epoch
            .key(&self.keys.epoch)
            .arg(format!("{:x}", seen.0))
            .arg(format!("{:x}", fresh.0))
            .invoke_async(&mut self.conn()?)
            .await?;
        parse_epoch(&recorded)
    }

    async fn pending_count(&self) -> Result<(u64, Cursor), DomainError> {
        let (count, last): (u64, StreamRangeReply) = redis::pipe()
            .atomic()
            .zcard(&self.keys.pending)
            .xrevrange_count(&self.keys.events, "+", "-", 1)
            .query_async(&mut self.conn()?)
            .await?;
        let at = match last.ids.first() {
            Some(entry) => parse_cursor(&entry.id)?,
            None => Cursor::START,
        };
        Ok((count, at))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, DomainError> {
        // Walk the time index newest first, filter, stop at a page (plus one
        // to know whether more follow) or after a bounded scan, in which case
        // the page may be short but the token lets the caller go on.
        const MAX_SCANNED: usize = 5000;
        let batch = (query.page_size * 2).clamp(100, 1000);
        let mut upper = match &query.after {
            Some(PageToken(id)) => format!("({id}"),
            None => "+".to_string(),
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut scanned = 0;
        loop {
            let ids: Vec<String> = self
                .conn()?
                .zrevrangebylex_limit(&self.keys.index, &upper, "-", 0, batch as isize)
                .await?;
            let exhausted = ids.len() < batch;
            let rows = self.fetch(&ids).await?;
            let mut gone = Vec::new();
            for (id, row) in ids.iter().zip(rows) {
                scanned += 1;
                upper = format!("({id}");
                match row {
                    None => gone.push(id.clone()),
                    Some(a) if query.matches(&a) => {
                        let size = a.wire_size();
                        if super::page_full(query, page.len(), bytes, size) {
                            // One more exists: the page is complete.
                            let next = page.last().map(|a: &Approval| PageToken(a.id.clone()));
                            self.forget(&gone).await;
                            return Ok(Page {
                                approvals: page,
                                next,
                            });
                        }
                        bytes += size;
                        page.push(a);
                    }
                    Some(_) => {}
                }
            }
            self.forget(&gone).await;
            if exhausted {
                return Ok(Page {
                    approvals: page,
                    next: None,
                });
            }
            if scanned >= MAX_SCANNED {
                let last = upper.trim_start_matches('(').to_string();
                return Ok(Page {
                    approvals: page,
                    next: Some(PageToken(ApprovalId::trusted(last))),
                });
            }
        }
    }

    async fn head(&self) -> Result<Cursor, DomainError> {
        let last: StreamRangeReply = self
            .conn()?
            .xrevrange_count(&self.keys.events, "+", "-", 1)
            .await?;
        match last.ids.first() {
            Some(entry) => parse_cursor(&entry.id),
            None => Ok(self
                .stream_bounds()
                .await?
                .map_or(Cursor::START, |b| b.last)),
        }
    }

    async fn read_events(
        &self,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError> {
        if let Some(block) = block {
            return self.blocking_read(after, limit, block).await;
        }
        let reply: StreamRangeReply = self
            .conn()?
            .xrange_count(&self.keys.events, format!("({after}"), "+", limit)
            .await?;
        self.events_from(reply.ids)
    }

    async fn check_cursor(&self, cursor: Cursor) -> Result<(), DomainError> {
        let Some(bounds) = self.stream_bounds().await? else {
            // No log at all: only "before everything" is a position in it.
            return match cursor == Cursor::START {
                true => Ok(()),
                false => Err(DomainError::CursorAhead {
                    cursor: cursor.to_string(),
                    newest: Cursor::START.to_string(),
                }),
            };
        };
        // Trimming removes the oldest entries, so events after `cursor` are
        // all still there if `cursor` is at or past the first one kept, or
        // nothing was ever trimmed. (A cursor naming exactly the last
        // trimmed entry is refused too: the log cannot tell it apart.)
        let complete = !bounds.trimmed || bounds.first.is_some_and(|first| cursor >= first);
        if cursor > bounds.last {
            return Err(DomainError::CursorAhead {
                cursor: cursor.to_string(),
                newest: bounds.last.to_string(),
            });
        }
        if !complete {
            return Err(DomainError::CursorExpired(cursor.to_string()));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), DomainError> {
        self.link.check().await?;
        // One small write (with a TTL): refused exactly when approvals would be.
        let _: () = redis::cmd("SET")
            .arg(&self.keys.writable)
            .arg(1)
            .arg("PX")
            .arg(WRITABLE_PROBE_TTL_MS)
            .query_async(&mut self.conn()?)
            .await?;
        Ok(())
    }

    fn now(&self) -> Millis {
        let ms =
            Millis::now().0 as i64 + self.clock_skew_ms + self.offset_ms.load(Ordering::Relaxed);
        Millis(ms.max(0) as u64)
    }

    async fn sync_clock(&self) -> Result<(), DomainError> {
        let local = || Millis::now().0 as i64 + self.clock_skew_ms;
        let before = local();
        let (seconds, micros): (i64, i64) =
            redis::cmd("TIME").query_async(&mut self.conn()?).await?;
        let after = local();
        let redis = seconds * 1000 + micros / 1000;
        let offset = redis - (before + after) / 2;
        let previous = self.offset_ms.swap(offset, Ordering::Relaxed);
        if (offset - previous).abs() > CLOCK_WARN_MS {
            tracing::warn!(
                offset_ms = offset,
                "this replica's wall clock is {offset} ms behind Redis's (negative: ahead); \
                 deadlines follow Redis's clock, so approvals are unaffected, but check NTP"
            );
        }
        Ok(())
    }

    async fn eviction_policy(&self) -> Result<Option<String>, DomainError> {
        // INFO, not CONFIG GET: managed Redis services often disable CONFIG.
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn()?)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .filter(|policy| *policy != "noeviction")
            .map(String::from))
    }
}

impl RedisStore {
    /// Drops index entries whose approval aged out. Best effort: a failure
    /// only leaves entries that the next list skips again.
    async fn forget(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.conn() {
            let _: Result<(), RedisError> = conn.zrem(&self.keys.index, ids).await;
        }
    }
}
