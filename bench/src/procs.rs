//! The processes a run starts: one `redis-server` and `approvald` replicas,
//! each on a free loopback port, each stopped (SIGKILL) when dropped, so a
//! failed scenario leaves nothing running.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use approval_api::v1::approval_service_client::ApprovalServiceClient;
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

pub fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `ready` every 20 ms until it is true or `limit` passes.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut ready: F) -> BenchResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("timed out after {limit:?} waiting for {what}").into())
}

/// Resident set size of a process, in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> BenchResult<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/PID/status")?;
    Ok(kib * 1024)
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces) in parentheses:
    // utime and stime are fields 14 and 15, in clock ticks (100 Hz on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Our own `redis-server`: no persistence (no RDB snapshots, no AOF), so
/// figures measure the service and not the disk.
pub struct RedisServer {
    pub port: u16,
    pub pid: u32,
    dir: PathBuf,
    child: Child,
}

impl RedisServer {
    pub async fn start(work: &Path) -> BenchResult<Self> {
        let port = free_port()?;
        let dir = work.join(format!("redis-{port}"));
        fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "20000"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): apt-get install -y redis-server")
            })?;
        let server = Self {
            port,
            pid: child.id(),
            dir,
            child,
        };
        let url = server.url();
        wait_for("redis-server to answer", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                match redis::Client::open(url) {
                    Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
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
    /// Starts a replica; with `auth`, authentication is on (that token file,
    /// the per-principal rate limit raised to `AUTH_RATE_LIMIT`).
    pub async fn start(
        bin: &Path,
        redis_url: &str,
        prefix: &str,
        log: &Path,
        auth: Option<&Auth>,
    ) -> BenchResult<Self> {
        let port = free_port()?;
        let metrics_port = free_port()?;
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
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--redis-url", redis_url, "--redis-prefix", prefix])
            .args(["--max-open-per-requester", "1000000"])
            .args(["--max-connections", "20000"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let replica = Self {
            port,
            metrics_port,
            pid: child.id(),
            child,
        };
        let endpoint = replica.endpoint();
        wait_for(
            "approvald to report SERVING",
            Duration::from_secs(15),
            || {
                let endpoint = endpoint.clone();
                async move { serving(endpoint).await }
            },
        )
        .await
        .map_err(|e| format!("{e} (log: {})", log.display()))?;
        Ok(replica)
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

    pub fn rss(&self) -> BenchResult<u64> {
        rss_bytes(self.pid)
    }

    /// One value from the Prometheus endpoint (a metric without labels).
    pub fn metric(&self, name: &str) -> BenchResult<f64> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.metrics_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("metric {name} not found").into())
    }

    /// Waits until `n` calls are blocked on this replica.
    pub async fn wait_for_waiters(&self, n: usize, limit: Duration) -> BenchResult<()> {
        wait_for(&format!("{n} waiters"), limit, || async {
            self.metric("approvald_waiters")
                .is_ok_and(|v| v as usize >= n)
        })
        .await
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
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(grace);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
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
