//! How an approval is laid out in Redis: the immutable part as one protobuf
//! `body`, the mutable part (status and resolution) as plain fields, the same
//! in the approval hash and in stream events (which leave the body out: it
//! stays in the hash, read only by whoever needs it). Decoding what Redis returns
//! (hashes, script replies, stream entries, epochs, cursors) is here too.

use std::collections::HashMap;
use std::time::Duration;

use approval_api::v1;
use prost::Message;
use redis::streams::StreamId;
use redis::Value;

use crate::domain::{
    Approval, ApprovalId, ApprovalPolicy, ContextDigest, Cursor, Detail, DomainError, Epoch, Event,
    EventKind, Frontier, Millis, Resolution, Status, Verdict, Vote,
};

/// One vote as decide.lua stores it (a JSON array in the `votes` field).
#[derive(serde::Deserialize)]
struct StoredVote {
    voter: String,
    /// `approve` or `reject` (`Verdict::name`).
    decision: String,
    #[serde(default)]
    reason: String,
    at: f64,
}

/// The votes of an approval from its `votes` field (empty: none).
fn decode_votes(raw: &str) -> Result<Vec<Vote>, DomainError> {
    if raw.is_empty() || raw == "{}" {
        return Ok(Vec::new());
    }
    let stored: Vec<StoredVote> = serde_json::from_str(raw)
        .map_err(|e| DomainError::Internal(format!("undecodable votes in Redis: {e}")))?;
    stored
        .into_iter()
        .map(|v| {
            Ok(Vote {
                verdict: Verdict::from_name(&v.decision).ok_or_else(|| {
                    DomainError::Internal(format!("unknown decision {:?} in Redis", v.decision))
                })?,
                voter: v.voter,
                reason: v.reason,
                at: Millis(v.at as u64),
            })
        })
        .collect()
}

