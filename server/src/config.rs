//! Configuration: every setting is a flag and an `APPROVALD_*` environment
//! variable; `approvald --help` lists them all with their defaults.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::domain::Limits;
use crate::store::Retention;

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|e| format!("{raw:?} is not a duration like 30s, 5m, 7d: {e}"))
}

/// A duration default as `--help` shows it (`5m`, `7days`): the flags take
/// their defaults from the constants that own them (`Limits`, `Retention`).
fn shown(default: Duration) -> String {
    humantime::format_duration(default).to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Human approval gates as a service: agents ask, humans decide.
#[derive(Clone, Debug, Parser)]
#[command(name = "approvald", version, about, long_about = None)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// gRPC (and gRPC-Web) listen address. Port 0 picks a free port.
    #[arg(long, env = "APPROVALD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Also serve gRPC health (only) in plaintext on this address, for probes
    /// that cannot speak TLS or send credentials (Kubernetes gRPC probes)
    /// when --tls-cert-file is set.
    #[arg(long, env = "APPROVALD_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,

    /// Prometheus metrics listen address (serves /metrics).
    #[arg(
        long,
        env = "APPROVALD_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: SocketAddr,

    /// Accept unauthenticated calls on a non-loopback address. Without
    /// --auth-config, listening beyond 127.0.0.1/::1 (API, metrics or
    /// health) needs this.
    #[arg(long, env = "APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED")]
    pub insecure_allow_unauthenticated: bool,

    /// Configuration file (TOML): authentication (bearer tokens, JWT,
    /// client certificates; SECURITY.md) and policies per approval type
    /// (README, Policies). Authentication is on when the file has an
    /// authentication section. Re-read on SIGHUP and when it changes.
    /// `--auth-config` and APPROVALD_AUTH_CONFIG are older names.
    #[arg(long = "config", alias = "auth-config", env = "APPROVALD_CONFIG")]
    pub auth_config: Option<PathBuf>,

    /// How often to check the configuration file for changes (reloading it
    /// when it changed, as on SIGHUP). 0 turns the check off.
    #[arg(long, env = "APPROVALD_AUTH_RELOAD_INTERVAL", default_value = "10s", value_parser = duration)]
    pub auth_reload_interval: Duration,

    /// TLS server certificate chain (PEM). With --tls-key-file, serves TLS.
    #[arg(long, env = "APPROVALD_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// TLS server private key (PEM).
    #[arg(long, env = "APPROVALD_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// CA bundle (PEM) that client certificates must chain to (mutual TLS).
    /// Clients may still authenticate with a bearer token instead.
    #[arg(long, env = "APPROVALD_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Calls per second one authenticated principal may make on one
    /// replica. 0 turns the limit off.
    #[arg(long, env = "APPROVALD_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,

    /// Calls a principal may make in a burst above --rate-limit.
    #[arg(long, env = "APPROVALD_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Calls with invalid credentials one peer address (an IPv4 address or
    /// an IPv6 /64) may make per minute, on one replica; past it the peer's
    /// calls are refused at once with RESOURCE_EXHAUSTED until its
    /// allowance refills. 0 turns the limit off.
    #[arg(long, env = "APPROVALD_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,

    /// How often the audit log summarises refusals it did not write line by
    /// line (past 20 per interval).
    #[arg(long, env = "APPROVALD_AUDIT_SUMMARY_INTERVAL", default_value = "10s", value_parser = duration)]
    pub audit_summary_interval: Duration,

    /// Pending approvals one requester may hold at once (all replicas).
    #[arg(long, env = "APPROVALD_MAX_OPEN_PER_REQUESTER", default_value_t = Limits::DEFAULT_MAX_OPEN_PER_REQUESTER)]
    pub max_open_per_requester: usize,

    /// WatchPending streams one authenticated principal may hold open on
    /// one replica.
    #[arg(long, env = "APPROVALD_MAX_WATCHERS_PER_PRINCIPAL", default_value_t = Limits::DEFAULT_MAX_WATCHERS_PER_PRINCIPAL)]
    pub max_watchers_per_principal: usize,

    /// Most `WatchPending` streams this replica holds open, whoever asks
    /// (with authentication on or off). Each holds at most about 0.7 MB
    /// (see README, Operations), so this bounds what watchers can take.
    #[arg(long, env = "APPROVALD_MAX_WATCHERS", default_value_t = Limits::DEFAULT_MAX_WATCHERS)]
    pub max_watchers: usize,

    /// How long a watcher whose queue is full may read nothing before it is
    /// ended with UNAVAILABLE (clients resume from their last cursor).
    #[arg(long, env = "APPROVALD_WATCHER_STALL", default_value = shown(Limits::DEFAULT_WATCHER_STALL), value_parser = duration)]
    pub watcher_stall: Duration,

    /// Open client connections; more wait to be accepted. Default: 10000,
    /// or less when the open-file limit (raised to its hard limit at start)
    /// leaves less room: the limit minus an eighth (at least 32).
    #[arg(long, env = "APPROVALD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Write the audit log (JSON lines: every create, decision, cancel,
    /// expiry and refusal, with the principal) to this file instead of the
    /// main log.
    #[arg(long, env = "APPROVALD_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Redis URL: redis://, rediss:// (TLS), or
    /// redis+sentinel://host:26379[,host:26379...]/<master>[/db] to follow
    /// the master that Redis Sentinel names. A password goes in the URL.
    /// Without it, approvals live in this process only (in-memory store).
    #[arg(long, env = "APPROVALD_REDIS_URL", conflicts_with = "redis_url_file")]
    pub redis_url: Option<String>,

    /// File holding the Redis URL (e.g. a mounted Secret), instead of
    /// --redis-url. Surrounding whitespace is ignored.
    #[arg(long, env = "APPROVALD_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,

    /// Namespace in Redis: every key lives under the hash tag `{PREFIX}`, so
    /// tenants and tests can share one Redis.
    #[arg(long, env = "APPROVALD_REDIS_PREFIX", default_value = "approvald")]
    pub redis_prefix: String,

    /// How many hash tags (`{PREFIX}`, `{PREFIX:1}`...) approvals spread
    /// over (1 to 64); each is a partition with its own keys, pending index
    /// and event log, placed on a Cluster slot of its own, so a Redis
    /// Cluster spreads the load over its primaries. A requester's approvals
    /// all go to one partition (by a hash of its name); every replica reads
    /// every partition's log. Recorded in Redis at first start: a replica
    /// started with another count on the same data refuses to start (the
    /// message says how to migrate). 1: the layout of versions before
    /// partitions. Event log bounds apply to each partition's log.
    #[arg(long, env = "APPROVALD_REDIS_PARTITIONS", default_value_t = 1)]
    pub redis_partitions: usize,

    /// Connect and command timeout towards Redis.
    #[arg(long, env = "APPROVALD_REDIS_TIMEOUT", default_value = "1s", value_parser = duration)]
    pub redis_timeout: Duration,

    /// Confirm a creation or decision only once this many Redis replicas
    /// have it (WAIT; WAITAOF, fsynced to their AOF, on Redis 7.2+), so a
    /// failover loses no confirmed decision. 0: Redis's asynchronous
    /// replication (a failover may lose the last confirmed writes).
    #[arg(long, env = "APPROVALD_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// How long a write waits for --redis-wait-replicas; then the call
    /// fails with UNAVAILABLE (outcome unknown: read the approval back).
    /// Below --redis-timeout.
    #[arg(long, env = "APPROVALD_REDIS_WAIT_TIMEOUT", default_value = "500ms", value_parser = duration)]
    pub redis_wait_timeout: Duration,

    /// How long final approvals stay readable.
    #[arg(long, env = "APPROVALD_RETENTION", default_value = shown(Retention::DEFAULT_FINAL_FOR), value_parser = duration)]
    pub retention: Duration,

    /// Events kept in the event log (WatchPending resume window).
    #[arg(long, env = "APPROVALD_EVENT_LOG_CAP", default_value_t = Retention::DEFAULT_MAX_EVENTS)]
    pub event_log_cap: usize,

    /// Bytes the event log may take in Redis (its stream's MEMORY USAGE,
    /// held approximately): with `--event-log-cap`, whichever is reached
    /// first trims the oldest events.
    #[arg(long, env = "APPROVALD_EVENT_LOG_MAX_BYTES", default_value_t = Retention::DEFAULT_MAX_EVENT_BYTES)]
    pub event_log_max_bytes: usize,

    /// Largest encoded `context`, in bytes.
    #[arg(long, env = "APPROVALD_MAX_CONTEXT_BYTES", default_value_t = Limits::DEFAULT_MAX_CONTEXT_BYTES)]
    pub max_context_bytes: usize,

    /// Most labels on one approval.
    #[arg(long, env = "APPROVALD_MAX_LABELS", default_value_t = Limits::DEFAULT_MAX_LABELS)]
    pub max_labels: usize,

    /// Largest `reason`, in bytes.
    #[arg(long, env = "APPROVALD_MAX_REASON_BYTES", default_value_t = Limits::DEFAULT_MAX_REASON_BYTES)]
    pub max_reason_bytes: usize,

    /// `timeout` of an approval when the request gives none.
    #[arg(long, env = "APPROVALD_DEFAULT_TIMEOUT", default_value = shown(Limits::DEFAULT_TIMEOUT), value_parser = duration)]
    pub default_timeout: Duration,

    /// Longest `timeout` accepted.
    #[arg(long, env = "APPROVALD_MAX_TIMEOUT", default_value = shown(Limits::DEFAULT_MAX_TIMEOUT), value_parser = duration)]
    pub max_timeout: Duration,

    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "APPROVALD_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Concurrent calls (HTTP/2 streams) per connection.
    #[arg(
        long,
        env = "APPROVALD_MAX_CONCURRENT_STREAMS",
        default_value_t = 10_000
    )]
    pub max_concurrent_streams: u32,

    /// HTTP/2 keepalive ping interval: finds dead clients holding waiters.
    #[arg(long, env = "APPROVALD_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = duration)]
    pub keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection closes.
    #[arg(long, env = "APPROVALD_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub keepalive_timeout: Duration,

    /// On SIGTERM/SIGINT, how long open calls get to finish before the
    /// process exits anyway.
    #[arg(long, env = "APPROVALD_SHUTDOWN_GRACE", default_value = "10s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// How often the store's reachability is checked for health.
    #[arg(long, env = "APPROVALD_HEALTH_INTERVAL", default_value = "1s", value_parser = duration)]
    pub health_interval: Duration,

    /// Web origins (`https://inbox.example.com`, comma-separated) whose
    /// pages may call through gRPC-Web (CORS). Default: none, only pages
    /// served from approvald's own address. `*` allows any origin and needs
    /// --auth-config.
    #[arg(long, env = "APPROVALD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// For tests only: pretend this replica's wall clock is off by this many
    /// milliseconds (shows that Redis's clock rules).
    #[arg(
        long,
        env = "APPROVALD_TEST_CLOCK_SKEW_MS",
        default_value_t = 0,
        hide = true,
        allow_negative_numbers = true
    )]
    pub test_clock_skew_ms: i64,

    /// Log format.
    #[arg(long, env = "APPROVALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. `info,approvald=debug`).
    #[arg(long, env = "APPROVALD_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Print the SHA-256 of a bearer token (read from standard input), as
    /// the authentication file stores it.
    HashToken,
    /// Print a new random bearer token and its SHA-256.
    NewToken,
    /// Check a configuration file (as --config reads it): exit 0 when it
    /// is valid, otherwise say what is wrong, with its line and column.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
}

