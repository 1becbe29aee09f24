//! Policies per approval type: how many approvals an approval needs, who
//! may vote, what its deadline means. The operator's file holds a set of
//! them (`Policies`); the one that applies is copied onto an approval at
//! creation (`ApprovalPolicy`), so editing the file never changes an
//! approval already open.

use std::time::Duration;

use approval_api::v1;

use super::{DomainError, Principal, TypePattern};

/// The most approvals a policy may require (votes on one approval are
/// bounded by it: at most this many approves, and one reject).
pub const MAX_REQUIRED_APPROVALS: u32 = 32;
/// The most reminders one policy may schedule.
pub const MAX_REMINDERS: usize = 16;
/// The most entries in one policy's `voters`.
pub const MAX_VOTERS: usize = 256;

/// What a deadline means for a gate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnTimeout {
    /// Nobody approved in time: the gate does not proceed (the default).
    #[default]
    Reject,
    /// "Proceed unless someone objects": the gate proceeds at the deadline.
    Approve,
}

impl OnTimeout {
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        match raw {
            "reject" => Ok(Self::Reject),
            "approve" => Ok(Self::Approve),
            other => Err(DomainError::invalid(
                field,
                format!("{other:?}: use \"reject\" (the default) or \"approve\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Approve => "approve",
        }
    }

    /// Its wire form (the API's, and the Redis store's stored body).
    pub fn to_proto(self) -> v1::OnTimeout {
        match self {
            Self::Reject => v1::OnTimeout::Reject,
            Self::Approve => v1::OnTimeout::Approve,
        }
    }
}

/// Who may vote: a principal by name, or anyone holding a role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Voter {
    Principal(String),
    Role(String),
}

impl Voter {
    /// `alice` or `role:sre`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        match raw.strip_prefix("role:") {
            Some("") => Err(DomainError::invalid(field, "\"role:\" needs a role name")),
            Some(role) => Ok(Self::Role(role.to_string())),
            None => Principal::parse(field, raw).map(|p| Self::Principal(p.into_string())),
        }
    }
}

impl std::fmt::Display for Voter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Principal(p) => f.write_str(p),
            Self::Role(r) => write!(f, "role:{r}"),
        }
    }
}

/// The rules an approval lives by, copied onto it at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Which entry of the file this is (its most specific matching
    /// pattern, e.g. `deploy:production`); empty when no policy matched.
    pub name: String,
    /// Distinct approvals needed (M, at least 1).
    pub required_approvals: u32,
    /// Who may vote; empty: anyone the roles allow to decide this type.
    pub voters: Vec<Voter>,
    /// Whether the requester may vote on its own approval.
    pub allow_requester_vote: bool,
    pub on_timeout: OnTimeout,
    /// When reminders are due, counted from creation.
    pub remind_after: Vec<Duration>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            name: String::new(),
            required_approvals: 1,
            voters: Vec::new(),
            allow_requester_vote: false,
            on_timeout: OnTimeout::Reject,
            remind_after: Vec::new(),
        }
    }
}

impl ApprovalPolicy {
    /// How the policy is named in reasons and the audit log.
    pub fn label(&self) -> String {
        match self.name.is_empty() {
            true => "the default policy".to_string(),
            false => format!("policy {:?}", self.name),
        }
    }

    /// The copied policy as the wire shows it (the API, and the Redis
    /// store's stored body, which is the wire's `Approval`).
    pub fn to_proto(&self) -> v1::ApprovalPolicy {
        v1::ApprovalPolicy {
            name: self.name.clone(),
            voters: self.voters.iter().map(Voter::to_string).collect(),
            allow_requester_vote: self.allow_requester_vote,
            remind_after: self
                .remind_after
                .iter()
                .map(|d| prost_types::Duration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                })
                .collect(),
        }
    }

    /// The policy from its stored wire form (written by this service: a
    /// bad entry is dropped rather than refused).
    pub fn from_stored_proto(
        p: Option<v1::ApprovalPolicy>,
        required_approvals: u32,
        on_timeout: i32,
    ) -> Self {
        let p = p.unwrap_or_default();
        Self {
            name: p.name,
            required_approvals: required_approvals.max(1),
            voters: p
                .voters
                .iter()
                .filter_map(|v| Voter::parse("voters", v).ok())
                .collect(),
            allow_requester_vote: p.allow_requester_vote,
            on_timeout: match v1::OnTimeout::try_from(on_timeout) {
                Ok(v1::OnTimeout::Approve) => OnTimeout::Approve,
                _ => OnTimeout::Reject,
            },
            remind_after: p
                .remind_after
                .iter()
                .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
                .collect(),
        }
    }

    /// The reason an approval under this policy gets at its deadline.
    pub fn expiry_reason(&self) -> String {
        match self.on_timeout {
            OnTimeout::Reject => super::Approval::EXPIRED_REASON.to_string(),
            OnTimeout::Approve => format!(
                "{}; {} says on_timeout = \"approve\": the gate proceeds",
                super::Approval::EXPIRED_REASON,
                self.label()
            ),
        }
    }
}

