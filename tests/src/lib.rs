//! Test harness: a real `redis-server` on a free port, real `approvald`
//! replicas (in-process, on port 0), and the real generated client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod otlp;
pub mod webhooks;

use approval_client::v1;
use approval_client::ApprovalServiceClient;
use approvald::shutdown::Shutdown;
use approvald::{Application, Config};
use tonic::transport::Channel;

pub type Client = ApprovalServiceClient<Channel>;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A `redis-server` of our own, on a free loopback port, with AOF in a
/// temporary folder (so a restart keeps the data). Stopped on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A replica of the server on `master_port`.
    pub fn start_replica_of(master_port: u16) -> Self {
        Self::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ])
    }

    fn start_with(extra: Vec<String>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "approvald-test-redis-{port}-{}",
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).expect("create redis temp dir");
        let mut server = Self {
            port,
            dir,
            child: None,
            extra,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install it with `apt-get install -y redis-server` \
                     (or run ./scripts/test, which does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut c) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10s",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL): clients see connection errors.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP) for `d`, then lets it go on (SIGCONT),
    /// on a thread of its own: commands sent meanwhile stay unanswered, as
    /// with a Redis stalled by a slow disk or a long fork. Join the handle to
    /// know it runs again.
    pub fn pause_for(&self, d: Duration) -> std::thread::JoinHandle<()> {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id().to_string())
            .expect("redis-server is running");
        let signal = |sig: &str, pid: &str| {
            let ok = Command::new("kill")
                .args([sig, pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {pid}");
        };
        signal("-STOP", &pid);
        std::thread::spawn(move || {
            std::thread::sleep(d);
            signal("-CONT", &pid);
        })
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }
}

/// A Redis Sentinel watching the master on `master_port` under the name
/// `master` (quorum 1, fast failure detection). Stopped on drop.
pub struct Sentinel {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Sentinel {
    pub fn start(master: &str, master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("approvald-test-sentinel-{port}"));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master} 500\n\
                 sentinel failover-timeout {master} 3000\n",
                dir.display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        Self { port, dir, child }
    }

    /// The master's port as this sentinel sees it, if it knows one.
    pub fn master_port(&self, master: &str) -> Option<u16> {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .ok()?
            .get_connection()
            .ok()?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query(&mut conn)
            .ok()?;
        addr.and_then(|(_, port)| port.parse().ok())
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `approvald` running in this process.
pub struct Replica {
    pub port: u16,
    pub metrics_port: u16,
    pub health_port: Option<u16>,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<Result<(), approvald::StartError>>>,
}

impl Replica {
    pub async fn start(config: Config) -> Self {
        let app = Application::build(config).await.expect("approvald starts");
        let port = app.port();
        let metrics_port = app.metrics_port();
        let health_port = app.health_port();
        let shutdown = app.shutdown_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            port,
            metrics_port,
            health_port,
            shutdown,
            task: Some(task),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> Client {
        connect(self.port).await
    }

    pub async fn channel(&self) -> Channel {
        channel(self.port).await
    }

    /// Triggers graceful shutdown (as SIGTERM does) and waits for the end.
    pub async fn stop(&mut self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task panicked")
                .expect("server stopped with an error");
        }
        started.elapsed()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("valid endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to approvald")
}

pub async fn connect(port: u16) -> Client {
    ApprovalServiceClient::new(channel(port).await)
}

/// Where approvals are stored in a test.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    Memory,
    Redis,
}

/// A deployment under test: one replica on the memory store, or two
/// replicas sharing one Redis (with a namespace of their own).
pub struct Deployment {
    pub replicas: Vec<Replica>,
    pub redis: Option<RedisServer>,
    pub prefix: String,
}

impl Deployment {
    pub async fn start(store: Store) -> Self {
        Self::start_with(store, 2, |_| {}).await
    }

    /// `replicas` applies to Redis; memory is always one process.
    pub async fn start_with(store: Store, replicas: usize, tweak: impl Fn(&mut Config)) -> Self {
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let redis = match store {
            Store::Memory => None,
            Store::Redis => Some(RedisServer::start()),
        };
        let count = if redis.is_some() { replicas } else { 1 };
        let mut started = Vec::new();
        for _ in 0..count {
            let mut config = Config::for_tests();
            config.redis_url = redis.as_ref().map(RedisServer::url);
            config.redis_prefix = prefix.clone();
            tweak(&mut config);
            started.push(Replica::start(config).await);
        }
        Self {
            replicas: started,
            redis,
            prefix,
        }
    }

    /// A client of the first replica.
    pub async fn a(&self) -> Client {
        self.replicas[0].client().await
    }

    /// A client of the second replica (the first on the memory store).
    pub async fn b(&self) -> Client {
        self.replicas[self.replicas.len().min(2) - 1].client().await
    }
}

// ---- request builders -------------------------------------------------------

pub fn create_request(approval_type: &str) -> v1::CreateApprovalRequest {
    v1::CreateApprovalRequest {
        approval_type: approval_type.to_string(),
        agent_id: "agent-7".to_string(),
        context: Some(context(&[("action", "deploy"), ("target", "production")])),
        ..Default::default()
    }
}

pub fn request_request(approval_type: &str) -> v1::RequestApprovalRequest {
    v1::RequestApprovalRequest {
        approval_type: approval_type.to_string(),
        agent_id: "agent-7".to_string(),
        context: Some(context(&[("action", "deploy")])),
        ..Default::default()
    }
}

pub fn context(pairs: &[(&str, &str)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect(),
    }
}

pub fn approve(id: &str, responder: &str) -> v1::RespondRequest {
    v1::RespondRequest {
        id: id.to_string(),
        decision: v1::Decision::Approve as i32,
        reason: "looks good".to_string(),
        responder: responder.to_string(),
        ..Default::default()
    }
}

pub fn reject(id: &str, responder: &str) -> v1::RespondRequest {
    v1::RespondRequest {
        id: id.to_string(),
        decision: v1::Decision::Reject as i32,
        reason: "not now".to_string(),
        responder: responder.to_string(),
        ..Default::default()
    }
}

pub fn millis(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub async fn create(client: &mut Client, approval_type: &str) -> v1::Approval {
    client
        .create_approval(create_request(approval_type))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval in response")
}

pub async fn get(client: &mut Client, id: &str) -> v1::Approval {
    client
        .get_approval(v1::GetApprovalRequest { id: id.to_string() })
        .await
        .expect("get")
        .into_inner()
        .approval
        .expect("approval in response")
}

pub fn status(a: &v1::Approval) -> v1::ApprovalStatus {
    v1::ApprovalStatus::try_from(a.status).unwrap_or(v1::ApprovalStatus::Unspecified)
}

/// Polls `check` (a test-side wait for a condition, not a timing assertion)
/// until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Generous bound for things that should happen "at once".
pub const PROMPTLY: Duration = Duration::from_secs(10);

/// The next event of a watch stream, failing the test if none comes promptly.
pub async fn next_event(
    stream: &mut tonic::Streaming<v1::WatchPendingResponse>,
) -> v1::WatchPendingResponse {
    tokio::time::timeout(PROMPTLY, stream.message())
        .await
        .expect("a watch event within the bound")
        .expect("the watch stream is healthy")
        .expect("the watch stream is still open")
}

/// The gRPC health status of `service` on a replica.
pub async fn health(
    port: u16,
    service: &str,
) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Ok(endpoint) = Channel::from_shared(format!("http://127.0.0.1:{port}")) else {
        return ServingStatus::Unknown;
    };
    let Ok(channel) = endpoint.connect().await else {
        // Not listening (any more): certainly not serving.
        return ServingStatus::Unknown;
    };
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    match client
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_string(),
        })
        .await
    {
        Ok(r) => ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Redis's own count of commands it processed so far.
pub fn redis_commands_processed(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(conn)
        .expect("INFO stats");
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_commands_processed in INFO")
}

/// Polls `probe` until it yields a value or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The Prometheus text a replica serves on its metrics port.
pub async fn metrics_text(metrics_port: u16) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap_or_default()
}

/// Waits until `n` calls are blocked waiting on the replica.
pub async fn until_waiting(replica: &Replica, n: usize) {
    let port = replica.metrics_port;
    let line = format!("approvald_waiters {n}");
    let ok = wait_for(PROMPTLY, || {
        let line = line.clone();
        async move {
            metrics_text(port)
                .await
                .lines()
                .any(|l| l == line)
                .then_some(())
        }
    })
    .await;
    assert!(ok.is_some(), "{n} waiters never registered");
}

/// The `approvald` binary next to this test's own (`target/<profile>/`), or
/// `APPROVALD_BIN`. `cargo test --workspace` builds it (the server package
/// has process tests); alone, build it first: `cargo build -p approvald`.
pub fn approvald_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("APPROVALD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/approvald
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("approvald"))
        .expect("the test binary lies under target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p approvald` (or set APPROVALD_BIN)",
        bin.display()
    );
    bin
}

/// A real `approvald` process on a free loopback port (killed on drop), for
/// what only a separate process shows: its memory.
pub struct ApprovaldProcess {
    pub port: u16,
    child: Child,
}

impl ApprovaldProcess {
    pub async fn start(args: &[String]) -> Self {
        let port = free_port();
        let child = Command::new(approvald_binary())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(args)
            .env_remove("APPROVALD_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("approvald starts");
        let up = wait_for(PROMPTLY, || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        assert!(up.is_some(), "approvald never listened on {port}");
        Self { port, child }
    }

    pub async fn client(&self) -> Client {
        connect(self.port).await
    }

    /// Resident memory of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for ApprovaldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose HTTP/2 windows are the protocol's minimum (64 KiB), so a
/// test that stops reading fills them with little data.
pub async fn small_window_client(port: u16) -> Client {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("valid endpoint")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect to approvald");
    ApprovalServiceClient::new(channel)
}

/// A create request carrying about `bytes` of context.
pub fn create_request_of(approval_type: &str, bytes: usize) -> v1::CreateApprovalRequest {
    v1::CreateApprovalRequest {
        context: Some(context(&[("blob", &"x".repeat(bytes))])),
        ..create_request(approval_type)
    }
}
