//! The approval domain: what an approval is, how it may change, and what a
//! valid request looks like. Nothing here knows about gRPC or Redis.

mod access;
mod approval;
mod digest;
mod error;
mod event;
mod fields;
mod limits;
mod policy;
mod text;
mod trace;

pub use access::{AuthMethod, Caller, Identity, Roles};
pub use approval::{
    Approval, Ending, Finished, Millis, NewApproval, Resolution, Status, Verdict, Vote,
};
pub use digest::{struct_to_json as context_json, ContextDigest};
pub use error::{DomainError, Limit};
pub use event::{Cursor, Detail, Epoch, Event, EventKind, Frontier, Position};
pub use fields::{
    AgentId, ApprovalId, ApprovalType, Context, Filter, IdempotencyKey, Labels, ListQuery, Page,
    PageToken, Principal, Reason, Timeout, TypePattern,
};
pub use limits::Limits;
pub use policy::{
    Applied, ApprovalPolicy, OnTimeout, Policies, PolicyRule, Voter, MAX_REMINDERS,
    MAX_REQUIRED_APPROVALS, MAX_VOTERS,
};
pub use text::echo;
pub use trace::{TraceContext, MAX_TRACESTATE};

#[cfg(test)]
mod tests;
