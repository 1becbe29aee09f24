//! The typed view of an approval: what the wire's `v1::Approval` means, with
//! times as `SystemTime`, the context as JSON and the status as an enum
//! ([`Status`], defined with the API in `approval-api`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::{json, v1, Error, Status};

/// One request for a human decision, final or not.
///
/// Serializes to JSON with RFC 3339 times and lowercase statuses (this is what
/// `approvalctl --output json` prints).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    /// UUIDv7, assigned by the service.
    pub id: String,
    /// What kind of action it gates, e.g. `deploy:production`.
    pub approval_type: String,
    /// The agent or workflow that asked.
    pub agent_id: String,
    /// The principal that created it.
    pub requester: String,
    /// What the human is shown: always a JSON object.
    pub context: Value,
    /// `sha256:` + hex of the RFC 8785 canonical JSON of `context`, computed
    /// by the service.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub context_digest: String,
    /// Labels for filtering.
    pub labels: BTreeMap<String, String>,
    /// The requester's idempotency key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub idempotency_key: String,
    /// When it was created.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
    /// When it expires if still pending.
    #[serde(serialize_with = "rfc3339")]
    pub deadline: SystemTime,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// Who made it final (the responder or the canceller); `None` while
    /// pending and when it expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why it ended (empty while pending).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it became final.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt"
    )]
    pub decided_at: Option<SystemTime>,
    /// Every vote so far, in the order cast.
    pub votes: Vec<Vote>,
    /// Distinct approvals it needs (its policy's; 1 by default).
    pub required_approvals: u32,
    /// What its deadline means for the gate.
    pub on_timeout: OnTimeout,
    /// The policy it was created under: its matching pattern
    /// (`deploy:*`), empty when no policy matched its type.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy: String,
}

/// One voter's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vote {
    /// The authenticated principal (without authentication: the
    /// self-declared responder name).
    pub voter: String,
    /// `approve` or `reject` (the wire's name for the field: `decision`).
    pub decision: Verdict,
    pub reason: String,
    #[serde(serialize_with = "rfc3339")]
    pub voted_at: SystemTime,
}

/// A human's answer: what [`ApprovalClient::respond`] sends and what a
/// [`Vote`] holds. Not to be confused with a [`Decision`], how an approval
/// ended. (The wire calls this answer `decision`: the proto enum
/// `v1::Decision`.)
///
/// [`ApprovalClient::respond`]: crate::ApprovalClient::respond
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead.
    Approve,
    /// Do not.
    Reject,
}

/// The former name of [`Verdict`] (a vote's answer).
#[deprecated(note = "renamed to Verdict: one name for approve/reject")]
pub type VoteDecision = Verdict;

impl Verdict {
    /// As the wire carries it.
    pub(crate) fn to_proto(self) -> v1::Decision {
        match self {
            Verdict::Approve => v1::Decision::Approve,
            Verdict::Reject => v1::Decision::Reject,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        })
    }
}

/// What the gate does when the deadline passes before a decision (the
/// status is `Expired` either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The gate does not proceed (the default).
    #[default]
    Reject,
    /// "Proceed unless someone objects": the gate proceeds.
    Approve,
}

impl fmt::Display for OnTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnTimeout::Reject => "reject",
            OnTimeout::Approve => "approve",
        })
    }
}

impl Approval {
    /// True unless it is still pending.
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let approval = client.get("0190c0de-0000-7000-8000-000000000000").await?;
    /// if !approval.is_final() {
    ///     println!("still waiting for a human");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// Whether the gate proceeds: approved by its voters, or expired under a
    /// policy whose `on_timeout` is `approve`.
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let approval = client.get("0190c0de-0000-7000-8000-000000000000").await?;
    /// println!("{} of {} approvals", approval.votes.len(), approval.required_approvals);
    /// if approval.gate_proceeds() {
    ///     println!("go ahead");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gate_proceeds(&self) -> bool {
        match self.status {
            Status::Approved => true,
            Status::Expired => self.on_timeout == OnTimeout::Approve,
            _ => false,
        }
    }

    /// How long until its deadline (zero once passed), by this machine's clock.
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let approval = client.get("0190c0de-0000-7000-8000-000000000000").await?;
    /// println!("expires in {:?}", approval.time_left());
    /// # Ok(()) }
    /// ```
    pub fn time_left(&self) -> std::time::Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }
}

impl TryFrom<v1::Approval> for Approval {
    type Error = Error;

