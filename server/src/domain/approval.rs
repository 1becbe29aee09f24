//! The approval record and its state machine.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lifecycle of an approval is part of the API contract: one definition
/// (names, which statuses are final, wire form) in the API crate.
pub use approval_api::Status;

use super::{
    AgentId, ApprovalId, ApprovalType, Context, ContextDigest, IdempotencyKey, Labels, Principal,
    Timeout,
};

/// Milliseconds since the Unix epoch: the one clock unit of the service and
/// of the stores (Redis scores and TTLs are in milliseconds too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(since.as_millis() as u64)
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis() as u64))
    }

    /// Time from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: Millis) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    pub fn to_timestamp(self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: (self.0 / 1000) as i64,
            nanos: ((self.0 % 1000) * 1_000_000) as i32,
        }
    }

    /// Unset or negative timestamps read as the epoch.
    pub fn from_timestamp(t: Option<prost_types::Timestamp>) -> Self {
        t.map_or(Self(0), |t| {
            Self((t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000)
        })
    }

    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.system_time()).to_string()
    }
}

/// A human's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn status(self) -> Status {
        match self {
            Decision::Approve => Status::Approved,
            Decision::Reject => Status::Rejected,
        }
    }
}

/// How a final approval ended: who, why, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The responder or canceller; empty when it expired.
    pub decided_by: String,
    pub reason: String,
    pub decided_at: Millis,
}

/// One approval as stored. Built by the stores from data they wrote, so its
/// fields are plain values; requests are validated by `NewApproval`'s fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    pub id: ApprovalId,
    pub approval_type: String,
    pub agent_id: String,
    pub requester: String,
    pub context: prost_types::Struct,
    /// `ContextDigest::of(&context)`, computed once at creation.
    pub context_digest: ContextDigest,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: String,
    pub created_at: Millis,
    pub deadline: Millis,
    pub status: Status,
    pub resolution: Option<Resolution>,
}

impl Approval {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// About what the approval takes on the wire: what queues and buffers
    /// count it as.
    pub fn wire_bytes(&self) -> usize {
        use prost::Message;
        let strings = self.id.as_str().len()
            + self.approval_type.len()
            + self.agent_id.len()
            + self.requester.len()
            + self.idempotency_key.len();
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let resolution = self
            .resolution
            .as_ref()
            .map_or(0, |r| r.decided_by.len() + r.reason.len());
        self.context.encoded_len() + strings + labels + resolution + 64
    }

    /// The reason an approval gets when its deadline passes.
    pub const EXPIRED_REASON: &'static str = "deadline passed before a decision";

    /// The state machine, for stores that run it in Rust (the Redis store runs
    /// the same rules in Lua). Applies `ending` if the approval is pending and
    /// its deadline has not passed at `now`.
    pub fn finish(&mut self, ending: &Ending, now: Millis) -> Finished {
        if self.is_final() {
            return Finished::AlreadyFinal(self.clone());
        }
        if now >= self.deadline {
            self.expire();
            return Finished::Expired(self.clone());
        }
        let (status, by, reason) = match ending {
            Ending::Decided {
                decision,
                by,
                reason,
            } => (decision.status(), by, reason),
            Ending::Cancelled { by, reason } => (Status::Cancelled, by, reason),
        };
        self.status = status;
        self.resolution = Some(Resolution {
            decided_by: by.clone(),
            reason: reason.clone(),
            decided_at: now,
        });
        Finished::Done(self.clone())
    }

