//! `Caller::may_*`: who may create, decide, cancel and see an approval.
//! With authentication off (`Caller::Open`) everything is allowed.

use super::pending;
use crate::domain::{AuthMethod, Caller, DomainError, Identity, Principal, Roles};

/// A caller named `name` with these role names (as in the auth file).
fn known(name: &str, roles: &[&str]) -> Caller {
    Caller::Known {
        identity: Identity {
            principal: Principal::parse("principal", name).unwrap(),
            roles: Roles::parse("roles", roles).unwrap(),
            method: AuthMethod::Token,
        },
    }
}

/// Ok, or the refusal, which must be PERMISSION_DENIED naming the caller.
fn allowed(caller: &Caller, verdict: Result<(), DomainError>) -> bool {
    match verdict {
        Ok(()) => true,
        Err(DomainError::PermissionDenied(message)) => {
            let name = caller.principal().map_or("", |p| p.as_str());
            assert!(message.contains(name), "{message:?} names {name}");
            false
        }
        Err(other) => panic!("a refusal is PermissionDenied, not {other:?}"),
    }
}

#[test]
fn only_requesters_and_admins_may_create() {
    let cases = [
        ("auth off", Caller::Open, true),
        ("requester", known("agent", &["requester"]), true),
        ("admin", known("root", &["admin"]), true),
        ("approver only", known("alice", &["approver"]), false),
        ("no roles", known("nobody", &[]), false),
    ];
    for (name, caller, want) in cases {
        assert_eq!(allowed(&caller, caller.may_create()), want, "{name}");
    }
}

#[test]
fn an_approver_of_the_type_may_decide_but_not_its_own_request_unless_the_policy_allows() {
    let deploy = pending("deploy:prod", "agent");
    let own_deploy = pending("deploy:prod", "alice");
    // Its policy (copied onto it at creation) lets the requester vote.
    let mut own_self_serve = pending("self-serve:vm", "alice");
    own_self_serve.policy.allow_requester_vote = true;
    let cases = [
        ("auth off", Caller::Open, &deploy, true),
        (
            "approver of any type",
            known("alice", &["approver"]),
            &deploy,
            true,
        ),
        (
            "approver of the prefix",
            known("alice", &["approver:deploy:*"]),
            &deploy,
            true,
        ),
        (
            "approver of the exact type",
            known("alice", &["approver:deploy:prod"]),
            &deploy,
            true,
        ),
        (
            "approver of another type",
            known("alice", &["approver:build"]),
            &deploy,
            false,
        ),
        (
            "approver of a longer type",
            known("alice", &["approver:deploy:prod:eu"]),
            &deploy,
            false,
        ),
        (
            "requester without approver role",
            known("agent", &["requester"]),
            &deploy,
            false,
        ),
        ("admin", known("root", &["admin"]), &deploy, true),
        (
            "approver, own request",
            known("alice", &["approver", "requester"]),
            &own_deploy,
            false,
        ),
        (
            "admin, own request",
            known("alice", &["admin"]),
            &own_deploy,
            false,
        ),
        (
            "approver, own request, policy allows",
            known("alice", &["approver"]),
            &own_self_serve,
            true,
        ),
    ];
    for (name, caller, approval, want) in cases {
        assert_eq!(
            allowed(&caller, caller.may_decide(approval)),
            want,
            "{name}"
        );
    }
}

#[test]
fn only_the_requester_or_an_admin_may_cancel() {
    let a = pending("deploy:prod", "agent");
    let cases = [
        ("auth off", Caller::Open, true),
        ("its requester", known("agent", &["requester"]), true),
        ("an admin", known("root", &["admin"]), true),
        (
            "an approver of the type",
            known("alice", &["approver"]),
            false,
        ),
        (
            "another requester",
            known("other-agent", &["requester"]),
            false,
        ),
    ];
    for (name, caller, want) in cases {
        assert_eq!(allowed(&caller, caller.may_cancel(&a)), want, "{name}");
    }
}

#[test]
fn the_requester_approvers_of_the_type_and_admins_may_see_and_nobody_else() {
    let a = pending("deploy:prod", "agent");
    let cases = [
        ("auth off", Caller::Open, true),
        ("its requester", known("agent", &["requester"]), true),
        (
            "an approver of the type",
            known("alice", &["approver:deploy:*"]),
            true,
        ),
        ("an admin", known("root", &["admin"]), true),
        (
            "an approver of another type",
            known("bob", &["approver:build"]),
            false,
        ),
        (
            "another requester",
            known("other-agent", &["requester"]),
            false,
        ),
    ];
    for (name, caller, want) in cases {
        assert_eq!(caller.may_see(&a), want, "{name}");
        assert_eq!(
            allowed(&caller, caller.check_see(&a)),
            want,
            "{name}: check_see"
        );
    }
}

#[test]
fn role_names_parse_and_print_back_and_a_malformed_one_names_the_field() {
    for names in [
        vec!["requester"],
        vec!["approver"],
        vec!["approver:deploy:*"],
        vec!["approver:deploy:prod"],
        vec!["admin"],
        vec!["requester", "approver:deploy:*", "admin"],
        // A name of the operator's own, for policies' `role:<name>` voters.
        vec!["sre"],
        vec!["requester", "admin", "release-managers.eu"],
    ] {
        let roles = Roles::parse("roles", &names).unwrap();
        assert_eq!(roles.to_string(), names.join(", "), "{names:?}");
    }
    assert_eq!(Roles::default().to_string(), "no roles");
    for bad in [
        "",
        "approver:",
        "approver:a b",
        "on call",
        "role:sre",
        "ops!",
    ] {
        let err = Roles::parse("tokens[0].roles", &[bad]).unwrap_err();
        assert_eq!(super::field_of(err), "tokens[0].roles", "{bad:?}");
    }
}
