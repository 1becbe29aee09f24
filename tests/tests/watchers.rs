//! Watchers (issue 10, items 1-3): a watcher that falls behind costs the
//! server a bounded amount of memory and is ended with a resumable status;
//! a watcher never goes on past a gap in the event log; a wiped store ends
//! every watch, refuses old cursors and tells waiters NOT_FOUND.

use std::collections::HashSet;
use std::time::Duration;

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use approval_client::v1::ErrorReason;
use approval_tests::*;
use tonic::Code;
use tonic_types::StatusExt;

/// Reads a watch until it ends: the ids of the `added` events after
/// `synced`, the last cursor, and the status that ended it (`None`: it went
/// quiet for `quiet` instead of ending).
async fn drain(
    stream: &mut tonic::Streaming<v1::WatchPendingResponse>,
    quiet: Duration,
) -> (Vec<String>, String, Option<tonic::Status>) {
    let mut added = Vec::new();
    let mut cursor = String::new();
    loop {
        match tokio::time::timeout(quiet, stream.message()).await {
            Err(_) => return (added, cursor, None),
            Ok(Err(status)) => return (added, cursor, Some(status)),
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Ok(Some(m))) => {
                if !m.cursor.is_empty() {
                    cursor = m.cursor;
                }
                if let Some(Event::Added(a)) = m.event {
                    added.push(a.id);
                }
            }
        }
    }
}

