//! Where Redis is: one fixed server (`redis://`, `rediss://`), or whichever
//! server Redis Sentinel names as the master (`redis+sentinel://`).
//!
//! redis-rs does not follow Sentinel failovers by itself, so the link does:
//! the health check (every `--health-interval`) asks the connected server
//! for its `ROLE`; when it is unreachable or no longer a master, the link
//! asks the sentinels for the current master and switches to it. Calls in
//! between fail with UNAVAILABLE (retry), never with a made-up answer.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};

use crate::domain::DomainError;

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

pub struct Link {
    current: ArcSwapOption<Node>,
    sentinels: Option<Sentinels>,
    timeout: Duration,
    /// Only one rediscovery at a time.
    discovering: tokio::sync::Mutex<()>,
}

fn bad_url(url: &str, why: &str) -> DomainError {
    DomainError::invalid("redis-url", format!("{url:?}: {why}"))
}

impl Link {
    /// Parses the URL. Connects lazily: Redis need not be up yet.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, DomainError> {
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
                    Some(Arc::new(node(client, url.to_string(), timeout)?)),
                )
            }
        };
        Ok(Self {
            current: ArcSwapOption::new(current),
            sentinels,
            timeout,
            discovering: tokio::sync::Mutex::new(()),
        })
    }

    pub fn node(&self) -> Result<Arc<Node>, DomainError> {
        self.current.load_full().ok_or_else(|| {
            DomainError::Unavailable("no Redis master known yet (asking Sentinel)".into())
        })
    }

    pub fn conn(&self) -> Result<ConnectionManager, DomainError> {
        Ok(self.node()?.conn.clone())
    }

    /// Under Sentinel, checks the server is still the master and switches
    /// to the current master when it is not. A fixed server needs no check
    /// here (the store's write probe tells whether it answers).
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

/// `[user:password@]host:port[,host:port...]/master-name[/db]`
fn parse_sentinel(url: &str, rest: &str, tls: bool) -> Result<Sentinels, DomainError> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| bad_url(url, "name the master: redis+sentinel://host:26379/mymaster"))?;
    let mut path = path.split('/');
    let master = path.next().unwrap_or_default().to_string();
    let db = path.next().unwrap_or("0").to_string();
    if master.is_empty() {
        return Err(bad_url(
            url,
            "name the master: redis+sentinel://host:26379/mymaster",
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
}