/// One entry of the file, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    pub patterns: Vec<TypePattern>,
    pub policy: ApprovalPolicy,
    /// The approval's default and longest timeout under this rule (the
    /// server's flags when unset).
    pub default_timeout: Option<Duration>,
    pub max_timeout: Option<Duration>,
}

/// What applies to one approval type: the copied policy and its timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub policy: ApprovalPolicy,
    pub default_timeout: Option<Duration>,
    pub max_timeout: Option<Duration>,
}

/// Every rule of the file. The most specific matching pattern wins: an
/// exact type beats any prefix, a longer prefix beats a shorter one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies {
    rules: Vec<PolicyRule>,
}

/// How specific a pattern is: exact above every prefix, then by length.
fn specificity(p: &TypePattern) -> (bool, usize) {
    match p {
        TypePattern::Exact(t) => (true, t.len()),
        TypePattern::Prefix(p) => (false, p.len()),
    }
}

fn pattern_text(p: &TypePattern) -> String {
    match p {
        TypePattern::Exact(t) => t.clone(),
        TypePattern::Prefix(p) => format!("{p}*"),
    }
}

impl Policies {
    /// Refuses a pattern listed by two rules (which one would apply?),
    /// naming both (`policies[i]`).
    pub fn new(rules: Vec<PolicyRule>) -> Result<Self, DomainError> {
        let mut seen: Vec<(&TypePattern, usize)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for p in &rule.patterns {
                if let Some((_, j)) = seen.iter().find(|(q, _)| *q == p) {
                    return Err(DomainError::invalid(
                        format!("policies[{i}].approval_types"),
                        format!(
                            "{:?} is also listed by policies[{j}]: a type must have one most specific policy",
                            pattern_text(p)
                        ),
                    ));
                }
                seen.push((p, i));
            }
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The rule for `approval_type`, or the defaults when none matches.
    pub fn for_type(&self, approval_type: &str) -> Applied {
        let best = self
            .rules
            .iter()
            .flat_map(|r| r.patterns.iter().map(move |p| (p, r)))
            .filter(|(p, _)| p.matches(approval_type))
            .max_by_key(|(p, _)| specificity(p));
        match best {
            None => Applied::default(),
            Some((p, rule)) => {
                let mut policy = rule.policy.clone();
                policy.name = pattern_text(p);
                Applied {
                    policy,
                    default_timeout: rule.default_timeout,
                    max_timeout: rule.max_timeout,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(patterns: &[&str], m: u32) -> PolicyRule {
        PolicyRule {
            patterns: patterns
                .iter()
                .map(|p| TypePattern::parse("t", p).unwrap())
                .collect(),
            policy: ApprovalPolicy {
                required_approvals: m,
                ..Default::default()
            },
            default_timeout: None,
            max_timeout: None,
        }
    }

    #[test]
    fn the_most_specific_pattern_wins_whatever_the_order() {
        let p = Policies::new(vec![
            rule(&["deploy:*"], 2),
            rule(&["deploy:production"], 3),
            rule(&["*"], 1),
            rule(&["deploy:prod*"], 4),
        ])
        .unwrap();
        assert_eq!(p.for_type("deploy:production").policy.required_approvals, 3);
        assert_eq!(
            p.for_type("deploy:production").policy.name,
            "deploy:production"
        );
        assert_eq!(p.for_type("deploy:prod-eu").policy.required_approvals, 4);
        assert_eq!(p.for_type("deploy:staging").policy.required_approvals, 2);
        assert_eq!(p.for_type("deploy:staging").policy.name, "deploy:*");
        assert_eq!(p.for_type("spend").policy.name, "*");
    }

    #[test]
    fn a_type_no_policy_matches_gets_one_approval_and_reject_on_timeout() {
        let p = Policies::new(vec![rule(&["deploy:*"], 2)]).unwrap();
        let applied = p.for_type("spend:money");
        assert_eq!(applied.policy, ApprovalPolicy::default());
        assert_eq!(applied.policy.required_approvals, 1);
        assert_eq!(applied.policy.on_timeout, OnTimeout::Reject);
    }

    #[test]
    fn a_pattern_in_two_policies_is_refused_naming_both() {
        let e = Policies::new(vec![rule(&["a", "deploy:*"], 2), rule(&["deploy:*"], 3)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("policies[1]") && e.contains("policies[0]"),
            "{e}"
        );
    }

    #[test]
    fn voters_are_principals_or_roles() {
        assert_eq!(
            Voter::parse("v", "role:sre").unwrap(),
            Voter::Role("sre".into())
        );
        assert_eq!(
            Voter::parse("v", "alice").unwrap(),
            Voter::Principal("alice".into())
        );
        assert!(Voter::parse("v", "role:").is_err());
        assert!(Voter::parse("v", "").is_err());
    }

    #[test]
    fn the_expiry_reason_names_an_auto_approving_policy() {
        let p = ApprovalPolicy {
            name: "deploy:*".into(),
            on_timeout: OnTimeout::Approve,
            ..Default::default()
        };
        assert!(p.expiry_reason().contains("policy \"deploy:*\""));
        assert_eq!(
            ApprovalPolicy::default().expiry_reason(),
            super::super::Approval::EXPIRED_REASON
        );
    }
}
