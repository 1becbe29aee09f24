//! The API suite: every RPC of the README's "The API in one table" and the
//! guarantees the README and the proto comments promise, run against every
//! store. On Redis (a server or a Cluster) each test runs on two replicas
//! (calls go to A or B); on memory both are the same process.

use std::time::Duration;

use approval_client::v1;
use approval_client::v1::{ErrorMetadataKey as Key, ErrorReason};
use approval_tests::*;
use tonic::Code;
use tonic_types::StatusExt;

/// Declares `async fn $name(d: Deployment)` once and runs it on every
/// store: memory, one Redis server, and a Redis Cluster; on Redis and the
/// Cluster also with three partitions (`--redis-partitions 3`: the suite's
/// requester, `agent-7`, lands in partition 2, so every cursor names three
/// logs and the approvals live outside partition 0).
macro_rules! on_both_stores {
    ($(async fn $name:ident($d:ident: Deployment) $body:block)*) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(approval_tests::Deployment::start(approval_tests::Store::Memory).await).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(approval_tests::Deployment::start(approval_tests::Store::Redis).await).await })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(approval_tests::Deployment::start(approval_tests::Store::Cluster).await).await })*
        }
        mod redis_3_partitions {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::three_partitions(approval_tests::Store::Redis).await).await })*
        }
        mod cluster_3_partitions {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::three_partitions(approval_tests::Store::Cluster).await).await })*
        }
        $(async fn $name($d: Deployment) $body)*
    };
}

async fn three_partitions(store: Store) -> Deployment {
    Deployment::start_with(store, 2, |c| c.redis_partitions = 3).await
}

/// A cursor of the service's shape (one position per partition's log) far
/// ahead of its logs.
async fn cursor_from_the_future(client: &mut Client) -> String {
    let synced = synced_watch(client, v1::WatchPendingRequest::default())
        .await
        .cursor;
    let positions = synced.split('.').next().unwrap_or_default();
    positions
        .split(',')
        .map(|_| "99999999999999-0")
        .collect::<Vec<_>>()
        .join(",")
}

