//! Test harness: a real `redis-server` on a free port, real `approvald`
//! replicas (in-process, on port 0), and the real generated client.
//!
//! What needs no server (Redis fixtures, processes, polling, metrics) is in
//! `approval-testkit` (testkit/) and re-exported here, so a test file needs
//! only `use approval_tests::*;`.

use std::time::{Duration, Instant};

pub mod cluster;
pub mod otlp;
pub mod watch;
pub mod webhooks;

pub use approval_testkit::*;
pub use cluster::RedisCluster;
pub use watch::{next_event, resumed_watch, spawn_await, synced_watch, SyncedWatch};

use approval_client::v1;
use approval_client::ApprovalServiceClient;
use approvald::shutdown::Shutdown;
use approvald::{Application, Config};
use tonic::transport::Channel;

pub type Client = ApprovalServiceClient<Channel>;

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

    /// The value of `name` in this replica's metrics, if it serves one
    /// ([`metric_value`]).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&metrics_text(self.metrics_port).await, name)
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
    /// A `redis-server` of the test's own.
    Redis,
    /// The Redis Cluster shared by the tests of this binary
    /// ([`RedisCluster::shared`]), under a key prefix of the test's own.
    Cluster,
}

/// A deployment under test: one replica on the memory store, or two
/// replicas sharing one Redis or Redis Cluster (with a namespace of their
/// own).
pub struct Deployment {
    pub replicas: Vec<Replica>,
    pub redis: Option<RedisServer>,
    pub cluster: Option<std::sync::Arc<RedisCluster>>,
    pub prefix: String,
}

impl Deployment {
    pub async fn start(store: Store) -> Self {
        Self::start_with(store, 2, |_| {}).await
    }

    /// `replicas` applies to Redis; memory is always one process.
    pub async fn start_with(store: Store, replicas: usize, tweak: impl Fn(&mut Config)) -> Self {
        let (redis, cluster) = match store {
            Store::Memory => (None, None),
            Store::Redis => (Some(RedisServer::start()), None),
            Store::Cluster => {
                // Starting it blocks (a few seconds, once per test binary).
                let shared = tokio::task::spawn_blocking(RedisCluster::shared)
                    .await
                    .expect("the shared cluster starts");
                (None, Some(shared))
            }
        };
        let url = match (&redis, &cluster) {
            (Some(redis), _) => Some(redis.url()),
            (_, Some(cluster)) => Some(cluster.url()),
            _ => None,
        };
        let count = if url.is_some() { replicas } else { 1 };
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let mut started = Vec::new();
        for _ in 0..count {
            let mut config = Config::for_tests();
            config.redis_url = url.clone();
            config.redis_prefix = prefix.clone();
            tweak(&mut config);
            started.push(Replica::start(config).await);
        }
        Self {
            replicas: started,
            redis,
            cluster,
            prefix,
        }
    }

    /// `replicas` replicas on a cluster of the test's own (one it may fail
    /// over or break).
    pub async fn start_on_cluster(
        cluster: std::sync::Arc<RedisCluster>,
        replicas: usize,
        tweak: impl Fn(&mut Config),
    ) -> Self {
        let mut d = Self::start_at(cluster.url(), replicas, tweak).await;
        d.cluster = Some(cluster);
        d
    }

    /// `replicas` replicas on a Redis server the test set up itself (with
    /// its own replica, say).
    pub async fn start_on_redis(
        redis: RedisServer,
        replicas: usize,
        tweak: impl Fn(&mut Config),
    ) -> Self {
        let mut d = Self::start_at(redis.url(), replicas, tweak).await;
        d.redis = Some(redis);
        d
    }

    async fn start_at(url: String, replicas: usize, tweak: impl Fn(&mut Config)) -> Self {
        let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
        let mut started = Vec::new();
        for _ in 0..replicas {
            let mut config = Config::for_tests();
            config.redis_url = Some(url.clone());
            config.redis_prefix = prefix.clone();
            tweak(&mut config);
            started.push(Replica::start(config).await);
        }
        Self {
            replicas: started,
            redis: None,
            cluster: None,
            prefix,
        }
    }

    /// The key all of this deployment's data hashes with (its hash tag).
    pub fn hash_tag(&self) -> String {
        format!("{{{}}}", self.prefix)
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
    create_with(client, create_request(approval_type)).await
}

/// Creates the approval `request` describes (failing the test if refused).
pub async fn create_with(client: &mut Client, request: v1::CreateApprovalRequest) -> v1::Approval {
    client
        .create_approval(request)
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

/// A real `approvald` process on a free loopback port (killed on drop), for
/// what only a separate process shows: its memory.
pub struct ApprovaldProcess {
    pub port: u16,
    process: ServerProcess,
}

impl ApprovaldProcess {
    pub async fn start(args: &[String]) -> Self {
        let (process, listen) = ServerProcess::on_loopback(&approvald_binary(), args);
        let port = listen.port;
        let up = wait_for(PROMPTLY, || async move {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        assert!(up.is_some(), "approvald never listened on {port}");
        Self { port, process }
    }

    pub async fn client(&self) -> Client {
        connect(self.port).await
    }

    /// Resident memory of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
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
