//! Many calls at once on one replica: what a replica restart makes (every
//! client of the old process retries into the new one in the same instant).

use std::time::Duration;

use approval_tests::*;
use futures::{stream, StreamExt};
use tokio::task::JoinSet;

/// Calls started in the same instant; the benchmark measures 50,000.
const WAITERS: usize = 5_000;
/// Approvals they wait on (several waiters each, as several agents may).
const APPROVALS: usize = 1_000;
/// Redis command timeout of the replica.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// Client connections the calls share.
const CONNECTIONS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_await_calls_started_at_once_all_attach_and_all_get_the_decision() {
    let d = Deployment::start_with(Store::Redis, 1, |c| {
        c.max_open_per_requester = APPROVALS;
        // A tenth of the default, for a tenth of the benchmark's crowd: a
        // read queued behind thousands of others would exceed it.
        c.redis_timeout = REDIS_TIMEOUT;
    })
    .await;
    let replica = &d.replicas[0];
    let client = replica.client().await;
    let ids: Vec<String> = stream::iter(0..APPROVALS)
        .map(|_| {
            let mut client = client.clone();
            async move { create(&mut client, "crowd").await.id }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(replica.client().await);
    }
    let mut calls = JoinSet::new();
    for i in 0..WAITERS {
        let id = &ids[i % APPROVALS];
        let mut client = clients[i % CONNECTIONS].clone();
        let request = approval_client::v1::AwaitApprovalRequest { id: id.clone() };
        calls.spawn(async move { client.await_approval(request).await });
    }
    // Every call attaches (its first read answered, none UNAVAILABLE): all
    // are waiting at once, none has returned.
    let all = format!("approvald_waiters {WAITERS}");
    let give_up = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(returned) = calls.try_join_next() {
            panic!("a call returned before any decision: {returned:?}");
        }
        let metrics = metrics_text(replica.metrics_port).await;
        if metrics.lines().any(|l| l == all) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{WAITERS} waiters never all attached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stream::iter(&ids)
        .for_each_concurrent(32, |id| {
            let mut client = client.clone();
            async move {
                client.respond(approve(id, "alice")).await.expect("respond");
            }
        })
        .await;
    let mut approved = 0;
    while let Some(call) = calls.join_next().await {
        let answer = call.unwrap().expect("the wait returns the decision");
        assert!(answer.into_inner().approved);
        approved += 1;
    }
    assert_eq!(approved, WAITERS);
}
