//! The one error type of the domain. `api::status` maps it to gRPC codes.

use std::time::Duration;

use super::{Approval, ApprovalId};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A request field is invalid; nothing was changed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },

    #[error("approval {0} not found: the id is unknown or the approval aged out of retention")]
    NotFound(ApprovalId),

    /// The approval is already final, in a way that conflicts with the request.
    #[error("{}", already_final_message(.0))]
    AlreadyFinal(Box<Approval>),

    /// The voter voted on this pending approval already, differently:
    /// votes cannot be changed. Nothing was changed.
    #[error("{voter} already voted {} on approval {id} at {}; a vote cannot be changed or cast twice (it needs {required} distinct approvals; one reject vetoes)", .previous.name(), .at.rfc3339())]
    VoteChanged {
        id: ApprovalId,
        voter: String,
        previous: super::Verdict,
        at: super::Millis,
        required: u32,
    },

    /// `Respond` named a context digest other than the approval's: the
    /// responder saw a different context. Nothing was changed.
    #[error("approval {id} has context_digest {actual}, not the expected_context_digest {expected}: the context shown to the responder is not the one being approved; reload it and decide again")]
    ContextDigestMismatch {
        id: ApprovalId,
        expected: String,
        actual: String,
    },

    /// The idempotency key was used before for a different request (another
    /// type, agent, context, labels or timeout).
    #[error("idempotency_key {key:?} already belongs to approval {existing} (type {existing_type:?}), created by a different request: its type, agent, context, labels or timeout differ. Send the identical request to re-attach, or use a new key")]
    IdempotencyConflict {
        key: String,
        existing: ApprovalId,
        existing_type: String,
    },

    /// The caller is authenticated but may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// Credentials are missing or invalid.
    #[error("{0}")]
    Unauthenticated(String),

    /// A limit is reached: each kind its own variant, so programs and
    /// metrics tell them apart without reading the message.
    #[error("{0}")]
    LimitReached(Limit),

    /// A `WatchPending` cursor older than the capped event log.
    #[error("cursor {0} is older than the event log keeps: start again without a cursor to get a fresh snapshot")]
    CursorExpired(String),

    /// The store's history changed under a watcher or a cursor (Redis was
    /// wiped or restored from a backup): what the watcher holds may be
    /// stale, so it must start over.
    #[error("the event history changed (the store was wiped or restored): start again without a cursor to get a fresh snapshot")]
    HistoryChanged,

    /// A watcher took nothing for `stalled_for` while its queue was full.
    #[error("this watcher fell behind: it read nothing for {}s while {queued_bytes} bytes waited for it; resume with the cursor of the last event received (or without one before `synced`)", .stalled_for.as_secs())]
    WatcherBehind {
        stalled_for: std::time::Duration,
        queued_bytes: usize,
    },
    /// A `WatchPending` cursor past the newest event in the log: not one
    /// this deployment handed out, or the store lost its history.
    #[error("cursor {cursor} is ahead of the event log, whose newest event is {newest}: it was not returned by this deployment, or the store was reset; start again without a cursor to get a fresh snapshot")]
    CursorAhead { cursor: String, newest: String },

    /// The store (Redis) cannot be reached. Retry.
    #[error("store unavailable: {0}; retry later")]
    Unavailable(String),

    /// The store is reachable but refuses writes (Redis out of memory, a
    /// read-only replica, loading...). Nothing was changed. Retry.
    #[error("{message}: nothing was changed; retry later")]
    WritesRefused {
        /// A short stable name, for metrics and `ErrorInfo` (`out_of_memory`...).
        cause: &'static str,
        /// What it means, for a person.
        message: String,
        /// The store's own words, for the log.
        detail: String,
    },

    /// A write was sent but no answer came back (a timeout, a connection
    /// lost): it may or may not have been applied. `advice` says how to
    /// find out safely.
    #[error("outcome unknown: {detail}. The change may or may not have been made: {advice}")]
    OutcomeUnknown { detail: String, advice: String },

    /// The server is shutting down. Retry on another replica.
    #[error("server is shutting down: retry (RequestApproval re-attaches by idempotency_key)")]
    ShuttingDown,

    /// The caller's own gRPC deadline ends before the approval is final.
    #[error("the call's deadline passed while approval {0} is still pending; call again with the same idempotency_key (or AwaitApproval) to keep waiting")]
    CallDeadline(ApprovalId),

    #[error("internal error: {0}")]
    Internal(String),
}

/// Which limit refused a call (RESOURCE_EXHAUSTED).
#[derive(Debug, thiserror::Error)]
pub enum Limit {
    /// A principal made calls faster than `--rate-limit` allows.
    #[error("rate limit: {principal} may make {per_second} calls per second; retry in {} ms", .retry_after.as_millis().max(1))]
    RateLimited {
        principal: String,
        per_second: u32,
        retry_after: Duration,
    },

    /// A peer sent too many invalid credentials lately: its calls are
    /// refused, unread, until `retry_after` has passed.
    #[error("too many calls with invalid credentials from {peer}: at most {per_minute} per minute; retry in {} ms", .retry_after.as_millis().max(1))]
    CredentialsLockout {
        peer: String,
        per_minute: u32,
        retry_after: Duration,
    },

    /// The requester already holds the most pending approvals one may hold.
    #[error("{requester} already has {max_open} pending approvals (the most one requester may hold): wait for some to be decided or cancel them")]
    OpenQuota { requester: String, max_open: usize },

    /// No more `WatchPending` streams: this replica has `max` open (when
    /// `principal` is `None`), or this principal has.
    #[error("{}", watcher_cap_message(.principal.as_deref(), *.max))]
    WatcherCap {
        principal: Option<String>,
        max: usize,
    },
}

impl From<Limit> for DomainError {
    fn from(limit: Limit) -> Self {
        Self::LimitReached(limit)
    }
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn watcher_cap_message(principal: Option<&str>, max: usize) -> String {
    match principal {
        None => format!("this replica already has {max} WatchPending streams open (--max-watchers): retry later or on another replica"),
        Some(p) => format!("{p} already has {max} WatchPending streams open on this replica: close one first"),
    }
}

fn already_final_message(approval: &Approval) -> String {
    let status = approval.status.as_str();
    match &approval.resolution {
        Some(r) if !r.decided_by.is_empty() => format!(
            "approval {} is already {status}: decided by {:?} at {} ({})",
            approval.id,
            r.decided_by,
            r.decided_at.rfc3339(),
            if r.reason.is_empty() {
                "no reason given"
            } else {
                &r.reason
            }
        ),
        Some(r) => format!(
            "approval {} is already {status} at {} ({})",
            approval.id,
            r.decided_at.rfc3339(),
            r.reason
        ),
        None => format!("approval {} is already {status}", approval.id),
    }
}
