//! Redis Cluster failing over under load: the primary of the deployment's
//! hash tag is failed over by hand (`CLUSTER FAILOVER` on its replica),
//! then killed, while waiters block on two replicas and a watcher streams.
//! No waiter is lost, no decision is made twice, the watcher resumes from
//! its cursor and sees every decision once.
//!
//! The replicas run with `--redis-wait-replicas 1`, so a decision confirmed
//! just before the primary is killed is on the replica that takes over.
//!
//! Once with one partition, once with three (`--redis-partitions 3`): then
//! the shard failed over holds partition 2 (where the suite's requester,
//! `agent-7`, lands), while each replica's pump reads three logs, usually
//! on three shards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use approval_tests::*;
use tonic::Code;

/// Failover takes a second or two here (`cluster-node-timeout` 1 s).
const THROUGH_FAILOVER: Duration = Duration::from_secs(60);

/// Responds until the decision is confirmed, as a client does: an
/// UNAVAILABLE (Redis failing over, outcome unknown) is retried as is.
async fn respond_until_confirmed(client: &Client, id: &str, responder: &str) -> v1::Approval {
    let confirmed = wait_for(THROUGH_FAILOVER, || {
        let mut client = client.clone();
        let req = approve(id, responder);
        async move {
            match client.respond(req).await {
                Ok(r) => r.into_inner().approval,
                Err(e) if e.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    None
                }
                Err(e) => panic!("respond to {id}: {e:?}"),
            }
        }
    })
    .await;
    confirmed.unwrap_or_else(|| panic!("respond to {id} never confirmed"))
}

/// A waiter as an agent runs it: AwaitApproval, re-attached after an
/// UNAVAILABLE, until it has the final answer.
fn spawn_waiter(client: Client, id: String) -> tokio::task::JoinHandle<v1::AwaitApprovalResponse> {
    tokio::spawn(async move {
        loop {
            let mut client = client.clone();
            match client
                .await_approval(v1::AwaitApprovalRequest { id: id.clone() })
                .await
            {
                Ok(answer) => return answer.into_inner(),
                Err(e) if e.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("await {id}: {e:?}"),
            }
        }
    })
}

/// A watcher that resumes from its last cursor whenever its stream ends or
/// fails, and records every `resolved` event it gets, by id.
fn spawn_watcher(
    client: Client,
    resolved: Arc<Mutex<HashMap<String, Vec<v1::Approval>>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = String::new();
        loop {
            let mut client = client.clone();
            let stream = client
                .watch_pending(v1::WatchPendingRequest {
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await;
            let Ok(stream) = stream else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut stream = stream.into_inner();
            while let Ok(Some(event)) = stream.message().await {
                if !event.cursor.is_empty() {
                    cursor = event.cursor.clone();
                }
                if let Some(Event::Resolved(a)) = event.event {
                    resolved
                        .lock()
                        .unwrap()
                        .entry(a.id.clone())
                        .or_default()
                        .push(a);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_and_watchers_live_through_a_manual_failover_and_a_killed_primary() {
    live_through_failovers(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_partitions_waiters_and_watchers_live_through_a_failover_of_one() {
    live_through_failovers(3).await;
}

async fn live_through_failovers(partitions: usize) {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .expect("the cluster starts"),
    );
    let d = Deployment::start_on_cluster(cluster.clone(), 2, |c| {
        c.redis_wait_replicas = 1;
        c.redis_wait_timeout = Duration::from_millis(500);
        c.redis_partitions = partitions;
    })
    .await;
    // The hash tag of the partition the approvals below live in.
    let tag = match partitions {
        1 => d.hash_tag(),
        _ => format!("{{{}:2}}", d.prefix),
    };
    let mut a = d.a().await;
    let b = d.b().await;

    let resolved = Arc::new(Mutex::new(HashMap::new()));
    let watcher = spawn_watcher(b.clone(), resolved.clone());

    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(create(&mut a, "failover").await.id);
    }
    if partitions == 3 {
        assert!(ids.iter().all(|id| id.ends_with("02")), "{ids:?}");
    }
    // Half the waiters on each replica.
    let waiters: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            spawn_waiter(client, id.clone())
        })
        .collect();
    until_waiting(&d.replicas[0], 4).await;
    until_waiting(&d.replicas[1], 4).await;

    // 1. A manual failover: the replica takes over the tag's slot.
    let before = cluster.shard_of(&tag).primary;
    let c = cluster.clone();
    let t = tag.clone();
    let promoted = tokio::task::spawn_blocking(move || c.failover(&t))
        .await
        .unwrap();
    assert_ne!(promoted, before);
    for id in &ids[..4] {
        let decided = respond_until_confirmed(&b, id, "alice").await;
        assert_eq!(decided.decided_by, "alice");
    }

    // 2. The new primary is killed: the former one takes over again. Every
    // decision confirmed before is on it (--redis-wait-replicas 1).
    let c = cluster.clone();
    let t = tag.clone();
    let killed = tokio::task::spawn_blocking(move || {
        let killed = c.shard_of(&t).primary;
        c.kill_primary(&t);
        killed
    })
    .await
    .unwrap();
    assert_eq!(killed, promoted);
    // The killed node comes back as a replica (writes wait for one).
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart(killed))
        .await
        .unwrap();
    for id in &ids[4..] {
        let decided = respond_until_confirmed(&a, id, "bob").await;
        assert_eq!(decided.decided_by, "bob");
    }

    // No waiter lost: each has the one decision made.
    for (i, waiter) in waiters.into_iter().enumerate() {
        let answer = tokio::time::timeout(THROUGH_FAILOVER, waiter)
            .await
            .expect("the waiter is answered")
            .expect("the waiter did not panic");
        assert!(answer.approved, "{answer:?}");
        let approval = answer.approval.expect("approval");
        assert_eq!(approval.id, ids[i]);
        assert_eq!(
            approval.decided_by,
            if i < 4 { "alice" } else { "bob" },
            "the decision confirmed is the one the waiter got"
        );
    }
    // Every view agrees, and nothing was decided twice.
    for (i, id) in ids.iter().enumerate() {
        let got = get(&mut a, id).await;
        assert_eq!(status(&got), v1::ApprovalStatus::Approved);
        assert_eq!(got.decided_by, if i < 4 { "alice" } else { "bob" });
    }
    let all_seen = eventually(THROUGH_FAILOVER, || {
        let resolved = resolved.clone();
        let ids = ids.clone();
        async move {
            let r = resolved.lock().unwrap();
            ids.iter().all(|id| r.contains_key(id))
        }
    })
    .await;
    assert!(all_seen, "the watcher saw every decision: {resolved:?}");
    // Give a duplicate time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    watcher.abort();
    let resolved = resolved.lock().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let events = &resolved[id];
        assert_eq!(events.len(), 1, "one resolved event for {id}: {events:?}");
        assert_eq!(events[0].decided_by, if i < 4 { "alice" } else { "bob" });
    }
}
