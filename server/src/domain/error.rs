//! The one error type of the domain. `api::status` maps it to gRPC codes.

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

    /// A per-principal limit (rate, open approvals, watchers) is reached.
    #[error("{0}")]
    ResourceExhausted(String),

    /// A `WatchPending` cursor older than the capped event log.
    #[error("cursor {0} is older than the event log keeps: start again without a cursor to get a fresh snapshot")]
    CursorExpired(String),

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

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn already_final_message(approval: &Approval) -> String {
    let status = approval.status.name();
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
