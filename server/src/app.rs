//! Assembling and running one `approvald` process.
//!
//! `Application::build` binds its listeners (port 0 picks a free one), so
//! tests start several replicas side by side in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use approval_api::v1::webhook_service_server::WebhookServiceServer;
use approval_api::v1::FILE_DESCRIPTOR_SET;
use http::header::HeaderName;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::webhooks::WebhookApi;
use crate::api::{ApprovalApi, ApprovalRoutes, RateLimit};
use crate::approvals::Approvals;
use crate::auth::{Authenticate, Refusals};
use crate::config::Config;
use crate::config_file::ConfigHandle;
use crate::domain::DomainError;
use crate::metrics::Metrics;
use crate::origins::{OriginCheckLayer, OriginPolicy};
use crate::shutdown::Shutdown;
use crate::store::{Durability, MemoryStore, RedisOptions, RedisStore, Store};
use crate::webhooks::Webhooks;

/// The service name whose health follows the store (readiness).
pub const SERVICE_NAME: &str = "approval.v1.ApprovalService";
/// A health service name that stays SERVING while the process is up, even
/// when Redis is not (liveness: restarting would not bring Redis back).
pub const LIVENESS_SERVICE_NAME: &str = "liveness";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] DomainError),
    #[error("invalid configuration: {0}")]
    RedisUrl(#[from] crate::store::BadRedisUrl),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

pub struct Application {
    config: Config,
    grpc: TcpListener,
    metrics_listener: TcpListener,
    health_listener: Option<TcpListener>,
    approvals: Approvals,
    metrics: Metrics,
    shutdown: Shutdown,
    store_name: &'static str,
    file: Option<ConfigHandle>,
    tls: Option<ServerTlsConfig>,
    webhooks: Webhooks,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.check().map_err(StartError::Config)?;
        let file = match &config.auth_config {
            Some(path) => Some(
                ConfigHandle::load(path.clone(), config.max_timeout).map_err(StartError::Config)?,
            ),
            None => None,
        };
        let auth_on = file.as_ref().is_some_and(|f| f.auth().is_some());
        config.check_exposure(auth_on).map_err(StartError::Config)?;
        let policies = file
            .as_ref()
            .map_or_else(Default::default, |f| f.policies());
        let tls = tls_config(&config)?;
        let redis_url = config.redis_url().map_err(StartError::Config)?;
        let (store, store_name): (Arc<dyn Store>, &'static str) = match &redis_url {
            Some(url) => (
                Arc::new(RedisStore::connect(RedisOptions {
                    url: url.clone(),
                    prefix: config.redis_prefix.clone(),
                    partitions: config.redis_partitions,
                    retention: config.retention(),
                    timeout: config.redis_timeout,
                    durability: (config.redis_wait_replicas > 0).then_some(Durability {
                        replicas: config.redis_wait_replicas,
                        timeout: config.redis_wait_timeout,
                    }),
                    clock_skew_ms: config.test_clock_skew_ms,
                })?),
                "redis",
            ),
            None => (Arc::new(MemoryStore::new(config.retention())), "memory"),
        };
        // The data's partition count must be this replica's
        // (--redis-partitions). Redis not up yet: create checks it before
        // its first write.
        match store.check_layout().await {
            Ok(Some(why)) => return Err(StartError::Config(why)),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "cannot read the Redis layout yet; it is checked before the first write"
            ),
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let grpc = bind(config.listen).await?;
        let metrics_listener = bind(config.metrics_listen).await?;
        let health_listener = match config.health_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics = Metrics::new();
        let shutdown = Shutdown::new();
        let webhooks = Webhooks::new(
            config.auth_config.clone(),
            store.clone(),
            metrics.webhooks.clone(),
            shutdown.clone(),
        )
        .map_err(StartError::Config)?;
        let approvals = Approvals::new(
            store,
            config.limits(),
            policies,
            metrics.clone(),
            shutdown.clone(),
        );
        Ok(Self {
            config,
            grpc,
            metrics_listener,
            health_listener,
            approvals,
            metrics,
            shutdown,
            store_name,
            file,
            tls,
            webhooks,
        })
    }

    /// The gRPC port actually bound.
    pub fn port(&self) -> u16 {
        self.grpc.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The plaintext health port, when --health-listen is set.
    pub fn health_port(&self) -> Option<u16> {
        self.health_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Cancel it to stop the server gracefully (what SIGTERM does).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until the shutdown handle is cancelled, then shuts down within
    /// `--shutdown-grace`: health NOT_SERVING, no new calls, waiters told to
    /// retry elsewhere (UNAVAILABLE), watchers closed, then exit.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let Self {
            config,
            grpc,
            metrics_listener,
            health_listener,
            approvals,
            metrics,
            shutdown,
            store_name,
            file,
            tls,
            webhooks,
        } = self;
        let auth = file.as_ref().and_then(ConfigHandle::auth);
        match store_name {
            "memory" => tracing::info!(
                "store: in-memory (this process only; approvals are lost on exit). Set --redis-url to share state between replicas"
            ),
            _ => tracing::info!(prefix = %config.redis_prefix, "store: Redis"),
        }
        if let Some(f) = &file {
            tracing::info!(file = %f.path().display(), "configuration file (re-read on SIGHUP and when it changes)");
        }
        match &auth {
            Some(_) => tracing::info!("authentication on"),
            None if !config.listen.ip().is_loopback() => tracing::warn!(
                listen = %config.listen,
                "authentication is OFF and the listen address is not loopback: accepting UNAUTHENTICATED calls from the network (--insecure-allow-unauthenticated)"
            ),
            None if !config.metrics_listen.ip().is_loopback() => tracing::warn!(
                metrics_listen = %config.metrics_listen,
                "authentication is OFF and the metrics address is not loopback: approval types and counts are readable from the network (--insecure-allow-unauthenticated)"
            ),
            None => tracing::info!("authentication off (loopback only)"),
        }
        if tls.is_some() {
            tracing::info!(mutual = config.tls_client_ca_file.is_some(), "TLS on");
        }
        let fds = crate::connections::raise_fd_limit();
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| fds.default_max_connections());
        let shown = |limit: Option<u64>| limit.map_or("unlimited".to_string(), |n| n.to_string());
        tracing::info!(
            was = %shown(fds.was),
            now = %shown(fds.now),
            max_connections,
            "open-file limit"
        );
        if fds.now.is_some_and(|n| max_connections as u64 >= n) {
            tracing::warn!(
                max_connections,
                "--max-connections is at or above the open-file limit: accepting will fail before the cap is reached"
            );
        }
        let reload_task = file.clone().map(|handle| {
            tokio::spawn(reload_config(
                handle,
                (!config.auth_reload_interval.is_zero()).then_some(config.auth_reload_interval),
                shutdown.clone(),
            ))
        });

        let mut tasks = approvals.start(config.health_interval);
        tasks.extend(webhooks.start(
            (!config.auth_reload_interval.is_zero()).then_some(config.auth_reload_interval),
        ));
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(LIVENESS_SERVICE_NAME, ServingStatus::Serving)
            .await;
        let health_task = tokio::spawn(report_health(
            reporter.clone(),
            approvals.clone(),
            shutdown.clone(),
        ));
        let metrics_port = metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default();
        let metrics_task = tokio::spawn(metrics.clone().serve(metrics_listener, shutdown.clone()));
        // Plaintext health for probes, beside a TLS main port.
        let health_only_task = health_listener.map(|listener| {
            let service = health_service.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let served = Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        stop.cancelled_owned(),
                    )
                    .await;
                if let Err(e) = served {
                    tracing::error!("health listener failed: {e}");
                }
            })
        });

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details (ErrorInfo, BadRequest...) in statuses.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details (ErrorInfo, BadRequest...) in statuses.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let rate = RateLimit::new(config.rate_limit, config.rate_limit_burst);
        let api = ApprovalRoutes::new(
            ApprovalApi::new(approvals.clone(), rate),
            config.max_message_bytes,
            config.max_message_bytes.max(4 * 1024 * 1024),
        );
        let auth_on = auth.is_some();
        let refusals = Arc::new(Refusals::new(config.auth_failures_per_minute));
        let refusals_task = auth_on.then(|| {
            tokio::spawn(
                refusals
                    .clone()
                    .report_every(config.audit_summary_interval, shutdown.clone()),
            )
        });
        let webhook_api = InterceptedService::new(
            WebhookServiceServer::new(WebhookApi::new(webhooks)),
            Authenticate::new(auth.clone(), refusals.clone()),
        );
        let api = InterceptedService::new(api, Authenticate::new(auth, refusals));

        tracing::info!(
            grpc = %config.listen.ip(), port = grpc.local_addr().map(|a| a.port()).unwrap_or_default(),
            metrics_port,
            "approvald listening"
        );
        if let Ok(addr) = grpc.local_addr() {
            let open = crate::inbox::address(tls.is_some(), addr);
            tracing::info!("inbox: open {open}");
        }
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let serve = builder
            .accept_http1(true)
            .http2_keepalive_interval(Some(config.keepalive_interval))
            .http2_keepalive_timeout(Some(config.keepalive_timeout))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .max_concurrent_streams(config.max_concurrent_streams)
            .layer(crate::inbox::InboxLayer)
            // A span per call, child of its traceparent: only with OTEL_* on.
            .layer(tower::util::option_layer(crate::telemetry::grpc_layer()))
            // CORS, gRPC-Web and the origin check: browser calls only.
            .layer(crate::browsers::BrowsersOnly(
                tower::ServiceBuilder::new()
                    .layer(cors(&config.cors_origins))
                    .layer(tonic_web::GrpcWebLayer::new())
                    .layer(OriginCheckLayer(OriginPolicy::new(
                        &config.cors_origins,
                        auth_on,
                    ))),
            ))
            .layer(tower::util::MapResponseLayer::new(
                crate::api::decode::client_errors::<tonic::body::Body>,
            ))
            .layer(tower::util::MapResponseLayer::new(
                crate::api::exhausted::count_refusals::<tonic::body::Body>(metrics.clone()),
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(api)
            .add_service(webhook_api)
            .serve_with_incoming_shutdown(
                crate::connections::incoming(grpc, max_connections),
                shutdown.clone().cancelled_owned(),
            );
        tokio::pin!(serve);

        let result = tokio::select! {
            r = &mut serve => r.map_err(StartError::from),
            _ = shutdown.cancelled() => {
                tracing::info!(grace = ?config.shutdown_grace, waiting = approvals.waiting(), "shutting down");
                match tokio::time::timeout(config.shutdown_grace, &mut serve).await {
                    Ok(r) => r.map_err(StartError::from),
                    Err(_) => {
                        tracing::warn!("shutdown grace passed with calls still open; closing them");
                        Ok(())
                    }
                }
            }
        };
        shutdown.cancel();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        let _ = health_task.await;
        for t in [reload_task, health_only_task, refusals_task]
            .into_iter()
            .flatten()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        let _ = metrics_task.await;
        tracing::info!("stopped");
        result
    }
}

