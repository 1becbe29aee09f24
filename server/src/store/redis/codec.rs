//! How an approval is laid out in Redis: the immutable part as one protobuf
//! `body`, the mutable part (status and resolution) as plain fields, the same
//! in the approval hash and in stream events.

use std::collections::HashMap;

use approval_api::v1;
use prost::Message;
use redis::Value;

use crate::domain::{Approval, ApprovalId, ContextDigest, DomainError, Millis, Resolution, Status};

/// The immutable fields, encoded once at creation.
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
    })
}

/// From a script reply `{ outcome, body, status, by, reason, at, created,
/// deadline }`.
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
        },
    )
}

/// From a stream entry's fields.
pub fn decode_entry(map: &HashMap<String, Value>) -> Result<Approval, DomainError> {
    let bytes = |k: &str| -> Vec<u8> {
        match map.get(k) {
            Some(Value::BulkString(b)) => b.clone(),
            Some(Value::SimpleString(s)) => s.clone().into_bytes(),
            _ => Vec::new(),
        }
    };
    let text = |k: &str| String::from_utf8_lossy(&bytes(k)).into_owned();
    decode(
        &bytes("body"),
        StateFields {
            status: text("status"),
            by: text("by"),
            reason: text("reason"),
            at: text("at"),
            created: text("created"),
            deadline: text("deadline"),
        },
    )
}
