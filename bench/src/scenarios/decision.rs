//! Decision latency across replicas: N waiters blocked in AwaitApproval on
//! replica A; one decision at a time sent to replica B with Respond. The
//! latency of one decision runs from just before Respond is sent to the
//! moment the waiter's AwaitApproval call returns its answer. The next
//! decision is sent only after that, so decisions never queue behind each
//! other. The same runs once more with authentication on: a token per agent
//! (each agent on its own connection), the human with an approver token.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{approve, create_many, start_waiters, within};
use crate::procs::Bearer;
use crate::stats::Latencies;
use crate::{Bench, BenchResult};

/// Calls per HTTP/2 connection to replica A (approvald allows 10,000).
const WAITERS_PER_CONNECTION: usize = 2_000;
/// Agents (principals, each with a token and a connection) in the run with
/// authentication on.
const AUTH_AGENTS: usize = 8;
const HUMAN: &str = "bench-human";

#[derive(Clone)]
pub struct DecisionRow {
    pub waiters: usize,
    /// Whether approvald ran with authentication on (tokens).
    pub auth: bool,
    pub latencies: Latencies,
    pub cpu: String,
}

pub async fn run(b: &Bench) -> BenchResult<Vec<DecisionRow>> {
    let mut rows = Vec::new();
    let runs = b.sizes.decision.iter().map(|&size| (size, false));
    let runs = runs.chain(b.sizes.decision_auth.iter().map(|&size| (size, true)));
    for ((waiters, rounds), auth) in runs {
        eprintln!(
            "\n== decision latency: {waiters} waiters on A, decisions on B, {rounds} round(s){}",
            if auth { ", authentication on" } else { "" }
        );
        let row = one(b, waiters, rounds, auth).await?;
        eprintln!("{}  [{}]", row.latencies.summary(), row.cpu);
        rows.push(row);
    }
    Ok(rows)
}

async fn one(b: &Bench, waiters: usize, rounds: usize, auth: bool) -> BenchResult<DecisionRow> {
    let prefix = b.prefix("decision");
    let (clients, mut responder, a, r);
    if auth {
        let mut principals: Vec<(String, &str)> = (0..AUTH_AGENTS)
            .map(|i| (format!("bench-agent-{i}"), "requester"))
            .collect();
        principals.push((HUMAN.into(), "approver"));
        let tokens = b.auth(&prefix, &principals)?;
        a = b.replica_with(&prefix, "a", Some(&tokens)).await?;
        r = b.replica_with(&prefix, "b", Some(&tokens)).await?;
        let mut agents = Vec::with_capacity(AUTH_AGENTS);
        for (principal, _) in &principals[..AUTH_AGENTS] {
            agents.push(a.client_as(tokens.bearer(principal)?).await?);
        }
        clients = agents;
        responder = r.client_as(tokens.bearer(HUMAN)?).await?;
    } else {
        a = b.replica(&prefix, "a").await?;
        r = b.replica(&prefix, "b").await?;
        clients = a.clients(waiters.div_ceil(WAITERS_PER_CONNECTION)).await?;
        responder = r.client_as(Bearer::default()).await?;
    }
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
        auth,
        latencies,
        cpu,
    })
}
