//! Tool errors: every failure becomes a message that tells the model what
//! went wrong and what to do about it (fix an argument, tell the user, try
//! later), returned as a tool result with `isError` rather than a protocol
//! error, so the model sees it.

use std::fmt;
use std::time::Duration;

use approval_client::Error;

#[derive(Debug)]
pub struct ToolError(String);

impl ToolError {
    /// The tool's input does not parse: `path` names the field.
    pub fn input(path: &str, problem: impl fmt::Display) -> Self {
        let problem = problem.to_string();
        ToolError(if path.is_empty() || path == "." {
            format!("invalid input: {problem}. Fix the arguments and call the tool again.")
        } else {
            format!(
                "invalid input: `{path}`: {problem}. Fix this argument and call the tool again."
            )
        })
    }

    /// An argument this side refuses before calling approvald.
    pub fn field(field: &str, problem: impl fmt::Display) -> Self {
        ToolError(format!(
            "invalid input: `{field}`: {problem}. Fix this argument and call the tool again."
        ))
    }

    /// approvald took longer than `limit` to answer one call.
    pub fn silent(endpoint: &str, limit: Duration) -> Self {
        ToolError(format!(
            "approvald at {endpoint} did not answer within {}s. The approval service is not \
             working right now: do not perform the gated action; tell the user.",
            limit.as_secs()
        ))
    }

    /// The host cancelled the call.
    pub fn cancelled() -> Self {
        ToolError("the call was cancelled before a decision arrived".into())
    }

    /// Adds what the model needs to resume (the approval's id).
    pub fn about(self, id: &str) -> Self {
        ToolError(format!(
            "{} The approval {id} itself is kept: call await_approval with this id later.",
            self.0
        ))
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        ToolError(match e {
            Error::InvalidArgument {
                field: Some(field),
                description,
                ..
            } => format!(
                "invalid input: `{}`: {description}. Fix this argument and call the tool again.",
                input_name(&field)
            ),
            Error::InvalidArgument { message, .. } => {
                format!("invalid input: {message}. Fix the arguments and call the tool again.")
            }
            Error::NotFound { message } => format!(
                "not found: {message}. Check the id (it comes from request_approval); ended \
                 approvals are kept only for a while."
            ),
            Error::AlreadyFinal {
                id,
                status,
                decided_by,
                reason,
                ..
            } => format!(
                "approval {id} is already {status}{}{}; nothing was changed.",
                decided_by.map(|by| format!(" by {by}")).unwrap_or_default(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            ),
            Error::IdempotencyKeyReused { id, .. } => format!(
                "invalid input: `idempotency_key` was already used for a different request \
                 (approval {id}). Use a new key, or leave it out."
            ),
            Error::PermissionDenied { message } => format!(
                "not allowed: {message}. The credentials this MCP server uses may not do this \
                 (a requester may read and cancel only its own approvals); do not retry, tell \
                 the user."
            ),
            Error::Unauthenticated { message } => format!(
                "approvald refused the credentials: {message}. The MCP server needs a valid \
                 token (APPROVAL_TOKEN or --token in its configuration); tell the user."
            ),
            Error::Unavailable { message, .. } => format!(
                "{message}. The approval service is unreachable: do not perform the gated \
                 action; tell the user, or try again in a minute."
            ),
            Error::DeadlineExceeded { message } => format!(
                "approvald did not answer in time: {message}. Do not perform the gated action; \
                 try again in a minute."
            ),
            Error::LimitReached { message, .. } | Error::ResourceExhausted { message } => format!(
                "approvald refused for now: {message}. A limit was reached: wait a little, or \
                 cancel approvals you no longer need, then try again."
            ),
            other => format!("approvald failed: {other}. Do not perform the gated action."),
        })
    }
}

/// The tool input that carries a field approvald named.
fn input_name(field: &str) -> &str {
    match field {
        "timeout" => "timeout_seconds",
        other => other,
    }
}
