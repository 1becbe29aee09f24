//! The one mapping from domain errors to gRPC statuses. Codes are few and
//! actionable; messages name the field or the state; details carry the same
//! facts for programs (`google.rpc.BadRequest`, `google.rpc.ErrorInfo` with
//! the reasons and metadata keys the proto declares).

use std::collections::HashMap;

use approval_api::v1::{ErrorMetadataKey as Key, ErrorReason};
use approval_api::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

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
                    (Key::Id.key(), a.id.to_string()),
                    (Key::Status.key(), a.status.as_str().to_string()),
                ]);
                if let Some(r) = &a.resolution {
                    meta.insert(Key::DecidedBy.key(), r.decided_by.clone());
                    meta.insert(Key::Reason.key(), r.reason.clone());
                    meta.insert(Key::DecidedAt.key(), r.decided_at.rfc3339());
                }
                error_info(
                    Code::FailedPrecondition,
                    message,
                    ErrorReason::AlreadyFinal,
                    meta,
                )
            }
            DomainError::VoteChanged {
                id,
                voter,
                previous,
                ..
            } => error_info(
                Code::FailedPrecondition,
                message,
                ErrorReason::AlreadyVoted,
                HashMap::from([
                    (Key::Id.key(), id.to_string()),
                    (Key::Voter.key(), voter),
                    (Key::Decision.key(), previous.name().to_string()),
                ]),
            ),
            DomainError::ContextDigestMismatch {
                id,
                expected,
                actual,
            } => error_info(
                Code::FailedPrecondition,
                message,
                ErrorReason::ContextDigestMismatch,
                HashMap::from([
                    (Key::Id.key(), id.to_string()),
                    (Key::ContextDigest.key(), actual),
                    (Key::ExpectedContextDigest.key(), expected),
                ]),
            ),
            DomainError::IdempotencyConflict { existing, .. } => error_info(
                Code::FailedPrecondition,
                message,
                ErrorReason::IdempotencyKeyReused,
                HashMap::from([(Key::Id.key(), existing.to_string())]),
            ),
            DomainError::PermissionDenied(_) => Status::permission_denied(message),
            DomainError::Unauthenticated(_) => Status::unauthenticated(message),
            DomainError::LimitReached(limit) => super::exhausted::status(message, &limit),
            DomainError::CursorExpired(_)
            | DomainError::CursorAhead { .. }
            | DomainError::HistoryChanged => Status::out_of_range(message),
            // UNAVAILABLE: every client resumes from its last cursor.
            DomainError::WatcherBehind { .. } => Status::unavailable(message),
            DomainError::WritesRefused { cause, .. } => error_info(
                Code::Unavailable,
                message,
                ErrorReason::StoreRefusesWrites,
                HashMap::from([(Key::Cause.key(), cause.to_string())]),
            ),
            DomainError::OutcomeUnknown { .. } => error_info(
                Code::Unavailable,
                message,
                ErrorReason::OutcomeUnknown,
                HashMap::new(),
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

/// A status with a `google.rpc.ErrorInfo` detail in this API's domain.
fn error_info(
    code: Code,
    message: String,
    reason: ErrorReason,
    metadata: HashMap<String, String>,
) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.reason(), ERROR_DOMAIN, metadata),
    )
}