impl Config {
    /// From the command line and the environment; the configuration file
    /// may also come from APPROVALD_AUTH_CONFIG, its older name.
    pub fn from_args() -> Self {
        let mut config = Config::parse();
        if config.auth_config.is_none() {
            config.auth_config = std::env::var_os("APPROVALD_AUTH_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
        }
        config
    }

    /// The defaults, listening on free loopback ports (for tests and embedding).
    pub fn for_tests() -> Self {
        let mut c = Config::parse_from(["approvald"]);
        c.listen = "127.0.0.1:0".parse().unwrap_or(c.listen);
        c.metrics_listen = "127.0.0.1:0".parse().unwrap_or(c.metrics_listen);
        c
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_context_bytes: self.max_context_bytes,
            max_labels: self.max_labels,
            max_reason_bytes: self.max_reason_bytes,
            default_timeout: self.default_timeout,
            max_timeout: self.max_timeout,
            max_open_per_requester: self.max_open_per_requester,
            max_watchers_per_principal: self.max_watchers_per_principal,
            max_watchers: self.max_watchers,
            watcher_stall: self.watcher_stall,
        }
    }

    pub fn retention(&self) -> Retention {
        Retention {
            final_approvals: self.retention,
            max_events: self.event_log_cap,
            max_event_bytes: self.event_log_max_bytes,
            max_timeout: self.max_timeout,
        }
    }

