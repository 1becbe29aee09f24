//! Several replicas on one Redis (a server, and for the races a Redis
//! Cluster too): decisions cross replicas, races have one winner, deadlines
//! fire once, Redis outages are loud, shutdown is graceful.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use approval_tests::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// Runs each named `async fn(store: Store)` on one Redis server and on a
/// Redis Cluster.
macro_rules! on_redis_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(approval_tests::Store::Redis).await })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(approval_tests::Store::Cluster).await })*
        }
    };
}

on_redis_and_cluster!(
    a_decision_on_one_replica_wakes_the_waiter_on_another,
    fifty_concurrent_conflicting_responses_have_exactly_one_winner_and_every_view_agrees,
    a_response_racing_the_deadline_gets_one_answer_and_every_view_agrees,
    an_approval_expires_exactly_once_with_three_replicas,
    watchers_and_waiters_on_another_replica_get_the_whole_context_live_and_resumed,
);

async fn redis_deployment(replicas: usize) -> Deployment {
    Deployment::start_with(Store::Redis, replicas, |_| {}).await
}

async fn a_decision_on_one_replica_wakes_the_waiter_on_another(store: Store) {
    let d = Deployment::start_with(store, 3, |_| {}).await;
    let mut a = d.replicas[0].client().await;
    let mut c = d.replicas[2].client().await;
    let mut req = request_request("deploy:prod");
    req.idempotency_key = "cross".into();
    let waiter = tokio::spawn(async move { a.request_approval(req).await });
    let b = d.replicas[1].client().await;
    let id = wait_for(PROMPTLY, || {
        let mut b = b.clone();
        async move {
            let page = b
                .list_approvals(v1::ListApprovalsRequest::default())
                .await
                .unwrap()
                .into_inner();
            page.approvals.first().map(|a| a.id.clone())
        }
    })
    .await
    .expect("the approval is listed");
    c.respond(approve(&id, "alice")).await.unwrap();
    let answer = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("woken")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(answer.approved);
    assert_eq!(answer.approval.unwrap().decided_by, "alice");
}

