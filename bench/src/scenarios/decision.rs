//! Decision latency across replicas: N waiters blocked in AwaitApproval on
//! replica A; one decision at a time sent to replica B with Respond. The
//! latency of one decision runs from just before Respond is sent to the
//! moment the waiter's AwaitApproval call returns its answer. The next
//! decision is sent only after that, so decisions never queue behind each
//! other. The same runs once more with authentication on: a token per agent
//! (each agent on its own connection), the human with an approver token, and
//! once with `--redis-wait-replicas 1` (a Redis replica started for it): a
//! decision is confirmed only once that replica has it.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{approve, create_many, start_waiters, within};
use crate::procs::{Bearer, RedisServer};
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
    /// `--redis-wait-replicas` (0: Redis's asynchronous replication).
    pub wait_replicas: u32,
    pub latencies: Latencies,
    pub cpu: String,
}

impl DecisionRow {
    /// Defaults: no authentication, no WAIT.
    pub fn is_plain(&self) -> bool {
        !self.auth && self.wait_replicas == 0
    }

    /// What sets this run apart from the plain one, for labels.
    pub fn setting(&self) -> String {
        let mut s = String::new();
        if self.auth {
            s.push_str(", authentication on");
        }
        if self.wait_replicas > 0 {
            s.push_str(&format!(
                ", `--redis-wait-replicas {}` (WAIT)",
                self.wait_replicas
            ));
        }
        s
    }
}

pub async fn run(b: &Bench) -> BenchResult<Vec<DecisionRow>> {
    let mut rows = Vec::new();
    let runs = b.sizes.decision.iter().map(|&size| (size, false, 0));
    let runs = runs.chain(b.sizes.decision_auth.iter().map(|&size| (size, true, 0)));
    let runs = runs.chain(
        b.sizes
            .decision_durable
            .iter()
            .map(|&size| (size, false, 1)),
    );
    // The WAIT runs need a Redis replica; the bench's own when it has one.
    let mut own_replica = None;
    for ((waiters, rounds), auth, wait) in runs {
        if wait > b.redis_replicas.len() as u32 && own_replica.is_none() {
            own_replica = Some(RedisServer::start_replica_of(&b.work, b.redis.port()).await?);
        }
        let mut row = DecisionRow {
            waiters,
            auth,
            wait_replicas: wait.max(b.redis_replicas.len() as u32),
            latencies: Latencies::default(),
            cpu: String::new(),
        };
        eprintln!(
            "\n== decision latency: {waiters} waiters on A, decisions on B, {rounds} round(s){}",
            row.setting()
        );
        one(b, &mut row, rounds).await?;
        eprintln!("{}  [{}]", row.latencies.summary(), row.cpu);
        rows.push(row);
    }
    drop(own_replica);
    Ok(rows)
}

async fn one(b: &Bench, row: &mut DecisionRow, rounds: usize) -> BenchResult<()> {
    let (waiters, auth) = (row.waiters, row.auth);
    let extra = if row.wait_replicas as usize > b.redis_replicas.len() {
        vec![
            "--redis-wait-replicas".to_string(),
            row.wait_replicas.to_string(),
        ]
    } else {
        Vec::new()
    };
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
        a = b.replica_with_args(&prefix, "a", None, &extra).await?;
        r = b.replica_with_args(&prefix, "b", None, &extra).await?;
        clients = a.clients(waiters.div_ceil(WAITERS_PER_CONNECTION)).await?;
        responder = r.client_as(Bearer::default()).await?;
    }
    let latencies = &mut row.latencies;
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
        row.cpu = window.finish();
        drop(calls);
    }
    Ok(())
}