    /// The Redis URL from --redis-url or --redis-url-file, if any.
    pub fn redis_url(&self) -> Result<Option<String>, String> {
        match (&self.redis_url, &self.redis_url_file) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_string()))
                .map_err(|e| format!("--redis-url-file {}: {e}", path.display())),
            (None, None) => Ok(None),
        }
    }

    /// Without authentication every listener stays on loopback: the API
    /// (anyone could request and approve), and metrics and health too
    /// (metrics carry approval types and counts), unless the operator says
    /// --insecure-allow-unauthenticated.
    fn loopback_without_auth(&self) -> Result<(), String> {
        let listeners = [
            ("--listen", Some(self.listen), "could request and approve"),
            (
                "--metrics-listen",
                Some(self.metrics_listen),
                "could read approval types and counts",
            ),
            (
                "--health-listen",
                self.health_listen,
                "could read the serving status",
            ),
        ];
        for (flag, addr, risk) in listeners {
            match addr {
                Some(addr) if !addr.ip().is_loopback() => {
                    return Err(format!(
                        "refusing {flag} {addr} without authentication: anyone who can reach \
                         this address {risk}. Configure authentication in --config (see SECURITY.md), listen \
                         on 127.0.0.1, or pass --insecure-allow-unauthenticated \
                         (APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED=true) behind a trusted network \
                         boundary"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Refuses listeners and origins that authentication being off makes
    /// unsafe (`auth_on`: the configuration file has an authentication
    /// section).
    pub fn check_exposure(&self, auth_on: bool) -> Result<(), String> {
        if !auth_on && !self.insecure_allow_unauthenticated {
            self.loopback_without_auth()?;
        }
        if !auth_on && self.cors_origins.iter().any(|o| o.trim() == "*") {
            return Err(
                "--cors-origins '*' needs authentication (an authentication section in --config): \
                 without it any web page the user opens could list and approve. List the origins \
                 of your inbox pages instead"
                    .into(),
            );
        }
        Ok(())
    }

    /// Refuses settings that cannot work, naming the flag.
    pub fn check(&self) -> Result<(), String> {
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return Err(format!(
                "--default-timeout ({}) must be > 0 and at most --max-timeout ({})",
                humantime::format_duration(self.default_timeout),
                humantime::format_duration(self.max_timeout)
            ));
        }
        if self.audit_summary_interval.is_zero() {
            return Err("--audit-summary-interval must be greater than zero".into());
        }
        if self.retention.is_zero() {
            return Err("--retention must be greater than zero".into());
        }
        if self.event_log_cap == 0 {
            return Err("--event-log-cap must be at least 1".into());
        }
        if self.event_log_max_bytes < Retention::MIN_MAX_EVENT_BYTES {
            return Err(format!(
                "--event-log-max-bytes must be at least {}",
                Retention::MIN_MAX_EVENT_BYTES
            ));
        }
        if self.max_message_bytes < self.max_context_bytes {
            return Err(format!(
                "--max-message-bytes ({}) must be at least --max-context-bytes ({})",
                self.max_message_bytes, self.max_context_bytes
            ));
        }
        if self.redis_wait_replicas > 0
            && (self.redis_wait_timeout.is_zero() || self.redis_wait_timeout >= self.redis_timeout)
        {
            return Err(format!(
                "--redis-wait-timeout ({}) must be > 0 and below --redis-timeout ({}): \
                 the wait is part of a Redis command",
                humantime::format_duration(self.redis_wait_timeout),
                humantime::format_duration(self.redis_timeout)
            ));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            return Err("--redis-prefix must be non-empty and contain no braces".into());
        }
        let max_partitions = crate::domain::Frontier::MAX_PARTITIONS;
        if !(1..=max_partitions).contains(&self.redis_partitions) {
            return Err(format!(
                "--redis-partitions {}: must be between 1 and {max_partitions}",
                self.redis_partitions
            ));
        }
        if let Some(bad) = self.cors_origins.iter().map(|o| o.trim()).find(|o| {
            !o.is_empty() && *o != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
        }) {
            return Err(format!(
                "--cors-origins {bad:?} is not an origin: write it as https://host[:port]"
            ));
        }
        if self.max_open_per_requester == 0
            || self.max_watchers_per_principal == 0
            || self.max_watchers == 0
            || self.max_connections == Some(0)
        {
            return Err("--max-open-per-requester, --max-watchers-per-principal, --max-watchers and --max-connections must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_default_to_the_constants_that_own_them() {
        let config = Config::try_parse_from(["approvald"]).expect("the defaults parse");
        assert_eq!(config.default_timeout, Limits::DEFAULT_TIMEOUT);
        assert_eq!(config.max_timeout, Limits::DEFAULT_MAX_TIMEOUT);
        assert_eq!(config.watcher_stall, Limits::DEFAULT_WATCHER_STALL);
        assert_eq!(config.retention, Retention::DEFAULT_FINAL_FOR);
        assert_eq!(config.event_log_cap, Retention::DEFAULT_MAX_EVENTS);
    }
}
