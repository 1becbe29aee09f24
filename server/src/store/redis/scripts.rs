//! The writes: each runs one Lua script (beside this file, loaded with
//! `include_str!`), so it is atomic and appears in the event stream in the
//! order it happened.

use redis::{Script, Value};

use super::errors::{first_server_error, write_error};
use super::{codec, RedisStore};
use crate::domain::{Approval, ApprovalId, DomainError, Ending, Finished, Millis, NewApproval};
use crate::store::{self, Created};

const FINISH: &str = include_str!("finish.lua");

pub(super) struct Scripts {
    create: Script,
    decide: Script,
    cancel: Script,
    expire: Script,
    remind: Script,
    pub(super) renew_epoch: Script,
}

impl Scripts {
    pub(super) fn load() -> Self {
        // `#!lua` declares each a write script (Redis 7): when Redis refuses
        // writes (OOM, READONLY...) it refuses the script before it runs,
        // so none is ever half applied.
        let script = |body: &str| Script::new(&format!("#!lua\n{FINISH}\n{body}"));
        Self {
            create: Script::new(&format!("#!lua\n{}", include_str!("create.lua"))),
            decide: script(include_str!("decide.lua")),
            cancel: script(include_str!("cancel.lua")),
            expire: script(include_str!("expire.lua")),
            remind: Script::new(&format!("#!lua\n{}", include_str!("remind.lua"))),
            renew_epoch: Script::new(include_str!("renew_epoch.lua")),
        }
    }
}

impl RedisStore {
    /// Runs a write script whose reply a caller is told (create, decide,
    /// cancel). With `--redis-wait-replicas`, the script and WAIT (or
    /// WAITAOF) go in one pipeline on one connection, so the count covers
    /// exactly this write (see durability.rs).
    /// `route`: a key of the script's partition (WAIT goes to its node).
    async fn confirmed_write(
        &self,
        script: &redis::ScriptInvocation<'_>,
        route: &str,
    ) -> Result<Vec<Vec<u8>>, DomainError> {
        let mut conn = self.conn()?;
        let Some(waiter) = &self.durability else {
            return script.invoke_async(&mut conn).await.map_err(write_error);
        };
        let wait = waiter.command(&mut conn, route).await?;
        let mut pipe = redis::pipe();
        pipe.invoke_script(script).add_command(wait);
        let no_script = |e: &redis::RedisError| {
            e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        };
        let mut sent = pipe.query_async::<(Vec<Vec<u8>>, Value)>(&mut conn).await;
        if matches!(&sent, Err(e) if no_script(e)) {
            // A pipeline does not load a script by itself (Redis restarted,
            // or a new primary): load it, then send both again.
            script.load_async(&mut conn).await.map_err(write_error)?;
            sent = pipe.query_async(&mut conn).await;
        }
        let (reply, acks) = sent.map_err(|e| write_error(first_server_error(e)))?;
        waiter.check(&acks)?;
        Ok(reply)
    }

