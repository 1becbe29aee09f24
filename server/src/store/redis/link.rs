//! Where Redis is: one fixed server (`redis://`, `rediss://`), whichever
//! server Redis Sentinel names as the master (`redis+sentinel://`), or a
//! Redis Cluster (`redis+cluster://`, `rediss+cluster://`).
//!
//! redis-rs does not follow Sentinel failovers by itself, so the link does:
//! the health check (every `--health-interval`) asks the connected server
//! for its `ROLE`; when it is unreachable or no longer a master, the link
//! asks the sentinels for the current master and switches to it. Calls in
//! between fail with UNAVAILABLE (retry), never with a made-up answer.
//!
//! A Cluster is followed by redis-rs's async cluster client itself: it maps
//! slots to primaries, follows MOVED and ASK, and refreshes the map when a
//! node fails or answers READONLY (a failover). Every key of the store is
//! under one hash tag, so every script and every pipeline goes to the one
//! primary that owns the tag's slot.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value};

use crate::domain::DomainError;

/// A connection to Redis, whatever its topology; every command goes
/// through one (redis-rs's command traits work on it).
#[derive(Clone)]
pub enum Conn {
    /// One server: reconnects by itself, every command has the timeout.
    Server(ConnectionManager),
    /// One server, for blocking reads only (no response timeout).
    Blocking(MultiplexedConnection),
    /// A Cluster: routes by key slot, follows redirections and failovers.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Runs a keyless command (TIME, INFO, COMMAND...) on the server that
    /// holds `key`: on a Cluster, the primary of its slot (the one whose
    /// clock the scripts read, whose memory fills up); elsewhere, the one
    /// server. Without it the cluster client sends such commands to a
    /// random node, or to all of them with a merged reply.
    pub async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
        key: &str,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::with_key(key, SlotAddr::Master);
                let value = c
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Blocking(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Blocking(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Blocking(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One Redis server and a connection to it.
pub struct Node {
    pub client: Client,
    pub conn: ConnectionManager,
    address: String,
}

/// Sentinels to ask, and what to ask them about.
struct Sentinels {
    nodes: Vec<String>,
    master: String,
    /// `user:password@` for the master, if any.
    auth: String,
    db: String,
    tls: bool,
}

/// A Redis Cluster and the two ways to talk to it.
struct Cluster {
    /// Every command but blocking reads: per-command timeout, few and
    /// quick retries (the default waits seconds between them), so a call
    /// during a failover fails fast with UNAVAILABLE instead of hanging.
    commands: ClusterConnection,
    /// Makes the connections for blocking reads: the same seeds, no
    /// response timeout at all (see [`Link::blocking_conn`]).
    blocking: ClusterClient,
    seeds: Vec<String>,
}

pub struct Link {
    current: ArcSwapOption<Node>,
    sentinels: Option<Sentinels>,
    cluster: Option<Cluster>,
    timeout: Duration,
    /// Only one rediscovery at a time.
    discovering: tokio::sync::Mutex<()>,
}

/// A `--redis-url` this server cannot use: a start error (the operator's
/// to fix), not a request's. The message names the flag, shows the URL
/// without its password, and gives the accepted forms.
#[derive(Debug, thiserror::Error)]
#[error("--redis-url {url:?}: {why}. Use redis://HOST:6379/0 (rediss:// for TLS), redis+sentinel://HOST:26379/MASTER or redis+cluster://HOST1:6379,HOST2:6379")]
pub struct BadRedisUrl {
    /// The URL, its password (if any) replaced by `***`.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

fn bad_url(url: &str, why: &str) -> BadRedisUrl {
    BadRedisUrl {
        url: without_password(url),
        why: why.to_string(),
    }
}

/// `url` with the password of its `user:password@` part (if any) hidden, so
/// an error message can show the rest of it.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((auth, hosts)) => {
            let user = auth.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}")
        }
        None => url.to_string(),
    }
}

impl Link {
    /// Parses the URL. Connects lazily: Redis need not be up yet.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, BadRedisUrl> {
        if let Some((tls, rest)) = url
            .strip_prefix("redis+cluster://")
            .map(|rest| (false, rest))
            .or_else(|| {
                url.strip_prefix("rediss+cluster://")
                    .map(|rest| (true, rest))
            })
        {
            let seeds = parse_cluster(url, rest, tls)?;
            return Ok(Self {
                current: ArcSwapOption::new(None),
                sentinels: None,
                cluster: Some(cluster(url, seeds, timeout)?),
                timeout,
                discovering: tokio::sync::Mutex::new(()),
            });
        }
        let (sentinels, current) = match url
            .strip_prefix("redis+sentinel://")
            .map(|rest| (false, rest))
            .or_else(|| {
                url.strip_prefix("rediss+sentinel://")
                    .map(|rest| (true, rest))
            }) {
            Some((tls, rest)) => (Some(parse_sentinel(url, rest, tls)?), None),
            None => {
                let client = Client::open(url)
                    .map_err(|e| bad_url(url, &format!("not a Redis URL: {e}")))?;
                (
                    None,
                    Some(Arc::new(
                        node(client, url.to_string(), timeout)
                            .map_err(|e| bad_url(url, &format!("cannot use it: {e}")))?,
                    )),
                )
            }
        };
        Ok(Self {
            current: ArcSwapOption::new(current),
            sentinels,
            cluster: None,
            timeout,
            discovering: tokio::sync::Mutex::new(()),
        })
    }

