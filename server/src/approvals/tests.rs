//! The use cases themselves, over the memory store: what a caller may see
//! is decided here, whatever the gRPC layer does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{Approvals, Watch, WatchItem};
use crate::domain::{
    AgentId, ApprovalId, ApprovalPolicy, ApprovalType, AuthMethod, Caller, Context, DomainError,
    Filter, IdempotencyKey, Identity, Labels, Limits, ListQuery, NewApproval, Policies, Principal,
    Roles, Timeout,
};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{MemoryStore, Retention};

fn desk() -> (Approvals, Shutdown) {
    let limits = Limits::default();
    desk_on(memory_store(&limits), limits)
}

/// A desk (one replica's use cases) on `store`, with `limits`, started.
fn desk_on(store: Arc<MemoryStore>, limits: Limits) -> (Approvals, Shutdown) {
    let (approvals, shutdown) = unstarted_desk(store, limits);
    approvals.start(Duration::from_secs(60));
    (approvals, shutdown)
}

fn memory_store(limits: &Limits) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(Retention {
        final_approvals: Duration::from_secs(60),
        max_events: Retention::DEFAULT_MAX_EVENTS,
        max_event_bytes: Retention::DEFAULT_MAX_EVENT_BYTES,
        max_timeout: limits.max_timeout,
    }))
}

/// A desk whose background tasks (event pump, reaper...) are not started.
fn unstarted_desk(store: Arc<MemoryStore>, limits: Limits) -> (Approvals, Shutdown) {
    let shutdown = Shutdown::new();
    let policies = Arc::new(arc_swap::ArcSwap::from_pointee(Policies::default()));
    let approvals = Approvals::new(store, limits, policies, Metrics::new(), shutdown.clone());
    (approvals, shutdown)
}

fn known(name: &str, roles: &[&str]) -> Caller {
    Caller::Known {
        identity: Identity {
            principal: Principal::parse("principal", name).unwrap(),
            roles: Roles::parse("roles", roles).unwrap(),
            method: AuthMethod::Token,
        },
    }
}

async fn create(approvals: &Approvals, requester: &Caller, approval_type: &str) -> ApprovalId {
    let limits = Limits::default();
    let new = NewApproval {
        approval_type: ApprovalType::parse("approval_type", approval_type).unwrap(),
        agent_id: AgentId::parse("agent_id", "agent").unwrap(),
        requester: requester.principal().unwrap().clone(),
        context: Context::parse("context", None, &limits).unwrap(),
        labels: Labels::default(),
        timeout: Timeout::parse("timeout", None, &limits).unwrap(),
        idempotency_key: None,
        policy: ApprovalPolicy::default(),
        trace: None,
    };
    let created = approvals.create(requester, new, None).await.unwrap();
    created.approval.id
}

fn everything() -> ListQuery {
    ListQuery {
        statuses: Vec::new(),
        filter: Filter::default(),
        page_size: Limits::DEFAULT_PAGE_SIZE,
        after: None,
    }
}

async fn next(watch: &mut Watch) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(30), watch.items.next())
        .await
        .expect("a watch item within 30 s")
        .expect("the watch is open")
        .expect("no error")
}

