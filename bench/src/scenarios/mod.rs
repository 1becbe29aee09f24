//! The scenarios, one file each. Every one starts fresh replicas under a
//! key prefix of its own, is bounded in count and in time, and returns the
//! figures for the report.

pub mod decision;
pub mod fanout;
pub mod floor;
pub mod herd;
pub mod idle;
pub mod lifecycle;
pub mod listing;
pub mod snapshot;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use approval_api::v1::{AwaitApprovalRequest, CreateApprovalRequest, Decision, RespondRequest};
use futures::stream::{self, StreamExt, TryStreamExt};
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::procs::{Client, Replica};
use crate::BenchResult;

/// How long an approval made by the bench stays open: longer than any run,
/// so nothing expires under a measurement.
const APPROVAL_TIMEOUT_S: i64 = 3600;

/// Fails when `fut` takes longer than `limit`.
pub async fn within<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = BenchResult<T>>,
) -> BenchResult<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))?
}

/// A small context, as an agent would send (service and version).
fn context(i: usize) -> Struct {
    let text = |s: String| Value {
        kind: Some(Kind::StringValue(s)),
    };
    Struct {
        fields: BTreeMap::from([
            ("service".to_string(), text("billing".into())),
            ("version".to_string(), text(format!("2.4.{i}"))),
        ]),
    }
}

pub fn create_request(approval_type: &str, i: usize) -> CreateApprovalRequest {
    CreateApprovalRequest {
        approval_type: approval_type.into(),
        agent_id: "bench-agent".into(),
        context: Some(context(i)),
        labels: Default::default(),
        timeout: Some(prost_types::Duration {
            seconds: APPROVAL_TIMEOUT_S,
            nanos: 0,
        }),
        idempotency_key: String::new(),
    }
}

pub fn approve(id: &str) -> RespondRequest {
    RespondRequest {
        id: id.into(),
        decision: Decision::Approve as i32,
        reason: "benchmark".into(),
        responder: "bench-human".into(),
        ..Default::default()
    }
}

/// Creates `n` pending approvals through `clients` (round robin), at most
/// `concurrency` calls in flight; returns their ids in creation order.
pub async fn create_many(
    clients: &[Client],
    n: usize,
    concurrency: usize,
    approval_type: &str,
) -> BenchResult<Vec<String>> {
    let limit = Duration::from_secs(30 + n as u64 / 200);
    within(&format!("creating {n} approvals"), limit, async {
        stream::iter(0..n)
            .map(|i| {
                let mut client = clients[i % clients.len()].clone();
                let request = create_request(approval_type, i);
                async move {
                    let reply = client.create_approval(request).await?.into_inner();
                    reply
                        .approval
                        .map(|a| a.id)
                        .ok_or_else(|| "CreateApproval returned no approval".into())
                }
            })
            .buffered(concurrency)
            .try_collect::<Vec<String>>()
            .await
    })
    .await
}

/// Calls started at once while waiters build up: agents arrive over time,
/// not all in one instant.
const RAMP_BATCH: usize = 1_000;

/// What a waiter reports when its AwaitApproval call returns: its index, when,
/// and whether it was approved.
pub type Answer = (usize, Instant, Result<bool, tonic::Status>);

/// Starts one AwaitApproval call per id on `replica` (round robin over
/// `clients`), in batches, each once the previous one is registered. Every
/// answer goes to `answers`. Dropping the returned set cancels the calls.
pub async fn start_waiters(
    replica: &Replica,
    clients: &[Client],
    ids: &[String],
    answers: mpsc::UnboundedSender<Answer>,
) -> BenchResult<JoinSet<()>> {
    let mut calls = JoinSet::new();
    let mut started = 0;
    for batch in ids.chunks(RAMP_BATCH) {
        for id in batch {
            let i = started;
            let mut client = clients[i % clients.len()].clone();
            let request = AwaitApprovalRequest { id: id.clone() };
            let answers = answers.clone();
            calls.spawn(async move {
                let reply = client.await_approval(request).await;
                let _ = answers.send((i, Instant::now(), reply.map(|r| r.into_inner().approved)));
            });
            started += 1;
        }
        replica
            .wait_for_waiters(started, Duration::from_secs(60))
            .await?;
    }
    Ok(calls)
}

/// CPU used by each process over a measured window, as a share of one core.
pub struct CpuWindow {
    started: Instant,
    pids: Vec<(&'static str, u32)>,
    before: Vec<Duration>,
}

impl CpuWindow {
    pub fn start(replicas: &[&Replica], redis_pid: u32) -> Self {
        let mut pids: Vec<(&'static str, u32)> = vec![("redis", redis_pid)];
        for (i, r) in replicas.iter().enumerate() {
            pids.push((if i == 0 { "approvald" } else { "approvald-2" }, r.pid));
        }
        pids.push(("bench", std::process::id()));
        let before = pids
            .iter()
            .map(|(_, p)| crate::procs::cpu_time(*p))
            .collect();
        Self {
            started: Instant::now(),
            pids,
            before,
        }
    }

    /// "approvald 95%, redis 40%, bench 60%" (100% = one core busy).
    pub fn finish(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        self.pids
            .iter()
            .zip(&self.before)
            .map(|((name, pid), before)| {
                let used = crate::procs::cpu_time(*pid).saturating_sub(*before);
                format!("{name} {:.0}%", 100.0 * used.as_secs_f64() / elapsed)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
