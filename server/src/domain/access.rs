//! Who may do what. Authentication (in `auth`) turns credentials into an
//! `Identity`; these rules decide what that identity may do with an
//! approval. With authentication off every caller is `Caller::Open`.

use std::fmt;
use std::sync::Arc;

use super::{Approval, DomainError, Principal, TypePattern};

/// What a principal may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// May create approvals (and cancel its own).
    pub requester: bool,
    /// May decide approvals of these types.
    pub approver: Vec<TypePattern>,
    /// May do anything, for any approval.
    pub admin: bool,
}

impl Roles {
    /// Parses role names: `requester`, `admin`, `approver` (any type) or
    /// `approver:<type pattern>` (e.g. `approver:deploy:*`).
    pub fn parse<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self, DomainError> {
        let mut roles = Roles::default();
        for name in names {
            match name.as_ref() {
                "requester" => roles.requester = true,
                "admin" => roles.admin = true,
                "approver" => roles.approver.push(TypePattern::Prefix(String::new())),
                other => match other.strip_prefix("approver:") {
                    Some(pattern) => roles.approver.push(TypePattern::parse(field, pattern)?),
                    None => {
                        return Err(DomainError::invalid(
                            field,
                            format!("unknown role {other:?}: use requester, approver, approver:<type pattern> or admin"),
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

/// Rules per approval type; today: who may approve their own request.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Types whose requester may also decide them.
    pub self_approval: Vec<TypePattern>,
}

impl Policy {
    pub fn allows_self_approval(&self, approval_type: &str) -> bool {
        self.self_approval.iter().any(|p| p.matches(approval_type))
    }
}

/// Who is calling, as far as authorization goes.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Authentication is off: everything is allowed, names are self-declared.
    Open,
    /// Authentication is on and this caller proved who it is.
    Known {
        identity: Identity,
        policy: Arc<Policy>,
    },
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

    /// May decide `a`: an approver of its type, and not its own requester
    /// unless the policy for its type allows self-approval.
    pub fn may_decide(&self, a: &Approval) -> Result<(), DomainError> {
        let Caller::Known {
            identity: i,
            policy,
        } = self
        else {
            return Ok(());
        };
        if !i.roles.may_decide_type(&a.approval_type) {
            return Err(denied(format!(
                "{} may not decide approvals of type {:?} (it has {})",
                i.principal.as_str(),
                a.approval_type,
                i.roles
            )));
        }
        if a.requester == i.principal.as_str() && !policy.allows_self_approval(&a.approval_type) {
            return Err(denied(format!(
                "{} requested approval {} and may not decide it: the policy for {:?} forbids self-approval",
                i.principal.as_str(),
                a.id,
                a.approval_type
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
                a.requester == i.principal.as_str() || i.roles.may_decide_type(&a.approval_type)
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
