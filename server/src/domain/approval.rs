//! The approval record and its state machine.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lifecycle of an approval is part of the API contract: one definition
/// (names, which statuses are final, wire form) in the API crate.
pub use approval_api::Status;

use super::{
    AgentId, ApprovalId, ApprovalPolicy, ApprovalType, Context, ContextDigest, IdempotencyKey,
    Labels, OnTimeout, Principal, Timeout, TraceContext,
};

/// Milliseconds since the Unix epoch: the one clock unit of the service and
/// of the stores (Redis scores and TTLs are in milliseconds too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(since.as_millis() as u64)
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_millis() as u64))
    }

    /// Time from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: Millis) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    pub fn to_timestamp(self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: (self.0 / 1000) as i64,
            nanos: ((self.0 % 1000) * 1_000_000) as i32,
        }
    }

    /// Unset or negative timestamps read as the epoch.
    pub fn from_timestamp(t: Option<prost_types::Timestamp>) -> Self {
        t.map_or(Self(0), |t| {
            Self((t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000)
        })
    }

    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.system_time()).to_string()
    }
}

/// A human's answer: approve or reject. One word, one thing: a `Verdict`
/// is this answer (server and clients; the wire's enum `Decision` and the
/// fields named `decision` carry it), while a client's `Decision` is how an
/// approval ended (the result of `RequestApproval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn status(self) -> Status {
        match self {
            Verdict::Approve => Status::Approved,
            Verdict::Reject => Status::Rejected,
        }
    }

    /// The stored name (votes in Redis, the audit log).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "approve" => Some(Verdict::Approve),
            "reject" => Some(Verdict::Reject),
            _ => None,
        }
    }
}

/// One voter's answer, kept on the approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub voter: String,
    pub verdict: Verdict,
    pub reason: String,
    pub at: Millis,
}

/// How a final approval ended: who, why, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The responder or canceller; empty when it expired.
    pub decided_by: String,
    pub reason: String,
    pub decided_at: Millis,
}

/// One approval as stored. Built by the stores from data they wrote, so its
/// fields are plain values; requests are validated by `NewApproval`'s fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    pub id: ApprovalId,
    pub approval_type: String,
    pub agent_id: String,
    pub requester: String,
    pub context: prost_types::Struct,
    /// `ContextDigest::of(&context)`, computed once at creation.
    pub context_digest: ContextDigest,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: String,
    pub created_at: Millis,
    pub deadline: Millis,
    pub status: Status,
    pub resolution: Option<Resolution>,
    /// The policy in force when it was created.
    pub policy: ApprovalPolicy,
    /// Every vote, in the order they were cast.
    pub votes: Vec<Vote>,
}

impl Approval {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// What the gate returns: approved by its voters, or expired under a
    /// policy that says `on_timeout = "approve"`.
    pub fn approved(&self) -> bool {
        match self.status {
            Status::Approved => true,
            Status::Expired => self.policy.on_timeout == OnTimeout::Approve,
            _ => false,
        }
    }

    /// The vote `voter` cast, if any.
    pub fn vote_of(&self, voter: &str) -> Option<&Vote> {
        self.votes.iter().find(|v| v.voter == voter)
    }

    /// Distinct approvals so far.
    pub fn approvals(&self) -> u32 {
        self.votes
            .iter()
            .filter(|v| v.verdict == Verdict::Approve)
            .count() as u32
    }

    /// The vote rules, for stores that run them in Rust (the Redis store
    /// runs the same rules in decide.lua). A vote on a pending approval
    /// before its deadline is recorded; it completes the approval when it
    /// is the M-th distinct approval (APPROVED, decided by this voter) or a
    /// reject (REJECTED: one reject vetoes). A voter who voted already
    /// changes nothing (`AlreadyVoted`: the caller tells a retry from a
    /// changed vote).
    pub fn cast(&mut self, vote: Vote, now: Millis) -> Finished {
        if self.is_final() {
            return Finished::AlreadyFinal(self.clone());
        }
        if now >= self.deadline {
            self.expire();
            return Finished::Expired(self.clone());
        }
        if self.vote_of(&vote.voter).is_some() {
            return Finished::AlreadyVoted(self.clone());
        }
        let verdict = vote.verdict;
        let (by, reason) = (vote.voter.clone(), vote.reason.clone());
        self.votes.push(Vote { at: now, ..vote });
        let complete =
            verdict == Verdict::Reject || self.approvals() >= self.policy.required_approvals.max(1);
        if !complete {
            return Finished::Voted(self.clone());
        }
        self.status = verdict.status();
        self.resolution = Some(Resolution {
            decided_by: by,
            reason,
            decided_at: now,
        });
        Finished::Done(self.clone())
    }