#[tokio::test]
async fn with_auth_on_list_and_watch_show_only_what_the_caller_may_see() {
    let (approvals, shutdown) = desk();
    let agent = known("agent", &["requester"]);
    let alice = known("alice", &["approver:deploy:*"]);
    let nobody = known("nobody", &[]);
    let db = create(&approvals, &agent, "db:drop").await;
    let deploy = create(&approvals, &agent, "deploy:prod").await;

    let listed = |caller: Caller| {
        let approvals = approvals.clone();
        async move {
            let page = approvals.list(&caller, &everything()).await.unwrap();
            page.approvals.into_iter().map(|a| a.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(alice.clone()).await, vec![deploy.clone()]);
    assert_eq!(
        listed(agent.clone()).await,
        vec![deploy.clone(), db.clone()]
    );
    assert!(listed(nobody.clone()).await.is_empty());
    assert_eq!(listed(Caller::Open).await, vec![deploy.clone(), db.clone()]);

    // The snapshot holds only deploy:prod; of two new ones, only the
    // deploy one comes through.
    let mut watch = approvals
        .watch(&alice, Filter::default(), None)
        .await
        .unwrap();
    match next(&mut watch).await {
        WatchItem::Pending(a) => assert_eq!(a.id, deploy),
        other => panic!("expected the deploy approval, got {other:?}"),
    }
    assert!(matches!(next(&mut watch).await, WatchItem::Synced(_)));
    create(&approvals, &agent, "db:migrate").await;
    let staging = create(&approvals, &agent, "deploy:staging").await;
    match next(&mut watch).await {
        WatchItem::Change(e) => assert_eq!(e.approval.id, staging, "not the db one"),
        other => panic!("expected the deploy:staging change, got {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_key_without_a_timeout_reattaches_on_a_replica_with_another_default_timeout() {
    let store = memory_store(&Limits::default());
    let limits = |secs| Limits {
        default_timeout: Duration::from_secs(secs),
        ..Limits::default()
    };
    let (short, long) = (limits(300), limits(600));
    let (a, stop_a) = desk_on(store.clone(), short.clone());
    let (b, stop_b) = desk_on(store, long.clone());
    let agent = known("agent", &["requester"]);
    // The request as each replica parses it: its own default fills in.
    let keyed = |key: &str, timeout: Option<i64>, limits: &Limits| NewApproval {
        approval_type: ApprovalType::parse("approval_type", "deploy:prod").unwrap(),
        agent_id: AgentId::parse("agent_id", "agent").unwrap(),
        requester: agent.principal().unwrap().clone(),
        context: Context::parse("context", None, limits).unwrap(),
        labels: Labels::default(),
        timeout: Timeout::parse(
            "timeout",
            timeout.map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
            limits,
        )
        .unwrap(),
        idempotency_key: IdempotencyKey::parse("idempotency_key", key).unwrap(),
        policy: ApprovalPolicy::default(),
        trace: None,
    };
    let first = a
        .create(&agent, keyed("run-1", None, &short), None)
        .await
        .unwrap();
    assert!(first.created);
    let again = b
        .create(&agent, keyed("run-1", None, &long), None)
        .await
        .expect("the same request, on a desk with another default");
    assert!(!again.created);
    assert_eq!(
        again.approval, first.approval,
        "the first desk's deadline holds"
    );
    // A timeout given is part of the request: the same one re-attaches,
    // another (or none) is another request.
    let given = b
        .create(&agent, keyed("run-2", Some(120), &long), None)
        .await
        .unwrap();
    let again = a
        .create(&agent, keyed("run-2", Some(120), &short), None)
        .await
        .unwrap();
    assert_eq!((given.created, again.created), (true, false));
    assert_eq!(given.approval.id, again.approval.id);
    for (key, timeout) in [("run-2", None), ("run-2", Some(121)), ("run-1", Some(300))] {
        let refused = a.create(&agent, keyed(key, timeout, &short), None).await;
        assert!(
            matches!(refused, Err(DomainError::IdempotencyConflict { .. })),
            "{key} {timeout:?}: {refused:?}"
        );
    }
    stop_a.cancel();
    stop_b.cancel();
}

#[tokio::test]
async fn a_watch_and_a_waiter_from_before_the_event_pump_started_miss_nothing_written_meanwhile() {
    // The pump starts at the log's head as it finds it. A watcher (or a
    // waiter) that opened earlier holds an older position: what was
    // written in between was never fed to it, and must still reach it.
    let limits = Limits::default();
    let (approvals, shutdown) = unstarted_desk(memory_store(&limits), limits);
    let agent = known("agent", &["requester"]);
    let mut watch = approvals
        .watch(&Caller::Open, Filter::default(), None)
        .await
        .unwrap();
    assert!(matches!(next(&mut watch).await, WatchItem::Synced(_)));
    // The watcher has read the (empty) log and follows the feed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let awaited = create(&approvals, &agent, "deploy:prod").await;
    let waiter = tokio::spawn({
        let (approvals, id) = (approvals.clone(), awaited.clone());
        async move { approvals.wait_final(&Caller::Open, &id, None).await }
    });
    // The waiter has had its first look (pending) before the decision.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = super::Answer {
        verdict: crate::domain::Verdict::Approve,
        responder: Principal::parse("responder", "alice").unwrap(),
        reason: crate::domain::Reason::parse("reason", "ok", &Limits::default()).unwrap(),
        expected_digest: None,
    };
    approvals
        .respond(&Caller::Open, &awaited, answer, None)
        .await
        .unwrap();
    approvals.start(Duration::from_secs(60));

    match next(&mut watch).await {
        WatchItem::Change(e) => assert_eq!(e.approval.id, awaited, "its creation"),
        other => panic!("expected the creation written before the pump started, got {other:?}"),
    }
    let decided = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter wakes within 30 s (not at the deadline, 300 s)")
        .unwrap()
        .unwrap();
    assert_eq!(decided.status, crate::domain::Status::Approved);
    shutdown.cancel();
}
