//! `--redis-wait-replicas`: a write is confirmed only once K Redis replicas
//! have it, so a failover (Sentinel or Cluster promoting a replica) cannot
//! lose a decision that `Respond` confirmed.
//!
//! Redis replicates asynchronously: a primary answers a script before any
//! replica has it. `WAIT K timeout` (or, on Redis 7.2+, `WAITAOF`, which
//! also waits for the replicas' fsync) counts the replicas that have every
//! earlier write *of the same connection*. So the write and its wait go in
//! one pipeline, on one connection: a wait sent after a reconnection would
//! count replicas of nothing and confirm a write it never covered. (On a
//! Cluster the pipeline goes, whole, to the primary of the script's key.)
//!
//! Fewer than K in time: the write is on the primary but not known to
//! survive a failover, so the call fails with UNAVAILABLE, outcome unknown
//! (every store write is safe to repeat: a retry confirms it or finds it).

use std::time::Duration;

use redis::{Cmd, Value};
use tokio::sync::OnceCell;

use super::link::Conn;
use crate::domain::DomainError;

/// What `--redis-wait-replicas` asks for.
#[derive(Clone, Copy, Debug)]
pub struct Durability {
    /// Replicas that must have a write before it is confirmed (K > 0).
    pub replicas: u32,
    /// How long a write waits for them.
    pub timeout: Duration,
}

/// How this Redis can wait for replicas, learnt once.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    /// `WAIT`: the replicas received the write (in memory).
    Received,
    /// `WAITAOF` (Redis 7.2+): the replicas fsynced it to their AOF, and
    /// the primary too when its own AOF is on.
    Fsynced { local: bool },
}

pub struct Waiter {
    wanted: Durability,
    how: OnceCell<Wait>,
}

impl Waiter {
    pub fn new(wanted: Durability) -> Self {
        Self {
            wanted,
            how: OnceCell::new(),
        }
    }

    /// Asks Redis (the server holding `key`) once whether it has WAITAOF,
    /// and says in the log which promise the deployment gets.
    pub async fn detect(&self, conn: &mut Conn, key: &str) -> Result<(), DomainError> {
        self.how(conn, key).await.map(|_| ())
    }

    async fn how(&self, conn: &mut Conn, key: &str) -> Result<Wait, DomainError> {
        let how = self
            .how
            .get_or_try_init(|| async {
                let mut info = redis::cmd("COMMAND");
                info.arg("INFO").arg("WAITAOF");
                let reply: Value = conn.clone().query_at(info, key).await?;
                let has_waitaof = matches!(
                    &reply,
                    Value::Array(items) if items.first().is_some_and(|v| *v != Value::Nil)
                );
                let how = if has_waitaof {
                    let mut persistence = redis::cmd("INFO");
                    persistence.arg("persistence");
                    let info: String = conn.clone().query_at(persistence, key).await?;
                    Wait::Fsynced {
                        local: info.lines().any(|l| l.trim() == "aof_enabled:1"),
                    }
                } else {
                    Wait::Received
                };
                let k = self.wanted.replicas;
                match how {
                    Wait::Fsynced { local } => tracing::info!(
                        replicas = k,
                        "--redis-wait-replicas {k}: a write is confirmed once {k} Redis \
                         replicas fsynced it to their AOF (WAITAOF{})",
                        if local {
                            ", and the primary's AOF too"
                        } else {
                            ""
                        }
                    ),
                    Wait::Received => tracing::warn!(
                        replicas = k,
                        "--redis-wait-replicas {k}: this Redis has no WAITAOF (Redis 7.2+), so a \
                         write is confirmed once {k} replicas received it (WAIT), in memory: a \
                         failover keeps it, a simultaneous power loss of primary and replicas \
                         may not"
                    ),
                }
                Ok::<_, DomainError>(how)
            })
            .await?;
        Ok(*how)
    }

    /// The command to pipeline right after a write.
    pub async fn command(&self, conn: &mut Conn, key: &str) -> Result<Cmd, DomainError> {
        let ms = self.wanted.timeout.as_millis().max(1) as u64;
        let mut cmd = match self.how(conn, key).await? {
            Wait::Received => redis::cmd("WAIT"),
            Wait::Fsynced { local } => {
                let mut cmd = redis::cmd("WAITAOF");
                cmd.arg(u32::from(local));
                cmd
            }
        };
        cmd.arg(self.wanted.replicas).arg(ms);
        Ok(cmd)
    }

    /// Whether the wait's reply says enough replicas have the write.
    pub fn check(&self, reply: &Value) -> Result<(), DomainError> {
        let int = |v: &Value| match v {
            Value::Int(n) => Some(*n),
            _ => None,
        };
        let (local, replicas) = match reply {
            Value::Int(n) => (None, *n),
            Value::Array(items) => (
                items.first().and_then(int),
                items.get(1).and_then(int).unwrap_or(0),
            ),
            other => {
                return Err(DomainError::Internal(format!(
                    "WAIT replied {other:?}, not a count"
                )))
            }
        };
        let wanted = self.wanted.replicas as i64;
        let local_short =
            matches!(self.how.get(), Some(Wait::Fsynced { local: true })) && local.unwrap_or(0) < 1;
        if replicas >= wanted && !local_short {
            return Ok(());
        }
        Err(DomainError::OutcomeUnknown {
            detail: format!(
                "the write is on the Redis primary, but only {replicas} of the {wanted} replicas \
                 that --redis-wait-replicas requires confirmed it within {:?}{}",
                self.wanted.timeout,
                if local_short {
                    " (and the primary's own AOF fsync did not)"
                } else {
                    ""
                }
            ),
            advice: "it may be lost if Redis fails over now: read the approval back, or repeat \
                     the call (it is safe to repeat)"
                .into(),
        })
    }
}
