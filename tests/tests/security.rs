//! Authentication and authorization: every refusal path, each asserting the
//! status code and that nothing changed; identity taken from credentials,
//! never from fields the caller typed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use approval_client::v1;
use approval_client::v1::ErrorReason;
use approval_client::ApprovalServiceClient;
use approval_tests::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};
use tonic_types::StatusExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Token name -> (principal, roles): each token is its own name, hashed.
const TOKENS: &[(&str, &str, &str)] = &[
    ("tok-agent-a", "agent-a", r#"["requester"]"#),
    ("tok-agent-b", "agent-b", r#"["requester"]"#),
    ("tok-alice", "alice", r#"["approver:deploy:*"]"#),
    ("tok-bob", "bob", r#"["approver"]"#),
    ("tok-root", "root", r#"["admin"]"#),
    ("tok-nobody", "nobody", "[]"),
    (
        "tok-dev",
        "dev",
        r#"["requester", "approver:dev:*", "approver:deploy:*"]"#,
    ),
];

/// Writes an authentication file (tokens, JWT, certificates, a policy that
/// lets `dev:*` requesters approve their own) into a fresh folder.
fn auth_dir(extra: &str) -> ScratchDir {
    let dir = ScratchDir::new("approvald-auth");
    std::fs::write(dir.join("auth.toml"), auth_toml(TOKENS, extra)).unwrap();
    dir
}

/// The authentication file with these tokens (see `TOKENS`).
fn auth_toml(tokens: &[(&str, &str, &str)], extra: &str) -> String {
    let mut toml = String::new();
    for (token, principal, roles) in tokens {
        toml += &format!(
            "[[tokens]]\nprincipal = {principal:?}\nroles = {roles}\nsha256 = {:?}\n\n",
            approvald::auth::hash_token(token)
        );
    }
    let f = fixtures();
    toml += &format!(
        r#"[jwt]
issuer = "https://idp.test"
audience = "approvald"
algorithms = ["HS256", "RS256", "ES256"]
roles_claim = "roles"
hs256_secret_file = {:?}
public_key_files = [{:?}, {:?}]
jwks_file = {:?}
leeway = "0s"

[certificates]
principal = "cn"
[[certificates.clients]]
principal = "ci-runner"
roles = ["requester"]

[[policies]]
approval_types = ["dev:*"]
allow_self_approval = true
{extra}
"#,
        f.join("jwt-hs256.secret"),
        f.join("jwt-rs256.pub.pem"),
        f.join("jwt-es256.pub.pem"),
        f.join("jwks.json"),
    );
    toml
}

async fn secured(store: Store, tweak: impl Fn(&mut approvald::Config)) -> (Deployment, ScratchDir) {
    let dir = auth_dir("");
    let file = dir.join("auth.toml");
    let d = Deployment::start_with(store, 2, |c| {
        c.auth_config = Some(file.clone());
        tweak(c);
    })
    .await;
    (d, dir)
}

fn as_<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn everything(client: &mut Client) -> Vec<v1::Approval> {
    client
        .list_approvals(as_("tok-root", v1::ListApprovalsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .approvals
}

async fn create_as(client: &mut Client, token: &str, approval_type: &str) -> v1::Approval {
    client
        .create_approval(as_(token, create_request(approval_type)))
        .await
        .expect("create")
        .into_inner()
        .approval
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_valid_credentials_are_unauthenticated_and_change_nothing() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let existing = create_as(&mut a, "tok-agent-a", "deploy:prod").await;
    let before = everything(&mut a).await;

    let err = a
        .create_approval(create_request("deploy:prod"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("Bearer"), "{}", err.message());
    let err = a
        .create_approval(as_("not-a-token", create_request("deploy:prod")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut bad_scheme = Request::new(approve(&existing.id, "x"));
    bad_scheme
        .metadata_mut()
        .insert("authorization", "Basic YWxpY2U6cHc=".parse().unwrap());
    assert_eq!(
        a.respond(bad_scheme).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        a.respond(approve(&existing.id, "alice"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        a.watch_pending(v1::WatchPendingRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(everything(&mut a).await, before, "nothing changed");
}

fn jwt(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "iss": "https://idp.test", "aud": "approvald",
        "exp": now() + 600, "nbf": now() - 10, "roles": ["requester", "some-other-system-role"]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_checked_for_signature_issuer_audience_expiry_and_not_before() {
    let (d, _dir) = secured(Store::Memory, |_| {}).await;
    let mut a = d.a().await;
    let f = fixtures();
    let hs = EncodingKey::from_secret(b"test-only-hs256-secret-of-at-least-32-bytes!!");
    let rs = EncodingKey::from_rsa_pem(&std::fs::read(f.join("jwt-rs256.key")).unwrap()).unwrap();
    let es = EncodingKey::from_ec_pem(&std::fs::read(f.join("jwt-es256.key")).unwrap()).unwrap();
    let jwks = EncodingKey::from_rsa_pem(&std::fs::read(f.join("jwt-jwks.key")).unwrap()).unwrap();

    // Valid, with every key source: the principal is `sub`.
    for (token, who) in [
        (
            jwt(Algorithm::HS256, &hs, None, claims("hs-agent")),
            "hs-agent",
        ),
        (
            jwt(Algorithm::RS256, &rs, None, claims("rs-agent")),
            "rs-agent",
        ),
        (
            jwt(Algorithm::ES256, &es, None, claims("es-agent")),
            "es-agent",
        ),
        (
            jwt(
                Algorithm::RS256,
                &jwks,
                Some("jwks-key-1"),
                claims("jwks-agent"),
            ),
            "jwks-agent",
        ),
    ] {
        let created = create_as(&mut a, &token, "deploy:prod").await;
        assert_eq!(created.requester, who);
    }
    let before = everything(&mut a).await;

    let mut expired = claims("x");
    expired["exp"] = serde_json::json!(now() - 60);
    let mut early = claims("x");
    early["nbf"] = serde_json::json!(now() + 600);
    let mut audience = claims("x");
    audience["aud"] = serde_json::json!("someone-else");
    let mut issuer = claims("x");
    issuer["iss"] = serde_json::json!("https://evil.test");
    let wrong_key = EncodingKey::from_secret(b"another-secret-another-secret-another!!");
    let refusals = [
        (jwt(Algorithm::HS256, &hs, None, expired), "expired"),
        (jwt(Algorithm::HS256, &hs, None, early), "not valid yet"),
        (jwt(Algorithm::HS256, &hs, None, audience), "audience"),
        (jwt(Algorithm::HS256, &hs, None, issuer), "issuer"),
        (
            jwt(Algorithm::HS256, &wrong_key, None, claims("x")),
            "signature",
        ),
        (
            jwt(Algorithm::RS256, &jwks, Some("unknown-kid"), claims("x")),
            "JWT",
        ),
        (
            jwt(
                Algorithm::HS384,
                &EncodingKey::from_secret(b"test-only-hs256-secret-of-at-least-32-bytes!!"),
                None,
                claims("x"),
            ),
            "not accepted",
        ),
    ];
    for (token, why) in refusals {
        let err = a
            .create_approval(as_(&token, create_request("deploy:prod")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{why}: {err:?}");
        assert!(err.message().contains(why), "{why}: {}", err.message());
    }
    assert_eq!(everything(&mut a).await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requester_and_responder_are_the_authenticated_principals() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let mut req = create_request("deploy:prod");
    req.agent_id = "pretending-to-be-someone".into();
    let created = a
        .create_approval(as_("tok-agent-a", req))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(
        created.requester, "agent-a",
        "not the agent_id the caller typed"
    );
    assert_eq!(created.agent_id, "pretending-to-be-someone");
    let mut b = d.b().await;
    let decided = b
        .respond(as_("tok-alice", approve(&created.id, "the-ceo")))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(
        decided.decided_by, "alice",
        "not the responder the caller typed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_need_an_approver_of_the_type_and_not_the_requester() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let deploy = create_as(&mut a, "tok-dev", "deploy:prod").await;
    let db = create_as(&mut a, "tok-agent-a", "db:drop").await;
    let before = everything(&mut a).await;

    let refusals = [
        ("tok-dev", &deploy, "self-approval"),
        ("tok-alice", &db, "may not decide approvals of type"),
        ("tok-agent-b", &deploy, "may not decide"),
        ("tok-nobody", &deploy, "may not decide"),
    ];
    for (token, approval, why) in refusals {
        let err = a
            .respond(as_(token, approve(&approval.id, "x")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}: {err:?}");
        assert!(err.message().contains(why), "{token}: {}", err.message());
    }
    assert_eq!(everything(&mut a).await, before, "nothing changed");

    // Policy allows self-approval for dev:*.
    let own = create_as(&mut a, "tok-dev", "dev:sandbox").await;
    a.respond(as_("tok-dev", approve(&own.id, "")))
        .await
        .expect("self-approval allowed by policy");
    // An approver of any type, and an admin, may decide.
    a.respond(as_("tok-bob", reject(&db.id, "")))
        .await
        .expect("bob approves any type");
    a.respond(as_("tok-root", approve(&deploy.id, "")))
        .await
        .expect("admin may decide");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_names_the_authenticated_principal_in_its_response_metadata_and_only_with_auth_on()
{
    let principal = |watch: &tonic::Response<_>| {
        watch
            .metadata()
            .get(approval_client::PRINCIPAL_METADATA)
            .map(|v: &tonic::metadata::MetadataValue<_>| v.to_str().unwrap_or("?").to_string())
    };
    let (d, _dir) = secured(Store::Memory, |_| {}).await;
    let mut secure = d.a().await;
    let watch = secure
        .watch_pending(as_("tok-alice", v1::WatchPendingRequest::default()))
        .await
        .expect("watch");
    assert_eq!(principal(&watch).as_deref(), Some("alice"));

    let open = Deployment::start(Store::Memory).await;
    let mut client = open.a().await;
    let watch = client
        .watch_pending(v1::WatchPendingRequest::default())
        .await
        .expect("watch");
    assert_eq!(
        principal(&watch),
        None,
        "no principal is claimed with auth off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_sees_only_what_it_requested_or_may_decide() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let mine = create_as(&mut a, "tok-agent-a", "db:drop").await;
    let theirs = create_as(&mut a, "tok-agent-b", "db:migrate").await;
    let deploy = create_as(&mut a, "tok-agent-b", "deploy:prod").await;

    let err = a
        .get_approval(as_(
            "tok-agent-a",
            v1::GetApprovalRequest {
                id: theirs.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = a
        .await_approval(as_(
            "tok-agent-a",
            v1::AwaitApprovalRequest {
                id: theirs.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let ids = |token: &'static str| {
        let mut a = a.clone();
        async move {
            let mut ids: Vec<String> = a
                .list_approvals(as_(token, v1::ListApprovalsRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .approvals
                .into_iter()
                .map(|x| x.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids("tok-agent-a").await, vec![mine.id.clone()]);
    assert_eq!(
        ids("tok-alice").await,
        vec![deploy.id.clone()],
        "alice decides deploy:* only"
    );
    assert_eq!(
        ids("tok-root").await,
        sorted(vec![mine.id.clone(), theirs.id.clone(), deploy.id.clone()])
    );
    assert!(ids("tok-nobody").await.is_empty());

    let synced = synced_watch(&mut a, as_("tok-alice", v1::WatchPendingRequest::default())).await;
    let shown: Vec<_> = synced.snapshot.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(shown, [deploy.id.as_str()]);
    let mut watch = synced.stream;
    create_as(&mut a, "tok-agent-a", "db:drop").await;
    let visible = create_as(&mut a, "tok-agent-a", "deploy:staging").await;
    let next = next_event(&mut watch).await;
    assert!(
        matches!(&next.event, Some(v1::watch_pending_response::Event::Added(x)) if x.id == visible.id),
        "only what alice may decide: {next:?}"
    );
}

/// Live changes are encoded once per replica and the bytes shared by every
/// watcher that gets them: each watcher must still get only its own
/// principal's share. Several watchers per principal, on one replica; the
/// changes made through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_of_different_principals_each_see_only_what_their_principal_may_see() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let principals = [
        "tok-agent-a",
        "tok-agent-b",
        "tok-alice",
        "tok-bob",
        "tok-root",
        "tok-nobody",
        "tok-dev",
    ];
    const PER_PRINCIPAL: usize = 4;
    let mut watchers = Vec::new();
    for token in principals {
        for _ in 0..PER_PRINCIPAL {
            let request = as_(token, v1::WatchPendingRequest::default());
            let watch = synced_watch(&mut a, request).await.expect_empty();
            watchers.push((token, watch));
        }
    }

    let created = [
        create_as(&mut b, "tok-agent-a", "deploy:prod").await,
        create_as(&mut b, "tok-agent-a", "db:drop").await,
        create_as(&mut b, "tok-agent-b", "deploy:staging").await,
        create_as(&mut b, "tok-agent-b", "dev:sandbox").await,
        create_as(&mut b, "tok-dev", "dev:tooling").await,
    ];
    // One resolved: its `resolved` event goes to those who saw it added.
    b.respond(as_("tok-alice", reject(&created[2].id, "alice")))
        .await
        .expect("alice decides deploy:*");

    // What each principal may see, as listing shows it.
    let mut may_see = std::collections::HashMap::new();
    for token in principals {
        let listed: Vec<String> = b
            .list_approvals(as_(token, v1::ListApprovalsRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .approvals
            .into_iter()
            .map(|x| x.id)
            .collect();
        may_see.insert(token, listed);
    }
    assert_eq!(
        may_see["tok-root"].len(),
        created.len(),
        "an admin sees all"
    );
    assert!(may_see["tok-nobody"].is_empty());
    assert_eq!(may_see["tok-agent-a"].len(), 2, "a requester sees its own");
    assert!(
        may_see
            .values()
            .any(|ids| !ids.is_empty() && ids.len() < created.len()),
        "some principal sees a part only"
    );

    let ids: Vec<String> = created.iter().map(|x| x.id.clone()).collect();
    let mut readers = tokio::task::JoinSet::new();
    for (token, mut watch) in watchers {
        let listed = may_see[token].clone();
        let ids = ids.clone();
        readers.spawn(async move {
            // In creation order: `added` for each it may see, then
            // `resolved` for the rejected one if it may see it.
            let mut expected: Vec<(&str, String)> = Vec::new();
            for id in ids.iter().filter(|id| listed.contains(id)) {
                expected.push(("added", id.clone()));
            }
            if listed.contains(&ids[2]) {
                expected.push(("resolved", ids[2].clone()));
            }
            let mut got = Vec::new();
            for _ in 0..expected.len() {
                got.push(match next_event(&mut watch).await.event {
                    Some(v1::watch_pending_response::Event::Added(x)) => ("added", x.id),
                    Some(v1::watch_pending_response::Event::Resolved(x)) => ("resolved", x.id),
                    other => panic!("{token}: unexpected {other:?}"),
                });
            }
            assert_eq!(got, expected, "{token}: exactly what it may see, in order");
            let more = tokio::time::timeout(Duration::from_millis(500), watch.message()).await;
            assert!(more.is_err(), "{token}: nothing more, got {more:?}");
        });
    }
    while let Some(read) = readers.join_next().await {
        read.expect("every watcher saw its share");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requester_or_an_admin_may_cancel() {
    let (d, _dir) = secured(Store::Redis, |_| {}).await;
    let mut a = d.a().await;
    let one = create_as(&mut a, "tok-agent-a", "deploy:prod").await;
    let two = create_as(&mut a, "tok-agent-a", "deploy:prod").await;
    let before = everything(&mut a).await;
    for stranger in ["tok-agent-b", "tok-alice"] {
        let err = a
            .cancel_approval(as_(
                stranger,
                v1::CancelApprovalRequest {
                    id: one.id.clone(),
                    reason: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{stranger}: {err:?}");
        assert!(
            err.message().contains("only its requester"),
            "{}",
            err.message()
        );
    }
    assert_eq!(everything(&mut a).await, before, "nothing changed");
    let cancelled = a
        .cancel_approval(as_(
            "tok-agent-a",
            v1::CancelApprovalRequest {
                id: one.id,
                reason: "no longer needed".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(cancelled.decided_by, "agent-a");
    let by_admin = a
        .cancel_approval(as_(
            "tok-root",
            v1::CancelApprovalRequest {
                id: two.id,
                reason: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(by_admin.decided_by, "root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_without_the_requester_role_may_not_create() {
    let (d, _dir) = secured(Store::Memory, |_| {}).await;
    let mut a = d.a().await;
    for token in ["tok-nobody", "tok-alice"] {
        let err = a
            .create_approval(as_(token, create_request("deploy:prod")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}");
        let err = a
            .request_approval(as_(token, request_request("deploy:prod")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}");
    }
    assert!(everything(&mut a).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_per_principal_across_reconnects() {
    let (d, _dir) = secured(Store::Memory, |c| {
        c.rate_limit = 1;
        c.rate_limit_burst = 5;
    })
    .await;
    // Counted, not timed: whatever the machine's speed, the calls accepted
    // over the elapsed time never exceed what the bucket allows (the burst
    // of 5, plus 1 per second, plus 1 for rounding). Stops after 3
    // refusals, or 60 calls on a machine too slow to be refused.
    let (burst, per_second) = (5.0, 1.0);
    let started = std::time::Instant::now();
    let (mut accepted, mut refused) = (0u32, 0u32);
    while refused < 3 && accepted + refused < 60 {
        // A new connection every time: the limit follows the principal.
        let mut fresh = d.a().await;
        match fresh
            .list_approvals(as_("tok-agent-a", v1::ListApprovalsRequest::default()))
            .await
        {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("rate limit"), "{}", e.message());
                let info = e.get_details_error_info().expect("ErrorInfo details");
                assert_eq!(info.reason, ErrorReason::RateLimited.reason());
                let retry = e.get_details_retry_info().expect("RetryInfo details");
                assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
                refused += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = burst + per_second * elapsed + 1.0;
    assert!(
        f64::from(accepted) <= allowed,
        "{accepted} calls accepted in {elapsed:.1} s against a burst of 5 at 1/s ({refused} refused)"
    );
    // Counted by kind, on the replica that refused.
    assert_eq!(
        d.replicas[0]
            .metric("approvald_limit_refusals_total{limit=\"rate_limited\"}")
            .await,
        Some(f64::from(refused))
    );
    // Another principal has its own budget.
    let mut a = d.a().await;
    a.list_approvals(as_("tok-agent-b", v1::ListApprovalsRequest::default()))
        .await
        .expect("agent-b is not limited by agent-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_approvals_per_requester_are_capped_on_every_replica() {
    let (d, _dir) = secured(Store::Redis, |c| c.max_open_per_requester = 2).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let first = create_as(&mut a, "tok-agent-a", "deploy:prod").await;
    create_as(&mut b, "tok-agent-a", "deploy:prod").await;
    let before = everything(&mut a).await;
    for client in [&mut a, &mut b] {
        let err = client
            .create_approval(as_("tok-agent-a", create_request("deploy:prod")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains("2 pending approvals"),
            "{}",
            err.message()
        );
        let info = err.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, ErrorReason::OpenApprovalsQuota.reason());
    }
    assert_eq!(everything(&mut a).await, before, "nothing changed");
    for replica in &d.replicas {
        let refused = replica
            .metric("approvald_limit_refusals_total{limit=\"open_approvals_quota\"}")
            .await;
        assert_eq!(refused, Some(1.0), "one refusal counted on each replica");
    }
    // Another requester is not affected; a decision frees a place.
    create_as(&mut a, "tok-agent-b", "deploy:prod").await;
    a.respond(as_("tok-alice", approve(&first.id, "")))
        .await
        .unwrap();
    create_as(&mut b, "tok-agent-a", "deploy:prod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_per_principal_are_capped_across_reconnects() {
    let (d, _dir) = secured(Store::Memory, |c| c.max_watchers_per_principal = 2).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = d.a().await;
        open.push(
            c.watch_pending(as_("tok-alice", v1::WatchPendingRequest::default()))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let mut c = d.a().await;
    let err = c
        .watch_pending(as_("tok-alice", v1::WatchPendingRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, ErrorReason::WatcherCap.reason());
    assert_eq!(
        info.metadata.get("scope").map(String::as_str),
        Some("principal")
    );
    assert_eq!(
        d.replicas[0]
            .metric("approvald_limit_refusals_total{limit=\"watcher_cap\"}")
            .await,
        Some(1.0)
    );
    // Closing one frees its place.
    drop(open.pop());
    let reopened = wait_for(PROMPTLY, || {
        let mut c = c.clone();
        async move {
            c.watch_pending(as_("tok-alice", v1::WatchPendingRequest::default()))
                .await
                .ok()
        }
    })
    .await;
    assert!(reopened.is_some(), "a closed watcher gives its place back");
}

// ---- mutual TLS ---------------------------------------------------------------

struct Pki {
    dir: PathBuf,
    ca_pem: String,
}

fn issue(
    cn: &str,
    sans: Vec<String>,
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (rcgen::Issuer::new(params, key), cert.pem())
}

fn pki(dir: &Path) -> Pki {
    let (issuer, ca_pem) = ca("approvald test CA");
    let (cert, key) = issue("localhost", vec!["localhost".into()], &issuer);
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    let (cert, key) = issue("ci-runner", vec![], &issuer);
    std::fs::write(dir.join("client.pem"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
    let (rogue, _) = ca("rogue CA");
    let (cert, key) = issue("ci-runner", vec![], &rogue);
    std::fs::write(dir.join("rogue.pem"), cert).unwrap();
    std::fs::write(dir.join("rogue.key"), key).unwrap();
    Pki {
        dir: dir.to_path_buf(),
        ca_pem,
    }
}

async fn tls_client(
    port: u16,
    pki: &Pki,
    client: Option<&str>,
) -> Result<ApprovalServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if let Some(name) = client {
        let cert = std::fs::read(pki.dir.join(format!("{name}.pem"))).unwrap();
        let key = std::fs::read(pki.dir.join(format!("{name}.key"))).unwrap();
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(ApprovalServiceClient::new(channel))
}

/// A raw TLS handshake with client certificate `name`, then the HTTP/2
/// preface: Ok once the server answers, or the TLS error it sent. (With
/// TLS 1.3 the server judges the client certificate after the client's
/// last handshake message, so its verdict arrives on the first read.)
async fn tls_handshake(
    port: u16,
    pki: &Pki,
    name: &str,
) -> Result<(), tokio_rustls::rustls::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::*};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(pki.dir.join(format!("{name}.pem"))).unwrap()];
    let key = PrivateKeyDer::from_pem_file(pki.dir.join(format!("{name}.key"))).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let unwrap_tls = |e: std::io::Error| match e.into_inner() {
        Some(inner) => match inner.downcast::<rustls::Error>() {
            Ok(tls) => *tls,
            Err(other) => panic!("not a TLS error: {other}"),
        },
        None => panic!("not a TLS error"),
    };
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(unwrap_tls)?;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .map_err(unwrap_tls)?;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("the server answers the handshake within 10 s");
    match read {
        Ok(0) => panic!("the server closed the connection without a TLS alert"),
        Ok(_) => Ok(()),
        Err(e) => Err(unwrap_tls(e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_names_the_principal_and_refuses_unknown_certificates() {
    let dir = auth_dir("");
    let pki = pki(&dir);
    let d = Deployment::start_with(Store::Memory, 1, |c| {
        c.auth_config = Some(dir.join("auth.toml"));
        c.tls_cert_file = Some(dir.join("server.pem"));
        c.tls_key_file = Some(dir.join("server.key"));
        c.tls_client_ca_file = Some(dir.join("ca.pem"));
        c.health_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let port = d.replicas[0].port;
    // Probes that speak neither TLS nor credentials use the plaintext
    // health port.
    let health_port = d.replicas[0].health_port.expect("health port");
    assert_eq!(
        health(health_port, "approval.v1.ApprovalService").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut known = tls_client(port, &pki, Some("client"))
        .await
        .expect("TLS connect");
    let created = known
        .create_approval(create_request("deploy:prod"))
        .await
        .expect("the certificate authenticates")
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(
        created.requester, "ci-runner",
        "principal from the certificate's CN"
    );

    // A certificate from another CA is refused by the TLS handshake itself:
    // the server answers it with a fatal "unknown CA" alert, before any
    // gRPC is spoken. The CA's own client certificate passes the same raw
    // handshake (so the check tells the two apart).
    tls_handshake(port, &pki, "client")
        .await
        .expect("a certificate of the configured CA completes the handshake");
    let refused = tls_handshake(port, &pki, "rogue").await;
    assert!(
        matches!(
            refused,
            Err(tokio_rustls::rustls::Error::AlertReceived(
                tokio_rustls::rustls::AlertDescription::UnknownCA
            ))
        ),
        "a certificate from another CA must fail the TLS handshake: {refused:?}"
    );
    // TLS without a certificate or token: unauthenticated.
    let mut anonymous = tls_client(port, &pki, None)
        .await
        .expect("TLS without a client certificate");
    let err = anonymous
        .create_approval(create_request("deploy:prod"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // ...but a token works over the same TLS.
    anonymous
        .create_approval(as_("tok-agent-a", create_request("deploy:prod")))
        .await
        .expect("token over TLS");
    let all = known
        .list_approvals(as_("tok-root", v1::ListApprovalsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .approvals;
    assert_eq!(all.len(), 2, "the refused calls created nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_reload_open_streams_and_waits_of_revoked_credentials_end() {
    let (d, dir) = secured(Store::Memory, |c| {
        c.auth_reload_interval = Duration::from_millis(100)
    })
    .await;
    let mut c = d.a().await;
    let pending = create_as(&mut c, "tok-dev", "deploy:api").await;
    let watch_as = async |token: &str| {
        let request = as_(token, v1::WatchPendingRequest::default());
        synced_watch(&mut c.clone(), request).await.stream
    };
    let mut alice = watch_as("tok-alice").await;
    let mut dev = watch_as("tok-dev").await;
    let mut bob = watch_as("tok-bob").await;
    let mut waiting_agent = c.clone();
    let agent_wait = tokio::spawn(async move {
        waiting_agent
            .request_approval(as_("tok-agent-a", request_request("deploy:db")))
            .await
    });
    let mut waiting_bob = c.clone();
    let id = pending.id.clone();
    let bob_wait = tokio::spawn(async move {
        waiting_bob
            .await_approval(as_("tok-bob", v1::AwaitApprovalRequest { id }))
            .await
    });
    until_waiting(&d.replicas[0], 2).await;

    // alice and agent-a are removed; dev loses its approver roles; bob stays.
    let kept: Vec<(&str, &str, &str)> = TOKENS
        .iter()
        .filter(|(token, _, _)| !["tok-alice", "tok-agent-a"].contains(token))
        .map(|&(token, principal, roles)| match token {
            "tok-dev" => (token, principal, r#"["requester"]"#),
            _ => (token, principal, roles),
        })
        .collect();
    std::fs::write(dir.join("auth.toml"), auth_toml(&kept, "")).unwrap();

    /// How the stream ends (events sent before the reload come first).
    async fn ended(stream: &mut tonic::Streaming<v1::WatchPendingResponse>) -> Code {
        loop {
            match tokio::time::timeout(PROMPTLY, stream.message()).await {
                Ok(Err(status)) => return status.code(),
                Ok(Ok(Some(_))) => continue,
                other => panic!("expected the stream to end with an error, got {other:?}"),
            }
        }
    }
    assert_eq!(ended(&mut alice).await, Code::Unauthenticated);
    assert_eq!(ended(&mut dev).await, Code::PermissionDenied);
    let agent = tokio::time::timeout(PROMPTLY, agent_wait)
        .await
        .expect("the wait ends")
        .unwrap();
    assert_eq!(agent.unwrap_err().code(), Code::Unauthenticated);

    // bob keeps his roles: his watch and his wait go on.
    let newer = create_as(&mut c, "tok-dev", "deploy:web").await;
    loop {
        let event = next_event(&mut bob).await;
        if matches!(&event.event, Some(v1::watch_pending_response::Event::Added(a)) if a.id == newer.id)
        {
            break;
        }
    }
    assert!(!bob_wait.is_finished());
    c.respond(as_("tok-root", approve(&pending.id, "root")))
        .await
        .expect("approve");
    let bob = tokio::time::timeout(PROMPTLY, bob_wait)
        .await
        .expect("the wait ends")
        .unwrap();
    assert!(bob.expect("bob's wait answered").into_inner().approved);
}
