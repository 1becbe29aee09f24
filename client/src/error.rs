//! One error type for every call, so a program can `match` on what happened
//! instead of reading gRPC codes. Built from a `tonic::Status` in one place,
//! using the details the service attaches (`google.rpc.BadRequest` for bad
//! fields, `google.rpc.ErrorInfo` for an approval that is already final).

use std::time::SystemTime;

use approval_api::v1::{ErrorMetadataKey as Key, ErrorReason};
use tonic::Code;
use tonic_types::StatusExt;

use crate::Status;

/// Everything a call can fail with.
///
/// ```no_run
/// use approval_client::{ApprovalClient, Error, Verdict};
/// # async fn run(client: ApprovalClient) {
/// match client.respond("0190c0de-...", Verdict::Approve, "ship it").await {
///     Ok(approval) => println!("approved {}", approval.id),
///     Err(Error::AlreadyFinal { status, decided_by, .. }) => {
///         println!("too late: already {status} by {decided_by:?}")
///     }
///     Err(Error::NotFound { .. }) => println!("no such approval"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service refused a field (or this client did, before sending).
    #[error("{message}")]
    InvalidArgument {
        /// The field at fault, e.g. `approval_type` or `context`.
        field: Option<String>,
        /// What is wrong with it.
        description: String,
        /// The whole message.
        message: String,
    },
    /// No approval has this id (or it aged out of the retention window).
    #[error("{message}")]
    NotFound { message: String },
    /// The approval was already final: someone else decided first (or it
    /// expired, or was cancelled). Says how it ended and who decided.
    #[error("{message}")]
    AlreadyFinal {
        /// The approval's id.
        id: String,
        /// How it ended.
        status: Status,
        /// Who decided; `None` when it expired.
        decided_by: Option<String>,
        /// The winner's reason.
        reason: String,
        /// When it ended.
        decided_at: Option<SystemTime>,
        /// The whole message.
        message: String,
    },
    /// The vote was refused and nothing changed: `reason` is
    /// `ALREADY_VOTED` (this voter voted otherwise on the pending approval:
    /// votes cannot be changed) or `CONTEXT_DIGEST_MISMATCH` (the context is
    /// not the one the expected digest names).
    #[error("{message}")]
    VoteRefused {
        /// The approval's id.
        id: String,
        /// `ALREADY_VOTED` or `CONTEXT_DIGEST_MISMATCH`.
        reason: String,
        message: String,
    },
    /// The idempotency key is already used by a different approval request.
    #[error("{message}")]
    IdempotencyKeyReused {
        /// The approval that owns the key.
        id: String,
        message: String,
    },
    /// The service could not be reached, or cannot serve now (for example
    /// its Redis is down). Retrying later may succeed.
    #[error("{message}")]
    Unavailable {
        /// The address that was tried.
        endpoint: String,
        message: String,
    },
    /// The call ran out of time.
    #[error("{message}")]
    DeadlineExceeded { message: String },
    /// A watch cursor is too old to resume from (the watch stream handles
    /// this itself by starting over).
    #[error("{message}")]
    CursorExpired { message: String },
    /// The caller's credentials were missing or not accepted.
    #[error("{message}")]
    Unauthenticated { message: String },
    /// The caller may not do this.
    #[error("{message}")]
    PermissionDenied { message: String },
    /// Too large or too many (context, labels, message size).
    #[error("{message}")]
    ResourceExhausted { message: String },
    /// The client's own settings are unusable (endpoint, TLS files).
    #[error("{0}")]
    Config(String),
    /// The service answered something this client does not understand.
    #[error("unexpected answer from approvald: {0}")]
    Protocol(String),
    /// Any other gRPC failure.
    #[error("approvald at {endpoint} failed ({:?}): {}", .status.code(), .status.message())]
    Rpc {
        endpoint: String,
        status: Box<tonic::Status>,
    },
}

