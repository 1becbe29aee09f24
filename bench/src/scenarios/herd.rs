//! A crowd at once: N `AwaitApproval` calls started in the same instant on
//! one replica, as a replica restart makes (every client of the old process
//! retries into the new one). Counted: the calls that attached (all N
//! waiting at once), those that failed instead (by status code, until
//! `SETTLE` after all were registered), and the time from the first call
//! sent until all N waited.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use approval_api::v1::AwaitApprovalRequest;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::create_many;
use crate::{Bench, BenchResult};

const WAITERS_PER_CONNECTION: usize = 2_000;
/// How long the crowd may take to attach before the run gives up.
const ATTACH_LIMIT: Duration = Duration::from_secs(120);
/// Once all are registered, how long failures are still counted: a call
/// counts as waiting from before its first read, which may still fail.
const SETTLE: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct HerdRow {
    pub calls: usize,
    /// Most calls seen waiting at once.
    pub attached: usize,
    /// Calls that returned instead of waiting, by status code.
    pub failed: BTreeMap<String, usize>,
    /// Until all attached (`None`: they never all did).
    pub seconds: Option<f64>,
}

impl HerdRow {
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

pub async fn run(b: &Bench) -> BenchResult<Vec<HerdRow>> {
    let mut rows = Vec::new();
    for &n in &b.sizes.herd_waiters {
        eprintln!("\n== a crowd at once: {n} AwaitApproval calls in one instant, one replica");
        let row = one(b, n).await?;
        eprintln!(
            "{} of {} attached{}; failed: {:?}",
            row.attached,
            row.calls,
            row.seconds
                .map(|s| format!(" in {s:.2} s"))
                .unwrap_or_default(),
            row.failed
        );
        rows.push(row);
    }
    Ok(rows)
}

async fn one(b: &Bench, n: usize) -> BenchResult<HerdRow> {
    let prefix = b.prefix("herd");
    let replica = b.replica(&prefix, "a").await?;
    let clients = replica.clients(n.div_ceil(WAITERS_PER_CONNECTION)).await?;
    let ids = create_many(&clients, n, 128, "bench:herd").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (tx, mut answered) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let mut client = clients[i % clients.len()].clone();
        let request = AwaitApprovalRequest { id: id.clone() };
        let tx = tx.clone();
        calls.spawn(async move {
            let reply = client.await_approval(request).await;
            let _ = tx.send(reply.map(|_| ()));
        });
    }
    let mut failed = BTreeMap::new();
    let mut attached = 0;
    let mut seconds = None;
    while started.elapsed() < ATTACH_LIMIT {
        while let Ok(reply) = answered.try_recv() {
            let code = match reply {
                Ok(()) => "OK (returned while pending)".to_string(),
                Err(status) => format!("{:?}", status.code()),
            };
            *failed.entry(code).or_insert(0) += 1;
        }
        let waiting = replica.metric("approvald_waiters")? as usize;
        attached = attached.max(waiting);
        if waiting >= n {
            seconds = Some(started.elapsed().as_secs_f64());
            break;
        }
        if waiting + failed.values().sum::<usize>() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = Instant::now() + SETTLE;
    while Instant::now() < settled {
        while let Ok(reply) = answered.try_recv() {
            let code = match reply {
                Ok(()) => "OK (returned while pending)".to_string(),
                Err(status) => format!("{:?}", status.code()),
            };
            *failed.entry(code).or_insert(0) += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(calls);
    Ok(HerdRow {
        calls: n,
        attached,
        failed,
        seconds,
    })
}
