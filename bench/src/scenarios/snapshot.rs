//! Scale of the pending set, part one: P approvals pending (created through
//! two replicas), then a new WatchPending stream on a third connection; the
//! snapshot time runs from the call being sent to `synced` being received,
//! with all P `added` events read on the way.

use std::time::{Duration, Instant};

use approval_api::v1::watch_pending_response::Event;
use approval_api::v1::WatchPendingRequest;

use super::{create_many, within};
use crate::{Bench, BenchResult};

#[derive(Clone, Debug)]
pub struct SnapshotRow {
    pub pending: usize,
    /// Seconds per run.
    pub runs: Vec<f64>,
    /// Creations per second while filling the pending set (two replicas).
    pub created_per_second: f64,
    pub rss_after: u64,
}

pub async fn run(b: &Bench) -> BenchResult<SnapshotRow> {
    let pending = b.sizes.snapshot_pending;
    eprintln!("\n== snapshot of {pending} pending approvals");
    b.redis.flush().await?;
    let prefix = b.prefix("snapshot");
    let a = b.replica(&prefix, "a").await?;
    let r = b.replica(&prefix, "b").await?;
    let mut creators = a.clients(2).await?;
    creators.extend(r.clients(2).await?);
    let t0 = Instant::now();
    create_many(&creators, pending, 256, "bench:snapshot").await?;
    let created_per_second = pending as f64 / t0.elapsed().as_secs_f64();
    eprintln!(
        "created {pending} in {:.1} s ({created_per_second:.0}/s)",
        t0.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    for _ in 0..b.sizes.snapshot_runs {
        let mut client = a.client().await?;
        let seconds = within("snapshot", Duration::from_secs(120), async {
            let t0 = Instant::now();
            let mut stream = client
                .watch_pending(WatchPendingRequest::default())
                .await?
                .into_inner();
            let mut added = 0usize;
            while let Some(m) = stream.message().await? {
                match m.event {
                    Some(Event::Added(_)) => added += 1,
                    Some(Event::Synced(_)) => {
                        let took = t0.elapsed().as_secs_f64();
                        if added != pending {
                            return Err(
                                format!("snapshot held {added} approvals, not {pending}").into()
                            );
                        }
                        return Ok(took);
                    }
                    _ => {}
                }
            }
            Err("WatchPending ended before synced".into())
        })
        .await?;
        eprintln!("snapshot: {seconds:.3} s");
        runs.push(seconds);
    }
    Ok(SnapshotRow {
        pending,
        runs,
        created_per_second,
        rss_after: a.rss()?,
    })
}