async fn fifty_concurrent_conflicting_responses_have_exactly_one_winner_and_every_view_agrees(
    store: Store,
) {
    let d = Deployment::start_with(store, 2, |_| {}).await;
    let mut a = d.a().await;
    let created = create(&mut a, "race").await;
    let synced = synced_watch(&mut a, v1::WatchPendingRequest::default()).await;
    assert_eq!(synced.snapshot, std::slice::from_ref(&created));
    let mut watch = synced.stream;

    let waiter = spawn_await(&a, &created.id);
    let clients = [d.a().await, d.b().await];
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut client = clients[i % 2].clone();
        let req = if i % 3 == 0 {
            reject(&created.id, &format!("responder-{i}"))
        } else {
            approve(&created.id, &format!("responder-{i}"))
        };
        calls.push(tokio::spawn(async move { (i, client.respond(req).await) }));
    }
    let mut winners = Vec::new();
    for call in calls {
        let (i, result) = call.await.unwrap();
        match result {
            Ok(r) => winners.push((i, r.into_inner().approval.unwrap())),
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one Respond wins");
    let (i, won) = winners.pop().unwrap();
    assert_eq!(won.decided_by, format!("responder-{i}"));

    let waited = waiter
        .await
        .unwrap()
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let mut b = d.b().await;
    let got = get(&mut b, &created.id).await;
    let listed = b
        .list_approvals(v1::ListApprovalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .approvals;
    let watched = next_event(&mut watch).await;
    let Some(Event::Resolved(watched)) = watched.event else {
        panic!("expected resolved")
    };
    for view in [&waited, &got, &listed[0], &watched] {
        assert_eq!(view, &won, "every view reports the winner");
    }
    // And nothing else was resolved.
    let extra = tokio::time::timeout(Duration::from_millis(300), watch.message()).await;
    assert!(extra.is_err(), "one resolved event only: {extra:?}");
}

async fn a_response_racing_the_deadline_gets_one_answer_and_every_view_agrees(store: Store) {
    let d = Deployment::start_with(store, 2, |_| {}).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let mut watch = synced_watch(
        &mut b,
        v1::WatchPendingRequest {
            approval_types: vec!["deadline".into()],
            ..Default::default()
        },
    )
    .await
    .expect_empty();
    // The response is aimed at the approval's own deadline, steered like a
    // staircase: after an APPROVED the next one goes later, after an
    // EXPIRED earlier. So the trials straddle the deadline whatever the
    // machine's latency, and both outcomes must occur.
    let mut outcomes: HashMap<&str, u32> = HashMap::new();
    let mut offset_ms: i64 = 0;
    const STEP_MS: i64 = 25;
    const TRIALS: usize = 14;
    for _ in 0..TRIALS {
        let mut req = create_request("deadline");
        req.timeout = Some(millis(Duration::from_millis(300)));
        let created = create_with(&mut a, req).await;
        let waiter = spawn_await(&a, &created.id);
        let deadline = created.deadline.unwrap();
        let deadline =
            std::time::UNIX_EPOCH + Duration::new(deadline.seconds as u64, deadline.nanos as u32);
        let aim = if offset_ms >= 0 {
            deadline + Duration::from_millis(offset_ms as u64)
        } else {
            deadline - Duration::from_millis(offset_ms.unsigned_abs())
        };
        if let Ok(wait) = aim.duration_since(std::time::SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let responded = b.respond(approve(&created.id, "alice")).await;
        let waited = waiter
            .await
            .unwrap()
            .unwrap()
            .into_inner()
            .approval
            .unwrap();
        let expected = match &responded {
            Ok(r) => {
                let r = r.get_ref().approval.clone().unwrap();
                assert_eq!(status(&r), v1::ApprovalStatus::Approved);
                offset_ms += STEP_MS;
                r
            }
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
                assert!(e.message().contains("expired"), "{}", e.message());
                assert_eq!(status(&waited), v1::ApprovalStatus::Expired);
                offset_ms -= STEP_MS;
                waited.clone()
            }
        };
        *outcomes.entry(status(&expected).as_str_name()).or_insert(0) += 1;
        assert_eq!(waited, expected);
        assert_eq!(get(&mut a, &created.id).await, expected);
        // Skip the `added` event, then exactly one `resolved` with the outcome.
        let added = next_event(&mut watch).await;
        assert!(matches!(&added.event, Some(Event::Added(x)) if x.id == created.id));
        let resolved = next_event(&mut watch).await;
        assert_eq!(resolved.event, Some(Event::Resolved(expected)));
    }
    // Both sides of the race happened: the test exercised the deadline.
    assert!(
        outcomes
            .get("APPROVAL_STATUS_APPROVED")
            .is_some_and(|n| *n > 0)
            && outcomes
                .get("APPROVAL_STATUS_EXPIRED")
                .is_some_and(|n| *n > 0),
        "responses must land on both sides of the deadline: {outcomes:?}"
    );
}

async fn an_approval_expires_exactly_once_with_three_replicas(store: Store) {
    let d = Deployment::start_with(store, 3, |_| {}).await;
    let mut a = d.a().await;
    let mut watch = synced_watch(&mut a, v1::WatchPendingRequest::default())
        .await
        .expect_empty();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let mut req = create_request("expire");
        req.timeout = Some(millis(Duration::from_millis(300)));
        ids.push(
            a.create_approval(req)
                .await
                .unwrap()
                .into_inner()
                .approval
                .unwrap()
                .id,
        );
    }
    let mut resolved: HashMap<String, usize> = HashMap::new();
    while resolved.values().sum::<usize>() < 20 {
        match next_event(&mut watch).await.event {
            Some(Event::Resolved(x)) => {
                assert_eq!(status(&x), v1::ApprovalStatus::Expired);
                assert_eq!(x.decided_at, x.deadline);
                *resolved.entry(x.id).or_default() += 1;
            }
            Some(Event::Added(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // A duplicate expiry would show up as a second resolved event.
    let extra = tokio::time::timeout(Duration::from_millis(500), watch.message()).await;
    assert!(extra.is_err(), "no second expiry: {extra:?}");
    assert!(
        ids.iter().all(|id| resolved.get(id) == Some(&1)),
        "{resolved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_waiters_cost_redis_nothing() {
    let d = redis_deployment(2).await;
    let mut a = d.a().await;
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let created = create(&mut a, "idle").await;
        waiters.push(spawn_await(&a, &created.id));
    }
    until_waiting(&d.replicas[0], 50).await;
    let mut conn = d.redis.as_ref().unwrap().connection();
    let before = redis_commands_processed(&mut conn);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = redis_commands_processed(&mut conn);
    // What may run while idle, per replica and whatever the number of
    // waiters: the health write probe once a second, and every 2 s the
    // pump's blocking XREAD followed by its history check (epoch and log
    // head: two commands); plus our own INFO. A per-waiter cost would add
    // at least 50 commands in these 3 s.
    let per_replica = 3 + 2 * (1 + 2) + 2;
    let spent = after - before - 1;
    assert!(
        spent <= 2 * per_replica,
        "{spent} Redis commands in 3 s with 50 idle waiters"
    );
    assert!(waiters.iter().all(|w| !w.is_finished()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_calls_fail_fast_health_goes_not_serving_and_waiters_keep_waiting() {
    let mut d = redis_deployment(2).await;
    let (pa, pb) = (d.replicas[0].port, d.replicas[1].port);
    let mut a = d.a().await;
    let mut b = d.b().await;
    let created = create(&mut a, "outage").await;
    let waiter = spawn_await(&a, &created.id);
    assert_eq!(
        health(pa, "approval.v1.ApprovalService").await,
        ServingStatus::Serving
    );

    until_waiting(&d.replicas[0], 1).await;
    d.redis.as_mut().unwrap().stop();
    let started = Instant::now();
    let err = b
        .create_approval(create_request("outage"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast, took {:?}",
        started.elapsed()
    );
    let err = b.respond(approve(&created.id, "alice")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    for port in [pa, pb] {
        assert!(
            eventually(PROMPTLY, || async move {
                health(port, "").await == ServingStatus::NotServing
            })
            .await
        );
        assert_eq!(
            health(port, "approval.v1.ApprovalService").await,
            ServingStatus::NotServing
        );
        assert_eq!(
            health(port, "liveness").await,
            ServingStatus::Serving,
            "liveness stays up"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter keeps waiting: no made-up decision"
    );

    d.redis.as_mut().unwrap().restart();
    for port in [pa, pb] {
        assert!(
            eventually(PROMPTLY, || async move {
                health(port, "approval.v1.ApprovalService").await == ServingStatus::Serving
            })
            .await
        );
    }
    let responded = wait_for(PROMPTLY, || {
        let mut b = b.clone();
        let id = created.id.clone();
        async move { b.respond(approve(&id, "alice")).await.ok() }
    })
    .await;
    assert!(
        responded.is_some(),
        "Respond works again once Redis is back"
    );
    let answer = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("waiter woke")
        .unwrap()
        .expect("await")
        .into_inner();
    assert!(answer.approved);
    assert_eq!(answer.approval.unwrap().decided_by, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_decision_survives_a_redis_restart() {
    let mut d = redis_deployment(1).await;
    let mut a = d.a().await;
    let created = create(&mut a, "durable").await;
    a.respond(approve(&created.id, "alice")).await.unwrap();
    d.redis.as_mut().unwrap().restart();
    let got = wait_for(PROMPTLY, || {
        let mut a = a.clone();
        let id = created.id.clone();
        async move {
            a.get_approval(v1::GetApprovalRequest { id })
                .await
                .ok()
                .and_then(|r| r.into_inner().approval)
        }
    })
    .await
    .expect("readable again after the restart");
    assert_eq!(status(&got), v1::ApprovalStatus::Approved);
    assert_eq!(got.decided_by, "alice");
}

/// Two replicas on one Redis whose `--default-timeout` differs (300 s on A,
/// 600 s on B), as during a rolling change of it.
async fn replicas_with_different_default_timeouts() -> Deployment {
    let next = std::cell::Cell::new(0);
    let d = Deployment::start_with(Store::Redis, 2, |c| {
        c.default_timeout = Duration::from_secs([300, 600][next.get()]);
        next.set(next.get() + 1);
    })
    .await;
    assert_eq!(next.get(), 2);
    d
}

/// The create of `key`, with `timeout` when given.
fn keyed(key: &str, timeout: Option<Duration>) -> v1::CreateApprovalRequest {
    v1::CreateApprovalRequest {
        idempotency_key: key.into(),
        timeout: timeout.map(millis),
        ..create_request("deploy:prod")
    }
}

/// Fails unless `result` is the refusal of a key used for another request.
fn assert_key_reused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    let err = result.expect_err(what);
    let info = tonic_types::StatusExt::get_details_error_info(&err).expect("ErrorInfo");
    assert_eq!(
        info.reason,
        v1::ErrorReason::IdempotencyKeyReused.reason(),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_a_timeout_reattaches_on_a_replica_with_another_default_timeout() {
    let d = replicas_with_different_default_timeouts().await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let first = a
        .create_approval(keyed("run-1", None))
        .await
        .unwrap()
        .into_inner();
    let made = first.approval.unwrap();
    assert!(first.created);
    let again = b
        .create_approval(keyed("run-1", None))
        .await
        .expect("the same request, on a replica with another default")
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.approval.unwrap(),
        made,
        "the first replica's deadline holds"
    );
    // A timeout given is part of the request: the same one re-attaches on
    // either replica, another (or none) is another request.
    let given = Some(Duration::from_secs(120));
    let first = b
        .create_approval(keyed("run-2", given))
        .await
        .unwrap()
        .into_inner();
    let again = a
        .create_approval(keyed("run-2", given))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.created, again.created), (true, false));
    assert_eq!(first.approval, again.approval);
    for (key, other) in [
        ("run-2", None),
        ("run-2", Some(Duration::from_secs(121))),
        ("run-1", Some(Duration::from_secs(300))),
    ] {
        let refused = a.create_approval(keyed(key, other)).await;
        assert_key_reused(refused, &format!("{key} {other:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_stored_by_the_previous_version_still_reattaches_by_its_key() {
    // The previous version stored `fp`, a fingerprint of the resolved
    // timeout (deadline - created), where this one stores `fp2`, of the
    // timeout as requested. Such a record, written by hand: this version
    // compares it itself, an absent timeout matching the one it got.
    let d = replicas_with_different_default_timeouts().await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let made = create_with(&mut a, keyed("old", None)).await;
    let hash = format!("{}:approval:{}", d.hash_tag(), made.id);
    let mut conn = d.redis.as_ref().unwrap().connection();
    let removed: usize = ::redis::cmd("HDEL")
        .arg(&hash)
        .arg("fp2")
        .query(&mut conn)
        .unwrap();
    assert_eq!(removed, 1, "a new record has fp2");
    // Its value is never read by this version (any 64 hex digits).
    let () = ::redis::cmd("HSET")
        .arg(&hash)
        .arg("fp")
        .arg("0".repeat(64))
        .query(&mut conn)
        .unwrap();
    for (what, timeout) in [
        ("no timeout, another default", None),
        ("the timeout it got", Some(Duration::from_secs(300))),
    ] {
        let again = b
            .create_approval(keyed("old", timeout))
            .await
            .expect(what)
            .into_inner();
        assert!(!again.created, "{what}");
        assert_eq!(again.approval.unwrap().id, made.id, "{what}");
    }
    let mut other_context = keyed("old", None);
    other_context.context = Some(context(&[("target", "staging")]));
    for (what, different) in [
        (
            "another timeout",
            keyed("old", Some(Duration::from_secs(600))),
        ),
        ("another context", other_context),
    ] {
        assert_key_reused(b.create_approval(different).await, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_open_waiters_and_watchers_ends_within_its_grace() {
    let grace = Duration::from_secs(3);
    let mut d = Deployment::start_with(Store::Redis, 2, |c| c.shutdown_grace = grace).await;
    let port = d.replicas[0].port;
    let mut a = d.a().await;
    let mut waiters = Vec::new();
    for i in 0..5 {
        let mut req = request_request("shutdown");
        req.idempotency_key = format!("job-{i}");
        let mut a = a.clone();
        waiters.push(tokio::spawn(async move { a.request_approval(req).await }));
    }
    let mut watch = a
        .watch_pending(v1::WatchPendingRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut b = d.b().await;
    assert!(
        eventually(PROMPTLY, || {
            let mut b = b.clone();
            async move {
                b.list_approvals(v1::ListApprovalsRequest::default())
                    .await
                    .unwrap()
                    .into_inner()
                    .approvals
                    .len()
                    == 5
            }
        })
        .await
    );

    d.replicas[0].begin_shutdown();
    assert!(
        eventually(PROMPTLY, || async move {
            health(port, "").await != ServingStatus::Serving
        })
        .await
    );
    let took = d.replicas[0].stop().await;
    assert!(
        took < grace + Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    for w in waiters {
        let err = w.await.unwrap().expect_err("told to retry elsewhere");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
    // The watcher's stream ended (with UNAVAILABLE: reconnect elsewhere).
    let mut ended = false;
    while let Ok(Some(item)) = tokio::time::timeout(PROMPTLY, watch.message())
        .await
        .map(|r| r.transpose())
    {
        if let Err(status) = item {
            assert_eq!(status.code(), Code::Unavailable);
            ended = true;
            break;
        }
    }
    assert!(ended, "watch stream closed by shutdown");

    // Nothing lost: each waiter re-attaches on the other replica.
    let pending = b
        .list_approvals(v1::ListApprovalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .approvals;
    assert_eq!(pending.len(), 5);
    assert!(pending
        .iter()
        .all(|a| status(a) == v1::ApprovalStatus::Pending));
    b.respond(approve(&pending[0].id, "alice")).await.unwrap();
    let mut req = request_request("shutdown");
    req.idempotency_key = pending[0].idempotency_key.clone();
    let answer = b.request_approval(req).await.unwrap().into_inner();
    assert!(answer.approved);
    assert_eq!(answer.approval.unwrap().id, pending[0].id);
}

// ---- the event log's entries are small; the log is bounded in bytes ----

/// The approval of a watch event, failing the test unless it is `added`
/// (`added: true`) or `resolved`.
fn event_approval(m: v1::WatchPendingResponse, added: bool) -> v1::Approval {
    match (m.event, added) {
        (Some(Event::Added(a)), true) | (Some(Event::Resolved(a)), false) => a,
        (other, _) => panic!(
            "expected {} event, got {other:?}",
            if added { "an added" } else { "a resolved" }
        ),
    }
}

/// The log's entries leave the approval's body out; whoever shows an
/// event reads it from the approval, so nothing of it is lost on the way.
async fn watchers_and_waiters_on_another_replica_get_the_whole_context_live_and_resumed(
    store: Store,
) {
    let d = Deployment::start(store).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let watch = synced_watch(&mut b, v1::WatchPendingRequest::default()).await;
    let start = watch.cursor.clone();
    let mut live = watch.expect_empty();
    let sent = create_request_of("deploy:prod", 30_000).context;
    let created = create_with(&mut a, create_request_of("deploy:prod", 30_000)).await;
    let waiter = spawn_await(&b, &created.id);
    until_waiting(&d.replicas[1], 1).await;
    let added = event_approval(next_event(&mut live).await, true);
    assert_eq!(added.id, created.id);
    assert_eq!(
        added.context, sent,
        "the live added event has the whole context"
    );
    assert_eq!(added.approval_type, "deploy:prod");
    a.respond(approve(&created.id, "alice")).await.unwrap();
    let resolved = event_approval(next_event(&mut live).await, false);
    assert_eq!(resolved.context, sent, "the live resolved event has it too");
    assert_eq!(resolved.decided_by, "alice");
    let answer = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter is woken")
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.approval.unwrap().context,
        sent,
        "the waiter's answer too"
    );
    // Resumed from before both events: read from the log, completed too.
    let mut resumed = resumed_watch(&mut b, &start).await;
    let added = event_approval(next_event(&mut resumed).await, true);
    assert_eq!(
        added.context, sent,
        "a resumed added event has the whole context"
    );
    let resolved = event_approval(next_event(&mut resumed).await, false);
    assert_eq!(resolved.context, sent);
    assert_eq!(resolved.decided_by, "alice");
}

/// `MEMORY USAGE` of this deployment's event stream, exact (every node).
fn log_bytes(d: &Deployment) -> usize {
    let mut conn = d.redis.as_ref().expect("a Redis server").connection();
    ::redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("{}:events", d.hash_tag()))
        .arg("SAMPLES")
        .arg(0)
        .query::<Option<usize>>(&mut conn)
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_holds_small_entries_not_the_contexts_of_its_approvals() {
    let d = redis_deployment(2).await;
    let mut a = d.a().await;
    for _ in 0..40 {
        let created = create_with(&mut a, create_request_of("deploy:prod", 30_000)).await;
        a.respond(reject(&created.id, "alice")).await.unwrap();
    }
    // 80 events, of 1.2 MB of context: a few hundred bytes each.
    let bytes = log_bytes(&d);
    assert!(
        bytes < 80 * 1024,
        "the log takes {bytes} bytes for 80 events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_stays_under_its_byte_bound_when_its_entries_are_large() {
    const BOUND: usize = 256 * 1024;
    let d = Deployment::start_with(Store::Redis, 2, |c| c.event_log_max_bytes = BOUND).await;
    let mut a = d.a().await;
    let reason = "r".repeat(4000);
    let mut largest = 0;
    // 300 rejections with a 4 KB reason (in the entry twice: the reason and
    // the vote): about 2.5 MB of entries written.
    for i in 0..300 {
        let created = create(&mut a, "deploy:prod").await;
        let mut no = reject(&created.id, "alice");
        no.reason = reason.clone();
        a.respond(no).await.unwrap();
        if i % 10 == 9 {
            largest = largest.max(log_bytes(&d));
        }
    }
    assert!(
        largest <= BOUND,
        "the log took {largest} bytes, past its bound of {BOUND}"
    );
    let mut conn = d.redis.as_ref().unwrap().connection();
    let kept: usize = ::redis::cmd("XLEN")
        .arg(format!("{}:events", d.hash_tag()))
        .query(&mut conn)
        .unwrap();
    println!("largest MEMORY USAGE {largest} of {BOUND}; {kept} events kept");
    assert!(
        kept >= 10,
        "trimming by bytes keeps the newest events ({kept})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_approval_record_is_gone_still_reaches_a_watcher() {
    let d = redis_deployment(2).await;
    let mut a = d.a().await;
    let mut b = d.b().await;
    let start = synced_watch(&mut b, v1::WatchPendingRequest::default())
        .await
        .cursor;
    let created = create_with(&mut a, create_request_of("deploy:prod", 1_000)).await;
    a.respond(approve(&created.id, "alice")).await.unwrap();
    // As if its retention had passed. (Read next on the replica that
    // wrote it: no watcher there read its body, nothing has it cached.)
    let mut conn = d.redis.as_ref().unwrap().connection();
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{}:approval:{}", d.hash_tag(), created.id))
        .query(&mut conn)
        .unwrap();
    let mut resumed = resumed_watch(&mut a, &start).await;
    // What the entries hold: the id, status, times and decision; the
    // context, type and labels are gone with the record.
    let added = event_approval(next_event(&mut resumed).await, true);
    assert_eq!(added.id, created.id);
    assert_eq!(added.deadline, created.deadline);
    assert!(added.context.is_none_or(|c| c.fields.is_empty()));
    let resolved = event_approval(next_event(&mut resumed).await, false);
    assert_eq!(resolved.id, created.id);
    assert_eq!(status(&resolved), v1::ApprovalStatus::Approved);
    assert_eq!(resolved.decided_by, "alice");
    assert_eq!(resolved.reason, "looks good");
}