    /// About what the approval takes on the wire: what queues and buffers
    /// count it as.
    pub fn wire_bytes(&self) -> usize {
        use prost::Message;
        let strings = self.id.as_str().len()
            + self.approval_type.len()
            + self.agent_id.len()
            + self.requester.len()
            + self.idempotency_key.len();
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let resolution = self
            .resolution
            .as_ref()
            .map_or(0, |r| r.decided_by.len() + r.reason.len());
        self.context.encoded_len()
            + strings
            + labels
            + resolution
            + self.policy_and_votes_bytes()
            + 64
    }

    /// What the copied policy and the votes add to the wire size.
    fn policy_and_votes_bytes(&self) -> usize {
        let voters: usize = self
            .policy
            .voters
            .iter()
            .map(|v| v.to_string().len() + 4)
            .sum();
        let votes: usize = self
            .votes
            .iter()
            .map(|v| v.voter.len() + v.reason.len() + 24)
            .sum();
        self.policy.name.len() + voters + self.policy.remind_after.len() * 8 + votes + 16
    }

    /// The reason an approval gets when its deadline passes.
    pub const EXPIRED_REASON: &'static str = "deadline passed before a decision";

    /// The state machine, for stores that run it in Rust (the Redis store runs
    /// the same rules in Lua). Applies `ending` if the approval is pending and
    /// its deadline has not passed at `now`.
    pub fn finish(&mut self, ending: &Ending, now: Millis) -> Finished {
        if self.is_final() {
            return Finished::AlreadyFinal(self.clone());
        }
        if now >= self.deadline {
            self.expire();
            return Finished::Expired(self.clone());
        }
        let (status, by, reason) = match ending {
            Ending::Decided {
                verdict,
                by,
                reason,
            } => {
                let vote = Vote {
                    voter: by.clone(),
                    verdict: *verdict,
                    reason: reason.clone(),
                    at: now,
                };
                return self.cast(vote, now);
            }
            Ending::Cancelled { by, reason } => (Status::Cancelled, by, reason),
        };
        self.status = status;
        self.resolution = Some(Resolution {
            decided_by: by.clone(),
            reason: reason.clone(),
            decided_at: now,
        });
        Finished::Done(self.clone())
    }

    /// What an idempotency key stands for: the request that created this
    /// approval (type, agent, context, labels, and `timeout` as the request
    /// gave it, `None` when it gave none), as a SHA-256 hex digest. A second
    /// create with the same requester and key re-attaches only when its
    /// fingerprint is the same; otherwise the key is being reused for a
    /// different request. The timeout is the requested one, not the
    /// resolved one: a request without a timeout is the same request on a
    /// replica whose `--default-timeout` (or type policy) differs, as during
    /// a rolling change of it. The encoding is deterministic (protobuf
    /// `Struct` fields and labels are sorted maps; every part is
    /// length-prefixed, so an absent timeout, an empty part, differs from
    /// any timeout).
    pub fn request_fingerprint(&self, timeout: Option<Duration>) -> String {
        use prost::Message;
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        part(self.approval_type.as_bytes());
        part(self.agent_id.as_bytes());
        part(&self.context.encode_to_vec());
        for (k, v) in &self.labels {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        match timeout {
            Some(t) => part(&(t.as_millis() as u64).to_be_bytes()),
            None => part(&[]),
        }
        hex::encode(h.finalize())
    }

    /// Whether `request` (with `timeout` as requested) may re-attach to
    /// this approval when it was stored without a fingerprint of the
    /// requested timeout (by a version before it): such a record knows only
    /// its resolved timeout (`deadline - created`), so a request without a
    /// timeout matches whatever the record got, and one with a timeout must
    /// match it. Every other part must match as in `request_fingerprint`.
    pub fn legacy_record_matches(&self, request: &Approval, timeout: Option<Duration>) -> bool {
        let resolved = self.created_at.until(self.deadline);
        self.request_fingerprint(Some(resolved))
            == request.request_fingerprint(Some(timeout.unwrap_or(resolved)))
    }

    /// An upper bound of this approval's size in a response message, in
    /// bytes (what `Limits::MAX_PAGE_BYTES` counts).
    pub fn wire_size(&self) -> usize {
        use prost::Message;
        /// Field tags and lengths, timestamps, the status: generously.
        const FIXED: usize = 160;
        /// A map entry's own tags and lengths.
        const PER_LABEL: usize = 12;
        let strings = [
            &self.id.to_string(),
            &self.approval_type,
            &self.agent_id,
            &self.requester,
            &self.idempotency_key,
        ]
        .iter()
        .map(|s| s.len() + 4)
        .sum::<usize>();
        let resolution = self
            .resolution
            .as_ref()
            .map_or(0, |r| r.decided_by.len() + r.reason.len() + 8);
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + PER_LABEL)
            .sum::<usize>();
        FIXED
            + strings
            + resolution
            + labels
            + self.context.encoded_len()
            + self.policy_and_votes_bytes()
            + 6
    }