async fn wait_pending(client: &mut Client, approval_type: &str) -> v1::Approval {
    let end = std::time::Instant::now() + PROMPTLY;
    while std::time::Instant::now() < end {
        let page = client
            .list_approvals(v1::ListApprovalsRequest {
                approval_types: vec![approval_type.to_string()],
                statuses: vec![v1::ApprovalStatus::Pending as i32],
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        if let Some(a) = page.approvals.into_iter().next() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pending approval of type {approval_type} appeared");
}

fn field_of(status: &tonic::Status) -> String {
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// `google.protobuf.Value` builders for contexts with every JSON kind.
fn num(n: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::NumberValue(n)),
    }
}

fn text(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

fn object(fields: Vec<(&str, prost_types::Value)>) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// A context whose RFC 8785 form is
/// `{"action":"deploy","nested":{"list":[1,2.5,true,null,"x"],"z":1e+21},"size":0.000001,"target":"production"}`
/// (keys sorted, ECMAScript number forms), and the SHA-256 of those bytes
/// (computed independently with `printf '%s' ... | sha256sum`).
fn mixed_context() -> (prost_types::Struct, &'static str) {
    use prost_types::value::Kind;
    let list = prost_types::ListValue {
        values: vec![
            num(1.0),
            num(2.5),
            prost_types::Value {
                kind: Some(Kind::BoolValue(true)),
            },
            prost_types::Value {
                kind: Some(Kind::NullValue(0)),
            },
            text("x"),
        ],
    };
    let nested = object(vec![
        ("z", num(1e21)),
        (
            "list",
            prost_types::Value {
                kind: Some(Kind::ListValue(list)),
            },
        ),
    ]);
    let context = object(vec![
        ("target", text("production")),
        ("size", num(0.000001)),
        ("action", text("deploy")),
        (
            "nested",
            prost_types::Value {
                kind: Some(Kind::StructValue(nested)),
            },
        ),
    ]);
    (
        context,
        "sha256:998e1e330f78595f75cdd39d9e4e449116d6caa5f5c30274b553a55b72ab723c",
    )
}

on_both_stores! {
    async fn request_approval_blocks_until_a_human_approves(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let waiter = tokio::spawn(async move {
            a.request_approval(request_request("deploy:prod")).await
        });
        let pending = wait_pending(&mut b, "deploy:prod").await;
        assert_eq!(status(&pending), v1::ApprovalStatus::Pending);
        assert!(!waiter.is_finished(), "RequestApproval returned before any decision");
        b.respond(approve(&pending.id, "alice")).await.expect("respond");
        let answer = waiter.await.unwrap().expect("request_approval").into_inner();
        assert!(answer.approved);
        let approval = answer.approval.unwrap();
        assert_eq!(approval.id, pending.id);
        assert_eq!(status(&approval), v1::ApprovalStatus::Approved);
        assert_eq!(approval.decided_by, "alice");
        assert_eq!(approval.reason, "looks good");
        assert!(approval.decided_at.is_some());
        assert_eq!(approval.requester, "agent-7");
    }

    async fn a_rejection_reaches_the_waiter_as_not_approved(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let created = create(&mut a, "db:drop").await;
        let waiter = spawn_await(&a, &created.id);
        b.respond(reject(&created.id, "bob")).await.expect("respond");
        let answer = waiter.await.unwrap().expect("await").into_inner();
        assert!(!answer.approved);
        let approval = answer.approval.unwrap();
        assert_eq!(status(&approval), v1::ApprovalStatus::Rejected);
        assert_eq!(approval.reason, "not now");
        assert_eq!(approval.decided_by, "bob");
    }

    async fn await_on_a_final_approval_returns_at_once(d: Deployment) {
        let mut a = d.a().await;
        let created = create(&mut a, "t").await;
        a.respond(approve(&created.id, "alice")).await.unwrap();
        let mut req = tonic::Request::new(v1::AwaitApprovalRequest { id: created.id.clone() });
        req.set_timeout(Duration::from_secs(5));
        let answer = a.await_approval(req).await.expect("await").into_inner();
        assert!(answer.approved);
    }

    async fn create_returns_a_pending_approval_with_its_fields(d: Deployment) {
        let mut a = d.a().await;
        let mut req = create_request("deploy:prod");
        req.labels = [("team".to_string(), "infra".to_string())].into();
        req.timeout = Some(millis(Duration::from_secs(60)));
        let reply = a.create_approval(req).await.unwrap().into_inner();
        assert!(reply.created);
        let approval = reply.approval.unwrap();
        assert!(uuid::Uuid::parse_str(&approval.id).unwrap().get_version_num() == 7);
        assert_eq!(status(&approval), v1::ApprovalStatus::Pending);
        assert_eq!(approval.labels.get("team").map(String::as_str), Some("infra"));
        assert_eq!(approval.context, Some(context(&[("action", "deploy"), ("target", "production")])));
        let created = approval.created_at.unwrap();
        let deadline = approval.deadline.unwrap();
        assert_eq!(deadline.seconds - created.seconds, 60);
        assert!(approval.decided_at.is_none() && approval.decided_by.is_empty());
        let mut b = d.b().await;
        assert_eq!(get(&mut b, &approval.id).await, approval);
    }

    async fn the_default_timeout_is_five_minutes(d: Deployment) {
        let mut a = d.a().await;
        let approval = create(&mut a, "t").await;
        let span = approval.deadline.unwrap().seconds - approval.created_at.unwrap().seconds;
        assert_eq!(span, 300);
    }

    async fn second_conflicting_response_is_refused_and_names_the_winner(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let created = create(&mut a, "t").await;
        a.respond(approve(&created.id, "alice")).await.expect("first wins");
        let err = b.respond(reject(&created.id, "bob")).await.expect_err("conflict refused");
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("approved") && err.message().contains("alice"), "{}", err.message());
        let info = err.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, ErrorReason::AlreadyFinal.reason());
        assert_eq!(info.metadata.get(&Key::DecidedBy.key()).map(String::as_str), Some("alice"));
        assert_eq!(info.metadata.get(&Key::Status.key()).map(String::as_str), Some("approved"));
        // A different responder with the same decision is a conflict too.
        let err = b.respond(approve(&created.id, "carol")).await.expect_err("not the winner");
        assert_eq!(err.code(), Code::FailedPrecondition);
        let after = get(&mut b, &created.id).await;
        assert_eq!(after.decided_by, "alice");
        assert_eq!(status(&after), v1::ApprovalStatus::Approved);
    }

    async fn an_identical_retried_response_returns_ok(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let created = create(&mut a, "t").await;
        let first = a.respond(approve(&created.id, "alice")).await.unwrap().into_inner();
        let again = b.respond(approve(&created.id, "alice")).await.expect("retry is OK").into_inner();
        assert_eq!(first.approval, again.approval);
    }

    async fn a_response_to_an_unknown_id_is_not_found(d: Deployment) {
        let mut a = d.a().await;
        let unknown = uuid::Uuid::now_v7().to_string();
        let err = a.respond(approve(&unknown, "alice")).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert!(err.message().contains(&unknown));
        let err = a.get_approval(v1::GetApprovalRequest { id: unknown.clone() }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = a.await_approval(v1::AwaitApprovalRequest { id: unknown.clone() }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err = a.cancel_approval(v1::CancelApprovalRequest { id: unknown, reason: String::new() }).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }

    async fn cancel_wakes_the_waiter_with_cancelled(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let created = create(&mut a, "t").await;
        let waiter = spawn_await(&a, &created.id);
        let cancelled = b
            .cancel_approval(v1::CancelApprovalRequest { id: created.id.clone(), reason: "not needed".into() })
            .await
            .expect("cancel")
            .into_inner()
            .approval
            .unwrap();
        assert_eq!(status(&cancelled), v1::ApprovalStatus::Cancelled);
        assert_eq!(cancelled.decided_by, "agent-7", "the requester withdrew it");
        let answer = waiter.await.unwrap().expect("await").into_inner();
        assert!(!answer.approved);
        assert_eq!(status(&answer.approval.unwrap()), v1::ApprovalStatus::Cancelled);
        let err = b.respond(approve(&created.id, "alice")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("cancelled"), "{}", err.message());
        // Cancelling again is a retry of the same withdrawal: OK.
        b.cancel_approval(v1::CancelApprovalRequest { id: created.id, reason: "not needed".into() })
            .await
            .expect("repeat cancel is OK");
    }

    async fn at_its_deadline_an_approval_expires_and_the_waiter_returns_not_approved(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let mut req = request_request("t");
        req.timeout = Some(millis(Duration::from_millis(300)));
        let answer = a.request_approval(req).await.expect("request").into_inner();
        assert!(!answer.approved);
        let approval = answer.approval.unwrap();
        assert_eq!(status(&approval), v1::ApprovalStatus::Expired);
        assert_eq!(approval.decided_at, approval.deadline, "expired exactly at its deadline");
        assert!(!approval.reason.is_empty());
        let err = b.respond(approve(&approval.id, "alice")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("expired"), "{}", err.message());
        assert_eq!(status(&get(&mut b, &approval.id).await), v1::ApprovalStatus::Expired);
    }

    async fn an_approval_nobody_waits_on_still_expires(d: Deployment) {
        let mut a = d.a().await;
        let mut req = create_request("t");
        req.timeout = Some(millis(Duration::from_millis(200)));
        let created = a.create_approval(req).await.unwrap().into_inner().approval.unwrap();
        let b = d.b().await;
        let expired = eventually(PROMPTLY, || {
            let mut b = b.clone();
            let id = created.id.clone();
            async move { status(&get(&mut b, &id).await) == v1::ApprovalStatus::Expired }
        })
        .await;
        assert!(expired, "the reaper expired it");
    }

    async fn the_same_idempotency_key_attaches_to_the_same_approval(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let mut req = create_request("deploy:prod");
        req.idempotency_key = "run-42".into();
        let first = a.create_approval(req.clone()).await.unwrap().into_inner();
        let second = b.create_approval(req.clone()).await.unwrap().into_inner();
        assert!(first.created && !second.created);
        assert_eq!(first.approval, second.approval);
        // Another requester with the same key gets its own approval.
        let mut other = req.clone();
        other.agent_id = "agent-8".into();
        let third = a.create_approval(other).await.unwrap().into_inner();
        assert!(third.created);
        assert_ne!(third.approval.unwrap().id, first.approval.as_ref().unwrap().id);
        // The same key for a different request is refused.
        let mut different = req;
        different.approval_type = "db:drop".into();
        let err = a.create_approval(different).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("run-42"), "{}", err.message());
    }

    async fn an_idempotency_key_reused_for_a_different_request_is_refused_and_names_the_approval(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let mut req = create_request("deploy:prod");
        req.idempotency_key = "release-2.4.1".into();
        req.context = Some(context(&[("version", "2.4.1")]));
        req.labels = [("team".to_string(), "infra".to_string())].into();
        req.timeout = Some(millis(Duration::from_secs(120)));
        let first = a.create_approval(req.clone()).await.unwrap().into_inner();
        let id = first.approval.unwrap().id;
        b.respond(approve(&id, "alice")).await.unwrap();
        let variants = [
            ("context", v1::CreateApprovalRequest { context: Some(context(&[("version", "9.9.9")])), ..req.clone() }),
            ("type", v1::CreateApprovalRequest { approval_type: "deploy:staging".into(), ..req.clone() }),
            ("labels", v1::CreateApprovalRequest { labels: [("team".to_string(), "web".to_string())].into(), ..req.clone() }),
            ("no labels", v1::CreateApprovalRequest { labels: Default::default(), ..req.clone() }),
            ("timeout", v1::CreateApprovalRequest { timeout: Some(millis(Duration::from_secs(121))), ..req.clone() }),
            ("default timeout", v1::CreateApprovalRequest { timeout: None, ..req.clone() }),
        ];
        for (what, different) in variants {
            let err = b.create_approval(different.clone()).await.expect_err(what);
            assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
            assert!(err.message().contains(&id) && err.message().contains("release-2.4.1"), "{what}: {}", err.message());
            let info = err.get_details_error_info().expect("ErrorInfo details");
            assert_eq!(info.reason, ErrorReason::IdempotencyKeyReused.reason(), "{what}");
            assert_eq!(info.metadata.get(&Key::Id.key()), Some(&id), "{what}");
            // RequestApproval must not hand the approval to the other payload.
            let blocking = v1::RequestApprovalRequest {
                approval_type: different.approval_type, agent_id: different.agent_id,
                context: different.context, labels: different.labels, timeout: different.timeout,
                idempotency_key: different.idempotency_key,
            };
            let err = a.request_approval(blocking).await.expect_err(what);
            assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
        }
        // The identical request re-attaches, decision included.
        let again = b.create_approval(req.clone()).await.unwrap().into_inner();
        assert!(!again.created);
        let again = again.approval.unwrap();
        assert_eq!((again.id.as_str(), status(&again)), (id.as_str(), v1::ApprovalStatus::Approved));
        let blocking = v1::RequestApprovalRequest {
            approval_type: req.approval_type, agent_id: req.agent_id, context: req.context,
            labels: req.labels, timeout: req.timeout, idempotency_key: req.idempotency_key,
        };
        assert!(a.request_approval(blocking).await.unwrap().into_inner().approved);
    }

    async fn concurrent_creates_with_one_key_and_different_contexts_make_one_approval(d: Deployment) {
        let clients = [d.a().await, d.b().await];
        let mut calls = Vec::new();
        for i in 0..20 {
            let mut c = clients[i % 2].clone();
            let mut req = create_request("race");
            req.idempotency_key = "one-key".into();
            req.context = Some(context(&[("n", &(i % 2).to_string())]));
            calls.push(tokio::spawn(async move { (i % 2, c.create_approval(req).await) }));
        }
        let (mut created, mut ids, mut winners, mut refused) = (0, std::collections::HashSet::new(), std::collections::HashSet::new(), 0);
        for call in calls {
            match call.await.unwrap() {
                (n, Ok(reply)) => {
                    let reply = reply.into_inner();
                    created += usize::from(reply.created);
                    ids.insert(reply.approval.unwrap().id);
                    winners.insert(n);
                }
                (_, Err(e)) => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
                    refused += 1;
                }
            }
        }
        assert_eq!((created, ids.len(), winners.len()), (1, 1, 1), "one approval, for one of the two payloads");
        assert_eq!(refused, 10, "every call with the other payload is refused");
    }

    async fn a_requester_that_drops_its_call_reattaches_and_gets_the_decision_made_meanwhile(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let mut req = request_request("deploy:prod");
        req.idempotency_key = "job-1".into();
        // The first call gives up (its gRPC deadline) while still pending.
        let mut first = tonic::Request::new(req.clone());
        first.set_timeout(Duration::from_millis(500));
        let err = a.request_approval(first).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        let pending = wait_pending(&mut b, "deploy:prod").await;
        assert_eq!(status(&pending), v1::ApprovalStatus::Pending, "it stays pending");
        b.respond(approve(&pending.id, "alice")).await.unwrap();
        // Re-attach on the other replica: the decision made while away.
        let answer = b.request_approval(req).await.expect("re-attach").into_inner();
        assert!(answer.approved);
        assert_eq!(answer.approval.unwrap().id, pending.id);
    }

    async fn list_filters_by_status_type_agent_and_labels(d: Deployment) {
        let mut a = d.a().await;
        let mk = |t: &str, agent: &str, team: &str| {
            let mut r = create_request(t);
            r.agent_id = agent.into();
            r.labels = [("team".to_string(), team.to_string())].into();
            r
        };
        let one = a.create_approval(mk("deploy:prod", "a1", "infra")).await.unwrap().into_inner().approval.unwrap();
        let two = a.create_approval(mk("deploy:staging", "a2", "web")).await.unwrap().into_inner().approval.unwrap();
        let three = a.create_approval(mk("db:drop", "a1", "infra")).await.unwrap().into_inner().approval.unwrap();
        a.respond(approve(&three.id, "alice")).await.unwrap();
        let b = d.b().await;
        let ids = |req: v1::ListApprovalsRequest| {
            let mut b = b.clone();
            async move {
                b.list_approvals(req).await.unwrap().into_inner().approvals.into_iter().map(|a| a.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(Default::default()).await, vec![three.id.clone(), two.id.clone(), one.id.clone()], "newest first");
        assert_eq!(ids(v1::ListApprovalsRequest { statuses: vec![v1::ApprovalStatus::Pending as i32], ..Default::default() }).await, vec![two.id.clone(), one.id.clone()]);
        assert_eq!(ids(v1::ListApprovalsRequest { statuses: vec![v1::ApprovalStatus::Approved as i32], ..Default::default() }).await, vec![three.id.clone()]);
        assert_eq!(ids(v1::ListApprovalsRequest { approval_types: vec!["deploy:*".into()], ..Default::default() }).await, vec![two.id.clone(), one.id.clone()]);
        assert_eq!(ids(v1::ListApprovalsRequest { agent_id: "a1".into(), ..Default::default() }).await, vec![three.id.clone(), one.id.clone()]);
        assert_eq!(ids(v1::ListApprovalsRequest { labels: [("team".to_string(), "web".to_string())].into(), ..Default::default() }).await, vec![two.id.clone()]);
    }

    async fn list_pages_cover_everything_once(d: Deployment) {
        let mut a = d.a().await;
        let mut made = Vec::new();
        for _ in 0..23 {
            made.push(create(&mut a, "page:test").await.id);
        }
        made.reverse();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = a
                .list_approvals(v1::ListApprovalsRequest { page_size: 5, page_token: token.clone(), ..Default::default() })
                .await
                .unwrap()
                .into_inner();
            assert!(page.approvals.len() <= 5);
            seen.extend(page.approvals.into_iter().map(|a| a.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, made);
    }

    async fn list_pages_of_large_approvals_fit_the_message_limit_and_cover_everything(d: Deployment) {
        // 80 approvals of about 60 KB: 4.8 MB, more than the 4 MiB a gRPC
        // client accepts in one message by default.
        let mut a = d.a().await;
        let big = "x".repeat(60 * 1024);
        let mut made = Vec::new();
        for _ in 0..80 {
            let mut req = create_request("page:big");
            req.context = Some(context(&[("blob", &big)]));
            made.push(a.create_approval(req).await.unwrap().into_inner().approval.unwrap().id);
        }
        made.reverse();
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = a
                .list_approvals(v1::ListApprovalsRequest { page_size: 100, page_token: token.clone(), ..Default::default() })
                .await
                .expect("every page fits in one message")
                .into_inner();
            pages += 1;
            assert!(!page.approvals.is_empty(), "a page holds at least one approval");
            seen.extend(page.approvals.into_iter().map(|a| a.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert!(pages >= 2, "the byte bound split the list");
        assert_eq!(seen, made, "every approval once, newest first");
    }

    async fn watch_pending_sends_the_snapshot_then_synced_then_live_changes(d: Deployment) {
        let mut a = d.a().await;
        let first = create(&mut a, "w").await;
        let second = create(&mut a, "w").await;
        let done = create(&mut a, "w").await;
        a.respond(approve(&done.id, "alice")).await.unwrap();
        let _other = create(&mut a, "other").await;

        let mut b = d.b().await;
        let mut stream = b
            .watch_pending(v1::WatchPendingRequest { approval_types: vec!["w".into()], ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        use v1::watch_pending_response::Event;
        let e1 = next_event(&mut stream).await;
        let e2 = next_event(&mut stream).await;
        assert!(matches!(&e1.event, Some(Event::Added(x)) if x.id == first.id), "{e1:?}");
        assert!(matches!(&e2.event, Some(Event::Added(x)) if x.id == second.id), "oldest first: {e2:?}");
        let synced = next_event(&mut stream).await;
        assert!(matches!(synced.event, Some(Event::Synced(_))), "{synced:?}");
        assert!(!synced.cursor.is_empty());

        let live = create(&mut a, "w").await;
        let e = next_event(&mut stream).await;
        assert!(matches!(&e.event, Some(Event::Added(x)) if x.id == live.id), "{e:?}");
        a.respond(reject(&first.id, "bob")).await.unwrap();
        let e = next_event(&mut stream).await;
        match &e.event {
            Some(Event::Resolved(x)) => {
                assert_eq!(x.id, first.id);
                assert_eq!(status(x), v1::ApprovalStatus::Rejected);
                assert_eq!(x.decided_by, "bob");
            }
            other => panic!("expected resolved, got {other:?}"),
        }
        assert!(!e.cursor.is_empty());
    }

    async fn a_watcher_that_reconnects_with_its_cursor_misses_nothing_and_sees_nothing_twice(d: Deployment) {
        use v1::watch_pending_response::Event;
        let mut a = d.a().await;
        let mut stream = a.watch_pending(v1::WatchPendingRequest::default()).await.unwrap().into_inner();
        let synced = next_event(&mut stream).await;
        assert!(matches!(synced.event, Some(Event::Synced(_))));
        let before = create(&mut a, "r").await;
        let seen = next_event(&mut stream).await;
        assert!(matches!(&seen.event, Some(Event::Added(x)) if x.id == before.id));
        let cursor = seen.cursor.clone();
        drop(stream);

        // While away: three changes.
        let x = create(&mut a, "r").await;
        a.respond(approve(&before.id, "alice")).await.unwrap();
        let y = create(&mut a, "r").await;

        let mut b = d.b().await;
        let mut resumed = b
            .watch_pending(v1::WatchPendingRequest { cursor, ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        for _ in 0..3 {
            let e = next_event(&mut resumed).await;
            got.push(match e.event {
                Some(Event::Added(a)) => format!("added {}", a.id),
                Some(Event::Resolved(a)) => format!("resolved {}", a.id),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(got, vec![format!("added {}", x.id), format!("resolved {}", before.id), format!("added {}", y.id)]);
        // And then live, with nothing repeated.
        let z = create(&mut a, "r").await;
        let e = next_event(&mut resumed).await;
        assert!(matches!(&e.event, Some(Event::Added(a)) if a.id == z.id), "{e:?}");
    }

    async fn a_malformed_or_unknown_cursor_is_refused(d: Deployment) {
        let mut a = d.a().await;
        let err = a.watch_pending(v1::WatchPendingRequest { cursor: "yesterday".into(), ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(field_of(&err), "cursor");
        let cursor = cursor_from_the_future(&mut a).await;
        let err = a.watch_pending(v1::WatchPendingRequest { cursor, ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    }

    async fn every_invalid_request_is_refused_naming_the_field_and_changes_nothing(d: Deployment) {
        let mut a = d.a().await;
        let existing = create(&mut a, "keep").await;
        let snapshot = a.list_approvals(v1::ListApprovalsRequest::default()).await.unwrap().into_inner();

        let big_context = context(&[("blob", &"x".repeat(70 * 1024))]);
        let too_many_labels = (0..65).map(|i| (format!("k{i}"), "v".to_string())).collect();
        let mut creates: Vec<(&str, v1::CreateApprovalRequest)> = vec![
            ("approval_type", v1::CreateApprovalRequest { approval_type: String::new(), ..create_request("x") }),
            ("approval_type", create_request("has space")),
            ("approval_type", create_request(&"a".repeat(129))),
            ("agent_id", v1::CreateApprovalRequest { agent_id: "bad\nagent".into(), ..create_request("x") }),
            ("context", v1::CreateApprovalRequest { context: Some(big_context), ..create_request("x") }),
            ("labels", v1::CreateApprovalRequest { labels: too_many_labels, ..create_request("x") }),
            ("timeout", v1::CreateApprovalRequest { timeout: Some(prost_types::Duration { seconds: 0, nanos: 0 }), ..create_request("x") }),
            ("timeout", v1::CreateApprovalRequest { timeout: Some(prost_types::Duration { seconds: -5, nanos: 0 }), ..create_request("x") }),
            ("timeout", v1::CreateApprovalRequest { timeout: Some(prost_types::Duration { seconds: 8 * 24 * 3600, nanos: 0 }), ..create_request("x") }),
            ("idempotency_key", v1::CreateApprovalRequest { idempotency_key: "k".repeat(200), ..create_request("x") }),
        ];
        creates.push(("labels[\"bad key\"]", v1::CreateApprovalRequest { labels: [("bad key".to_string(), "v".to_string())].into(), ..create_request("x") }));
        for (field, req) in creates {
            let err = a.create_approval(req.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
            assert_eq!(field_of(&err), field, "{}", err.message());
            assert!(err.message().starts_with(field), "{}", err.message());
            let request = v1::RequestApprovalRequest {
                approval_type: req.approval_type, agent_id: req.agent_id, context: req.context,
                labels: req.labels, timeout: req.timeout, idempotency_key: req.idempotency_key,
            };
            let err = a.request_approval(request).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        }

        let bad_ids = ["", "not-a-uuid", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"];
        for id in bad_ids {
            let err = a.get_approval(v1::GetApprovalRequest { id: id.into() }).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, "id".to_string()), "{id:?}");
            let err = a.await_approval(v1::AwaitApprovalRequest { id: id.into() }).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, "id".to_string()));
            let err = a.respond(approve(id, "alice")).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, "id".to_string()));
            let err = a.cancel_approval(v1::CancelApprovalRequest { id: id.into(), reason: String::new() }).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, "id".to_string()));
        }
        let responds = [
            ("decision", v1::RespondRequest { decision: 0, ..approve(&existing.id, "alice") }),
            ("decision", v1::RespondRequest { decision: 9, ..approve(&existing.id, "alice") }),
            ("responder", approve(&existing.id, "")),
            ("reason", v1::RespondRequest { reason: "r".repeat(5000), ..approve(&existing.id, "alice") }),
        ];
        for (field, req) in responds {
            let err = a.respond(req).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, field.to_string()), "{}", err.message());
        }
        let err = a.cancel_approval(v1::CancelApprovalRequest { id: existing.id.clone(), reason: "r".repeat(5000) }).await.unwrap_err();
        assert_eq!(field_of(&err), "reason");
        let lists = [
            ("statuses[0]", v1::ListApprovalsRequest { statuses: vec![42], ..Default::default() }),
            ("approval_types[0]", v1::ListApprovalsRequest { approval_types: vec!["a*b*".into()], ..Default::default() }),
            ("page_size", v1::ListApprovalsRequest { page_size: -1, ..Default::default() }),
            ("page_token", v1::ListApprovalsRequest { page_token: "garbage".into(), ..Default::default() }),
        ];
        for (field, req) in lists {
            let err = a.list_approvals(req).await.unwrap_err();
            assert_eq!((err.code(), field_of(&err)), (Code::InvalidArgument, field.to_string()), "{}", err.message());
        }
        let err = a.watch_pending(v1::WatchPendingRequest { approval_types: vec!["".into()], ..Default::default() }).await.unwrap_err();
        assert_eq!(field_of(&err), "approval_types[0]");

        // Nothing changed: the same approvals, and `existing` still pending.
        let after = a.list_approvals(v1::ListApprovalsRequest::default()).await.unwrap().into_inner();
        assert_eq!(after, snapshot);
        assert_eq!(status(&get(&mut a, &existing.id).await), v1::ApprovalStatus::Pending);
    }

    async fn a_message_over_the_size_limit_is_refused(d: Deployment) {
        let mut a = d.a().await;
        let huge = context(&[("blob", &"x".repeat(2 * 1024 * 1024))]);
        let err = a
            .create_approval(v1::CreateApprovalRequest { context: Some(huge), ..create_request("x") })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("too large"), "{}", err.message());
    }

    async fn context_digest_is_the_sha256_of_the_rfc8785_canonical_context(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let (ctx, digest) = mixed_context();
        let mut req = create_request("deploy:prod");
        req.context = Some(ctx);
        let created = a.create_approval(req).await.unwrap().into_inner().approval.unwrap();
        assert_eq!(created.context_digest, digest);
        // Stored, not only computed on the way out: another replica reads it,
        // and so do list and the final record.
        assert_eq!(get(&mut b, &created.id).await.context_digest, digest);
        let decided = b.respond(approve(&created.id, "alice")).await.unwrap().into_inner();
        assert_eq!(decided.approval.unwrap().context_digest, digest);
    }

    async fn respond_with_another_context_digest_is_refused_and_changes_nothing(d: Deployment) {
        let mut a = d.a().await;
        let mut b = d.b().await;
        let created = create(&mut a, "refund").await;
        let crafted = format!("sha256:{}", "0".repeat(64));
        let mut req = approve(&created.id, "alice");
        req.expected_context_digest = crafted.clone();
        let err = b.respond(req).await.expect_err("digest mismatch refused");
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("expected_context_digest"), "{}", err.message());
        let info = err.get_details_error_info().expect("ErrorInfo details");
        assert_eq!(info.reason, ErrorReason::ContextDigestMismatch.reason());
        assert_eq!(info.metadata.get(&Key::ContextDigest.key()), Some(&created.context_digest));
        assert_eq!(info.metadata.get(&Key::ExpectedContextDigest.key()), Some(&crafted));
        assert_eq!(get(&mut a, &created.id).await, created, "a refused decision changed the approval");
        // The digest the human saw is accepted.
        let mut req = approve(&created.id, "alice");
        req.expected_context_digest = created.context_digest.clone();
        let decided = b.respond(req).await.expect("matching digest").into_inner().approval.unwrap();
        assert_eq!(status(&decided), v1::ApprovalStatus::Approved);
    }

    async fn malformed_expected_context_digest_is_invalid_and_names_the_field(d: Deployment) {
        let mut a = d.a().await;
        let created = create(&mut a, "t").await;
        for bad in ["md5:abc", "sha256:XYZ", "998e1e330f78595f75cdd39d9e4e449116d6caa5f5c30274b553a55b72ab723c"] {
            let mut req = approve(&created.id, "alice");
            req.expected_context_digest = bad.to_string();
            let err = a.respond(req).await.expect_err("malformed digest refused");
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
            assert_eq!(field_of(&err), "expected_context_digest");
        }
        assert_eq!(status(&get(&mut a, &created.id).await), v1::ApprovalStatus::Pending);
    }

    async fn a_context_with_nan_or_infinity_is_refused_naming_the_path(d: Deployment) {
        let mut a = d.a().await;
        for bad in [f64::NAN, f64::INFINITY] {
            let mut req = create_request("t");
            req.context = Some(object(vec![("cost", prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(object(vec![("usd", num(bad))]))),
            })]));
            let err = a.create_approval(req).await.expect_err("non-JSON number refused");
            assert_eq!(err.code(), Code::InvalidArgument);
            assert_eq!(field_of(&err), "context");
            assert!(err.message().contains("cost.usd"), "{}", err.message());
        }
    }

    async fn a_cursor_from_the_future_is_told_it_is_ahead_of_the_event_log(d: Deployment) {
        let mut a = d.a().await;
        create(&mut a, "now").await;
        let cursor = cursor_from_the_future(&mut a).await;
        let err = a.watch_pending(v1::WatchPendingRequest { cursor, ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("ahead of the event log"), "{}", err.message());
        assert!(!err.message().contains("older"), "{}", err.message());
    }
}

/// A memory deployment: for checks of request validation, which runs
/// before any store is involved.
async fn one_replica() -> Deployment {
    Deployment::start(Store::Memory).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_text_and_invisible_characters_in_identifiers_are_refused_naming_the_field(
) {
    let d = one_replica().await;
    let mut a = d.a().await;
    let target = create(&mut a, "term").await;
    for hostile in [
        "\u{1b}[2J",
        "bell\u{7}",
        "over\rwrite",
        "nul\u{0}",
        "\u{202e}fdp",
        "c1\u{9b}31m",
    ] {
        let err = a
            .respond(v1::RespondRequest {
                reason: hostile.into(),
                ..approve(&target.id, "alice")
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), field_of(&err)),
            (Code::InvalidArgument, "reason".to_string()),
            "{hostile:?}: {err:?}"
        );
        let err = a
            .cancel_approval(v1::CancelApprovalRequest {
                id: target.id.clone(),
                reason: hostile.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), field_of(&err)),
            (Code::InvalidArgument, "reason".to_string()),
            "{hostile:?}: {err:?}"
        );
    }
    let invisible = [
        "ag\u{202e}ent",
        "ag\u{200b}ent",
        "ag\u{2066}ent",
        "ag\u{feff}ent",
        "ag\nent",
        "ag\tent",
    ];
    for bad in invisible {
        let creates = [
            (
                "agent_id",
                v1::CreateApprovalRequest {
                    agent_id: bad.into(),
                    ..create_request("term")
                },
            ),
            (
                "labels[\"k\"]",
                v1::CreateApprovalRequest {
                    labels: [("k".to_string(), bad.to_string())].into(),
                    ..create_request("term")
                },
            ),
            (
                "idempotency_key",
                v1::CreateApprovalRequest {
                    idempotency_key: bad.into(),
                    ..create_request("term")
                },
            ),
        ];
        for (field, req) in creates {
            let err = a.create_approval(req).await.unwrap_err();
            assert_eq!(
                (err.code(), field_of(&err)),
                (Code::InvalidArgument, field.to_string()),
                "{bad:?}: {err:?}"
            );
        }
        let err = a.respond(approve(&target.id, bad)).await.unwrap_err();
        assert_eq!(
            (err.code(), field_of(&err)),
            (Code::InvalidArgument, "responder".to_string()),
            "{bad:?}: {err:?}"
        );
        let err = a
            .list_approvals(v1::ListApprovalsRequest {
                agent_id: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "agent_id", "{bad:?}");
    }
    // Nothing changed, and text in any script with newlines and tabs passes.
    assert_eq!(
        status(&get(&mut a, &target.id).await),
        v1::ApprovalStatus::Pending
    );
    let listed = a
        .list_approvals(v1::ListApprovalsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.approvals.len(), 1);
    let reason = "looks good\n\t– ship it ✅ (مراجعة)";
    let done = a
        .respond(v1::RespondRequest {
            reason: reason.into(),
            ..approve(&target.id, "alice")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.approval.unwrap().reason, reason);
    let created = a
        .create_approval(v1::CreateApprovalRequest {
            agent_id: "агент-7".into(),
            ..create_request("term")
        })
        .await;
    assert!(created.is_ok(), "{created:?}");
}

/// A context `depth` objects deep (the context itself is level 1), with a
/// value at the bottom.
fn nested_objects(depth: usize) -> prost_types::Struct {
    use prost_types::value::Kind;
    let mut inner = context(&[("leaf", "v")]);
    for _ in 1..depth {
        inner = prost_types::Struct {
            fields: [(
                "a".to_string(),
                prost_types::Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            )]
            .into(),
        };
    }
    inner
}

/// A context holding lists `depth` deep, with a value at the bottom.
fn nested_lists(depth: usize) -> prost_types::Struct {
    use prost_types::value::Kind;
    let leaf = prost_types::Value {
        kind: Some(Kind::StringValue("v".into())),
    };
    let mut inner = prost_types::Value {
        kind: Some(Kind::ListValue(prost_types::ListValue {
            values: vec![leaf],
        })),
    };
    for _ in 1..depth {
        inner = prost_types::Value {
            kind: Some(Kind::ListValue(prost_types::ListValue {
                values: vec![inner],
            })),
        };
    }
    prost_types::Struct {
        fields: [("l".to_string(), inner)].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_nested_too_deeply_is_invalid_argument_naming_the_depth_limit() {
    let d = one_replica().await;
    let mut a = d.a().await;
    let deepest_allowed = [nested_objects(32), nested_lists(48)];
    for context in deepest_allowed {
        let created = a
            .create_approval(v1::CreateApprovalRequest {
                context: Some(context),
                ..create_request("deep")
            })
            .await;
        assert!(created.is_ok(), "{created:?}");
    }
    for context in [
        nested_objects(34),
        nested_lists(50),
        nested_objects(200),
        nested_lists(1000),
    ] {
        let err = a
            .create_approval(v1::CreateApprovalRequest {
                context: Some(context.clone()),
                ..create_request("deep")
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), field_of(&err)),
            (Code::InvalidArgument, "context".to_string()),
            "{err:?}"
        );
        assert!(
            err.message()
                .contains("100 nested messages; 32 levels of objects or 48 levels of lists"),
            "{}",
            err.message()
        );
        let request = v1::RequestApprovalRequest {
            context: Some(context),
            ..request_request("deep")
        };
        let err = a.request_approval(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    let listed = a
        .list_approvals(v1::ListApprovalsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.approvals.len(),
        2,
        "only the two allowed contexts were created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ids_and_cursors_are_echoed_as_a_short_prefix() {
    let d = one_replica().await;
    let mut a = d.a().await;
    let long = "0123456789".repeat(10_000);
    let mut errors = vec![
        (
            "id",
            a.get_approval(v1::GetApprovalRequest { id: long.clone() })
                .await
                .unwrap_err(),
        ),
        ("id", a.respond(approve(&long, "alice")).await.unwrap_err()),
        (
            "cursor",
            a.watch_pending(v1::WatchPendingRequest {
                cursor: long.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "page_token",
            a.list_approvals(v1::ListApprovalsRequest {
                page_token: long.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
    ];
    errors.push((
        "labels",
        a.create_approval(v1::CreateApprovalRequest {
            labels: [(long.clone(), "v".to_string())].into(),
            ..create_request("x")
        })
        .await
        .unwrap_err(),
    ));
    for (field, err) in errors {
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(field_of(&err).starts_with(field), "{field}: {err:?}");
        assert!(
            err.message().len() < 300,
            "{field}: the message is {} bytes",
            err.message().len()
        );
    }
}
