//! Idle cost: N calls blocked in AwaitApproval on one replica with nothing
//! happening. Server memory per waiter is the replica's RSS with the N
//! waiters minus its RSS with the same connections open and the same N
//! approvals pending but no call waiting. Redis commands per second come
//! from `INFO commandstats` over a quiet window, first with no waiter, then
//! with N.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{create_many, start_waiters};
use crate::{Bench, BenchResult};

const WAITERS_PER_CONNECTION: usize = 2_000;

#[derive(Clone, Debug)]
pub struct IdleRow {
    pub waiters: usize,
    pub rss_without: u64,
    pub rss_with: u64,
    pub bytes_per_waiter: f64,
    pub window: Duration,
    /// Redis commands per second over the window, with no waiter.
    pub commands_without: f64,
    /// The same with N waiters blocked.
    pub commands_with: f64,
}

impl IdleRow {
    pub fn commands_per_waiter(&self) -> f64 {
        (self.commands_with - self.commands_without).max(0.0) / self.waiters as f64
    }
}

pub async fn run(b: &Bench) -> BenchResult<Vec<IdleRow>> {
    let mut rows = Vec::new();
    for &n in &b.sizes.idle_waiters {
        eprintln!("\n== idle cost: {n} waiters on one replica");
        let row = one(b, n).await?;
        eprintln!(
            "RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per waiter; Redis {:.2} commands/s without waiters, {:.2} with ({:.6} per waiter)",
            row.rss_without as f64 / 1048576.0,
            row.rss_with as f64 / 1048576.0,
            row.bytes_per_waiter,
            row.commands_without,
            row.commands_with,
            row.commands_per_waiter()
        );
        rows.push(row);
    }
    Ok(rows)
}

async fn commands_per_second(b: &Bench, window: Duration) -> BenchResult<f64> {
    let before = b.redis.commands().await?;
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let after = b.redis.commands().await?;
    Ok((after - before) as f64 / t0.elapsed().as_secs_f64())
}

async fn one(b: &Bench, n: usize) -> BenchResult<IdleRow> {
    let prefix = b.prefix("idle");
    let replica = b.replica(&prefix, "a").await?;
    let clients = replica.clients(n.div_ceil(WAITERS_PER_CONNECTION)).await?;
    let ids = create_many(&clients, n, 128, "bench:idle").await?;
    // Let the pump and allocator settle after the burst of creations.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = b.sizes.idle_window;
    let commands_without = commands_per_second(b, window).await?;
    let rss_without = replica.rss()?;

    let (tx, mut answered) = mpsc::unbounded_channel();
    let calls = start_waiters(&replica, &clients, &ids, tx).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let commands_with = commands_per_second(b, window).await?;
    let rss_with = replica.rss()?;
    if let Ok((i, _, reply)) = answered.try_recv() {
        return Err(format!("waiter {i} returned while idle: {reply:?}").into());
    }
    drop(calls);
    Ok(IdleRow {
        waiters: n,
        rss_without,
        rss_with,
        bytes_per_waiter: rss_with.saturating_sub(rss_without) as f64 / n as f64,
        window,
        commands_without,
        commands_with,
    })
}
