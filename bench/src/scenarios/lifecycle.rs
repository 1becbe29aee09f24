//! Lifecycle throughput on one replica, the way the product is used: C agents
//! each loop on RequestApproval (create and block until decided); one human
//! console follows WatchPending and sends Respond for every approval it sees
//! added. A lifecycle is one RequestApproval call, from send to the approved
//! answer; throughput is lifecycles completed per second over a fixed window.
//! The same runs once more with authentication on: a token per agent, the
//! console with an approver token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use approval_api::v1::watch_pending_response::Event;
use approval_api::v1::{RequestApprovalRequest, WatchPendingRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use approval_api::v1::approval_service_client::ApprovalServiceClient;

use super::{approve, create_request, within, CpuWindow};
use crate::procs::{Bearer, Client};
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
    /// Whether approvald ran with authentication on (a token per agent).
    pub auth: bool,
    pub completed: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Summary,
    pub redis_commands_per_lifecycle: f64,
    pub cpu: String,
}

pub async fn run(b: &Bench) -> BenchResult<Vec<LifecycleRow>> {
    let mut rows = Vec::new();
    let runs = b.sizes.lifecycle_concurrency.iter().map(|&c| (c, false));
    let runs = runs.chain(b.sizes.lifecycle_auth.iter().map(|&c| (c, true)));
    for (c, auth) in runs {
        eprintln!(
            "\n== lifecycle throughput: {c} agents, one replica, {:?} window{}",
            b.sizes.lifecycle_window,
            if auth { ", authentication on" } else { "" }
        );
        let row = one(b, c, auth).await?;
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

async fn one(b: &Bench, concurrency: usize, auth: bool) -> BenchResult<LifecycleRow> {
    const HUMAN: &str = "bench-human";
    let prefix = b.prefix("lifecycle");
    let agent = |i: usize| format!("bench-agent-{i}");
    let tokens = if auth {
        let mut principals: Vec<(String, &str)> =
            (0..concurrency).map(|i| (agent(i), "requester")).collect();
        principals.push((HUMAN.into(), "approver"));
        Some(b.auth(&prefix, &principals)?)
    } else {
        None
    };
    let replica = b.replica_with(&prefix, "a", tokens.as_ref()).await?;
    let bearer = |principal: &str| match &tokens {
        Some(t) => t.bearer(principal),
        None => Ok(Bearer::default()),
    };

    // The console: snapshot (empty), then approve everything added.
    let mut watch = replica.client_as(bearer(HUMAN)?).await?;
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
    let mut console_clients = Vec::with_capacity(CONSOLE_CONNECTIONS);
    for _ in 0..CONSOLE_CONNECTIONS {
        console_clients.push(replica.client_as(bearer(HUMAN)?).await?);
    }
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

    // One client per agent (its own token when authentication is on), the
    // agents sharing AGENT_CONNECTIONS connections.
    let mut channels = Vec::with_capacity(AGENT_CONNECTIONS);
    for _ in 0..AGENT_CONNECTIONS {
        channels.push(replica.channel().await?);
    }
    let agents = (0..concurrency)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            Ok(ApprovalServiceClient::with_interceptor(
                channel,
                bearer(&agent(i))?,
            ))
        })
        .collect::<BenchResult<Vec<Client>>>()?;
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
        auth,
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
