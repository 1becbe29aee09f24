//! What the event log costs Redis (issue 16, item 4): its memory, and the
//! bytes every replica reads from Redis per event, with small and large
//! contexts, with and without watchers. A measurement for BENCHMARKS.md
//! ("The event log: memory and bytes per replica"), quick to run:
//!
//!     cargo test -p approval-tests --test event_log -- --ignored --nocapture
//!
//! Counts of bytes are deterministic (up to the replicas' idle checks, a
//! few hundred bytes a second), so a loaded machine does not matter.

use std::time::Duration;

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use approval_tests::*;

/// Approvals per run: each makes two events (added, resolved).
const LIFECYCLES: usize = 200;

/// A field of `INFO` (a number).
fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has {field}"))
}

struct Run {
    /// Redis's `total_net_output_bytes` during the workload.
    sent: u64,
    /// `MEMORY USAGE` of the event stream afterwards (every node sampled).
    log_bytes: u64,
    /// `INFO used_memory` growth over the workload.
    used_memory: u64,
}

/// `LIFECYCLES` approvals of about `context` bytes, created and rejected
/// through the first of `replicas` replicas, with `watchers` (one per
/// replica) reading every event or none.
async fn run(replicas: usize, context: usize, watchers: bool) -> Run {
    let d = Deployment::start_with(Store::Redis, replicas, |_| {}).await;
    let mut conn = d.redis.as_ref().unwrap().connection();
    let mut streams = Vec::new();
    if watchers {
        for r in &d.replicas {
            let mut client = r.client().await;
            streams.push(
                synced_watch(&mut client, v1::WatchPendingRequest::default())
                    .await
                    .expect_empty(),
            );
        }
    }
    // Let the replicas settle (pumps started, first checks done).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_before = info_field(&mut conn, "stats", "total_net_output_bytes");
    let memory_before = info_field(&mut conn, "memory", "used_memory");
    // Watchers read as events come (one that lags re-reads the log).
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < 2 * LIFECYCLES {
                    let m = next_event(&mut stream).await;
                    if let Some(Event::Added(a) | Event::Resolved(a)) = m.event {
                        assert!(
                            a.context.is_some_and(|c| !c.fields.is_empty()),
                            "watchers get the context"
                        );
                        seen += 1;
                    }
                }
            })
        })
        .collect();
    let mut a = d.a().await;
    for _ in 0..LIFECYCLES {
        let created = create_with(&mut a, create_request_of("deploy:prod", context)).await;
        a.respond(reject(&created.id, "alice")).await.unwrap();
    }
    for reader in readers {
        reader.await.expect("every watcher gets every event");
    }
    // Every pump read it all (no watcher to tell: a bounded wait).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = info_field(&mut conn, "stats", "total_net_output_bytes") - sent_before;
    let used_memory = info_field(&mut conn, "memory", "used_memory").saturating_sub(memory_before);
    let log_bytes: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("{}:events", d.hash_tag()))
        .arg("SAMPLES")
        .arg(0)
        .query(&mut conn)
        .unwrap();
    Run {
        sent,
        log_bytes: log_bytes.unwrap_or(0),
        used_memory,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn measure_event_log_memory_and_bytes_read_per_event_per_replica() {
    let events = (2 * LIFECYCLES) as f64;
    println!(
        "| context | watchers | log MEMORY USAGE per event | used_memory growth per lifecycle | Redis bytes out per event per replica |"
    );
    println!("|---|---|---|---|---|");
    let mut log_per_event = Vec::new();
    for context in [1_000, 60_000] {
        for watchers in [false, true] {
            // The second replica's reads are the difference between two
            // replicas and one doing the same.
            let one = run(1, context, watchers).await;
            let two = run(2, context, watchers).await;
            let per_replica = two.sent.saturating_sub(one.sent) as f64 / events;
            println!(
                "| {} KB | {} | {:.0} B | {:.0} B | {:.0} B |",
                context / 1000,
                if watchers { "1 per replica" } else { "none" },
                two.log_bytes as f64 / events,
                two.used_memory as f64 / LIFECYCLES as f64,
                per_replica,
            );
            log_per_event.push(two.log_bytes as f64 / events);
        }
    }
    // The log holds no context: its entries stay small with 60 KB contexts.
    assert!(
        log_per_event.iter().all(|&b| b < 1024.0),
        "log bytes per event: {log_per_event:?}"
    );
}
