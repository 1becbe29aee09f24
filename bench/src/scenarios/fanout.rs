//! Watch fan-out: W WatchPending streams open on replica A (its watcher cap
//! raised to W); approvals created one at a time on replica B. Run once per
//! size (fresh replicas each). For each approval: the latency from just
//! before CreateApproval is sent to each watcher receiving its `added` event,
//! and to the last of the W watchers having it ("every watcher"). The next
//! approval is created only once every watcher has the previous one.

use std::time::{Duration, Instant};

use approval_api::v1::watch_pending_response::Event;
use approval_api::v1::WatchPendingRequest;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{create_request, within, CpuWindow};
use crate::stats::{Latencies, Summary};
use crate::{Bench, BenchResult};

const APPROVAL_TYPE: &str = "bench:fanout";
const WATCHERS_PER_CONNECTION: usize = 50;

#[derive(Clone, Debug)]
pub struct FanoutRow {
    pub watchers: usize,
    pub approvals: usize,
    /// One sample per (approval, watcher).
    pub each: Summary,
    /// One sample per approval: until the last watcher had it.
    pub every: Summary,
    pub cpu: String,
}

pub async fn run(b: &Bench) -> BenchResult<Vec<FanoutRow>> {
    let mut rows = Vec::new();
    for &(watchers, approvals) in &b.sizes.fanout {
        rows.push(run_one(b, watchers, approvals).await?);
    }
    Ok(rows)
}

async fn run_one(b: &Bench, watchers: usize, approvals: usize) -> BenchResult<FanoutRow> {
    eprintln!("\n== watch fan-out: {watchers} WatchPending streams on A, {approvals} approvals created on B");
    let prefix = b.prefix("fanout");
    let flags = ["--max-watchers".to_string(), watchers.to_string()];
    let a = b.replica_with_args(&prefix, "a", None, &flags).await?;
    let creator_replica = b.replica(&prefix, "b").await?;
    let mut creator = creator_replica.client().await?;

    let (tx, mut seen) = mpsc::unbounded_channel::<(String, Instant)>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let clients = a
        .clients(watchers.div_ceil(WATCHERS_PER_CONNECTION))
        .await?;
    let mut streams = JoinSet::new();
    for i in 0..watchers {
        let mut client = clients[i % clients.len()].clone();
        let tx = tx.clone();
        let ready_tx = ready_tx.clone();
        streams.spawn(async move {
            let request = WatchPendingRequest {
                approval_types: vec![APPROVAL_TYPE.into()],
                ..Default::default()
            };
            let Ok(reply) = client.watch_pending(request).await else {
                return;
            };
            let mut stream = reply.into_inner();
            while let Ok(Some(m)) = stream.message().await {
                match m.event {
                    Some(Event::Synced(_)) => {
                        let _ = ready_tx.send(());
                    }
                    Some(Event::Added(a)) => {
                        let delivered = tx.send((a.id, Instant::now()));
                        if delivered.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    let open_limit = Duration::from_secs(60 + watchers as u64 / 100);
    within("every watcher synced", open_limit, async {
        for _ in 0..watchers {
            ready.recv().await.ok_or("a watcher ended before synced")?;
        }
        Ok(())
    })
    .await?;

    let mut each = Latencies::default();
    let mut every = Latencies::default();
    let cpu = CpuWindow::start(&[&a, &creator_replica], b.redis.pid);
    for i in 0..approvals {
        let sent = Instant::now();
        let id = creator
            .create_approval(create_request(APPROVAL_TYPE, i))
            .await?
            .into_inner()
            .approval
            .ok_or("CreateApproval returned no approval")?
            .id;
        let last = within(
            "every watcher having the approval",
            Duration::from_secs(30),
            async {
                let mut last = sent;
                for _ in 0..watchers {
                    let (seen_id, at) = seen.recv().await.ok_or("watchers ended")?;
                    if seen_id != id {
                        return Err(
                            format!("a watcher saw {seen_id} while waiting for {id}").into()
                        );
                    }
                    each.record(at - sent);
                    last = last.max(at);
                }
                Ok(last)
            },
        )
        .await?;
        every.record(last - sent);
    }
    let cpu = cpu.finish();
    streams.shutdown().await;
    let row = FanoutRow {
        watchers,
        approvals,
        each: each.summary(),
        every: every.summary(),
        cpu,
    };
    eprintln!("each delivery:  {}", row.each);
    eprintln!("every watcher:  {}  [{}]", row.every, row.cpu);
    Ok(row)
}
