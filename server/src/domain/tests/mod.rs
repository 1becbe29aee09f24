//! Unit tests of the domain, one file per part: the state machine
//! (`Approval::finish`), the access rules (`Caller::may_*`) and the
//! validated fields. Table-driven: each row is a case of the rule the test
//! is named after, and a failing row names itself.

mod access;
mod fields;
mod state_machine;

use std::time::Duration;

use super::{
    AgentId, Approval, ApprovalPolicy, ApprovalType, Context, DomainError, Labels, Limits, Millis,
    NewApproval, Principal, Timeout,
};

/// The field an `InvalidArgument` names; panics on any other error.
fn field_of(err: DomainError) -> String {
    match err {
        DomainError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// The time every test approval is created at.
const CREATED: Millis = Millis(1_700_000_000_000);

/// A pending approval of `approval_type` requested by `requester`, created
/// at `CREATED` with a 60 s timeout.
fn pending(approval_type: &str, requester: &str) -> Approval {
    let limits = Limits::default();
    let timeout = prost_types::Duration {
        seconds: 60,
        nanos: 0,
    };
    NewApproval {
        approval_type: ApprovalType::parse("approval_type", approval_type).unwrap(),
        agent_id: AgentId::default(),
        requester: Principal::parse("requester", requester).unwrap(),
        context: Context::default(),
        labels: Labels::default(),
        timeout: Timeout::parse("timeout", Some(timeout), &limits).unwrap(),
        idempotency_key: None,
        policy: ApprovalPolicy::default(),
        trace: None,
    }
    .into_approval(CREATED)
}

/// `pending`'s deadline.
fn deadline() -> Millis {
    CREATED.plus(Duration::from_secs(60))
}
