//! What an approval's lifecycle costs Redis, pinned: the commands each step
//! sends, counted by Redis itself (`INFO commandstats`, which counts the
//! commands a Lua script runs as well as the script call). A change that
//! adds a round trip or a command inside a script makes these fail; the
//! message lists the commands, so the cost is visible either way.
//!
//! Counted: the pump's one read of an approval's body when a local watcher
//! or waiter needs it (log entries carry no body).
//! Left out: the event pump's `XREAD`s (one per batch of events, so under
//! load a small share per lifecycle, but one per event when lifecycles run
//! one after the other as here) and the health monitor (its interval is set
//! past the end of the test).

use std::collections::BTreeMap;
use std::time::Duration;

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use approval_tests::*;

/// Lifecycles per measurement: the count per lifecycle is their average.
const LIFECYCLES: u64 = 20;
/// Commands of background tasks, not of the calls measured.
const BACKGROUND: &[&str] = &["xread", "info"];

/// One replica on a Redis of its own, without health probes during the
/// test.
async fn deployment() -> Deployment {
    Deployment::start_with(Store::Redis, 1, |c| {
        c.health_interval = Duration::from_secs(3600);
    })
    .await
}

/// The commands Redis ran per lifecycle while `lifecycle` ran LIFECYCLES
/// times (background tasks' left out), and their breakdown for the failure
/// message. One lifecycle runs first, unmeasured: it loads the scripts.
async fn commands_per_lifecycle<F, Fut>(d: &Deployment, mut lifecycle: F) -> (f64, String)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut conn = d.redis.as_ref().expect("a Redis deployment").connection();
    lifecycle(LIFECYCLES).await;
    let before = redis_command_calls(&mut conn);
    for i in 0..LIFECYCLES {
        lifecycle(i).await;
    }
    let after = redis_command_calls(&mut conn);
    let spent: BTreeMap<&str, u64> = after
        .iter()
        .filter(|(name, _)| !BACKGROUND.contains(&name.as_str()))
        .map(|(name, n)| (name.as_str(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = spent.values().sum();
    let breakdown = spent
        .iter()
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / LIFECYCLES as f64))
        .collect::<Vec<_>>()
        .join(", ");
    (total as f64 / LIFECYCLES as f64, breakdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approval_then_respond_costs_at_most_19_redis_commands() {
    let d = deployment().await;
    let client = d.a().await;
    let watch = synced_watch(&mut client.clone(), v1::WatchPendingRequest::default())
        .await
        .expect_empty();
    let watch = &tokio::sync::Mutex::new(watch);
    let client = &client;
    let (per_lifecycle, breakdown) = commands_per_lifecycle(&d, |_| async move {
        let mut agent = client.clone();
        let call = tokio::spawn(async move {
            agent
                .request_approval(request_request("commands"))
                .await
                .map(|r| r.into_inner())
        });
        let id = loop {
            if let Some(Event::Added(a)) = next_event(&mut *watch.lock().await).await.event {
                break a.id;
            }
        };
        client
            .clone()
            .respond(approve(&id, "alice"))
            .await
            .expect("respond");
        let answer = call.await.unwrap().expect("the gate returns");
        assert!(answer.approved, "{answer:?}");
    })
    .await;
    eprintln!("RequestApproval + Respond: {per_lifecycle:.2} commands ({breakdown})");
    assert!(
        per_lifecycle <= 19.0,
        "{per_lifecycle:.2} Redis commands per lifecycle: {breakdown}"
    );
}

/// Half the approvals with an idempotency key (a key costs its `GET` and
/// `SET`), half without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_await_respond_costs_at_most_21_redis_commands() {
    let d = deployment().await;
    let replica = &d.replicas[0];
    let client = &replica.client().await;
    let (per_lifecycle, breakdown) = commands_per_lifecycle(&d, |i| async move {
        let mut req = create_request("commands");
        if i % 2 == 0 {
            req.idempotency_key = format!("key-{i}");
        }
        let created = create_with(&mut client.clone(), req).await;
        let waiting = spawn_await(client, &created.id);
        until_waiting(replica, 1).await;
        client
            .clone()
            .respond(approve(&created.id, "alice"))
            .await
            .expect("respond");
        let answer = waiting.await.unwrap().expect("the wait returns");
        assert!(answer.into_inner().approved);
    })
    .await;
    eprintln!(
        "CreateApproval + AwaitApproval + Respond: {per_lifecycle:.2} commands ({breakdown})"
    );
    assert!(
        per_lifecycle <= 21.0,
        "{per_lifecycle:.2} Redis commands per lifecycle: {breakdown}"
    );
}
