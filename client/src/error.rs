//! One error type for every call, so a program can `match` on what happened
//! instead of reading gRPC codes. Built from a `tonic::Status` in one place,
//! using the details the service attaches (`google.rpc.BadRequest` for bad
//! fields, `google.rpc.ErrorInfo` for an approval that is already final).

use std::time::{Duration, SystemTime};

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
    /// A limit of the service refused the call, and nothing changed:
    /// `limit` names which, `retry_after` (when the service sent one) says
    /// when trying again can succeed.
    #[error("{message}")]
    LimitReached {
        /// Which limit.
        limit: Limit,
        /// When to retry (`google.rpc.RetryInfo`), for the rate limit and
        /// the invalid-credentials lockout.
        retry_after: Option<Duration>,
        /// The whole message.
        message: String,
    },
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
            Code::ResourceExhausted => limit_reached(&status, message),
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

/// Which limit of the service refused a call (`Error::LimitReached`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The caller made calls faster than the server's `--rate-limit`.
    RateLimited,
    /// This address sent too many invalid credentials lately
    /// (`--auth-failures-per-minute`).
    TooManyInvalidCredentials,
    /// The requester holds the most pending approvals one may hold
    /// (`--max-open-per-requester`).
    OpenApprovalsQuota,
    /// No more `WatchPending` streams: `per_principal` when the caller's
    /// own cap (`--max-watchers-per-principal`: close one of its watches),
    /// else the replica's (`--max-watchers`: retry later or elsewhere).
    WatcherCap { per_principal: bool },
}

/// RESOURCE_EXHAUSTED: the limit its `ErrorInfo` names, or a size limit
/// (`ResourceExhausted`) when it names none this client knows.
fn limit_reached(status: &tonic::Status, message: String) -> Error {
    let info = status.get_details_error_info();
    let limit = info.as_ref().and_then(|info| {
        Some(match ErrorReason::from_reason(&info.reason)? {
            ErrorReason::RateLimited => Limit::RateLimited,
            ErrorReason::TooManyInvalidCredentials => Limit::TooManyInvalidCredentials,
            ErrorReason::OpenApprovalsQuota => Limit::OpenApprovalsQuota,
            ErrorReason::WatcherCap => Limit::WatcherCap {
                per_principal: info.metadata.get(&Key::Scope.key()).map(String::as_str)
                    == Some("principal"),
            },
            _ => return None,
        })
    });
    match limit {
        Some(limit) => Error::LimitReached {
            limit,
            retry_after: status.get_details_retry_info().and_then(|r| r.retry_delay),
            message,
        },
        None => Error::ResourceExhausted { message },
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use approval_api::ERROR_DOMAIN;
    use tonic_types::ErrorDetails;

    use super::*;

    fn exhausted(reason: &str, metadata: &[(&str, &str)], retry: Option<Duration>) -> Error {
        let metadata: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
        if retry.is_some() {
            details.set_retry_info(retry);
        }
        let status = tonic::Status::with_error_details(Code::ResourceExhausted, "no", details);
        Error::from_status(status, "http://127.0.0.1:1")
    }

    #[test]
    fn each_limit_reason_is_a_limit_reached_naming_the_limit_and_its_retry_delay() {
        let second = Some(Duration::from_secs(1));
        let table = [
            ("RATE_LIMITED", vec![], second, Limit::RateLimited),
            (
                "TOO_MANY_INVALID_CREDENTIALS",
                vec![],
                second,
                Limit::TooManyInvalidCredentials,
            ),
            (
                "OPEN_APPROVALS_QUOTA",
                vec![],
                None,
                Limit::OpenApprovalsQuota,
            ),
            (
                "WATCHER_CAP",
                vec![("scope", "replica")],
                None,
                Limit::WatcherCap {
                    per_principal: false,
                },
            ),
            (
                "WATCHER_CAP",
                vec![("scope", "principal")],
                None,
                Limit::WatcherCap {
                    per_principal: true,
                },
            ),
        ];
        for (reason, metadata, retry, want) in table {
            match exhausted(reason, &metadata, retry) {
                Error::LimitReached {
                    limit, retry_after, ..
                } => {
                    assert_eq!(limit, want, "{reason}");
                    assert_eq!(retry_after, retry, "{reason}");
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_size_limit_without_a_known_reason_stays_resource_exhausted() {
        assert!(matches!(
            exhausted("SOMETHING_NEW", &[], None),
            Error::ResourceExhausted { .. }
        ));
    }
}
