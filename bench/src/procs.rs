//! The processes a run starts: one `redis-server` and `approvald` replicas,
//! each on a free loopback port, each stopped (SIGKILL) when dropped, so a
//! failed scenario leaves nothing running.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use approval_api::v1::approval_service_client::ApprovalServiceClient;
use approval_testkit::{eventually, metric_value, scrape_metrics, terminate, Listen};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::BenchResult;

pub type Client = ApprovalServiceClient<InterceptedService<Channel, Bearer>>;

/// The `authorization` header a client's calls carry: none against a replica
/// without authentication, `Bearer <token>` against one with it.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn token(token: &str) -> BenchResult<Self> {
        Ok(Self(Some(format!("Bearer {token}").parse()?)))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Authentication for a run with it on: a token file approvald reads, and
/// the token of each principal. Tokens are made up per run.
pub struct Auth {
    pub file: PathBuf,
    tokens: Vec<(String, String)>,
}

/// Calls per second one principal may make, raised as an operator would for
/// a bench (the default is 100, burst 200).
pub const AUTH_RATE_LIMIT: u32 = 1_000_000;

impl Auth {
    /// Writes an auth file giving each `(principal, role)` its own token.
    pub fn write(file: PathBuf, principals: &[(String, &str)]) -> BenchResult<Self> {
        use sha2::{Digest, Sha256};
        let mut toml = String::new();
        let mut tokens = Vec::new();
        for (i, (principal, role)) in principals.iter().enumerate() {
            let token = format!("bench-token-{i}-{}", std::process::id());
            let digest: String = Sha256::digest(token.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            toml.push_str(&format!(
                "[[tokens]]\nprincipal = \"{principal}\"\nroles = [\"{role}\"]\nsha256 = \"{digest}\"\n\n"
            ));
            tokens.push((principal.clone(), token));
        }
        fs::write(&file, toml)?;
        Ok(Self { file, tokens })
    }

    pub fn bearer(&self, principal: &str) -> BenchResult<Bearer> {
        let (_, token) = self
            .tokens
            .iter()
            .find(|(p, _)| p == principal)
            .ok_or_else(|| format!("no token for {principal}"))?;
        Bearer::token(token)
    }
}

/// CPU time (user + system) a process has used so far (zero once it is gone).
pub fn cpu_time(pid: u32) -> Duration {
    approval_testkit::cpu_time(pid).unwrap_or_default()
}

/// Our own `redis-server` (the test kit's): no persistence (no RDB
/// snapshots, no AOF), so figures measure the service and not the disk.
pub struct RedisServer {
    pub pid: u32,
    server: approval_testkit::RedisServer,
}

impl RedisServer {
    pub async fn start(work: &Path) -> BenchResult<Self> {
        Self::start_with(work, &[]).await
    }

