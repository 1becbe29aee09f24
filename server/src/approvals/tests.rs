//! The use cases themselves, over the memory store: what a caller may see
//! is decided here, whatever the gRPC layer does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{Approvals, Watch, WatchItem};
use crate::domain::{
    AgentId, ApprovalId, ApprovalPolicy, ApprovalType, AuthMethod, Caller, Context, Filter,
    Identity, Labels, Limits, ListQuery, NewApproval, Policies, Principal, Roles, Timeout,
};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{MemoryStore, Retention};

fn desk() -> (Approvals, Shutdown) {
    let limits = Limits::default();
    let store = MemoryStore::new(Retention {
        final_approvals: Duration::from_secs(60),
        max_events: Retention::DEFAULT_MAX_EVENTS,
        max_event_bytes: Retention::DEFAULT_MAX_EVENT_BYTES,
        max_timeout: limits.max_timeout,
    });
    let shutdown = Shutdown::new();
    let policies = Arc::new(arc_swap::ArcSwap::from_pointee(Policies::default()));
    let approvals = Approvals::new(
        Arc::new(store),
        limits,
        policies,
        Metrics::new(),
        shutdown.clone(),
    );
    approvals.start(Duration::from_secs(60));
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
