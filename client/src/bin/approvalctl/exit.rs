//! Exit codes (the contract with shell scripts) and error messages that say
//! what to do next.

use std::time::Duration;

use approval_client::{Error, Limit, Outcome};

/// The exit codes, as documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `request`: approved.
    Ok = 0,
    Rejected = 1,
    Expired = 2,
    Cancelled = 3,
    /// A bad flag or argument, refused here or by the server.
    Usage = 4,
    NotFound = 5,
    /// Someone else decided first (or it expired / was cancelled).
    AlreadyFinal = 6,
    /// The server is unreachable, or cannot serve now (its Redis is down).
    Unavailable = 7,
    /// Missing or refused credentials.
    Denied = 8,
    /// Anything else.
    Failure = 9,
    /// Interrupted with Ctrl-C.
    Interrupted = 130,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success; for `request`: approved
  1  rejected
  2  expired (nobody decided in time)
  3  cancelled
  4  bad flag or argument (refused here or by the server)
  5  no such approval
  6  already decided (by someone else, or expired/cancelled), already
     voted otherwise, or the context is not the --expect-digest one
  7  server unreachable or unavailable (retry)
  8  not authenticated or not allowed
  9  any other error
  130 interrupted (Ctrl-C)";

impl Exit {
    pub fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Approved => Exit::Ok,
            Outcome::Rejected => Exit::Rejected,
            Outcome::Expired => Exit::Expired,
            Outcome::Cancelled => Exit::Cancelled,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure of the command: what to print and which code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
            hint: None,
        }
    }

    pub fn report(&self) {
        eprintln!("error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let (exit, hint) = match &e {
            Error::InvalidArgument { field, .. } => (
                Exit::Usage,
                field
                    .as_deref()
                    .and_then(flag_of)
                    .map(|flag| format!("fix {flag}")),
            ),
            Error::NotFound { .. } => (
                Exit::NotFound,
                Some("check the id with `approvalctl list`; final approvals are kept for the server's retention period".into()),
            ),
            Error::AlreadyFinal { .. } => (Exit::AlreadyFinal, None),
            Error::VoteRefused { reason, id, .. } => (
                Exit::AlreadyFinal,
                Some(match reason.as_str() {
                    "CONTEXT_DIGEST_MISMATCH" => format!(
                        "the context changed from what you read: look again with `approvalctl get {id}`"
                    ),
                    _ => "a vote cannot be changed".to_string(),
                }),
            ),
            Error::IdempotencyKeyReused { .. } => (
                Exit::Usage,
                Some("use a new --idempotency-key for a different request".into()),
            ),
            Error::Unavailable { message, endpoint } => (
                Exit::Unavailable,
                Some(if message.contains("certificate") {
                    "the server's TLS certificate was not accepted: trust its CA with --ca-cert FILE \
                     (and --tls-domain NAME if the certificate names another host)"
                        .to_string()
                } else if message.starts_with("cannot reach") || message.starts_with("lost the connection") {
                    format!(
                        "is approvald running at {endpoint}? Point approvalctl at it with --server URL or APPROVAL_SERVER=URL"
                    )
                } else {
                    "the server cannot serve right now (is its Redis reachable?); retry shortly".into()
                }),
            ),
            Error::Unauthenticated { .. } => (
                Exit::Denied,
                Some("pass a token with --token or APPROVAL_TOKEN".into()),
            ),
            Error::PermissionDenied { .. } => (Exit::Denied, None),
            Error::Config(_) => (Exit::Usage, None),
            Error::LimitReached {
                limit, retry_after, ..
            } => (Exit::Failure, Some(limit_hint(limit, *retry_after))),
            _ => (Exit::Failure, None),
        };
        Failure {
            exit,
            message,
            hint,
        }
    }
}

/// What to do about a limit the server enforced, and when to retry.
fn limit_hint(limit: &Limit, retry_after: Option<Duration>) -> String {
    let when = match retry_after {
        Some(d) => format!("retry in {} ms", d.as_millis().max(1)),
        None => "retry later".to_string(),
    };
    match limit {
        Limit::RateLimited => format!("rate limited (the server's --rate-limit): {when}"),
        Limit::TooManyInvalidCredentials => format!(
            "too many invalid credentials from this address (the server's \
             --auth-failures-per-minute): check --token / APPROVAL_TOKEN, then {when}"
        ),
        Limit::OpenApprovalsQuota => "too many pending approvals (the server's \
             --max-open-per-requester): cancel some with `approvalctl cancel`, or wait \
             for decisions"
            .to_string(),
        Limit::WatcherCap {
            per_principal: true,
        } => "too many watches open for you (the server's --max-watchers-per-principal): \
              close one first"
            .to_string(),
        Limit::WatcherCap { .. } => format!(
            "the replica has all the watches it allows (its --max-watchers): {when}, \
             or use another replica"
        ),
        _ => when,
    }
}

/// The flag that sets a request field, to say what to fix.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field.split(['.', '[']).next()? {
        "approval_type" | "approval_types" => "--type",
        "context" => "--context",
        "labels" => "--label",
        "timeout" => "--timeout",
        "agent_id" => "--agent",
        "idempotency_key" => "--idempotency-key",
        "reason" => "--reason",
        "responder" => "--responder (or APPROVAL_RESPONDER)",
        "id" => "the approval ID argument",
        "statuses" => "--status",
        _ => return None,
    })
}