    /// A replica of the server on `primary_port`, in sync when this returns.
    pub async fn start_replica_of(work: &Path, primary_port: u16) -> BenchResult<Self> {
        let replica = Self::start_with(
            work,
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
            ],
        )
        .await?;
        let url = replica.url();
        let synced = eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                let info: Option<String> = async {
                    let client = redis::Client::open(url).ok()?;
                    let mut c = client.get_multiplexed_async_connection().await.ok()?;
                    redis::cmd("INFO")
                        .arg("replication")
                        .query_async(&mut c)
                        .await
                        .ok()
                }
                .await;
                info.is_some_and(|i| i.contains("master_link_status:up"))
            }
        })
        .await;
        if !synced {
            return Err("the Redis replica did not sync within 20 s".into());
        }
        Ok(replica)
    }

    async fn start_with(work: &Path, extra: &[String]) -> BenchResult<Self> {
        let server = approval_testkit::RedisServer::builder()
            .persistence(false)
            .in_dir(work)
            .args(["--maxclients", "20000"])
            .args(extra.iter().cloned())
            .try_start()?;
        let pid = server.pid().ok_or("redis-server is not running")?;
        Ok(Self { pid, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// A connection with no response timeout: FLUSHALL of a large data set
    /// and pipelines of thousands of commands may take seconds.
    pub async fn connection(&self) -> BenchResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        Ok(redis::Client::open(self.url())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
    pub async fn flush(&self) -> BenchResult<()> {
        let mut c = self.connection().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Commands Redis has executed so far, from `INFO commandstats`, leaving
    /// out the INFO calls that read it.
    pub async fn commands(&self) -> BenchResult<u64> {
        let mut c = self.connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await?;
        Ok(info
            .lines()
            .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
            .filter_map(|l| l.split("calls=").nth(1))
            .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
            .sum())
    }

    /// `INFO server` field `redis_version`.
    pub async fn version(&self) -> BenchResult<String> {
        let mut c = self.connection().await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_string())
    }
}

/// One `approvald` process (release build) on the shared Redis.
pub struct Replica {
    pub port: u16,
    pub metrics_port: u16,
    pub pid: u32,
    child: Child,
}

impl Replica {
    /// Starts a replica with `extra` flags; with `auth`, authentication is
    /// on (that token file, the per-principal rate limit raised to
    /// `AUTH_RATE_LIMIT`). A replica that finds its port taken (another
    /// process bound it after the port was picked) is started again on
    /// other ports, up to three times.
    pub async fn start(
        bin: &Path,
        redis_url: &str,
        prefix: &str,
        extra: &[String],
        log: &Path,
        auth: Option<&Auth>,
    ) -> BenchResult<Self> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let listen = Listen::free();
            let log_file = fs::File::create(log)?;
            let mut command = Command::new(bin);
            // Only our flags: no APPROVALD_* from the caller's environment.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("APPROVALD_") {
                    command.env_remove(key);
                }
            }
            if let Some(auth) = auth {
                let limit = AUTH_RATE_LIMIT.to_string();
                command.arg("--auth-config").arg(&auth.file).args([
                    "--rate-limit",
                    &limit,
                    "--rate-limit-burst",
                    &limit,
                ]);
            }
            let child = command
                .args(listen.args_with(&["--redis-url", redis_url, "--redis-prefix", prefix]))
                .args(["--max-open-per-requester", "1000000"])
                .args(["--max-connections", "20000"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let mut replica = Self {
                port: listen.port,
                metrics_port: listen.metrics_port,
                pid: child.id(),
                child,
            };
            if replica.serving_within(Duration::from_secs(15), log).await? {
                return Ok(replica);
            }
        }
        Err(format!(
            "approvald found its port taken {ATTEMPTS} times (log: {})",
            log.display()
        )
        .into())
    }

    /// Waits until the replica reports SERVING (true), or until it exits
    /// because a port picked for it was bound by then (false); any other
    /// exit, or no SERVING within `limit`, is an error naming its log.
    async fn serving_within(&mut self, limit: Duration, log: &Path) -> BenchResult<bool> {
        let endpoint = self.endpoint();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let text = fs::read_to_string(log).unwrap_or_default();
                if text.contains("Address already in use") {
                    return Ok(false);
                }
                return Err(format!(
                    "approvald exited before serving ({status}; log: {})",
                    log.display()
                )
                .into());
            }
            if serving(endpoint.clone()).await {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "approvald did not report SERVING within {limit:?} (log: {})",
                    log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new HTTP/2 connection (one channel = one TCP connection).
    pub async fn channel(&self) -> BenchResult<Channel> {
        Ok(Endpoint::from_shared(self.endpoint())?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }

    pub async fn client(&self) -> BenchResult<Client> {
        self.client_as(Bearer::default()).await
    }

    /// A client on its own connection whose calls carry `bearer`.
    pub async fn client_as(&self, bearer: Bearer) -> BenchResult<Client> {
        Ok(ApprovalServiceClient::with_interceptor(
            self.channel().await?,
            bearer,
        ))
    }

    /// `n` clients, each on its own connection.
    pub async fn clients(&self, n: usize) -> BenchResult<Vec<Client>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.client().await?);
        }
        Ok(out)
    }

    /// Resident set size, in bytes.
    pub fn rss(&self) -> BenchResult<u64> {
        let kib = approval_testkit::rss_kib(self.pid).ok_or("no VmRSS in /proc/PID/status")?;
        Ok(kib * 1024)
    }

    /// One value from the Prometheus endpoint (a metric without labels).
    pub fn metric(&self, name: &str) -> BenchResult<f64> {
        let text = scrape_metrics(self.metrics_port)?;
        metric_value(&text, name).ok_or_else(|| format!("metric {name} not found").into())
    }

    /// Waits until `n` calls are blocked on this replica.
    pub async fn wait_for_waiters(&self, n: usize, limit: Duration) -> BenchResult<()> {
        let registered = eventually(limit, || async {
            self.metric("approvald_waiters")
                .is_ok_and(|v| v as usize >= n)
        })
        .await;
        if !registered {
            return Err(format!("timed out after {limit:?} waiting for {n} waiters").into());
        }
        Ok(())
    }
}

impl Drop for Replica {
    /// SIGTERM (approvald shuts down gracefully), then SIGKILL if it is still
    /// up after `APPROVALD_BENCH_STOP_GRACE_S` seconds (default 5).
    fn drop(&mut self) {
        let grace = std::env::var("APPROVALD_BENCH_STOP_GRACE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        if terminate(&mut self.child, Duration::from_secs(grace)).is_some() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serving(endpoint: String) -> bool {
    let Ok(channel) = Endpoint::from_shared(endpoint) else {
        return false;
    };
    let Ok(channel) = channel.connect().await else {
        return false;
    };
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    reply.is_ok_and(|r| r.into_inner().status == 1)
}
