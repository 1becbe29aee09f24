//! The event logs: one Redis stream per partition, each in its partition's
//! hash tag (a script appends to the log of the approval it changes, in the
//! same Cluster slot). Reading them (a page at a time, or the pump's
//! blocking read, one per partition, each on a connection of its own: a
//! multi-stream XREAD works within one slot only), their bounds (XINFO),
//! cursors into them, and the epoch of their history.
//!
//! The epoch is one for the namespace, kept in partition 0 (`{p}:epoch`):
//! a resume cursor names one history, whatever the partitions. A partition
//! whose log rewinds (its node restored or wiped alone) is found by the
//! pump's history check (that log's head before the pump's position in
//! it), which draws a new epoch for all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisError, Value};

use super::codec;
use super::RedisStore;
use crate::domain::{ApprovalId, Cursor, Detail, DomainError, Epoch, Event, Frontier};
use crate::store;

impl RedisStore {
    async fn blocking_read(
        &self,
        part: usize,
        after: Cursor,
        limit: usize,
        block: Duration,
    ) -> Result<Vec<Event>, DomainError> {
        let (Some(keys), Some(slot)) = (self.parts.get(part), self.blocking.get(part)) else {
            return Ok(Vec::new());
        };
        let mut slot = slot.lock().await;
        if slot.is_none() {
            *slot = Some(self.link.blocking_conn().await?);
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
                &[&keys.events],
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
        codec::events(entries, part, self.parts.len())
    }

    /// The event log of partition `part`.
    fn log_of(&self, part: usize) -> Result<&str, DomainError> {
        self.parts
            .get(part)
            .map(|k| k.events.as_str())
            .ok_or_else(|| DomainError::Internal(format!("no partition {part}")))
    }

    /// What partition `part`'s log still holds: `None` when it does not
    /// exist.
    async fn stream_bounds(&self, part: usize) -> Result<Option<StreamBounds>, DomainError> {
        let info: Result<Value, RedisError> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(self.log_of(part)?)
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

    /// Each partition's pending ids with its log's position, read together
    /// (one transaction per partition: one slot each).
    pub(super) async fn pending_ids(&self) -> Result<(Vec<ApprovalId>, Frontier), DomainError> {
        let mut conn = self.conn()?;
        let mut all = Vec::new();
        let mut frontier = Frontier::start(self.parts.len());
        for (part, keys) in self.parts.iter().enumerate() {
            let (ids, last): (Vec<String>, StreamRangeReply) = redis::pipe()
                .atomic()
                .zrange(&keys.pending, 0, -1)
                .xrevrange_count(&keys.events, "+", "-", 1)
                .query_async(&mut conn)
                .await?;
            if let Some(entry) = last.ids.first() {
                frontier.advance(part, codec::parse_cursor(&entry.id)?);
            }
            all.extend(ids.into_iter().map(ApprovalId::trusted));
        }
        // UUIDv7 text sorts by creation time.
        all.sort();
        Ok((all, frontier))
    }

    pub(super) async fn epoch(&self) -> Result<Epoch, DomainError> {
        let fresh = store::new_epoch();
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
        codec::parse_epoch(&recorded)
    }

    pub(super) async fn renew_epoch(&self, seen: Epoch) -> Result<Epoch, DomainError> {
        let fresh = store::new_epoch();
        let recorded: String = self
            .scripts
            .renew_epoch
            .key(&self.keys.epoch)
            .arg(format!("{:x}", seen.0))
            .arg(format!("{:x}", fresh.0))
            .invoke_async(&mut self.conn()?)
            .await?;
        codec::parse_epoch(&recorded)
    }

    pub(super) async fn pending_count(&self, part: usize) -> Result<(u64, Cursor), DomainError> {
        let Some(keys) = self.parts.get(part) else {
            return Ok((0, Cursor::START));
        };
        let (count, last): (u64, StreamRangeReply) = redis::pipe()
            .atomic()
            .zcard(&keys.pending)
            .xrevrange_count(&keys.events, "+", "-", 1)
            .query_async(&mut self.conn()?)
            .await?;
        let at = match last.ids.first() {
            Some(entry) => codec::parse_cursor(&entry.id)?,
            None => Cursor::START,
        };
        Ok((count, at))
    }

    pub(super) async fn head(&self, part: usize) -> Result<Cursor, DomainError> {
        let last: StreamRangeReply = self
            .conn()?
            .xrevrange_count(self.log_of(part)?, "+", "-", 1)
            .await?;
        match last.ids.first() {
            Some(entry) => codec::parse_cursor(&entry.id),
            None => Ok(self
                .stream_bounds(part)
                .await?
                .map_or(Cursor::START, |b| b.last)),
        }
    }

    pub(super) async fn read_events(
        &self,
        part: usize,
        after: Cursor,
        limit: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Event>, DomainError> {
        if let Some(block) = block {
            return self.blocking_read(part, after, limit, block).await;
        }
        let reply: StreamRangeReply = self
            .conn()?
            .xrange_count(self.log_of(part)?, format!("({after}"), "+", limit)
            .await?;
        codec::events(reply.ids, part, self.parts.len())
    }

    /// Reads the bodies of the `Summary` events `wanted` picks, pipelined:
    /// one round trip for the whole batch, whatever its size.
    pub(super) async fn complete_events(
        &self,
        events: &mut [Event],
        wanted: &(dyn for<'e> Fn(&'e Event) -> bool + Sync),
    ) -> Result<(), DomainError> {
        let todo: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].detail == Detail::Summary && wanted(&events[i]))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        // One read per approval (its `added` and `resolved` events may
        // come in one batch), none for a body read lately.
        let mut bodies: HashMap<String, Option<Arc<[u8]>>> = HashMap::new();
        for &i in &todo {
            let id = events[i].approval.id.as_str();
            if !bodies.contains_key(id) {
                bodies.insert(id.to_string(), self.bodies.get(id));
            }
        }
        // One pipeline per partition (a Cluster takes a pipeline to one slot
        // only), sent together. (An id of no partition of this namespace
        // has no record to read.)
        let mut missing: Vec<(redis::Pipeline, Vec<String>)> = (0..self.parts.len())
            .map(|_| (redis::pipe(), Vec::new()))
            .collect();
        for (id, _) in bodies.iter().filter(|(_, body)| body.is_none()) {
            if let Some((part, keys)) = self.partition_of(id) {
                let (pipe, ids) = &mut missing[part];
                pipe.hget(keys.approval(id), "body");
                ids.push(id.clone());
            }
        }
        let reads =
            missing
                .iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(pipe, ids)| async move {
                    let read: Vec<Option<Vec<u8>>> = pipe.query_async(&mut self.conn()?).await?;
                    Ok::<_, DomainError>((ids, read))
                });
        for (ids, read) in futures::future::try_join_all(reads).await? {
            for (id, body) in ids.iter().zip(read) {
                let body: Option<Arc<[u8]>> = body.map(Into::into);
                if let Some(body) = &body {
                    self.bodies.put(id, body.clone());
                }
                bodies.insert(id.clone(), body);
            }
        }
        for i in todo {
            let e = &mut events[i];
            match bodies.get(e.approval.id.as_str()) {
                Some(Some(body)) => {
                    codec::complete(&mut e.approval, body)?;
                    e.detail = Detail::Full;
                }
                // Past its retention: what the entry holds is all there is.
                _ => e.detail = Detail::Gone,
            }
        }
        Ok(())
    }

    pub(super) async fn check_cursor(
        &self,
        part: usize,
        cursor: Cursor,
    ) -> Result<(), DomainError> {
        let Some(bounds) = self.stream_bounds(part).await? else {
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