    fn try_from(a: v1::Approval) -> Result<Self, Error> {
        let status = Status::from_wire(a.status).ok_or_else(|| {
            Error::Protocol(format!("approval {} has unknown status {}", a.id, a.status))
        })?;
        let created_at = time(a.created_at, "created_at", &a.id)?;
        let deadline = time(a.deadline, "deadline", &a.id)?;
        let decided_at = match a.decided_at {
            Some(t) => Some(time(Some(t), "decided_at", &a.id)?),
            None => None,
        };
        let votes = a
            .votes
            .into_iter()
            .map(|v| {
                let decision = match v1::Decision::try_from(v.decision) {
                    Ok(v1::Decision::Approve) => Verdict::Approve,
                    Ok(v1::Decision::Reject) => Verdict::Reject,
                    _ => {
                        return Err(Error::Protocol(format!(
                            "approval {} has a vote with unknown decision {}",
                            a.id, v.decision
                        )))
                    }
                };
                Ok(Vote {
                    voted_at: time(v.voted_at, "voted_at", &a.id)?,
                    voter: v.voter,
                    decision,
                    reason: v.reason,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let on_timeout = match v1::OnTimeout::try_from(a.on_timeout) {
            Ok(v1::OnTimeout::Approve) => OnTimeout::Approve,
            _ => OnTimeout::Reject,
        };
        Ok(Approval {
            votes,
            required_approvals: a.required_approvals.max(1),
            on_timeout,
            policy: a.policy.map(|p| p.name).unwrap_or_default(),
            context: json::from_struct(a.context),
            context_digest: a.context_digest,
            labels: a.labels.into_iter().collect(),
            decided_by: Some(a.decided_by).filter(|s| !s.is_empty()),
            id: a.id,
            approval_type: a.approval_type,
            agent_id: a.agent_id,
            requester: a.requester,
            idempotency_key: a.idempotency_key,
            created_at,
            deadline,
            status,
            reason: a.reason,
            decided_at,
        })
    }
}

/// The approval in a response, typed; an error if the server left it out.
pub(crate) fn required(a: Option<v1::Approval>) -> Result<Approval, Error> {
    a.ok_or_else(|| Error::Protocol("the response carries no approval".into()))?
        .try_into()
}

fn time(t: Option<prost_types::Timestamp>, field: &str, id: &str) -> Result<SystemTime, Error> {
    let t = t.ok_or_else(|| Error::Protocol(format!("approval {id} has no {field}")))?;
    SystemTime::try_from(t)
        .map_err(|e| Error::Protocol(format!("approval {id} has a bad {field}: {e}")))
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

pub(crate) fn rfc3339_opt<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// How a final approval ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A human approved: go ahead.
    Approved,
    /// A human rejected.
    Rejected,
    /// Nobody decided before the deadline (whether the gate proceeds
    /// follows the approval's `on_timeout`: [`Decision::is_approved`]).
    Expired,
    /// The requester withdrew it.
    Cancelled,
}

impl Outcome {
    fn of(status: Status) -> Option<Self> {
        Some(match status {
            Status::Pending => return None,
            Status::Approved => Outcome::Approved,
            Status::Rejected => Outcome::Rejected,
            Status::Expired => Outcome::Expired,
            Status::Cancelled => Outcome::Cancelled,
        })
    }

    /// The final status this outcome is.
    pub fn status(self) -> Status {
        match self {
            Outcome::Approved => Status::Approved,
            Outcome::Rejected => Status::Rejected,
            Outcome::Expired => Status::Expired,
            Outcome::Cancelled => Status::Cancelled,
        }
    }
}

/// As the status's name (`approved`).
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().as_str())
    }
}

/// The end of an approval: how, who, why and when (what
/// `request_approval` and `await_decision` return; a human's approve or
/// reject is a [`Verdict`]). Go ahead only when [`Decision::is_approved`]
/// says so.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    /// How it ended.
    pub outcome: Outcome,
    /// Who decided (or cancelled); `None` when it expired.
    pub decided_by: Option<String>,
    /// The responder's or canceller's reason, or why it expired.
    pub reason: String,
    /// When it became final.
    #[serde(serialize_with = "rfc3339")]
    pub decided_at: SystemTime,
    /// The whole approval.
    pub approval: Approval,
}

impl Decision {
    /// True when the gate proceeds: its voters approved, or it expired
    /// under a policy whose `on_timeout` is `approve`.
    ///
    /// ```no_run
    /// use approval_client::ApprovalRequest;
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let decision = client.request_approval(ApprovalRequest::new("deploy")).await?;
    /// if !decision.is_approved() {
    ///     return Ok(()); // rejected, expired or cancelled: do nothing
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_approved(&self) -> bool {
        self.approval.gate_proceeds()
    }
}

impl TryFrom<Approval> for Decision {
    type Error = Error;

    /// The decision of a final approval; an error for a pending one.
    fn try_from(approval: Approval) -> Result<Self, Error> {
        let outcome = Outcome::of(approval.status).ok_or_else(|| {
            Error::Protocol(format!(
                "approval {} is still pending where a final one was expected",
                approval.id
            ))
        })?;
        Ok(Decision {
            outcome,
            decided_by: approval.decided_by.clone(),
            reason: approval.reason.clone(),
            decided_at: approval.decided_at.unwrap_or(approval.deadline),
            approval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_final_status_is_one_outcome_of_the_same_name() {
        for status in Status::ALL {
            match Outcome::of(status) {
                None => assert!(!status.is_final()),
                Some(outcome) => {
                    assert_eq!(outcome.status(), status);
                    assert_eq!(outcome.to_string(), status.as_str());
                    assert_eq!(serde_json::to_value(outcome).unwrap(), status.as_str());
                }
            }
        }
    }

    #[test]
    fn only_a_final_approval_is_a_decision() {
        let now = SystemTime::now();
        let mut a = Approval {
            id: "a".into(),
            approval_type: "deploy".into(),
            agent_id: String::new(),
            requester: "anonymous".into(),
            context: Value::Null,
            context_digest: String::new(),
            labels: BTreeMap::new(),
            idempotency_key: String::new(),
            created_at: now,
            deadline: now,
            status: Status::Pending,
            decided_by: None,
            reason: String::new(),
            decided_at: None,
            votes: Vec::new(),
            required_approvals: 1,
            on_timeout: OnTimeout::Reject,
            policy: String::new(),
        };
        assert!(Decision::try_from(a.clone()).is_err());
        let mut expired = a.clone();
        expired.status = Status::Expired;
        assert!(!Decision::try_from(expired.clone()).unwrap().is_approved());
        expired.on_timeout = OnTimeout::Approve;
        assert!(
            Decision::try_from(expired).unwrap().is_approved(),
            "on_timeout = approve: the gate proceeds"
        );
        a.status = Status::Rejected;
        a.decided_by = Some("alice".into());
        let d = Decision::try_from(a).expect("final");
        assert_eq!(d.outcome, Outcome::Rejected);
        assert!(!d.is_approved());
        assert_eq!(d.decided_by.as_deref(), Some("alice"));
    }
}
