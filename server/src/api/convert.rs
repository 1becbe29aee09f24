//! Conversions between the wire (`approval.v1`) and the domain. Every
//! request field is parsed here into a domain type whose constructor names
//! the field when it refuses it.

use approval_api::{v1, CreateFields};

use crate::domain::{
    AgentId, Approval, ApprovalId, ApprovalType, Context, DomainError, Filter, IdempotencyKey,
    Labels, Limits, ListQuery, Millis, NewApproval, PageToken, Policies, Position, Principal,
    Status, Timeout, TypePattern, Verdict,
};

pub fn verdict_to_proto(d: Verdict) -> v1::Decision {
    match d {
        Verdict::Approve => v1::Decision::Approve,
        Verdict::Reject => v1::Decision::Reject,
    }
}

pub fn approval_to_proto(a: Approval) -> v1::Approval {
    let policy = a.policy.to_proto();
    let votes = a
        .votes
        .into_iter()
        .map(|v| v1::Vote {
            voter: v.voter,
            decision: verdict_to_proto(v.verdict) as i32,
            reason: v.reason,
            voted_at: Some(v.at.to_timestamp()),
        })
        .collect();
    let (decided_by, reason, decided_at) = match a.resolution {
        Some(r) => (
            r.decided_by,
            r.reason,
            Some(Millis::to_timestamp(r.decided_at)),
        ),
        None => (String::new(), String::new(), None),
    };
    v1::Approval {
        id: a.id.to_string(),
        approval_type: a.approval_type,
        agent_id: a.agent_id,
        requester: a.requester,
        context: Some(a.context),
        context_digest: a.context_digest.into_string(),
        labels: a.labels.into_iter().collect(),
        idempotency_key: a.idempotency_key,
        created_at: Some(Millis::to_timestamp(a.created_at)),
        deadline: Some(Millis::to_timestamp(a.deadline)),
        status: a.status.to_wire() as i32,
        decided_by,
        reason,
        decided_at,
        votes,
        required_approvals: a.policy.required_approvals,
        on_timeout: a.policy.on_timeout.to_proto() as i32,
        policy: Some(policy),
    }
}

fn status_from_proto(field: &str, raw: i32) -> Result<Status, DomainError> {
    Status::from_wire(raw).ok_or_else(|| {
        DomainError::invalid(
            field,
            format!("{raw} is not a status; use APPROVAL_STATUS_PENDING, _APPROVED, _REJECTED, _EXPIRED or _CANCELLED"),
        )
    })
}

pub fn verdict_from_proto(raw: i32) -> Result<Verdict, DomainError> {
    match v1::Decision::try_from(raw) {
        Ok(v1::Decision::Approve) => Ok(Verdict::Approve),
        Ok(v1::Decision::Reject) => Ok(Verdict::Reject),
        _ => Err(DomainError::invalid(
            "decision",
            "is required: DECISION_APPROVE or DECISION_REJECT",
        )),
    }
}

/// The approval a `RequestApprovalRequest` or `CreateApprovalRequest` asks
/// for. `caller` is the authenticated principal, if any; without one the
/// requester is the agent id the caller gave, or `anonymous`. The policy
/// for its type (from `policies`) is copied onto it, and its timeouts
/// replace the server's where it sets them.
pub fn new_approval_from_proto(
    request: impl Into<CreateFields>,
    caller: Option<Principal>,
    limits: &Limits,
    policies: &Policies,
) -> Result<NewApproval, DomainError> {
    let fields: CreateFields = request.into();
    let approval_type = ApprovalType::parse("approval_type", &fields.approval_type)?;
    let applied = policies.for_type(approval_type.as_str());
    let mut bounds = limits.clone();
    if let Some(max) = applied.max_timeout {
        bounds.max_timeout = max;
        bounds.default_timeout = bounds.default_timeout.min(max);
    }
    if let Some(default) = applied.default_timeout {
        bounds.default_timeout = default;
    }
    let agent_id = AgentId::parse("agent_id", &fields.agent_id)?;
    let requester = match caller {
        Some(p) => p,
        None if agent_id.as_str().is_empty() => Principal::anonymous(),
        None => Principal::parse("agent_id", agent_id.as_str())?,
    };
    Ok(NewApproval {
        approval_type,
        agent_id,
        requester,
        context: Context::parse("context", fields.context, limits)?,
        labels: Labels::parse("labels", fields.labels, limits.max_labels)?,
        timeout: Timeout::parse("timeout", fields.timeout, &bounds)?,
        idempotency_key: IdempotencyKey::parse("idempotency_key", &fields.idempotency_key)?,
        policy: applied.policy,
        trace: None,
    })
}

pub fn filter_from_proto(
    approval_types: &[String],
    agent_id: &str,
    labels: std::collections::HashMap<String, String>,
    limits: &Limits,
) -> Result<Filter, DomainError> {
    let types = approval_types
        .iter()
        .enumerate()
        .map(|(i, t)| TypePattern::parse(&format!("approval_types[{i}]"), t))
        .collect::<Result<Vec<_>, _>>()?;
    let agent_id = AgentId::parse("agent_id", agent_id)?;
    Ok(Filter {
        types,
        agent_id: (!agent_id.as_str().is_empty()).then_some(agent_id),
        labels: Labels::parse("labels", labels, limits.max_labels)?,
    })
}

pub fn list_query_from_proto(
    r: v1::ListApprovalsRequest,
    limits: &Limits,
) -> Result<ListQuery, DomainError> {
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .map(|(i, s)| status_from_proto(&format!("statuses[{i}]"), *s))
        .collect::<Result<Vec<_>, _>>()?;
    let page_size = match r.page_size {
        0 => Limits::DEFAULT_PAGE_SIZE,
        n if n < 0 => {
            return Err(DomainError::invalid(
                "page_size",
                format!(
                    "{n} is negative; omit it for the default of {}",
                    Limits::DEFAULT_PAGE_SIZE
                ),
            ))
        }
        n => (n as usize).min(Limits::MAX_PAGE_SIZE),
    };
    Ok(ListQuery {
        statuses,
        filter: filter_from_proto(&r.approval_types, &r.agent_id, r.labels, limits)?,
        page_size,
        after: PageToken::parse("page_token", &r.page_token)?,
    })
}

pub fn cursor_from_proto(raw: &str) -> Result<Option<Position>, DomainError> {
    if raw.is_empty() {
        return Ok(None);
    }
    Position::parse("cursor", raw).map(Some)
}

pub fn id_from_proto(raw: &str) -> Result<ApprovalId, DomainError> {
    ApprovalId::parse("id", raw)
}