    /// Marks a pending approval EXPIRED at its deadline; the reason says
    /// what the gate does (its policy's `on_timeout`).
    pub fn expire(&mut self) {
        self.status = Status::Expired;
        self.resolution = Some(Resolution {
            decided_by: String::new(),
            reason: self.policy.expiry_reason(),
            decided_at: self.deadline,
        });
    }
}

/// What ends a pending approval (besides its deadline).
#[derive(Clone, Debug)]
pub enum Ending {
    Decided {
        verdict: Verdict,
        by: String,
        reason: String,
    },
    Cancelled {
        by: String,
        reason: String,
    },
}

impl Ending {
    pub fn status(&self) -> Status {
        match self {
            Ending::Decided { verdict, .. } => verdict.status(),
            Ending::Cancelled { .. } => Status::Cancelled,
        }
    }

    pub fn by(&self) -> &str {
        match self {
            Ending::Decided { by, .. } | Ending::Cancelled { by, .. } => by,
        }
    }

    /// True when `approval` already holds exactly this: the same vote by
    /// the same voter, or the same ending by the same person (a retry of
    /// the call that made it), answered with OK.
    pub fn is_repeat_of(&self, approval: &Approval) -> bool {
        if let Ending::Decided { verdict, by, .. } = self {
            if let Some(v) = approval.vote_of(by) {
                return v.verdict == *verdict;
            }
        }
        approval.status == self.status()
            && approval
                .resolution
                .as_ref()
                .is_some_and(|r| r.decided_by == self.by())
    }
}

/// What a store did with an `Ending`.
#[derive(Clone, Debug)]
pub enum Finished {
    /// This call made the approval final.
    Done(Approval),
    /// The deadline had passed: this call expired it instead (or found it
    /// expired by the same rule) and the ending was not applied.
    Expired(Approval),
    /// It was final already; nothing changed.
    AlreadyFinal(Approval),
    /// The vote was recorded; the approval is still pending (more
    /// approvals needed).
    Voted(Approval),
    /// This voter had voted already on the pending approval; nothing
    /// changed (a retry when the decision is the same).
    AlreadyVoted(Approval),
    NotFound,
}

/// A validated request to create an approval.
#[derive(Clone, Debug)]
pub struct NewApproval {
    pub approval_type: ApprovalType,
    pub agent_id: AgentId,
    pub requester: Principal,
    pub context: Context,
    pub labels: Labels,
    pub timeout: Timeout,
    pub idempotency_key: Option<IdempotencyKey>,
    /// The policy for its type, as the file says now.
    pub policy: ApprovalPolicy,
    /// The trace of the call that asks for it (its W3C context), kept by
    /// the store beside the approval, never in it.
    pub trace: Option<TraceContext>,
}

impl NewApproval {
    /// The record this request creates at `now`, with a fresh id.
    pub fn into_approval(self, now: Millis) -> Approval {
        self.into_approval_with_id(ApprovalId::generate_at(now), now)
    }