/// The immutable fields, encoded once at creation (the copied policy
/// included).
pub fn encode_body(a: &Approval) -> Vec<u8> {
    v1::Approval {
        id: a.id.to_string(),
        approval_type: a.approval_type.clone(),
        agent_id: a.agent_id.clone(),
        requester: a.requester.clone(),
        context: Some(a.context.clone()),
        context_digest: a.context_digest.to_string(),
        labels: a.labels.clone().into_iter().collect(),
        idempotency_key: a.idempotency_key.clone(),
        created_at: Some(Millis::to_timestamp(a.created_at)),
        deadline: Some(Millis::to_timestamp(a.deadline)),
        required_approvals: a.policy.required_approvals,
        on_timeout: a.policy.on_timeout.to_proto() as i32,
        policy: Some(a.policy.to_proto()),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The fields stored beside the body: status, by/reason/at once final, and
/// the times by Redis's clock (`created`, `deadline`: they override the
/// body's, which are the creating replica's estimate; records written
/// before they existed have none).
#[derive(Default)]
pub struct StateFields {
    pub status: String,
    pub by: String,
    pub reason: String,
    pub at: String,
    pub created: String,
    pub deadline: String,
    /// JSON array of votes (empty: none).
    pub votes: String,
}

pub fn decode(body: &[u8], state: StateFields) -> Result<Approval, DomainError> {
    let p = v1::Approval::decode(body)
        .map_err(|e| DomainError::Internal(format!("undecodable approval body in Redis: {e}")))?;
    let status = Status::from_name(&state.status).ok_or_else(|| {
        DomainError::Internal(format!("unknown status {:?} in Redis", state.status))
    })?;
    let resolution = status.is_final().then(|| Resolution {
        decided_by: state.by,
        reason: state.reason,
        decided_at: Millis(state.at.parse().unwrap_or_default()),
    });
    let context = p.context.unwrap_or_default();
    let votes = decode_votes(&state.votes)?;
    let policy = ApprovalPolicy::from_stored_proto(p.policy, p.required_approvals, p.on_timeout);
    Ok(Approval {
        id: ApprovalId::trusted(p.id),
        approval_type: p.approval_type,
        agent_id: p.agent_id,
        requester: p.requester,
        // Records written before digests existed get theirs computed here.
        context_digest: if p.context_digest.is_empty() {
            ContextDigest::of(&context)
        } else {
            ContextDigest::trusted(p.context_digest)
        },
        context,
        labels: p.labels.into_iter().collect(),
        idempotency_key: p.idempotency_key,
        created_at: state
            .created
            .parse()
            .map_or_else(|_| Millis::from_timestamp(p.created_at), Millis),
        deadline: state
            .deadline
            .parse()
            .map_or_else(|_| Millis::from_timestamp(p.deadline), Millis),
        status,
        resolution,
        policy,
        votes,
    })
}

/// From a script reply `{ outcome, body, status, by, reason, at, created,
/// deadline, votes }`.
pub fn decode_reply(reply: &[Vec<u8>]) -> Result<Approval, DomainError> {
    let text = |i: usize| String::from_utf8_lossy(reply.get(i).map_or(&[][..], |v| v)).into_owned();
    let body = reply
        .get(1)
        .ok_or_else(|| DomainError::Internal("short script reply".into()))?;
    decode(
        body,
        StateFields {
            status: text(2),
            by: text(3),
            reason: text(4),
            at: text(5),
            created: text(6),
            deadline: text(7),
            votes: text(8),
        },
    )
}

/// From a stream entry's fields: the approval as far as the entry tells
/// (`Summary`: its id, status, times, decision and votes; for `added`, the
/// reminder offsets), or all of it from an entry written before entries
/// were made small (it carries the `body`).
pub fn decode_entry(map: &HashMap<String, Value>) -> Result<(Approval, Detail), DomainError> {
    let bytes = |k: &str| -> &[u8] {
        match map.get(k) {
            Some(Value::BulkString(b)) => b.as_slice(),
            Some(Value::SimpleString(s)) => s.as_bytes(),
            _ => &[],
        }
    };
    let text = |k: &str| String::from_utf8_lossy(bytes(k)).into_owned();
    let state = StateFields {
        status: text("status"),
        by: text("by"),
        reason: text("reason"),
        at: text("at"),
        created: text("created"),
        deadline: text("deadline"),
        votes: text("votes"),
    };
    let body = bytes("body");
    if !body.is_empty() {
        return Ok((decode(body, state)?, Detail::Full));
    }
    let mut approval = decode(&[], state)?;
    approval.id = ApprovalId::trusted(text("id"));
    approval.policy.remind_after = text("remind")
        .split(',')
        .filter_map(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .collect();
    Ok((approval, Detail::Summary))
}

/// Fills in the immutable part of a `Summary` approval from its record's
/// `body` (the entry's status, times, decision and votes stay: they are
/// the approval as it was right after the event).
pub fn complete(summary: &mut Approval, body: &[u8]) -> Result<(), DomainError> {
    let p = v1::Approval::decode(body)
        .map_err(|e| DomainError::Internal(format!("undecodable approval body in Redis: {e}")))?;
    let context = p.context.unwrap_or_default();
    summary.context_digest = if p.context_digest.is_empty() {
        ContextDigest::of(&context)
    } else {
        ContextDigest::trusted(p.context_digest)
    };
    summary.context = context;
    summary.approval_type = p.approval_type;
    summary.agent_id = p.agent_id;
    summary.requester = p.requester;
    summary.labels = p.labels.into_iter().collect();
    summary.idempotency_key = p.idempotency_key;
    summary.policy =
        ApprovalPolicy::from_stored_proto(p.policy, p.required_approvals, p.on_timeout);
    Ok(())
}

/// An approval hash's fields, as `HASH_FIELDS` reads them.
pub type HashFields = (
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The fields of an approval hash, in the order of `HashFields`.
pub const HASH_FIELDS: [&str; 8] = [
    "body", "status", "by", "reason", "at", "created", "deadline", "votes",
];

/// An approval from its hash (`None`: no such hash).
pub fn from_hash(fields: HashFields) -> Result<Option<Approval>, DomainError> {
    let (Some(body), Some(status), by, reason, at, created, deadline, votes) = fields else {
        return Ok(None);
    };
    decode(
        &body,
        StateFields {
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

/// The approval hash's field holding the trace context of the call that
/// created it (`TraceContext::to_stored`; absent when it had none). Not in
/// `HASH_FIELDS`: read only while traces are exported.
pub const TRACE_FIELD: &str = "trace";

/// An epoch as the store writes it (hex).
pub fn parse_epoch(raw: &str) -> Result<Epoch, DomainError> {
    u64::from_str_radix(raw, 16)
        .map(Epoch)
        .map_err(|_| DomainError::Internal(format!("unexpected epoch {raw:?}")))
}

/// A cursor from a stream entry id.
pub fn parse_cursor(id: &str) -> Result<Cursor, DomainError> {
    id.parse()
        .map_err(|_| DomainError::Internal(format!("unexpected stream id {id:?}")))
}
/// Events from the entries of partition `part`'s log (of `partitions`).
pub fn events(
    entries: Vec<StreamId>,
    part: usize,
    partitions: usize,
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
            let (approval, detail) = decode_entry(&entry.map)?;
            let cursor = parse_cursor(&entry.id)?;
            let mut resume = Frontier::start(partitions);
            resume.advance(part, cursor);
            Ok(Event {
                cursor,
                partition: part,
                resume,
                kind,
                approval,
                detail,
            })
        })
        .collect()
}
