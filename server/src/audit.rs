//! The audit log: one record per approval created or finished, and one per
//! call refused by the access rules. Records go to the `tracing` target
//! `TARGET`, which `--audit-log` sends to a file of its own (see `main.rs`).
//! Credential refusals, rate-limited per peer, are in `auth::refusals`.

use crate::domain::{Approval, Caller, DomainError};

/// The `tracing` target of audit records (see `--audit-log`).
pub const TARGET: &str = "approvald::audit";

/// The name the service itself acts under in the audit log (expiry).
const SYSTEM: &str = "approvald";

/// One audit record: an approval was created or became final.
pub fn record(action: &str, a: &Approval, principal: &str, caller: &Caller) {
    let method = match caller {
        Caller::Open => "none",
        Caller::Known { identity, .. } => identity.method.name(),
    };
    tracing::info!(
        target: TARGET,
        action,
        id = %a.id,
        approval_type = %a.approval_type,
        principal,
        auth = method,
        requester = %a.requester,
        status = a.status.as_str(),
        "approval {action}"
    );
}

/// The record of an approval the service expired.
pub fn expired(a: &Approval) {
    record("expired", a, SYSTEM, &Caller::Open);
}

/// The record of an approval its policy approved at the deadline
/// (`on_timeout = "approve"`): a decision, made by the policy.
pub fn auto_approved(a: &Approval) {
    record(
        "auto-approved",
        a,
        &format!("policy:{}", a.policy.name),
        &Caller::Open,
    );
}

/// The record of a reminder this replica wrote.
pub fn reminded(a: &Approval, n: u32) {
    tracing::info!(
        target: TARGET,
        action = "reminded",
        id = %a.id,
        approval_type = %a.approval_type,
        reminder = n,
        policy = %a.policy.name,
        "approval reminder {n} due"
    );
}

/// Passes `check` on, recording a refusal in the audit log.
pub fn refusal(
    caller: &Caller,
    action: &str,
    check: Result<(), DomainError>,
) -> Result<(), DomainError> {
    if let Err(e) = &check {
        tracing::info!(
            target: TARGET,
            action = "refused",
            attempted = action,
            principal = caller.principal().map_or("", |p| p.as_str()),
            reason = %e,
            "refused"
        );
    }
    check
}
