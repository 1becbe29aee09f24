//! RESOURCE_EXHAUSTED, for programs: which limit was reached, as the
//! `ErrorInfo.reason` (domain `approval.v1`), so a client or a metric tells
//! a rate limit from a quota from a watcher cap without reading the message.
//! These reasons (and the `scope` key) are spelled here only, until the
//! proto's `ErrorReason` / `ErrorMetadataKey` declare them; the rate limit
//! and the credentials lockout also say when to retry
//! (`google.rpc.RetryInfo`).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Limit;
use approval_api::ERROR_DOMAIN;

/// The principal made calls faster than `--rate-limit` allows.
pub const RATE_LIMITED: &str = "RATE_LIMITED";
/// The peer sent too many invalid credentials lately
/// (`--auth-failures-per-minute`).
pub const TOO_MANY_INVALID_CREDENTIALS: &str = "TOO_MANY_INVALID_CREDENTIALS";
/// The requester holds the most pending approvals one may hold
/// (`--max-open-per-requester`).
pub const OPEN_APPROVALS_QUOTA: &str = "OPEN_APPROVALS_QUOTA";
/// No more `WatchPending` streams on this replica; metadata `scope` says
/// whose cap: `replica` (`--max-watchers`) or `principal`
/// (`--max-watchers-per-principal`).
pub const WATCHER_CAP: &str = "WATCHER_CAP";

/// The status for `limit`, with `message` (the error's own words).
pub(super) fn status(message: String, limit: &Limit) -> Status {
    let (reason, metadata, retry_after) = match limit {
        Limit::RateLimited { retry_after, .. } => {
            (RATE_LIMITED, HashMap::new(), Some(*retry_after))
        }
        Limit::CredentialsLockout { retry_after, .. } => (
            TOO_MANY_INVALID_CREDENTIALS,
            HashMap::new(),
            Some(*retry_after),
        ),
        Limit::OpenQuota { .. } => (OPEN_APPROVALS_QUOTA, HashMap::new(), None),
        Limit::WatcherCap { principal, .. } => {
            let scope = match principal {
                Some(_) => "principal",
                None => "replica",
            };
            (
                WATCHER_CAP,
                HashMap::from([("scope".to_string(), scope.to_string())]),
                None,
            )
        }
    };
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if retry_after.is_some() {
        details.set_retry_info(retry_after);
    }
    Status::with_error_details(Code::ResourceExhausted, message, details)
}
