//! Who may do what. Authentication (in `auth`) turns credentials into an
//! `Identity`; these rules decide what that identity may do with an
//! approval. With authentication off every caller is `Caller::Open`.

use std::fmt;

use super::{Approval, DomainError, Principal, TypePattern, Voter};

/// What a principal may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// May create approvals (and cancel its own).
    pub requester: bool,
    /// May decide approvals of these types.
    pub approver: Vec<TypePattern>,
    /// May do anything, for any approval.
    pub admin: bool,
    /// Other role names (`sre`, `security`): they grant nothing by
    /// themselves; policies name them as voters (`role:sre`).
    pub named: Vec<String>,
}

impl Roles {
    /// Parses role names: `requester`, `admin`, `approver` (any type),
    /// `approver:<type pattern>` (e.g. `approver:deploy:*`), or a name of
    /// the operator's own without `:` (`sre`) for policies' `voters`.
    pub fn parse<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self, DomainError> {
        let mut roles = Roles::default();
        for name in names {
            match name.as_ref() {
                "requester" => roles.requester = true,
                "admin" => roles.admin = true,
                "approver" => roles.approver.push(TypePattern::Prefix(String::new())),
                other => match other.strip_prefix("approver:") {
                    Some(pattern) => roles.approver.push(TypePattern::parse(field, pattern)?),
                    None if !other.is_empty()
                        && other
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
                    {
                        roles.named.push(other.to_string())
                    }
                    None => {
                        return Err(DomainError::invalid(
                            field,
                            format!("unknown role {other:?}: use requester, approver, approver:<type pattern>, admin, or a name of your own (letters, digits, _ - .) that policies name as role:<name>"),
                        ))
                    }
                },
            }
        }
        Ok(roles)
    }

    pub fn may_decide_type(&self, approval_type: &str) -> bool {
        self.admin || self.approver.iter().any(|p| p.matches(approval_type))
    }

    pub fn has_named(&self, role: &str) -> bool {
        match role {
            "requester" => self.requester,
            "admin" => self.admin,
            "approver" => self
                .approver
                .iter()
                .any(|p| matches!(p, TypePattern::Prefix(p) if p.is_empty())),
            other => self.named.iter().any(|n| n == other),
        }
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.requester {
            names.push("requester".to_string());
        }
        for p in &self.approver {
            names.push(match p {
                TypePattern::Prefix(p) if p.is_empty() => "approver".to_string(),
                TypePattern::Prefix(p) => format!("approver:{p}*"),
                TypePattern::Exact(t) => format!("approver:{t}"),
            });
        }
        if self.admin {
            names.push("admin".to_string());
        }
        names.extend(self.named.iter().cloned());
        if names.is_empty() {
            f.write_str("no roles")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Token,
    Jwt,
    Certificate,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Certificate => "certificate",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Identity {
    pub principal: Principal,
    pub roles: Roles,
    pub method: AuthMethod,
}

impl Identity {
    /// Whether the approval's policy names this identity among its voters
    /// (by principal or by one of its roles).
    fn listed_voter(&self, a: &Approval) -> bool {
        a.policy.voters.iter().any(|v| match v {
            Voter::Principal(p) => p == self.principal.as_str(),
            Voter::Role(r) => self.roles.has_named(r),
        })
    }

    /// May vote on `a` by its type and policy (the requester rule aside):
    /// an admin; a listed voter when the policy lists voters; otherwise an
    /// approver of its type.
    fn may_vote_on(&self, a: &Approval) -> bool {
        match a.policy.voters.is_empty() {
            true => self.roles.may_decide_type(&a.approval_type),
            false => self.roles.admin || self.listed_voter(a),
        }
    }
}

/// Who is calling, as far as authorization goes.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Authentication is off: everything is allowed, names are self-declared.
    Open,
    /// Authentication is on and this caller proved who it is.
    Known { identity: Identity },
}

fn denied(message: String) -> DomainError {
    DomainError::PermissionDenied(message)
}

impl Caller {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Open => None,
            Caller::Known { identity, .. } => Some(&identity.principal),
        }
    }

    pub fn may_create(&self) -> Result<(), DomainError> {
        match self {
            Caller::Open => Ok(()),
            Caller::Known { identity: i, .. } if i.roles.requester || i.roles.admin => Ok(()),
            Caller::Known { identity: i, .. } => Err(denied(format!(
                "{} may not request approvals: it needs the requester role (it has {})",
                i.principal.as_str(),
                i.roles
            ))),
        }
    }

    /// May vote on `a`, under the policy copied onto it: a listed voter
    /// (by principal or role) when the policy lists voters, otherwise an
    /// approver of its type; and not its own requester unless the policy
    /// allows requester votes. With authentication off anyone may (the
    /// responder name is self-declared).
    pub fn may_decide(&self, a: &Approval) -> Result<(), DomainError> {
        let Caller::Known { identity: i } = self else {
            return Ok(());
        };
        if !i.may_vote_on(a) {
            if a.policy.voters.is_empty() {
                return Err(denied(format!(
                    "{} may not decide approvals of type {:?} (it has {})",
                    i.principal.as_str(),
                    a.approval_type,
                    i.roles
                )));
            }
            let voters: Vec<String> = a.policy.voters.iter().map(|v| v.to_string()).collect();
            return Err(denied(format!(
                "{} may not decide approval {}: {} lets only its voters vote ({}); it has {}",
                i.principal.as_str(),
                a.id,
                a.policy.label(),
                voters.join(", "),
                i.roles
            )));
        }
        if a.requester == i.principal.as_str() && !a.policy.allow_requester_vote {
            return Err(denied(format!(
                "{} requested approval {} and may not decide it: {} forbids self-approval (allow_requester_vote is off)",
                i.principal.as_str(),
                a.id,
                a.policy.label()
            )));
        }
        Ok(())
    }

    /// May withdraw `a`: its requester or an admin.
    pub fn may_cancel(&self, a: &Approval) -> Result<(), DomainError> {
        match self {
            Caller::Open => Ok(()),
            Caller::Known { identity: i, .. }
                if i.roles.admin || a.requester == i.principal.as_str() =>
            {
                Ok(())
            }
            Caller::Known { identity: i, .. } => Err(denied(format!(
                "{} may not cancel approval {}: only its requester ({}) or an admin may",
                i.principal.as_str(),
                a.id,
                a.requester
            ))),
        }
    }

    /// May see `a`: its requester, an approver of its type, or an admin.
    pub fn may_see(&self, a: &Approval) -> bool {
        match self {
            Caller::Open => true,
            Caller::Known { identity: i, .. } => {
                a.requester == i.principal.as_str()
                    || i.roles.may_decide_type(&a.approval_type)
                    || i.listed_voter(a)
            }
        }
    }

    pub fn check_see(&self, a: &Approval) -> Result<(), DomainError> {
        match self.may_see(a) {
            true => Ok(()),
            false => Err(denied(format!(
                "{} may not read approval {}: it is neither its requester nor an approver of type {:?}",
                self.principal().map_or("", |p| p.as_str()),
                a.id,
                a.approval_type
            ))),
        }
    }
}