    /// The record this request creates at `now` under `id` (a retried
    /// write reuses its id, so it cannot create twice).
    pub fn into_approval_with_id(self, id: ApprovalId, now: Millis) -> Approval {
        let context = self.context.into_struct();
        Approval {
            id,
            approval_type: self.approval_type.into_string(),
            agent_id: self.agent_id.into_string(),
            requester: self.requester.into_string(),
            context_digest: ContextDigest::of(&context),
            context,
            labels: self.labels.into_map(),
            idempotency_key: self
                .idempotency_key
                .map(|k| k.into_string())
                .unwrap_or_default(),
            created_at: now,
            deadline: now.plus(self.timeout.get()),
            status: Status::Pending,
            resolution: None,
            policy: self.policy,
            votes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod vote_rules {
    use super::*;

    fn pending(m: u32) -> Approval {
        let now = Millis(1_000);
        let mut a = NewApproval {
            approval_type: ApprovalType::parse("t", "deploy:production").unwrap(),
            agent_id: AgentId::parse("a", "agent").unwrap(),
            requester: Principal::parse("r", "bot").unwrap(),
            context: Context::default(),
            labels: Labels::default(),
            timeout: Timeout::parse("t", None, &super::super::Limits::default()).unwrap(),
            idempotency_key: None,
            policy: ApprovalPolicy {
                required_approvals: m,
                ..Default::default()
            },
            trace: None,
        }
        .into_approval(now);
        a.deadline = Millis(10_000);
        a
    }

    fn vote(voter: &str, verdict: Verdict) -> Vote {
        Vote {
            voter: voter.into(),
            verdict,
            reason: format!("{voter} says so"),
            at: Millis(0),
        }
    }

    #[test]
    fn m_distinct_approvals_approve_and_the_last_voter_decides() {
        let mut a = pending(2);
        assert!(matches!(
            a.cast(vote("alice", Verdict::Approve), Millis(2_000)),
            Finished::Voted(_)
        ));
        assert_eq!(a.status, Status::Pending);
        let Finished::Done(done) = a.cast(vote("bob", Verdict::Approve), Millis(3_000)) else {
            panic!("the second approval completes it")
        };
        assert_eq!(done.status, Status::Approved);
        let r = done.resolution.unwrap();
        assert_eq!(
            (r.decided_by.as_str(), r.decided_at),
            ("bob", Millis(3_000))
        );
        assert_eq!(done.votes.len(), 2);
        assert_eq!(done.votes[0].at, Millis(2_000));
    }

    #[test]
    fn one_reject_vetoes_after_an_approval() {
        let mut a = pending(3);
        a.cast(vote("alice", Verdict::Approve), Millis(2_000));
        let Finished::Done(done) = a.cast(vote("carol", Verdict::Reject), Millis(2_500)) else {
            panic!("a reject ends it")
        };
        assert_eq!(done.status, Status::Rejected);
        assert_eq!(done.resolution.unwrap().decided_by, "carol");
        assert_eq!(done.votes.len(), 2);
    }

    #[test]
    fn the_same_voter_twice_changes_nothing_and_counts_once() {
        let mut a = pending(2);
        a.cast(vote("alice", Verdict::Approve), Millis(2_000));
        for again in [Verdict::Approve, Verdict::Reject] {
            let Finished::AlreadyVoted(same) = a.cast(vote("alice", again), Millis(2_100)) else {
                panic!("a second vote by alice is not recorded")
            };
            assert_eq!(same.status, Status::Pending);
            assert_eq!(same.votes.len(), 1);
        }
        let retry = Ending::Decided {
            verdict: Verdict::Approve,
            by: "alice".into(),
            reason: String::new(),
        };
        let changed = Ending::Decided {
            verdict: Verdict::Reject,
            by: "alice".into(),
            reason: String::new(),
        };
        assert!(retry.is_repeat_of(&a));
        assert!(!changed.is_repeat_of(&a));
    }

    #[test]
    fn a_vote_on_a_final_approval_is_not_recorded() {
        let mut a = pending(1);
        a.cast(vote("alice", Verdict::Approve), Millis(2_000));
        assert!(matches!(
            a.cast(vote("bob", Verdict::Approve), Millis(2_100)),
            Finished::AlreadyFinal(_)
        ));
        assert_eq!(a.votes.len(), 1);
    }

    #[test]
    fn a_vote_after_the_deadline_expires_it_and_the_policy_says_what_the_gate_returns() {
        let mut a = pending(2);
        a.policy.on_timeout = super::super::OnTimeout::Approve;
        let Finished::Expired(e) = a.cast(vote("alice", Verdict::Approve), Millis(10_000)) else {
            panic!("past the deadline")
        };
        assert_eq!(e.status, Status::Expired);
        assert!(e.votes.is_empty());
        assert!(e.approved(), "on_timeout = approve: the gate proceeds");
        let mut r = pending(2);
        r.expire();
        assert!(!r.approved());
    }
}
