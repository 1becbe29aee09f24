//! Lifecycle throughput on one replica, the way the product is used: C agents
//! each loop on RequestApproval (create and block until decided); one human
//! console follows WatchPending and sends Respond for every approval it sees
//! added. A lifecycle is one RequestApproval call, from send to the approved
//! answer; throughput is lifecycles completed per second over a fixed window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use approval_api::v1::watch_pending_response::Event;
use approval_api::v1::{RequestApprovalRequest, WatchPendingRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{approve, create_request, within, CpuWindow};
use crate::procs::Client;
use crate::stats::{Latencies, Summary};
use crate::{Bench, BenchResult};

const APPROVAL_TYPE: &str = "bench:lifecycle";
/// Connections the agents share, and the console's Respond connections.
const AGENT_CONNECTIONS: usize = 4;
const CONSOLE_CONNECTIONS: usize = 2;
/// Respond calls the console keeps in flight at most.
const CONSOLE_IN_FLIGHT: usize = 1024;

#[derive(Clone, Debug)]
pub struct LifecycleRow {
    pub concurrency: usize,
    pub completed: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Summary,
    pub redis_commands_per_lifecycle: f64,
    pub cpu: String,
}

pub async fn run(b: &Bench) -> BenchResult<Vec<LifecycleRow>> {
    let mut rows = Vec::new();
    for &c in &b.sizes.lifecycle_concurrency {
        eprintln!(
            "\n== lifecycle throughput: {c} agents, one replica, {:?} window",
            b.sizes.lifecycle_window
        );
        let row = one(b, c).await?;
        eprintln!(
            "{:.0}/s ({} in {:.1} s), latency {}, {:.1} Redis commands per lifecycle  [{}]",
            row.per_second,
            row.completed,
            row.seconds,
            row.latency,
            row.redis_commands_per_lifecycle,
            row.cpu
        );
        rows.push(row);
    }
    Ok(rows)
}

async fn one(b: &Bench, concurrency: usize) -> BenchResult<LifecycleRow> {
    let prefix = b.prefix("lifecycle");
    let replica = b.replica(&prefix, "a").await?;

    // The console: snapshot (empty), then approve everything added.
    let mut watch = replica.client().await?;
    let mut stream = watch
        .watch_pending(WatchPendingRequest {
            approval_types: vec![APPROVAL_TYPE.into()],
            ..Default::default()
        })
        .await?
        .into_inner();
    within("WatchPending synced", Duration::from_secs(10), async {
        while let Some(m) = stream.message().await? {
            if let Some(Event::Synced(_)) = m.event {
                return Ok(());
            }
        }
        Err("WatchPending ended before synced".into())
    })
    .await?;
    let console_clients = replica.clients(CONSOLE_CONNECTIONS).await?;
    let console = tokio::spawn(async move {
        let in_flight = Arc::new(Semaphore::new(CONSOLE_IN_FLIGHT));
        let mut n = 0usize;
        while let Ok(Some(m)) = stream.message().await {
            let Some(Event::Added(a)) = m.event else {
                continue;
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut client = console_clients[n % console_clients.len()].clone();
            n += 1;
            tokio::spawn(async move {
                let _ = client.respond(approve(&a.id)).await;
                drop(permit);
            });
        }
    });

    let agents = replica.clients(AGENT_CONNECTIONS).await?;
    if !b.sizes.lifecycle_warmup.is_zero() {
        agents_loop(&agents, concurrency, b.sizes.lifecycle_warmup).await?;
    }
    let commands_before = b.redis.commands().await?;
    let cpu = CpuWindow::start(&[&replica], b.redis.pid);
    let started = Instant::now();
    let (latencies, completed) =
        agents_loop(&agents, concurrency, b.sizes.lifecycle_window).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    let commands = b.redis.commands().await? - commands_before;
    console.abort();
    Ok(LifecycleRow {
        concurrency,
        completed,
        seconds,
        per_second: completed as f64 / seconds,
        latency: latencies.summary(),
        redis_commands_per_lifecycle: commands as f64 / completed.max(1) as f64,
        cpu,
    })
}

/// Runs `concurrency` agents until `window` has passed; each finishes the
/// lifecycle it is in. Returns the latencies and how many completed.
async fn agents_loop(
    agents: &[Client],
    concurrency: usize,
    window: Duration,
) -> BenchResult<(Latencies, u64)> {
    let end = Instant::now() + window;
    let mut tasks = JoinSet::new();
    for i in 0..concurrency {
        let mut client = agents[i % agents.len()].clone();
        tasks.spawn(async move {
            let mut lat = Latencies::default();
            let mut n = i * 1_000_000;
            while Instant::now() < end {
                let create = create_request(APPROVAL_TYPE, n);
                n += 1;
                let request = RequestApprovalRequest {
                    approval_type: create.approval_type,
                    agent_id: create.agent_id,
                    context: create.context,
                    labels: create.labels,
                    timeout: create.timeout,
                    idempotency_key: create.idempotency_key,
                };
                let t0 = Instant::now();
                let reply = within("RequestApproval", Duration::from_secs(30), async {
                    Ok(client.request_approval(request).await?.into_inner())
                })
                .await?;
                if !reply.approved {
                    return Err("RequestApproval returned approved=false".into());
                }
                lat.record(t0.elapsed());
            }
            BenchResult::Ok(lat)
        });
    }
    let mut all = Latencies::default();
    let mut completed = 0;
    while let Some(done) = tasks.join_next().await {
        let lat = done??;
        completed += lat.count();
        all.merge(&lat);
    }
    Ok((all, completed))
}
