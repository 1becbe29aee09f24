//! The one mapping from domain errors to gRPC statuses. Codes are few and
//! actionable; messages name the field or the state; details carry the same
//! facts for programs (`google.rpc.BadRequest`, `google.rpc.ErrorInfo`).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// `ErrorInfo.domain` of every error this service sets details on.
pub const ERROR_DOMAIN: &str = "approval.v1";

impl From<DomainError> for Status {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::InvalidArgument {
                field,
                message: description,
            } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, description),
            ),
            DomainError::NotFound(_) => Status::not_found(message),
            DomainError::AlreadyFinal(a) => {
                let mut meta = HashMap::from([
                    ("id".to_string(), a.id.to_string()),
                    ("status".to_string(), a.status.name().to_string()),
                ]);
                if let Some(r) = &a.resolution {
                    meta.insert("decided_by".into(), r.decided_by.clone());
                    meta.insert("reason".into(), r.reason.clone());
                    meta.insert("decided_at".into(), r.decided_at.rfc3339());
                }
                Status::with_error_details(
                    Code::FailedPrecondition,
                    message,
                    ErrorDetails::with_error_info("ALREADY_FINAL", ERROR_DOMAIN, meta),
                )
            }
            DomainError::VoteChanged {
                id,
                voter,
                previous,
                ..
            } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "ALREADY_VOTED",
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("id".to_string(), id.to_string()),
                        ("voter".to_string(), voter),
                        ("decision".to_string(), previous.name().to_string()),
                    ]),
                ),
            ),
            DomainError::ContextDigestMismatch {
                id,
                expected,
                actual,
            } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "CONTEXT_DIGEST_MISMATCH",
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("id".to_string(), id.to_string()),
                        ("context_digest".to_string(), actual),
                        ("expected_context_digest".to_string(), expected),
                    ]),
                ),
            ),
            DomainError::IdempotencyConflict { existing, .. } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(
                    "IDEMPOTENCY_KEY_REUSED",
                    ERROR_DOMAIN,
                    HashMap::from([("id".to_string(), existing.to_string())]),
                ),
            ),
            DomainError::PermissionDenied(_) => Status::permission_denied(message),
            DomainError::Unauthenticated(_) => Status::unauthenticated(message),
            DomainError::ResourceExhausted(_) => Status::resource_exhausted(message),
            DomainError::CursorExpired(_)
            | DomainError::CursorAhead { .. }
            | DomainError::HistoryChanged => Status::out_of_range(message),
            // UNAVAILABLE: every client resumes from its last cursor.
            DomainError::WatcherBehind { .. } => Status::unavailable(message),
            DomainError::WritesRefused { cause, .. } => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_error_info(
                    "STORE_REFUSES_WRITES",
                    ERROR_DOMAIN,
                    HashMap::from([("cause".to_string(), cause.to_string())]),
                ),
            ),
            DomainError::OutcomeUnknown { .. } => Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_error_info("OUTCOME_UNKNOWN", ERROR_DOMAIN, HashMap::new()),
            ),
            DomainError::Unavailable(_) | DomainError::ShuttingDown => Status::unavailable(message),
            DomainError::CallDeadline(_) => Status::deadline_exceeded(message),
            DomainError::Internal(_) => {
                tracing::error!(error = %message, "internal error");
                Status::internal(message)
            }
        }
    }
}