    pub(super) async fn create(
        &self,
        id: ApprovalId,
        new: NewApproval,
        max_open: usize,
    ) -> Result<Created, DomainError> {
        // Checked at start; when Redis was not up then, before the first
        // write. A failed check is the script's to report (it fails too).
        if let Ok(Some(why)) = self.layout_mismatch().await {
            return Err(DomainError::Unavailable(why));
        }
        let now = self.now();
        let requester = new.requester.as_str().to_string();
        // The partition the id names (`Store::place`).
        let Some((part, keys)) = self.partition_of(id.as_str()) else {
            return Err(DomainError::Internal(format!(
                "approval id {id} names no partition of {}",
                self.parts.len()
            )));
        };
        let idem = new
            .idempotency_key
            .as_ref()
            .map(|k| keys.idempotency(&requester, k.as_str()));
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
        let trace = new
            .trace
            .as_ref()
            .map(|t| t.to_stored())
            .unwrap_or_default();
        let requested = new.timeout.as_requested();
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
        let fingerprint = approval.request_fingerprint(requested);
        let body = codec::encode_body(&approval);
        let reply = self
            .confirmed_write(
                self.scripts
                    .create
                    .key(keys.approval(approval.id.as_str()))
                    .key(idem.clone().unwrap_or_else(|| keys.no_idempotency()))
                    .key(&keys.pending)
                    .key(&keys.index)
                    .key(&keys.events)
                    .key(&keys.open)
                    .key(&keys.reminders)
                    .arg(approval.id.as_str())
                    .arg(&body)
                    .arg(timeout_ms)
                    .arg(ttl)
                    .arg(&cutoff)
                    .arg(self.cap_of(part))
                    .arg(if idem.is_some() { "1" } else { "0" })
                    .arg(&requester)
                    .arg(max_open)
                    .arg(&fingerprint)
                    .arg(keys.approval_prefix())
                    .arg(required)
                    .arg(&expiry_reason)
                    .arg(&reminders)
                    .arg(&trace),
                &keys.epoch,
            )
            .await?;
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
                self.appended(part, 0).await;
                Ok(Created {
                    approval,
                    created: true,
                })
            }
            Some(b"exists") => {
                let existing = codec::decode_reply(&reply)?;
                // This very id: an earlier attempt of this call landed.
                let created = existing.id == approval.id;
                // create.lua compared the fingerprint when the record has
                // one of the requested timeout (reply field 9); records of
                // older versions (none, or one of the resolved timeout) are
                // compared here, tolerant of an absent timeout.
                let compared = reply.get(9).is_some_and(|fp| !fp.is_empty());
                if !created && !compared && !existing.legacy_record_matches(&approval, requested) {
                    return Err(store::key_reused(existing));
                }
                Ok(Created {
                    approval: existing,
                    created,
                })
            }
            Some(b"conflict") => Err(store::key_reused(codec::decode_reply(&reply)?)),
            Some(b"quota") => Err(store::quota_error(&requester, max_open)),
            other => Err(DomainError::Internal(format!(
                "create.lua replied {:?}",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }

    pub(super) async fn finish(
        &self,
        id: &ApprovalId,
        ending: &Ending,
    ) -> Result<Finished, DomainError> {
        let (script, reason) = match ending {
            Ending::Decided { reason, .. } => (&self.scripts.decide, reason),
            Ending::Cancelled { reason, .. } => (&self.scripts.cancel, reason),
        };
        let Some((part, keys)) = self.partition_of(id.as_str()) else {
            return Ok(Finished::NotFound);
        };
        let reply = self
            .confirmed_write(
                script
                    .key(keys.approval(id.as_str()))
                    .key(&keys.pending)
                    .key(&keys.events)
                    .key(&keys.open)
                    .arg(id.as_str())
                    .arg(ending.status().as_str())
                    .arg(ending.by())
                    .arg(reason)
                    .arg(self.retention_ms())
                    .arg(self.cap_of(part))
                    .arg(Approval::EXPIRED_REASON),
                &keys.epoch,
            )
            .await?;
        if let Some(b"done" | b"expired" | b"recorded") = reply.first().map(Vec::as_slice) {
            // The entry holds the reason and the votes (reply field 8).
            self.appended(part, reason.len() + reply.get(8).map_or(0, Vec::len))
                .await;
        }
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

    pub(super) async fn expire(&self, id: &ApprovalId) -> Result<Option<Approval>, DomainError> {
        let Some((part, keys)) = self.partition_of(id.as_str()) else {
            return Ok(None);
        };
        let reply: Vec<Vec<u8>> = self
            .scripts
            .expire
            .key(keys.approval(id.as_str()))
            .key(&keys.pending)
            .key(&keys.events)
            .key(&keys.open)
            .arg(id.as_str())
            .arg(self.retention_ms())
            .arg(self.cap_of(part))
            .arg(Approval::EXPIRED_REASON)
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        match reply.first().map(Vec::as_slice) {
            Some(b"expired") => {
                self.appended(part, 0).await;
                Ok(Some(codec::decode_reply(&reply)?))
            }
            _ => Ok(None),
        }
    }

    /// Writes the approval's next reminder if it is due (remind.lua).
    pub(super) async fn remind(
        &self,
        id: &ApprovalId,
    ) -> Result<Option<(u32, Approval)>, DomainError> {
        let Some((part, keys)) = self.partition_of(id.as_str()) else {
            return Ok(None);
        };
        let mut reply: Vec<Vec<u8>> = self
            .scripts
            .remind
            .key(keys.approval(id.as_str()))
            .key(&keys.reminders)
            .key(&keys.events)
            .arg(id.as_str())
            .arg(self.cap_of(part))
            .invoke_async(&mut self.conn()?)
            .await
            .map_err(write_error)?;
        if reply.first().map(Vec::as_slice) != Some(b"reminded") {
            return Ok(None);
        }
        self.appended(part, 0).await;
        let n = std::str::from_utf8(&reply.remove(1))
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Some((n, codec::decode_reply(&reply)?)))
    }
}
