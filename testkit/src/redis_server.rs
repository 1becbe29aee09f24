//! `redis-server`s of our own: a server (or a replica of one) on a free
//! loopback port, with or without persistence, and a Sentinel. Each is
//! stopped (SIGKILL) and its folder removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::process::send_signal;

/// How a [`RedisServer`] is started; [`RedisServer::builder`].
#[derive(Debug)]
pub struct RedisBuilder {
    persistence: bool,
    parent: Option<PathBuf>,
    args: Vec<String>,
}

impl RedisBuilder {
    /// On (the default): AOF, fsync on every write, so a restart keeps the
    /// data. Off: no RDB snapshots and no AOF, so figures measure the
    /// service and not the disk.
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// Keeps the data folder under `parent` (default: the temp folder).
    pub fn in_dir(mut self, parent: &Path) -> Self {
        self.parent = Some(parent.to_path_buf());
        self
    }

    /// More `redis-server` arguments (`--maxclients 20000`, ...).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts it and waits (up to 10 s) until it answers PING.
    pub fn try_start(self) -> Result<RedisServer, String> {
        let port = free_port();
        let name = format!("approvald-test-redis-{port}-{}", uuid::Uuid::now_v7());
        let dir = self.parent.unwrap_or_else(std::env::temp_dir).join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let appendonly = if self.persistence {
            ["--appendonly", "yes", "--appendfsync", "always"].as_slice()
        } else {
            ["--appendonly", "no"].as_slice()
        };
        let mut args: Vec<String> = ["--save", ""]
            .iter()
            .chain(appendonly)
            .map(|s| s.to_string())
            .collect();
        args.extend(self.args);
        let mut server = RedisServer {
            port,
            dir,
            child: None,
            args,
        };
        server.launch()?;
        Ok(server)
    }

    /// [`try_start`](Self::try_start), failing the test if it cannot.
    pub fn start(self) -> RedisServer {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A `redis-server` of our own on a free loopback port.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
}

impl RedisServer {
    /// With persistence (AOF in a temporary folder, so a restart keeps the
    /// data), nothing else set.
    pub fn builder() -> RedisBuilder {
        RedisBuilder {
            persistence: true,
            parent: None,
            args: Vec::new(),
        }
    }

    /// A server with persistence.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A replica of the server on `master_port`.
    pub fn start_replica_of(master_port: u16) -> Self {
        Self::builder()
            .args(["--replicaof", "127.0.0.1", &master_port.to_string()])
            .start()
    }

    fn launch(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.args)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start redis-server ({e}): install it with `apt-get install -y redis-server` \
                     (or run ./scripts/test, which does)"
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut c) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server on port {} did not answer PING within 10s",
            self.port
        ))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
        let pid = self.pid().expect("redis-server is running");
        send_signal(pid, "-STOP");
        std::thread::spawn(move || {
            std::thread::sleep(d);
            send_signal(pid, "-CONT");
        })
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until this replica's link to its master is up and it has
    /// caught up (`master_link_status:up`, nothing left to sync).
    pub fn wait_in_sync(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let info: Option<String> = redis::Client::open(self.url())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
                .ok();
            if info.is_some_and(|i| {
                i.contains("master_link_status:up") && i.contains("master_sync_in_progress:0")
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the replica on port {} never synced with its master",
            self.port
        );
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// Redis's own count of calls per command so far (`INFO commandstats`,
/// which also counts the commands run inside Lua scripts), by lower-case
/// command name.
pub fn redis_command_calls(
    conn: &mut redis::Connection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, stats) = l.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}
