//! RESOURCE_EXHAUSTED, for programs: which limit was reached, as the
//! `ErrorInfo.reason` (domain `approval.v1`; the proto's `ErrorReason`
//! declares `RATE_LIMITED`, `TOO_MANY_INVALID_CREDENTIALS`,
//! `OPEN_APPROVALS_QUOTA` and `WATCHER_CAP`), so a client or a metric tells
//! a rate limit from a quota from a watcher cap without reading the message.
//! The rate limit and the credentials lockout also say when to retry
//! (`google.rpc.RetryInfo`).

use std::collections::HashMap;

use approval_api::v1::{ErrorMetadataKey as Key, ErrorReason};
use approval_api::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Limit;
use crate::metrics::Metrics;

/// The reason a refusal by `limit` carries.
pub fn reason(limit: &Limit) -> ErrorReason {
    match limit {
        Limit::RateLimited { .. } => ErrorReason::RateLimited,
        Limit::CredentialsLockout { .. } => ErrorReason::TooManyInvalidCredentials,
        Limit::OpenQuota { .. } => ErrorReason::OpenApprovalsQuota,
        Limit::WatcherCap { .. } => ErrorReason::WatcherCap,
    }
}

/// The status for `limit`, with `message` (the error's own words).
pub(super) fn status(message: String, limit: &Limit) -> Status {
    let (metadata, retry_after) = match limit {
        Limit::RateLimited { retry_after, .. } | Limit::CredentialsLockout { retry_after, .. } => {
            (HashMap::new(), Some(*retry_after))
        }
        Limit::OpenQuota { .. } => (HashMap::new(), None),
        Limit::WatcherCap { principal, .. } => {
            let scope = match principal {
                Some(_) => "principal",
                None => "replica",
            };
            (HashMap::from([(Key::Scope.key(), scope.to_string())]), None)
        }
    };
    let mut details = ErrorDetails::with_error_info(reason(limit).reason(), ERROR_DOMAIN, metadata);
    if retry_after.is_some() {
        details.set_retry_info(retry_after);
    }
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// A response step (a `MapResponseLayer` in `app.rs`) that counts every
/// call a limit refused in `approvald_limit_refusals_total{limit=...}`.
/// It reads the answer, not the code paths: the limits are checked in the
/// authentication interceptor, the handlers, the use cases and the stores,
/// and all of them answer through [`status`]. Their refusals are
/// trailers-only responses, so the status is in the headers.
pub fn count_refusals<B>(
    metrics: Metrics,
) -> impl Fn(http::Response<B>) -> http::Response<B> + Clone {
    move |response| {
        let headers = response.headers();
        if headers.get("grpc-status").map(|s| s.as_bytes()) == Some(b"8") {
            let status = Status::from_header_map(headers);
            let reason = status
                .as_ref()
                .and_then(|s| s.get_details_error_info())
                .filter(|info| info.domain == ERROR_DOMAIN)
                .and_then(|info| ErrorReason::from_reason(&info.reason));
            if let Some(reason) = reason {
                metrics.limit_refused(reason);
            }
        }
        response
    }
}
