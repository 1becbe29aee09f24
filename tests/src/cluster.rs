//! A real local Redis Cluster: three primaries with one replica each, on
//! free loopback ports, made by `redis-cli --cluster create`.
//!
//! Each node runs under a small shell watchdog that holds a pipe from this
//! process: when the test process ends (even without dropping the fixture,
//! as with the shared cluster in a `static`), the pipe closes and the
//! watchdog stops its node. Nothing outlives the tests.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long a node may be unreachable before the cluster fails it over
/// (`cluster-node-timeout`): short, so failover tests stay quick.
const NODE_TIMEOUT_MS: u64 = 1000;

struct Node {
    port: u16,
    /// The cluster bus port (kept across restarts).
    bus_port: u16,
    /// The redis-server's pid (the watchdog's child).
    pid: u32,
    watchdog: Child,
    /// Closing it stops the node and ends the watchdog.
    lifeline: Option<ChildStdin>,
}

impl Node {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        // The watchdog reads its pipe until it closes: keep the node's
        // data (it may be restarted), close it.
        if let Some(mut lifeline) = self.lifeline.take() {
            let _ = lifeline.write_all(b"keep\n");
        }
        let _ = self.watchdog.wait();
    }
}

pub struct RedisCluster {
    nodes: Mutex<Vec<Node>>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl RedisCluster {
    /// One cluster shared by every test of this test binary that does not
    /// disturb it (each test keeps its own key prefix, so its own slot).
    pub fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<RedisCluster>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(Self::start())).clone()
    }

    /// A cluster of its own (for tests that fail nodes over or kill them).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "approvald-test-cluster-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create cluster temp dir");
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let nodes = ports
            .iter()
            .map(|&port| launch(&dir, port, free_port()))
            .collect();
        let cluster = Self {
            nodes: Mutex::new(nodes),
            ports: ports.clone(),
            dir,
        };
        for &port in &ports {
            wait_until(
                Duration::from_secs(10),
                || ping(port),
                || format!("cluster node on port {port} did not answer PING within 10s"),
            );
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}): `apt-get install -y redis-tools`")
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_healthy();
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Waits until every running node says `cluster_state:ok`, knows the
    /// others, and every slot's primary has a replica in sync.
    pub fn wait_healthy(&self) {
        let running = self.running_ports();
        wait_until(
            Duration::from_secs(30),
            || {
                running.iter().all(|&port| {
                    cluster_info(port).is_some_and(|info| info.contains("cluster_state:ok"))
                }) && self.slots().is_some_and(|slots| {
                    slots.iter().all(|s| {
                        s.replicas
                            .iter()
                            .any(|&r| running.contains(&r) && replica_in_sync(r))
                    })
                })
            },
            || "the Redis Cluster did not become healthy within 30s".to_string(),
        );
    }

    /// The primary's port and its replicas' ports for `key`'s slot, as a
    /// running node sees them.
    pub fn shard_of(&self, key: &str) -> Shard {
        let slot = self.slot_of(key);
        self.slots()
            .and_then(|slots| slots.into_iter().find(|s| s.start <= slot && slot <= s.end))
            .map(|s| Shard {
                primary: s.primary,
                replicas: s.replicas,
            })
            .unwrap_or_else(|| panic!("no node serves slot {slot} of {key:?}"))
    }

    /// The hash tag `{prefix}`'s slot moves to its replica by a manual,
    /// graceful failover (`CLUSTER FAILOVER` on the replica). Returns the
    /// new primary once every running node routes the slot to it.
    pub fn failover(&self, key: &str) -> u16 {
        let before = self.shard_of(key);
        let replica = before.replicas[0];
        let mut conn = connection(replica);
        let _: () = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut conn)
            .expect("CLUSTER FAILOVER");
        self.wait_primary(key, replica);
        // The former primary follows it as a replica.
        self.wait_healthy();
        replica
    }

    /// Kills (SIGKILL) the primary of `key`'s slot; returns once a replica
    /// was promoted in its place and the cluster is ok again.
    pub fn kill_primary(&self, key: &str) -> u16 {
        // Someone must be there to take over.
        self.wait_healthy();
        let before = self.shard_of(key);
        {
            let mut nodes = self.nodes.lock().expect("nodes");
            let node = nodes
                .iter_mut()
                .find(|n| n.port == before.primary)
                .expect("the primary is one of ours");
            node.stop();
        }
        let promoted = before.replicas[0];
        self.wait_primary(key, promoted);
        promoted
    }

    /// Starts a killed node again, with its data and cluster state: it
    /// rejoins as a replica of whoever took its place. Returns once every
    /// slot has a replica in sync again.
    pub fn restart(&self, port: u16) {
        {
            let mut nodes = self.nodes.lock().expect("nodes");
            let node = nodes
                .iter_mut()
                .find(|n| n.port == port)
                .expect("the node is one of ours");
            assert!(
                !matches!(node.watchdog.try_wait(), Ok(None)),
                "node {port} is still running"
            );
            *node = launch(&self.dir, port, node.bus_port);
        }
        wait_until(
            Duration::from_secs(10),
            || ping(port),
            || format!("restarted node {port} did not answer PING within 10s"),
        );
        self.wait_healthy();
    }

    fn wait_primary(&self, key: &str, port: u16) {
        let slot = self.slot_of(key);
        let running = self.running_ports();
        wait_until(
            Duration::from_secs(30),
            || {
                running.iter().all(|&p| {
                    slots_seen_by(p).is_some_and(|slots| {
                        slots
                            .iter()
                            .any(|s| s.start <= slot && slot <= s.end && s.primary == port)
                    }) && cluster_info(p).is_some_and(|i| i.contains("cluster_state:ok"))
                })
            },
            || format!("node {port} did not become the primary of slot {slot} within 30s"),
        );
    }

    fn running_ports(&self) -> Vec<u16> {
        let mut nodes = self.nodes.lock().expect("nodes");
        nodes
            .iter_mut()
            .filter_map(|n| matches!(n.watchdog.try_wait(), Ok(None)).then_some(n.port))
            .collect()
    }

    /// The slot of `key` (by its hash tag), as Redis computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.running_ports()[0];
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut connection(port))
            .expect("CLUSTER KEYSLOT")
    }

    fn slots(&self) -> Option<Vec<SlotRange>> {
        self.running_ports().into_iter().find_map(slots_seen_by)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if let Ok(nodes) = self.nodes.get_mut() {
            for node in nodes.iter_mut() {
                node.stop();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who serves a slot.
#[derive(Clone, Debug)]
pub struct Shard {
    pub primary: u16,
    pub replicas: Vec<u16>,
}

struct SlotRange {
    start: u16,
    end: u16,
    primary: u16,
    replicas: Vec<u16>,
}

fn launch(dir: &std::path::Path, port: u16, bus_port: u16) -> Node {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("create node dir");
    // The watchdog: start the node, say its pid, wait for the pipe from the
    // test process to close (it ends with that process), stop the node.
    // Unless told to keep them (a node stopped to be restarted), it then
    // removes the node's folder, and the last node's watchdog the
    // cluster's: a cluster shared in a static is never dropped.
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(
            r#"redis-server "$@" >/dev/null 2>&1 & echo $!; read what; kill -9 $! 2>/dev/null; wait
               if [ "$what" != keep ]; then rm -rf "$NODE_DIR"; rmdir "$CLUSTER_DIR" 2>/dev/null; fi
               true"#,
        )
        .env("NODE_DIR", &node_dir)
        .env("CLUSTER_DIR", dir)
        .arg("sh")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        // The bus port defaults to port + 10000, which does not exist for
        // ports above 55535 (common in the ephemeral range): pick one.
        .args(["--cluster-port", &bus_port.to_string()])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        // A replica may always take over, however long its link was down.
        .args(["--cluster-replica-validity-factor", "0"])
        // Slots of other primaries keep serving while one fails over.
        .args(["--cluster-require-full-coverage", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sh for redis-server ({e})"));
    let lifeline = watchdog.stdin.take().expect("watchdog stdin");
    let mut line = String::new();
    BufReader::new(watchdog.stdout.take().expect("watchdog stdout"))
        .read_line(&mut line)
        .expect("the watchdog says the node's pid");
    let pid = line.trim().parse().unwrap_or_else(|_| {
        panic!(
            "cannot start redis-server ({line:?}): install it with `apt-get install -y redis-server`"
        )
    });
    Node {
        port,
        bus_port,
        pid,
        watchdog,
        lifeline: Some(lifeline),
    }
}

fn connection(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("connect to cluster node {port}: {e}"))
}

fn try_connection(port: u16) -> Option<redis::Connection> {
    let conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(conn)
}

fn ping(port: u16) -> bool {
    try_connection(port).is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
}

fn cluster_info(port: u16) -> Option<String> {
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut try_connection(port)?)
        .ok()
}

fn replica_in_sync(port: u16) -> bool {
    let Some(mut conn) = try_connection(port) else {
        return false;
    };
    redis::cmd("INFO")
        .arg("replication")
        .query::<String>(&mut conn)
        .is_ok_and(|info| info.contains("master_link_status:up"))
}

/// `CLUSTER SLOTS` as `port`'s node sees it.
fn slots_seen_by(port: u16) -> Option<Vec<SlotRange>> {
    let reply: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut try_connection(port)?)
        .ok()?;
    let int = |v: &redis::Value| match v {
        redis::Value::Int(n) => Some(*n as u16),
        _ => None,
    };
    let node_port = |v: &redis::Value| match v {
        redis::Value::Array(fields) => fields.get(1).and_then(int),
        _ => None,
    };
    let ranges: Option<Vec<SlotRange>> = reply
        .iter()
        .map(|range| match range {
            redis::Value::Array(items) if items.len() >= 3 => Some(SlotRange {
                start: int(&items[0])?,
                end: int(&items[1])?,
                primary: node_port(&items[2])?,
                replicas: items[3..].iter().filter_map(node_port).collect(),
            }),
            _ => None,
        })
        .collect();
    ranges.filter(|r| !r.is_empty())
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool, what: impl Fn() -> String) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{}", what());
}