    fn node(&self) -> Result<Arc<Node>, DomainError> {
        self.current.load_full().ok_or_else(|| {
            DomainError::Unavailable("no Redis master known yet (asking Sentinel)".into())
        })
    }

    /// The connection for every command but blocking reads.
    pub fn conn(&self) -> Result<Conn, DomainError> {
        if let Some(cluster) = &self.cluster {
            return Ok(Conn::Cluster(cluster.commands.clone()));
        }
        Ok(Conn::Server(self.node()?.conn.clone()))
    }

    /// A new connection of its own for `XREAD BLOCK`, which holds it for as
    /// long as it waits: no response timeout (the caller bounds the wait).
    ///
    /// On a Cluster it is a dedicated cluster connection, made by a cluster
    /// client without response timeout: redis-rs's cluster client can follow
    /// failovers and MOVED for it (a read blocked on a primary that is
    /// demoted is answered with MOVED or an error, and the retry goes to the
    /// new primary), which a direct connection to the slot's primary would
    /// have to re-implement. The caller drops it after any error, and the
    /// next one is made from the seeds and the current slot map.
    pub async fn blocking_conn(&self) -> Result<Conn, DomainError> {
        if let Some(cluster) = &self.cluster {
            let config = ClusterConfig::new().set_connection_timeout(self.timeout);
            let conn = tokio::time::timeout(
                self.timeout * 2,
                cluster.blocking.get_async_connection_with_config(config),
            )
            .await
            .map_err(|_| {
                DomainError::Unavailable(format!(
                    "Redis Cluster ({}): no connection within {:?}",
                    cluster.seeds.join(","),
                    self.timeout * 2
                ))
            })??;
            return Ok(Conn::Cluster(conn));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        let conn = self
            .node()?
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Conn::Blocking(conn))
    }

    /// Under Sentinel, checks the server is still the master and switches
    /// to the current master when it is not. A fixed server needs no check
    /// here (the store's write probe tells whether it answers), nor does a
    /// Cluster (its client follows the slot map by itself).
    pub async fn check(&self) -> Result<(), DomainError> {
        let Some(sentinels) = &self.sentinels else {
            return Ok(());
        };
        if let Ok(node) = self.node() {
            if is_master(&node).await {
                return Ok(());
            }
        }
        let _one_at_a_time = self.discovering.lock().await;
        // Someone may have switched while we waited.
        if let Ok(node) = self.node() {
            if is_master(&node).await {
                return Ok(());
            }
        }
        let address = self.ask_sentinels(sentinels).await?;
        let scheme = if sentinels.tls { "rediss" } else { "redis" };
        let url = format!("{scheme}://{}{address}/{}", sentinels.auth, sentinels.db);
        let client = Client::open(url.as_str())
            .map_err(|e| DomainError::Unavailable(format!("Redis master {address}: {e}")))?;
        let fresh = Arc::new(node(client, address.clone(), self.timeout)?);
        if !is_master(&fresh).await {
            return Err(DomainError::Unavailable(format!(
                "Sentinel names {address} as master of {:?}, but it does not answer as one yet",
                sentinels.master
            )));
        }
        let previous = self.current.swap(Some(fresh));
        tracing::warn!(
            master = %address,
            previous = previous.as_ref().map_or("none", |n| n.address.as_str()),
            "Redis master (from Sentinel) is now {address}"
        );
        Ok(())
    }

    async fn ask_sentinels(&self, s: &Sentinels) -> Result<String, DomainError> {
        let mut last = String::from("no sentinel configured");
        for sentinel in &s.nodes {
            let asked = async {
                let client = Client::open(format!("redis://{sentinel}"))?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&s.master)
                    .query_async::<Option<(String, String)>>(&mut conn)
                    .await
            };
            match tokio::time::timeout(self.timeout, asked).await {
                Ok(Ok(Some((host, port)))) => return Ok(format!("{host}:{port}")),
                Ok(Ok(None)) => {
                    last = format!("sentinel {sentinel} does not know master {:?}", s.master)
                }
                Ok(Err(e)) => last = format!("sentinel {sentinel}: {e}"),
                Err(_) => last = format!("sentinel {sentinel}: timed out"),
            }
        }
        Err(DomainError::Unavailable(format!(
            "cannot find the Redis master: {last}"
        )))
    }
}

