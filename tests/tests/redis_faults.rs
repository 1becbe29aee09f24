//! Redis in trouble: refusing writes, paused mid-call, replicas with skewed
//! clocks. Every test runs a real `redis-server` and real replicas.

use approval_client::v1;
use approval_client::v1::{ErrorMetadataKey, ErrorReason};
use approval_tests::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

const API: &str = "approval.v1.ApprovalService";

fn redis_set(conn: &mut redis::Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(conn).expect("redis command");
}

/// The value of `name` (a line `name value`) in a replica's metrics, if any.
async fn metric(replica: &Replica, name: &str) -> Option<f64> {
    metrics_text(replica.metrics_port)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn until_health(replica: &Replica, want: ServingStatus) -> bool {
    let port = replica.port;
    eventually(PROMPTLY, || async move { health(port, API).await == want }).await
}

fn refused_cause(err: &tonic::Status) -> String {
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let info = err
        .get_details_error_info()
        .expect("ErrorInfo on a refused write");
    assert_eq!(info.reason, ErrorReason::StoreRefusesWrites.reason());
    info.metadata
        .get(&ErrorMetadataKey::Cause.key())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_is_unavailable_not_serving_and_counted_until_writes_succeed() {
    let d = Deployment::start(Store::Redis).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let pending = create(&mut a, "full").await;
    let other = create(&mut a, "full").await;
    let mut conn = d.redis.as_ref().unwrap().connection();
    redis_set(
        &mut conn,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    );
    redis_set(&mut conn, &["CONFIG", "SET", "maxmemory", "1"]);

    let err = b.create_approval(create_request("full")).await.unwrap_err();
    assert_eq!(refused_cause(&err), "out_of_memory");
    assert!(
        err.message().contains("out of memory") && err.message().contains("retry"),
        "a message a person understands: {}",
        err.message()
    );
    assert!(
        !err.message().contains("OOM command"),
        "not the raw Redis text: {}",
        err.message()
    );
    let err = b.respond(approve(&pending.id, "alice")).await.unwrap_err();
    assert_eq!(refused_cause(&err), "out_of_memory");
    let err = a
        .cancel_approval(v1::CancelApprovalRequest {
            id: other.id.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused_cause(&err), "out_of_memory");
    for r in &d.replicas {
        assert!(
            until_health(r, ServingStatus::NotServing).await,
            "readiness goes NOT_SERVING"
        );
        assert_eq!(health(r.port, "liveness").await, ServingStatus::Serving);
        assert_eq!(metric(r, "approvald_store_writable").await, Some(0.0));
    }
    let refusals = metric(
        &d.replicas[1],
        "approvald_store_write_refusals_total{cause=\"out_of_memory\"}",
    )
    .await;
    assert!(
        refusals.is_some_and(|n| n >= 2.0),
        "refusals counted by cause: {refusals:?}"
    );
    // Reads still work, and nothing was half written.
    assert_eq!(
        status(&get(&mut a, &pending.id).await),
        v1::ApprovalStatus::Pending
    );

    redis_set(&mut conn, &["CONFIG", "SET", "maxmemory", "0"]);
    for r in &d.replicas {
        assert!(
            until_health(r, ServingStatus::Serving).await,
            "SERVING again once writes succeed"
        );
        assert_eq!(metric(r, "approvald_store_writable").await, Some(1.0));
    }
    b.respond(approve(&pending.id, "alice"))
        .await
        .expect("respond works again");
    create(&mut b, "full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_redis_is_unavailable_and_not_serving() {
    let d = Deployment::start_with(Store::Redis, 1, |_| {}).await;
    let master = RedisServer::start();
    let mut a = d.a().await;
    create(&mut a, "ro").await;
    let mut conn = d.redis.as_ref().unwrap().connection();
    redis_set(
        &mut conn,
        &["REPLICAOF", "127.0.0.1", &master.port.to_string()],
    );
    let synced = eventually(PROMPTLY, || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut conn)
            .unwrap_or_default();
        async move { info.contains("master_link_status:up") }
    })
    .await;
    assert!(synced, "the test Redis became a replica");
    let err = a.create_approval(create_request("ro")).await.unwrap_err();
    assert_eq!(refused_cause(&err), "read_only");
    assert!(
        err.message().contains("read-only replica"),
        "{}",
        err.message()
    );
    assert!(until_health(&d.replicas[0], ServingStatus::NotServing).await);

    redis_set(&mut conn, &["REPLICAOF", "NO", "ONE"]);
    assert!(until_health(&d.replicas[0], ServingStatus::Serving).await);
    create(&mut a, "ro").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_evicts_keys_is_flagged_at_start() {
    let redis = RedisServer::start();
    let start = |redis: &RedisServer| {
        let mut config = approvald::Config::for_tests();
        config.redis_url = Some(redis.url());
        config.redis_prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        Replica::start(config)
    };
    let safe = start(&redis).await;
    let flag = |r: &Replica| {
        let port = r.metrics_port;
        async move {
            wait_for(PROMPTLY, || async move {
                metrics_text(port).await.lines().find_map(|l| {
                    l.strip_prefix("approvald_store_evicting ")
                        .map(str::to_string)
                })
            })
            .await
        }
    };
    assert_eq!(
        flag(&safe).await.as_deref(),
        Some("0"),
        "noeviction is not flagged"
    );
    redis_set(
        &mut redis.connection(),
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let evicting = start(&redis).await;
    let flagged = eventually(PROMPTLY, || {
        let f = flag(&evicting);
        async move { f.await.as_deref() == Some("1") }
    })
    .await;
    assert!(flagged, "allkeys-lru is flagged");
}

/// A Redis stall long enough that the first answer is lost (the Redis
/// timeout is 1 s by default), short enough to settle within the call.
const STALL: std::time::Duration = std::time::Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_respond_whose_answer_redis_delayed_returns_the_truth_not_a_failure() {
    let d = Deployment::start_with(Store::Redis, 1, |_| {}).await;
    let mut a = d.a().await;
    let created = create(&mut a, "stall").await;
    let resumed = d.redis.as_ref().unwrap().pause_for(STALL);
    let answer = a.respond(approve(&created.id, "alice")).await;
    resumed.join().unwrap();
    let answer = answer.expect("Respond answers with what happened, not UNAVAILABLE");
    let approval = answer.into_inner().approval.unwrap();
    assert_eq!(status(&approval), v1::ApprovalStatus::Approved);
    assert_eq!(approval.decided_by, "alice");
    assert_eq!(
        get(&mut a, &created.id).await,
        approval,
        "and that is what Redis holds"
    );
    let settled = metric(&d.replicas[0], "approvald_store_outcomes_settled_total").await;
    assert!(settled.is_some_and(|n| n >= 1.0), "{settled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_redis_delayed_returns_the_one_approval_it_made() {
    let d = Deployment::start_with(Store::Redis, 1, |_| {}).await;
    let mut a = d.a().await;
    for key in ["", "stalled-job"] {
        let approval_type = format!("stall{key}");
        let mut req = create_request(&approval_type);
        req.idempotency_key = key.to_string();
        let resumed = d.redis.as_ref().unwrap().pause_for(STALL);
        let answer = a.create_approval(req.clone()).await;
        resumed.join().unwrap();
        let answer = answer
            .expect("Create answers with what happened, not UNAVAILABLE")
            .into_inner();
        assert!(answer.created, "this call made it");
        let listed = a
            .list_approvals(v1::ListApprovalsRequest {
                approval_types: vec![approval_type.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .approvals;
        assert_eq!(listed.len(), 1, "exactly one approval ({key:?})");
        assert_eq!(listed[0].id, answer.approval.unwrap().id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_still_unanswered_at_the_call_deadline_says_its_outcome_is_unknown() {
    let d = Deployment::start_with(Store::Redis, 1, |_| {}).await;
    let mut a = d.a().await;
    let created = create(&mut a, "stall").await;
    let resumed = d.redis.as_ref().unwrap().pause_for(STALL);
    let mut req = tonic::Request::new(approve(&created.id, "alice"));
    req.set_timeout(std::time::Duration::from_millis(1800));
    let err = a.respond(req).await.unwrap_err();
    resumed.join().unwrap();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("outcome unknown") && err.message().contains("safe to retry"),
        "does not claim nothing happened: {}",
        err.message()
    );
    assert_eq!(
        err.get_details_error_info().map(|i| i.reason),
        Some(ErrorReason::OutcomeUnknown.reason().into())
    );
    // The write did land once Redis went on: the advised retry is OK.
    let retried = wait_for(PROMPTLY, || {
        let mut a = a.clone();
        let id = created.id.clone();
        async move { a.respond(approve(&id, "alice")).await.ok() }
    })
    .await;
    assert!(retried.is_some(), "the same Respond, retried, is OK");
}

/// Seconds since the epoch of a protobuf timestamp.
fn secs(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().map_or(0, |t| t.seconds)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_clock_a_minute_ahead_keeps_redis_time() {
    // Replica A's wall clock is right; B's runs 60 s ahead.
    let redis = RedisServer::start();
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let start = |skew_ms: i64| {
        let mut config = approvald::Config::for_tests();
        config.redis_url = Some(redis.url());
        config.redis_prefix = prefix.clone();
        config.test_clock_skew_ms = skew_ms;
        Replica::start(config)
    };
    let right = start(0).await;
    let ahead = start(60_000).await;
    let mut a = right.client().await;
    let mut b = ahead.client().await;

    // B stamps Redis's time, not its own.
    let mut req = create_request("clock");
    req.timeout = Some(millis(std::time::Duration::from_secs(30)));
    let on_b = b
        .create_approval(req.clone())
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let created = secs(&on_b.created_at);
    assert!(
        (created - now_secs()).abs() <= 5,
        "created_at {created} is not in the future"
    );
    assert_eq!(secs(&on_b.deadline) - created, 30);

    // A's 30 s approval, waited on through B, is not expired early by B.
    let on_a = a
        .create_approval(req)
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let waiter = {
        let mut b = b.clone();
        let id = on_a.id.clone();
        tokio::spawn(async move { b.await_approval(v1::AwaitApprovalRequest { id }).await })
    };
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(!waiter.is_finished(), "B's waiter did not see it expire");
    for id in [&on_a.id, &on_b.id] {
        assert_eq!(
            status(&get(&mut a, id).await),
            v1::ApprovalStatus::Pending,
            "B's reaper left {id} alone"
        );
    }
    // B's decision is stamped with Redis's time too.
    let decided = b
        .respond(approve(&on_a.id, "alice"))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert!(
        (secs(&decided.decided_at) - now_secs()).abs() <= 5,
        "decided_at is not in the future"
    );
    assert!(waiter.await.unwrap().unwrap().into_inner().approved);

    // And a short approval still expires on time, whoever reaps it.
    let mut short = create_request("clock");
    short.timeout = Some(millis(std::time::Duration::from_secs(2)));
    let short = b
        .create_approval(short)
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let expired = tokio::time::timeout(
        PROMPTLY,
        a.await_approval(v1::AwaitApprovalRequest {
            id: short.id.clone(),
        }),
    )
    .await
    .expect("expires within the bound")
    .unwrap()
    .into_inner()
    .approval
    .unwrap();
    assert_eq!(status(&expired), v1::ApprovalStatus::Expired);
    assert_eq!(expired.decided_at, short.deadline);
}