impl Error {
    /// The error a failed call stands for; `endpoint` names the address in
    /// connection errors.
    pub(crate) fn from_status(status: tonic::Status, endpoint: &str) -> Self {
        let message = match std::error::Error::source(&status) {
            Some(cause) => explain(status.message(), cause),
            None => status.message().to_string(),
        };
        match status.code() {
            Code::InvalidArgument => {
                let violation = status
                    .get_details_bad_request()
                    .and_then(|b| b.field_violations.into_iter().next());
                let (field, description) = match violation {
                    Some(v) => (Some(v.field), v.description),
                    None => (None, message.clone()),
                };
                Error::InvalidArgument {
                    field,
                    description,
                    message,
                }
            }
            Code::NotFound => Error::NotFound { message },
            Code::FailedPrecondition => {
                let Some(info) = status.get_details_error_info() else {
                    return Error::rpc(status, endpoint);
                };
                let meta = info.metadata;
                let get = |k: Key| meta.get(&k.key()).cloned();
                match ErrorReason::from_reason(&info.reason) {
                    Some(ErrorReason::AlreadyFinal) => Error::AlreadyFinal {
                        id: get(Key::Id).unwrap_or_default(),
                        status: get(Key::Status)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(Status::Pending),
                        decided_by: get(Key::DecidedBy).filter(|s| !s.is_empty()),
                        reason: get(Key::Reason).unwrap_or_default(),
                        decided_at: get(Key::DecidedAt)
                            .and_then(|t| humantime::parse_rfc3339_weak(&t).ok()),
                        message,
                    },
                    Some(
                        reason @ (ErrorReason::AlreadyVoted | ErrorReason::ContextDigestMismatch),
                    ) => Error::VoteRefused {
                        id: get(Key::Id).unwrap_or_default(),
                        reason: reason.reason().to_string(),
                        message,
                    },
                    Some(ErrorReason::IdempotencyKeyReused) => Error::IdempotencyKeyReused {
                        id: get(Key::Id).unwrap_or_default(),
                        message,
                    },
                    _ => Error::rpc(status, endpoint),
                }
            }
            Code::Unavailable => Error::Unavailable {
                endpoint: endpoint.to_string(),
                message: if is_local(&status) {
                    format!("cannot reach approvald at {endpoint}: {message}")
                } else {
                    format!("approvald at {endpoint} is unavailable: {message}")
                },
            },
            Code::DeadlineExceeded => Error::DeadlineExceeded { message },
            Code::Cancelled if is_local(&status) => Error::DeadlineExceeded { message },
            Code::OutOfRange => Error::CursorExpired { message },
            Code::Unauthenticated => Error::Unauthenticated { message },
            Code::PermissionDenied => Error::PermissionDenied { message },
            Code::ResourceExhausted => Error::ResourceExhausted { message },
            Code::Unknown if is_local(&status) => Error::Unavailable {
                endpoint: endpoint.to_string(),
                message: format!("lost the connection to approvald at {endpoint}: {message}"),
            },
            _ => Error::rpc(status, endpoint),
        }
    }

    fn rpc(status: tonic::Status, endpoint: &str) -> Self {
        Error::Rpc {
            endpoint: endpoint.to_string(),
            status: Box::new(status),
        }
    }

    /// An argument refused before anything was sent.
    pub(crate) fn invalid(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        Error::InvalidArgument {
            field: Some(field.to_string()),
            message: format!("{field}: {description}"),
            description,
        }
    }
}

/// A locally made status's message with its causes ("tcp connect error:
/// Connection refused"), without repeating what the message already says.
fn explain(message: &str, cause: &(dyn std::error::Error + 'static)) -> String {
    let chain = crate::connect::source_chain(cause);
    if message.is_empty() || chain.contains(message) {
        chain
    } else if message.contains(&chain) {
        message.to_string()
    } else {
        format!("{message}: {chain}")
    }
}

/// Whether tonic made this status up on this side (connection refused or
/// reset, local timeout): those carry the transport error as their source,
/// while a status the server sent has none.
pub(crate) fn is_local(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// Whether a blocked wait should try again (same idempotency key or id)
/// rather than give the error to the caller: the connection broke, the
/// replica is shutting down, or the call's own deadline ended first.
pub(crate) fn worth_retrying(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => true,
        Code::Cancelled | Code::Unknown | Code::Internal => is_local(status),
        _ => false,
    }
}