fn node(client: Client, address: String, timeout: Duration) -> Result<Node, DomainError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
    Ok(Node {
        client,
        conn,
        address,
    })
}

/// Seeds are only where to start: the client learns every node and slot
/// from them (`CLUSTER SLOTS`) and re-learns after failures.
fn cluster(url: &str, seeds: Vec<String>, timeout: Duration) -> Result<Cluster, BadRedisUrl> {
    let builder = || {
        ClusterClient::builder(seeds.clone())
            .connection_timeout(timeout)
            .retries(4)
            .min_retry_wait(20)
            .max_retry_wait(500)
    };
    let commands = builder()
        .response_timeout(timeout)
        .build()
        .map_err(|e| bad_url(url, &format!("not a Redis Cluster URL: {e}")))?;
    // Built without any response timeout, so neither a per-command nor an
    // overall one applies to blocking reads.
    let blocking = builder()
        .build()
        .map_err(|e| bad_url(url, &format!("not a Redis Cluster URL: {e}")))?;
    // `with_config` replaces the client's response timeout: set it again.
    let config = ClusterConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    Ok(Cluster {
        // Connects in the background: Redis need not be up yet.
        commands: commands.get_pending_async_connection_with_config(config),
        blocking,
        seeds,
    })
}

async fn is_master(node: &Node) -> bool {
    let role: Result<Value, _> = redis::cmd("ROLE").query_async(&mut node.conn.clone()).await;
    match role {
        Ok(Value::Array(items)) => {
            matches!(
                items.first(),
                Some(Value::BulkString(b)) if b == b"master"
            ) || matches!(items.first(), Some(Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    }
}

/// `[user:password@]host:port[,host:port...][?query]`: one `redis://` (or
/// `rediss://`) URL per seed, each with the credentials and query.
fn parse_cluster(url: &str, rest: &str, tls: bool) -> Result<Vec<String>, BadRedisUrl> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, query) = match rest.find(['?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.contains('/') {
        return Err(bad_url(
            url,
            "a Redis Cluster has one database (0): no path after the hosts",
        ));
    }
    let scheme = if tls { "rediss" } else { "redis" };
    let seeds: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|host| format!("{scheme}://{auth}{host}{query}"))
        .collect();
    if seeds.is_empty() {
        return Err(bad_url(url, "list at least one cluster node host:port"));
    }
    for seed in &seeds {
        Client::open(seed.as_str()).map_err(|e| bad_url(url, &format!("not a Redis URL: {e}")))?;
    }
    Ok(seeds)
}

/// `[user:password@]host:port[,host:port...]/master-name[/db]`
fn parse_sentinel(url: &str, rest: &str, tls: bool) -> Result<Sentinels, BadRedisUrl> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or_else(|| {
        bad_url(
            url,
            "no master name after the sentinels (redis+sentinel://HOST:26379/MASTER)",
        )
    })?;
    let mut path = path.split('/');
    let master = path.next().unwrap_or_default().to_string();
    let db = path.next().unwrap_or("0").to_string();
    if master.is_empty() {
        return Err(bad_url(
            url,
            "no master name after the sentinels (redis+sentinel://HOST:26379/MASTER)",
        ));
    }
    if db.parse::<u32>().is_err() {
        return Err(bad_url(
            url,
            "the database after the master name must be a number",
        ));
    }
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect();
    if nodes.is_empty() {
        return Err(bad_url(url, "list at least one sentinel host:port"));
    }
    Ok(Sentinels {
        nodes,
        master,
        auth,
        db,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_hosts_master_credentials_and_database() {
        let s = parse_sentinel("u", ":pw@a:26379,b:26380/orders/2", false).unwrap();
        assert_eq!(s.nodes, vec!["a:26379", "b:26380"]);
        assert_eq!(
            (s.master.as_str(), s.db.as_str(), s.auth.as_str()),
            ("orders", "2", ":pw@")
        );
        assert!(parse_sentinel("u", "a:26379", false).is_err());
        assert!(parse_sentinel("u", "a:26379/", false).is_err());
        assert!(parse_sentinel("u", "/m", false).is_err());
        assert!(parse_sentinel("u", "a:1/m/x", false).is_err());
    }

    #[test]
    fn cluster_urls_give_one_seed_per_host_with_credentials_tls_and_query() {
        let seeds = parse_cluster("u", "user:pw@a:7000,b:7001/?protocol=resp3", true).unwrap();
        assert_eq!(
            seeds,
            vec![
                "rediss://user:pw@a:7000?protocol=resp3",
                "rediss://user:pw@b:7001?protocol=resp3"
            ]
        );
        assert_eq!(
            parse_cluster("u", "a:7000", false).unwrap(),
            vec!["redis://a:7000"]
        );
        assert!(parse_cluster("u", "", false).is_err());
        assert!(parse_cluster("u", "a:7000/2", false).is_err());
    }
}
