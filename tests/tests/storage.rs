//! What the stores keep, and for how long: every Redis key under the
//! namespace's hash tag and bounded (TTL or cap); the event log capped, with
//! resume cursors older than it refused.

use std::time::Duration;

use approval_client::v1;
use approval_tests::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_key_is_under_the_namespace_tag_and_has_a_ttl_or_a_cap() {
    let retention = Duration::from_secs(3600);
    let d = Deployment::start_with(Store::Redis, 2, |c| {
        c.retention = retention;
        c.event_log_cap = 10;
    })
    .await;
    let mut a = d.a().await;
    let mut decided = Vec::new();
    for i in 0..130 {
        let mut req = create_request("keys");
        req.idempotency_key = format!("k{i}");
        let created = create_with(&mut a, req).await;
        if i % 2 == 0 {
            a.respond(approve(&created.id, "alice")).await.unwrap();
            decided.push(created.id);
        }
    }
    let mut conn = d.redis.as_ref().unwrap().connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let tag = format!("{{{}}}:", d.prefix);
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with(&tag),
            "{key} is outside the namespace {tag}"
        );
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).unwrap();
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut conn).unwrap();
        match kind.as_str() {
            // The history's epoch and the layout record: one short value
            // each, for good.
            "string" if key.ends_with(":epoch") || key.ends_with(":layout") => {}
            "hash" | "string" if !key.ends_with(":open") => {
                assert!(ttl > 0, "{key} ({kind}) has no TTL")
            }
            // Capped: the event log by MAXLEN (~: whole nodes of up to 100).
            "stream" => {
                let len: usize = redis::cmd("XLEN").arg(key).query(&mut conn).unwrap();
                assert!(len <= 10 + 100, "{key} holds {len} events with a cap of 10");
            }
            // Indexes: bounded by what the hashes hold (checked below).
            "zset" => {}
            // Open counts: one field per requester with pending approvals.
            "hash" if key.ends_with(":open") => {
                let open: std::collections::HashMap<String, i64> =
                    redis::cmd("HGETALL").arg(key).query(&mut conn).unwrap();
                assert_eq!(open, [("agent-7".to_string(), 65)].into(), "{key}");
            }
            other => panic!("unexpected {other} key {key}"),
        }
    }
    // The pending index holds exactly the pending approvals.
    let pending: usize = redis::cmd("ZCARD")
        .arg(format!("{tag}pending"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending, 65);
    // A final approval is kept for the retention, no longer.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{tag}approval:{}", decided[0]))
        .query(&mut conn)
        .unwrap();
    assert!(
        ttl <= retention.as_millis() as i64 && ttl > (retention.as_millis() as i64) - 60_000,
        "{ttl}"
    );
    // A pending one until its deadline (300 s default) plus the retention.
    let listed = a
        .list_approvals(v1::ListApprovalsRequest {
            statuses: vec![v1::ApprovalStatus::Pending as i32],
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{tag}approval:{}", listed.approvals[0].id))
        .query(&mut conn)
        .unwrap();
    assert!(
        ttl > retention.as_millis() as i64
            && ttl <= (retention + Duration::from_secs(300)).as_millis() as i64,
        "{ttl}"
    );
}

async fn cursor_older_than_the_log_is_refused(store: Store) {
    let d = Deployment::start_with(store, 2, |c| c.event_log_cap = 10).await;
    let mut a = d.a().await;
    let mut watch = synced_watch(&mut a, v1::WatchPendingRequest::default())
        .await
        .expect_empty();
    create(&mut a, "old").await;
    let first = next_event(&mut watch).await;
    drop(watch);
    for _ in 0..250 {
        create(&mut a, "old").await;
    }
    let mut b = d.b().await;
    let err = b
        .watch_pending(v1::WatchPendingRequest {
            cursor: first.cursor,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(
        err.message().contains("without a cursor"),
        "{}",
        err.message()
    );
    // Starting over works: a fresh snapshot of all 251.
    let fresh = synced_watch(&mut b, v1::WatchPendingRequest::default()).await;
    assert_eq!(fresh.snapshot.len(), 251);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_capped_log_is_refused_on_redis() {
    cursor_older_than_the_log_is_refused(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_capped_log_is_refused_on_memory() {
    cursor_older_than_the_log_is_refused(Store::Memory).await;
}