/// TLS from the --tls-* files, read once at start.
fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, StartError> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| StartError::Config(format!("{flag} {}: {e}", path.display())))
    };
    let identity = tonic::transport::Identity::from_pem(
        read("--tls-cert-file", cert)?,
        read("--tls-key-file", key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.tls_client_ca_file {
        tls = tls
            .client_ca_root(tonic::transport::Certificate::from_pem(read(
                "--tls-client-ca-file",
                ca,
            )?))
            .client_auth_optional(true);
    }
    Ok(Some(tls))
}

/// Re-reads the configuration file on every SIGHUP, and when the file
/// changes (checked every `check_every`; a Kubernetes Secret update swaps the
/// mounted file). Open connections and calls are untouched; a file that does
/// not load leaves the old one in force, whole.
async fn reload_config(handle: ConfigHandle, check_every: Option<Duration>, shutdown: Shutdown) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(_) => {
            tracing::warn!(
                "cannot listen for SIGHUP: the configuration file reloads only when it changes"
            );
            None
        }
    };
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified(handle.path());
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        let tick = async {
            match check_every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = shutdown.cancelled() => return,
            got = signalled => match got {
                Some(_) => "SIGHUP",
                None => return,
            },
            _ = tick => {
                let now = modified(handle.path());
                if now == seen {
                    continue;
                }
                seen = now;
                "the file changed"
            }
        };
        match handle.reload() {
            Ok(()) => {
                tracing::info!(file = %handle.path().display(), why, "configuration file reloaded")
            }
            Err(e) => tracing::error!(
                why,
                "configuration file NOT reloaded, the previous one stays in force: {e}"
            ),
        }
    }
}

/// Keeps gRPC health in step with the store, and NOT_SERVING from the first
/// moment of shutdown (so load balancers stop sending new calls).
async fn report_health(reporter: HealthReporter, approvals: Approvals, shutdown: Shutdown) {
    let mut healthy = approvals.health();
    loop {
        let status = if *healthy.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter.set_service_status(SERVICE_NAME, status).await;
        tokio::select! {
            changed = healthy.changed() => if changed.is_err() { break },
            _ = shutdown.cancelled() => break,
        }
    }
    for name in ["", SERVICE_NAME, LIVENESS_SERVICE_NAME] {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
}

/// CORS for browsers calling through gRPC-Web from the listed origins
/// (`origins::OriginPolicy` refuses the calls of any other page).
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| o.trim().trim_end_matches('/').parse().ok()),
        )
    };
    let exposed = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        approval_api::PRINCIPAL_METADATA,
    ];
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(tower_http::cors::Any)
        .expose_headers(exposed.map(HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 3600))
}
