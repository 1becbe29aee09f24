//! The client library against live `approvald` replicas on a real Redis.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use approval_client::{
    ApprovalClient, ApprovalRequest, Error, ListFilter, Outcome, Status, Verdict, WatchEvent,
    WatchFilter, WatchStream,
};
use approval_tests::{Deployment, RedisServer, Store, PROMPTLY};
use common::*;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

/// The next watch event, failing the test if none comes promptly.
async fn next(events: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(PROMPTLY, events.next())
        .await
        .expect("a watch event within the bound")
        .expect("the watch stream is open")
        .expect("the watch stream is healthy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approval_returns_who_approved_why_and_when() {
    let d = deployment().await;
    let agent = client(&d.replicas[0], "unused").await;
    let human = client(&d.replicas[1], "alice").await;

    let waiter = tokio::spawn(async move {
        agent
            .request_approval(
                ApprovalRequest::new("deploy:production")
                    .context(json!({"service": "billing", "replicas": 3}))
                    .label("team", "payments")
                    .timeout(Duration::from_secs(120)),
            )
            .await
    });
    let [waiting] = until_pending(&human, "deploy:production", 1)
        .await
        .try_into()
        .expect("one");
    assert_eq!(
        waiting.context,
        json!({"service": "billing", "replicas": 3})
    );
    assert_eq!(
        waiting.labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(waiting.agent_id, "test-agent");
    assert!(
        !waiting.idempotency_key.is_empty(),
        "a key is generated so that retries re-attach"
    );

    human
        .approve(&waiting.id, "checked the diff")
        .await
        .expect("approve");
    let decision = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter wakes")
        .expect("no panic")
        .expect("a decision");
    assert!(decision.is_approved());
    assert_eq!(decision.outcome, Outcome::Approved);
    assert_eq!(decision.decided_by.as_deref(), Some("alice"));
    assert_eq!(decision.reason, "checked the diff");
    assert!(decision.decided_at >= waiting.created_at);
    assert_eq!(decision.approval.id, waiting.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_expired_and_cancelled_requests_are_told_apart() {
    let d = deployment().await;
    let agent = client(&d.replicas[0], "unused").await;
    let human = client(&d.replicas[1], "bob").await;

    // Rejected.
    let waiter = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .request_approval(ApprovalRequest::new("db:drop"))
                .await
        })
    };
    let [a] = until_pending(&human, "db:drop", 1)
        .await
        .try_into()
        .expect("one");
    human
        .reject(&a.id, "not on a Friday")
        .await
        .expect("reject");
    let decision = waiter.await.expect("no panic").expect("a decision");
    assert_eq!(decision.outcome, Outcome::Rejected);
    assert!(!decision.is_approved());
    assert_eq!(decision.reason, "not on a Friday");

    // Expired: nobody decides.
    let decision = agent
        .request_approval(ApprovalRequest::new("spend").timeout(Duration::from_secs(1)))
        .await
        .expect("a decision");
    assert_eq!(decision.outcome, Outcome::Expired);
    assert_eq!(decision.decided_by, None);

    // Cancelled: created, awaited, withdrawn.
    let created = agent
        .create(ApprovalRequest::new("rotate-keys"))
        .await
        .expect("create");
    assert!(created.created);
    assert_eq!(created.approval.status, Status::Pending);
    let waiter = {
        let agent = agent.clone();
        let id = created.approval.id.clone();
        tokio::spawn(async move { agent.await_decision(&id).await })
    };
    agent
        .cancel(&created.approval.id, "superseded")
        .await
        .expect("cancel");
    let decision = waiter.await.expect("no panic").expect("a decision");
    assert_eq!(decision.outcome, Outcome::Cancelled);
    assert_eq!(decision.reason, "superseded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_survives_its_server_restarting_mid_wait_and_then_gets_the_decision() {
    let address = OneAddress::new();
    let mut first = address.replica().await;
    let agent = ApprovalClient::connect(first.endpoint())
        .await
        .expect("connect");

    let waiter = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .request_approval(
                    ApprovalRequest::new("deploy:restart")
                        .idempotency_key("pipeline-7-deploy")
                        .timeout(Duration::from_secs(120)),
                )
                .await
        })
    };
    let [a] = until_pending(&agent, "deploy:restart", 1)
        .await
        .try_into()
        .expect("one");
    approval_tests::until_waiting(&first, 1).await;

    // The replica goes away mid-wait (its waiter is told UNAVAILABLE), and a
    // new one comes up on the same address a moment later.
    first.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the caller never sees the blip");
    let second = address.replica().await;
    let human = client(&second, "alice").await;
    human
        .approve(&a.id, "after the restart")
        .await
        .expect("approve");

    let decision = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter re-attached and woke")
        .expect("no panic")
        .expect("a decision, not the restart's error");
    assert_eq!(decision.outcome, Outcome::Approved);
    assert_eq!(
        decision.approval.id, a.id,
        "re-attached to the same approval"
    );
    assert_eq!(decision.decided_by.as_deref(), Some("alice"));
    let all: Vec<_> = human
        .list(ListFilter::default().approval_type("deploy:restart"))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "re-attaching created nothing new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_name_the_field_the_winner_or_the_address() {
    let d = deployment().await;
    let alice = client(&d.replicas[0], "alice").await;
    let bob = client(&d.replicas[1], "bob").await;

    match alice.get(&unknown_id()).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    match alice.create(ApprovalRequest::new("has spaces")).await {
        Err(Error::InvalidArgument { field, .. }) => {
            assert_eq!(field.as_deref(), Some("approval_type"))
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let a = alice
        .create(ApprovalRequest::new("conflict"))
        .await
        .expect("create")
        .approval;
    alice.approve(&a.id, "mine").await.expect("first wins");
    alice
        .approve(&a.id, "mine")
        .await
        .expect("an identical retry is fine");
    match bob.respond(&a.id, Verdict::Reject, "no").await {
        Err(Error::AlreadyFinal {
            id,
            status,
            decided_by,
            reason,
            decided_at,
            ..
        }) => {
            assert_eq!(id, a.id);
            assert_eq!(status, Status::Approved);
            assert_eq!(decided_by.as_deref(), Some("alice"));
            assert_eq!(reason, "mine");
            assert!(decided_at.is_some());
        }
        other => panic!("expected AlreadyFinal, got {other:?}"),
    }

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    match ApprovalClient::connect(nowhere.clone()).await {
        Err(e @ Error::Unavailable { .. }) => {
            assert!(e.to_string().contains(&nowhere), "{e}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_streams_every_page_newest_first() {
    let d = deployment().await;
    let c = client(&d.replicas[0], "alice").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let a = c
            .create(ApprovalRequest::new("paged").label("n", i.to_string()))
            .await
            .expect("create")
            .approval;
        ids.push(a.id);
    }
    let listed: Vec<_> = c
        .list(ListFilter::default().approval_type("paged").page_size(3))
        .map_ok(|a| a.id)
        .try_collect()
        .await
        .expect("list");
    ids.reverse();
    assert_eq!(listed, ids);

    let first = c
        .list_page(
            &ListFilter::default().approval_type("paged").page_size(3),
            "",
        )
        .await
        .expect("a page");
    assert!(first.approvals.len() <= 3);
    assert!(first.next_page_token.is_some());
}

/// A Redis of the test's own, and one address on it where a replica can
/// be stopped and another take its place.
struct OneAddress {
    redis: RedisServer,
    prefix: String,
    port: u16,
}

impl OneAddress {
    fn new() -> Self {
        Self {
            redis: RedisServer::start(),
            prefix: format!("client-{}", uuid::Uuid::now_v7().simple()),
            port: free_port(),
        }
    }

    /// A replica at the address.
    async fn replica(&self) -> approval_tests::Replica {
        replica_on(self.port, &self.redis, &self.prefix).await
    }
}

/// Creates an approval of `approval_type` and checks that the watch shows
/// it next.
async fn create_seen(
    c: &ApprovalClient,
    events: &mut WatchStream,
    approval_type: &str,
) -> approval_client::Approval {
    let created = c
        .create(ApprovalRequest::new(approval_type))
        .await
        .expect("create")
        .approval;
    assert!(matches!(next(events).await, WatchEvent::Added(a) if a.id == created.id));
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_its_server_restarts_with_no_gap_and_no_duplicate() {
    let address = OneAddress::new();
    let mut first = address.replica().await;
    let c = client(&first, "alice").await;
    let before = c
        .create(ApprovalRequest::new("watch:a"))
        .await
        .expect("create")
        .approval;
    let other_type = c
        .create(ApprovalRequest::new("other"))
        .await
        .expect("create")
        .approval;

    let mut events = c.watch_pending(WatchFilter::default().approval_type("watch:*"));
    assert_eq!(next(&mut events).await, WatchEvent::Added(before.clone()));
    assert_eq!(next(&mut events).await, WatchEvent::Synced);

    create_seen(&c, &mut events, "watch:b").await;

    // The replica goes away; while none is up, a decision is made
    // elsewhere (here: by the next replica before the watcher is back).
    first.stop().await;
    match next(&mut events).await {
        WatchEvent::Reconnecting { .. } => {}
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    let second = address.replica().await;
    let human = client(&second, "alice").await;
    human.approve(&before.id, "ok").await.expect("approve");
    human
        .cancel(&other_type.id, "not watched")
        .await
        .expect("cancel");
    let third = human
        .create(ApprovalRequest::new("watch:c"))
        .await
        .expect("create")
        .approval;

    // Exactly what happened meanwhile, in order, no snapshot again.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next(&mut events).await {
            WatchEvent::Reconnecting { .. } => continue,
            WatchEvent::Resolved(a) => seen.push(("resolved", a.id, a.status)),
            WatchEvent::Added(a) => seen.push(("added", a.id, a.status)),
            other => panic!("unexpected {other:?} on resume"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("resolved", before.id.clone(), Status::Approved),
            ("added", third.id.clone(), Status::Pending),
        ]
    );
    let ids: HashSet<_> = seen.iter().map(|(_, id, _)| id.clone()).collect();
    assert!(!ids.contains(&other_type.id), "the filter still applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_whose_cursor_was_trimmed_away_resets_and_resyncs() {
    let address = OneAddress::new();
    let mut first = address.replica().await;
    let c = client(&first, "alice").await;
    let mut events = c.watch_pending(WatchFilter::default().approval_type("trim"));
    assert_eq!(next(&mut events).await, WatchEvent::Synced);
    let kept = create_seen(&c, &mut events, "trim").await;

    // The watcher's replica goes away; meanwhile another one, whose event log
    // keeps 3 events, writes 160 (Redis trims by whole nodes of 100), so
    // the watcher's cursor is gone when its address answers again.
    first.stop().await;
    let mut config = approvald::Config::for_tests();
    config.redis_url = Some(address.redis.url());
    config.redis_prefix = address.prefix.clone();
    config.event_log_cap = 3;
    let small = approval_tests::Replica::start(config).await;
    let busy = client(&small, "alice").await;
    for _ in 0..80 {
        let a = busy
            .create(ApprovalRequest::new("trim"))
            .await
            .expect("create")
            .approval;
        busy.cancel(&a.id, "churn").await.expect("cancel");
    }
    let _back = address.replica().await;

    // A visible Reset, then the fresh snapshot: the one pending approval.
    let mut after = Vec::new();
    while after.last() != Some(&WatchEvent::Synced) {
        match next(&mut events).await {
            WatchEvent::Reconnecting { .. } => continue,
            other => after.push(other),
        }
    }
    assert_eq!(
        after,
        vec![
            WatchEvent::Reset,
            WatchEvent::Added(c.get(&kept.id).await.expect("get")),
            WatchEvent::Synced
        ],
        "a trimmed cursor gives Reset and a re-sync, not a silent gap"
    );
}

/// A default no client would pick, so a deadline that follows it can only
/// come from the server's `--default-timeout`.
const SERVER_DEFAULT: Duration = Duration::from_secs(4321);

/// Whole seconds from creation to deadline.
fn open_for(a: &approval_client::Approval) -> Duration {
    let open = a
        .deadline
        .duration_since(a.created_at)
        .expect("deadline after creation");
    Duration::from_secs((open.as_millis() as u64 + 500) / 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timeout_or_key_the_servers_default_applies_and_a_key_is_sent() {
    let d = Deployment::start_with(Store::Memory, 1, |c| c.default_timeout = SERVER_DEFAULT).await;
    let agent = client(&d.replicas[0], "unused").await;
    let human = client(&d.replicas[0], "alice").await;

    let created = agent
        .create(ApprovalRequest::new("deploy:default-timeout"))
        .await
        .expect("create")
        .approval;
    assert_eq!(open_for(&created), SERVER_DEFAULT);
    assert!(
        uuid::Uuid::parse_str(&created.idempotency_key).is_ok(),
        "create sends a made-up key: {:?}",
        created.idempotency_key
    );

    let waiter = tokio::spawn(async move {
        agent
            .request_approval(ApprovalRequest::new("deploy:default-request"))
            .await
    });
    let [waiting] = until_pending(&human, "deploy:default-request", 1)
        .await
        .try_into()
        .expect("one");
    assert_eq!(open_for(&waiting), SERVER_DEFAULT);
    assert!(!waiting.idempotency_key.is_empty());
    human.approve(&waiting.id, "ok").await.expect("approve");
    let decision = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter wakes")
        .expect("no panic")
        .expect("a decision");
    assert!(decision.is_approved());
    assert_eq!(decision.approval.id, waiting.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_arrive_as_updated_events_and_an_approve_on_timeout_gate_proceeds() {
    let (d, _dir) = deployment_with_policies(
        r#"
[[policies]]
approval_types = ["vote:*"]
required_approvals = 2

[[policies]]
approval_types = ["quiet:*"]
on_timeout = "approve"
default_timeout = "300ms"
"#,
    )
    .await;
    let alice = client(&d.replicas[0], "alice").await;
    let bob = client(&d.replicas[1], "bob").await;
    let mut events = alice.watch_pending(WatchFilter::default().approval_type("vote:*"));
    assert_eq!(next(&mut events).await, WatchEvent::Synced);
    let created = alice
        .create(ApprovalRequest::new("vote:deploy"))
        .await
        .expect("create")
        .approval;
    assert!(matches!(next(&mut events).await, WatchEvent::Added(_)));
    let one = alice
        .respond_to_digest(&created.id, Verdict::Approve, "ok", &created.context_digest)
        .await
        .expect("first vote");
    assert_eq!(one.status, Status::Pending);
    let WatchEvent::Updated(updated) = next(&mut events).await else {
        panic!("a vote is an updated event")
    };
    assert_eq!(updated.votes.len(), 1);
    assert_eq!(updated.votes[0].voter, "alice");
    let done = bob
        .approve(&created.id, "ok too")
        .await
        .expect("second vote");
    assert_eq!(done.status, Status::Approved);
    assert_eq!(done.decided_by.as_deref(), Some("bob"));
    assert!(matches!(next(&mut events).await, WatchEvent::Resolved(_)));

    let quiet = alice
        .request_approval(ApprovalRequest::new("quiet:canary"))
        .await
        .expect("the gate returns at the deadline");
    assert_eq!(quiet.outcome, Outcome::Expired);
    assert!(quiet.is_approved(), "on_timeout = approve: go ahead");
    assert!(
        quiet.reason.contains("policy \"quiet:*\""),
        "{}",
        quiet.reason
    );
}