/// Creates `per_task * tasks` approvals, `tasks` callers at once; returns
/// each caller's ids in the order it created them.
async fn create_many(port: u16, tasks: usize, per_task: usize, bytes: usize) -> Vec<Vec<String>> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        handles.push(tokio::spawn(async move {
            let mut client = connect(port).await;
            let mut ids = Vec::new();
            for _ in 0..per_task {
                let a = client
                    .create_approval(create_request_of(&format!("t{t}"), bytes))
                    .await
                    .unwrap()
                    .into_inner()
                    .approval
                    .unwrap();
                ids.push(a.id);
            }
            ids
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Whether `received` holds, of each of `created`'s sequences, a prefix
/// only: what a watcher that skipped nothing can have seen.
fn skips_nothing(created: &[Vec<String>], received: &[String]) -> Result<(), String> {
    let received: HashSet<&String> = received.iter().collect();
    for ids in created {
        let seen = ids.iter().take_while(|id| received.contains(id)).count();
        if let Some(later) = ids[seen..].iter().find(|id| received.contains(id)) {
            return Err(format!(
                "received {later} but not {}, created before it",
                ids[seen]
            ));
        }
    }
    Ok(())
}

/// A watch of everything, synced, over a connection with small HTTP/2
/// windows: a watcher that stops reading is soon behind.
async fn slow_watch(port: u16) -> tonic::Streaming<v1::WatchPendingResponse> {
    let mut slow = small_window_client(port).await;
    synced_watch(&mut slow, v1::WatchPendingRequest::default())
        .await
        .stream
}

async fn a_connected_watcher_whose_position_is_trimmed_ends_with_out_of_range_and_skips_nothing(
    store: Store,
) {
    let d = Deployment::start_with(store, 1, |c| {
        c.event_log_cap = 100;
        c.max_open_per_requester = 100_000;
        c.watcher_stall = Duration::from_secs(600);
    })
    .await;
    let port = d.replicas[0].port;
    let mut watch = slow_watch(port).await;
    // The watcher stops reading: these fill its windows and buffers...
    let mut created = create_many(port, 1, 120, 8 * 1024).await;
    // ...and these go by while it is behind, far past the log's cap and
    // past any buffer of live events the server may keep.
    created.extend(create_many(port, 8, 560, 16).await);
    let (received, _, ended) = drain(&mut watch, Duration::from_secs(10)).await;
    let total: usize = created.iter().map(Vec::len).sum();
    assert!(
        received.len() < total,
        "the watcher was never behind the log"
    );
    skips_nothing(&created, &received).unwrap();
    let status = ended.expect("the watch ended instead of going quiet");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("without a cursor"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_watcher_behind_the_trimmed_log_ends_with_out_of_range_on_redis() {
    a_connected_watcher_whose_position_is_trimmed_ends_with_out_of_range_and_skips_nothing(
        Store::Redis,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_watcher_behind_the_trimmed_log_ends_with_out_of_range_on_memory() {
    a_connected_watcher_whose_position_is_trimmed_ends_with_out_of_range_and_skips_nothing(
        Store::Memory,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_reads_nothing_is_ended_with_unavailable_and_resumes_from_its_cursor() {
    let d = Deployment::start_with(Store::Redis, 1, |c| {
        c.watcher_stall = Duration::from_secs(1);
    })
    .await;
    let port = d.replicas[0].port;
    let mut watch = slow_watch(port).await;
    let created = create_many(port, 1, 150, 8 * 1024).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (received, cursor, ended) = drain(&mut watch, PROMPTLY).await;
    let status = ended.expect("the slow watcher was ended");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("resume with the cursor"),
        "{}",
        status.message()
    );
    assert!(
        received.len() < 150,
        "nothing was dropped: {}",
        received.len()
    );
    skips_nothing(&created, &received).unwrap();
    // Resuming from the last cursor received gives exactly the rest.
    let mut client = connect(port).await;
    let mut resumed = resumed_watch(&mut client, &cursor).await;
    let mut rest = Vec::new();
    while received.len() + rest.len() < 150 {
        if let Some(Event::Added(a)) = next_event(&mut resumed).await.event {
            rest.push(a.id);
        }
    }
    let all: Vec<String> = received.into_iter().chain(rest).collect();
    assert_eq!(all, created[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_beyond_max_watchers_are_refused_even_with_auth_off() {
    let d = Deployment::start_with(Store::Memory, 1, |c| c.max_watchers = 2).await;
    let mut a = d.a().await;
    let first = synced_watch(&mut a, v1::WatchPendingRequest::default())
        .await
        .stream;
    let _second = synced_watch(&mut a, v1::WatchPendingRequest::default())
        .await
        .stream;
    let err = a
        .watch_pending(v1::WatchPendingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("--max-watchers"),
        "{}",
        err.message()
    );
    let info = err.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, ErrorReason::WatcherCap.reason());
    assert_eq!(
        info.metadata.get("scope").map(String::as_str),
        Some("replica")
    );
    // A closed watch gives its place back.
    drop(first);
    let reopened = eventually(PROMPTLY, || {
        let mut a = a.clone();
        async move {
            a.watch_pending(v1::WatchPendingRequest::default())
                .await
                .is_ok()
        }
    })
    .await;
    assert!(reopened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_redis_ends_every_watch_refuses_old_cursors_and_tells_waiters_not_found() {
    let d = Deployment::start(Store::Redis).await;
    let mut a = d.a().await;
    let vanishing = create(&mut a, "vanishing").await;
    let SyncedWatch {
        stream: mut watch,
        cursor,
        ..
    } = synced_watch(&mut a, v1::WatchPendingRequest::default()).await;
    let b = d.b().await;
    let waiter = spawn_await(&b, &vanishing.id);
    until_waiting(&d.replicas[1], 1).await;

    let mut conn = d.redis.as_ref().unwrap().connection();
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();

    let (_, _, ended) = drain(&mut watch, PROMPTLY).await;
    let status = ended.expect("the watch ended after the wipe");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("history changed"),
        "{}",
        status.message()
    );
    let waited = tokio::time::timeout(PROMPTLY, waiter)
        .await
        .expect("the waiter was answered promptly")
        .unwrap();
    assert_eq!(waited.unwrap_err().code(), Code::NotFound);
    // A cursor from before the wipe is refused on any replica, and a fresh
    // watch starts from the (empty) store.
    for mut client in [d.a().await, d.b().await] {
        let err = client
            .watch_pending(v1::WatchPendingRequest {
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        synced_watch(&mut client, v1::WatchPendingRequest::default())
            .await
            .expect_empty();
    }
}

/// Opens `n` `WatchPending` streams on one raw HTTP/2 connection that
/// answers PINGs but never opens its flow-control window (never releases
/// what it receives). Returns what keeps them open.
async fn slow_http2_watchers(port: u16, n: usize) -> impl Drop {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut held = Vec::new();
    for _ in 0..n {
        send = send.ready().await.unwrap();
        let request = http::Request::post(format!(
            "http://127.0.0.1:{port}/approval.v1.ApprovalService/WatchPending"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (response, mut body) = send.send_request(request, false).unwrap();
        // One empty WatchPendingRequest: uncompressed, length 0.
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .unwrap();
        held.push((response, body));
    }
    struct Held<T>(T, tokio::task::JoinHandle<Result<(), h2::Error>>);
    impl<T> Drop for Held<T> {
        fn drop(&mut self) {
            self.1.abort();
        }
    }
    Held((send, held), driver)
}

/// The bound README.md (Operations) states for one watcher, whatever it
/// does and whatever the contexts hold: its queue (256 KiB), hyper's
/// per-stream send buffer (400 KiB) and one message being encoded.
const WATCHER_BOUND_KIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_watchers_keep_the_replica_rss_under_the_documented_bound() {
    const WATCHERS: usize = 100;
    let redis = RedisServer::start();
    let server = ApprovaldProcess::start(&[
        "--redis-url".into(),
        redis.url(),
        "--max-open-per-requester".into(),
        "10000".into(),
        // The machine may be loaded: no create should fail for a slow Redis.
        "--redis-timeout".into(),
        "10s".into(),
    ])
    .await;
    // 300 pending approvals of 60 KB: an 18 MB snapshot for every watcher
    // that materialised it.
    create_many(server.port, 4, 75, 60 * 1024).await;
    let before = server.rss_kib();
    let _held = [
        slow_http2_watchers(server.port, WATCHERS / 2).await,
        slow_http2_watchers(server.port, WATCHERS / 2).await,
    ];
    // More arrive live while they do not read.
    create_many(server.port, 4, 25, 60 * 1024).await;
    let mut peak = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        peak = peak.max(server.rss_kib());
    }
    let growth = peak.saturating_sub(before);
    println!(
        "approvald RSS: {before} KiB before {WATCHERS} slow watchers, peak {peak} KiB \
         (+{growth} KiB, {} KiB per watcher)",
        growth / WATCHERS as u64
    );
    assert!(
        growth < WATCHERS as u64 * WATCHER_BOUND_KIB,
        "{WATCHERS} slow watchers grew the replica by {growth} KiB"
    );
}
