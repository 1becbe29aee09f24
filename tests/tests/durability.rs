//! `--redis-wait-replicas`: a creation or decision is confirmed only once
//! Redis replicas have it. A real primary with a real `replicaof` replica.

use std::time::Duration;

use approval_tests::*;
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_millis(200);

/// A primary and its replica, in sync, and one approvald replica that
/// waits for one Redis replica per write.
async fn primary_with_replica() -> (Deployment, RedisServer) {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica_of(primary.port);
    replica.wait_in_sync();
    let d = Deployment::start_on_redis(primary, 1, |c| {
        c.redis_wait_replicas = 1;
        c.redis_wait_timeout = WAIT;
    })
    .await;
    (d, replica)
}

fn status_on(server: &RedisServer, prefix: &str, id: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(format!("{{{prefix}}}:approval:{id}"))
        .arg("status")
        .query(&mut server.connection())
        .expect("HGET on the replica")
}

fn assert_unconfirmed(err: &tonic::Status) {
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some("OUTCOME_UNKNOWN".into()),
        "{err:?}"
    );
    assert!(
        err.message().contains("0 of the 1 replicas"),
        "the message says why: {}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_confirmed_decision_is_already_on_the_replica() {
    let (d, replica) = primary_with_replica().await;
    let mut a = d.a().await;
    let created = create(&mut a, "durable").await;
    // Read straight after the confirmation, no waiting: it is there.
    assert_eq!(
        status_on(&replica, &d.prefix, &created.id).as_deref(),
        Some("pending")
    );
    a.respond(approve(&created.id, "alice"))
        .await
        .expect("respond");
    assert_eq!(
        status_on(&replica, &d.prefix, &created.id).as_deref(),
        Some("approved")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_and_no_replica_up_nothing_is_confirmed_and_a_retry_confirms_it_later() {
    let (d, mut replica) = primary_with_replica().await;
    let mut a = d.a().await;
    let created = create(&mut a, "durable").await;
    replica.stop();

    // A decision only the primary has is not confirmed.
    let mut req = tonic::Request::new(approve(&created.id, "alice"));
    req.set_timeout(Duration::from_secs(2));
    let err = a.respond(req).await.unwrap_err();
    assert_unconfirmed(&err);
    // Outcome unknown, not "nothing happened": the primary has it.
    assert_eq!(
        status(&get(&mut a, &created.id).await),
        approval_client::v1::ApprovalStatus::Approved
    );
    // Nor is a creation.
    let mut req = tonic::Request::new(create_request("durable"));
    req.set_timeout(Duration::from_secs(2));
    assert_unconfirmed(&a.create_approval(req).await.unwrap_err());

    // The replica comes back and catches up: the same call, repeated, is
    // confirmed, and the replica has the decision.
    replica.restart();
    replica.wait_in_sync();
    a.respond(approve(&created.id, "alice"))
        .await
        .expect("the repeated respond is confirmed");
    assert_eq!(
        status_on(&replica, &d.prefix, &created.id).as_deref(),
        Some("approved")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_timeout_not_below_the_redis_timeout_is_refused_at_start() {
    let mut config = approvald::Config::for_tests();
    config.redis_url = Some("redis://127.0.0.1:1".into());
    config.redis_wait_replicas = 1;
    config.redis_wait_timeout = config.redis_timeout;
    let err = config.check().expect_err("refused");
    assert!(err.contains("--redis-wait-timeout"), "{err}");
}
