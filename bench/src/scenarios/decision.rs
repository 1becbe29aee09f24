//! Decision latency across replicas: N waiters blocked in AwaitApproval on
//! replica A; one decision at a time sent to replica B with Respond. The
//! latency of one decision runs from just before Respond is sent to the
//! moment the waiter's AwaitApproval call returns its answer. The next
//! decision is sent only after that, so decisions never queue behind each
//! other.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{approve, create_many, start_waiters, within};
use crate::stats::Latencies;
use crate::{Bench, BenchResult};

/// Calls per HTTP/2 connection to replica A (approvald allows 10,000).
const WAITERS_PER_CONNECTION: usize = 2_000;

#[derive(Clone)]
pub struct DecisionRow {
    pub waiters: usize,
    pub latencies: Latencies,
    pub cpu: String,
}

pub async fn run(b: &Bench) -> BenchResult<Vec<DecisionRow>> {
    let mut rows = Vec::new();
    for &(waiters, rounds) in &b.sizes.decision {
        eprintln!(
            "\n== decision latency: {waiters} waiters on A, decisions on B, {rounds} round(s)"
        );
        let row = one(b, waiters, rounds).await?;
        eprintln!("{}  [{}]", row.latencies.summary(), row.cpu);
        rows.push(row);
    }
    Ok(rows)
}

async fn one(b: &Bench, waiters: usize, rounds: usize) -> BenchResult<DecisionRow> {
    let prefix = b.prefix("decision");
    let a = b.replica(&prefix, "a").await?;
    let r = b.replica(&prefix, "b").await?;
    let clients = a.clients(waiters.div_ceil(WAITERS_PER_CONNECTION)).await?;
    let mut responder = r.client().await?;
    let mut latencies = Latencies::default();
    let mut cpu = String::new();
    for _ in 0..rounds {
        let ids = create_many(&clients, waiters, 64, "bench:decision").await?;
        let (tx, mut answered) = mpsc::unbounded_channel();
        let calls = start_waiters(&a, &clients, &ids, tx).await?;
        let window = super::CpuWindow::start(&[&a, &r], b.redis.pid);
        for (i, id) in ids.iter().enumerate() {
            let sent = Instant::now();
            within("Respond", Duration::from_secs(10), async {
                Ok(responder.respond(approve(id)).await?)
            })
            .await?;
            let (j, at, reply) = within("the waiter's answer", Duration::from_secs(10), async {
                answered.recv().await.ok_or_else(|| "waiters ended".into())
            })
            .await?;
            match reply {
                Ok(true) if j == i => latencies.record(at - sent),
                Ok(true) => return Err(format!("waiter {j} woke for decision {i}").into()),
                Ok(false) => return Err("waiter returned approved=false".into()),
                Err(s) => return Err(format!("AwaitApproval failed: {s}").into()),
            }
        }
        cpu = window.finish();
        drop(calls);
    }
    Ok(DecisionRow {
        waiters,
        latencies,
        cpu,
    })
}