    /// What an idempotency key stands for: the request that created this
    /// approval (type, agent, context, labels and timeout), as a SHA-256 hex
    /// digest. A second create with the same requester and key re-attaches
    /// only when its fingerprint is the same; otherwise the key is being
    /// reused for a different request. The encoding is deterministic
    /// (protobuf `Struct` fields and labels are sorted maps).
    pub fn request_fingerprint(&self) -> String {
        use prost::Message;
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        part(self.approval_type.as_bytes());
        part(self.agent_id.as_bytes());
        part(&self.context.encode_to_vec());
        for (k, v) in &self.labels {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        part(
            &self
                .deadline
                .0
                .saturating_sub(self.created_at.0)
                .to_be_bytes(),
        );
        hex::encode(h.finalize())
    }

    /// An upper bound of this approval's size in a response message, in
    /// bytes (what `Limits::MAX_PAGE_BYTES` counts).
    pub fn wire_size(&self) -> usize {
        use prost::Message;
        /// Field tags and lengths, timestamps, the status: generously.
        const FIXED: usize = 160;
        /// A map entry's own tags and lengths.
        const PER_LABEL: usize = 12;
        let strings = [
            &self.id.to_string(),
            &self.approval_type,
            &self.agent_id,
            &self.requester,
            &self.idempotency_key,
        ]
        .iter()
        .map(|s| s.len() + 4)
        .sum::<usize>();
        let resolution = self
            .resolution
            .as_ref()
            .map_or(0, |r| r.decided_by.len() + r.reason.len() + 8);
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + PER_LABEL)
            .sum::<usize>();
        FIXED + strings + resolution + labels + self.context.encoded_len() + 6
    }

    /// Marks a pending approval EXPIRED at its deadline.
    pub fn expire(&mut self) {
        self.status = Status::Expired;
        self.resolution = Some(Resolution {
            decided_by: String::new(),
            reason: Self::EXPIRED_REASON.to_string(),
            decided_at: self.deadline,
        });
    }
}

/// What ends a pending approval (besides its deadline).
#[derive(Clone, Debug)]
pub enum Ending {
    Decided {
        decision: Decision,
        by: String,
        reason: String,
    },
    Cancelled {
        by: String,
        reason: String,
    },
}

impl Ending {
    pub fn status(&self) -> Status {
        match self {
            Ending::Decided { decision, .. } => decision.status(),
            Ending::Cancelled { .. } => Status::Cancelled,
        }
    }

    pub fn by(&self) -> &str {
        match self {
            Ending::Decided { by, .. } | Ending::Cancelled { by, .. } => by,
        }
    }

    /// True when `approval` already ended exactly this way (same outcome, same
    /// person): a retry of the call that made it final, answered with OK.
    pub fn is_repeat_of(&self, approval: &Approval) -> bool {
        approval.status == self.status()
            && approval
                .resolution
                .as_ref()
                .is_some_and(|r| r.decided_by == self.by())
    }
}

/// What a store did with an `Ending`.
#[derive(Clone, Debug)]
pub enum Finished {
    /// This call made the approval final.
    Done(Approval),
    /// The deadline had passed: this call expired it instead (or found it
    /// expired by the same rule) and the ending was not applied.
    Expired(Approval),
    /// It was final already; nothing changed.
    AlreadyFinal(Approval),
    NotFound,
}

/// A validated request to create an approval.
#[derive(Clone, Debug)]
pub struct NewApproval {
    pub approval_type: ApprovalType,
    pub agent_id: AgentId,
    pub requester: Principal,
    pub context: Context,
    pub labels: Labels,
    pub timeout: Timeout,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl NewApproval {
    /// The record this request creates at `now`, with a fresh id.
    pub fn into_approval(self, now: Millis) -> Approval {
        self.into_approval_with_id(ApprovalId::generate_at(now), now)
    }

    /// The record this request creates at `now` under `id` (a retried
    /// write reuses its id, so it cannot create twice).
    pub fn into_approval_with_id(self, id: ApprovalId, now: Millis) -> Approval {
        let context = self.context.into_struct();
        Approval {
            id,
            approval_type: self.approval_type.into_string(),
            agent_id: self.agent_id.into_string(),
            requester: self.requester.into_string(),
            context_digest: ContextDigest::of(&context),
            context,
            labels: self.labels.into_map(),
            idempotency_key: self
                .idempotency_key
                .map(|k| k.into_string())
                .unwrap_or_default(),
            created_at: now,
            deadline: now.plus(self.timeout.get()),
            status: Status::Pending,
            resolution: None,
        }
    }
}
