//! The test kit's lower half: what a test needs around the server without
//! the server itself. Real `redis-server`s on free loopback ports (with or
//! without persistence), server processes whose log lines a test can read,
//! polling with a bound, and Prometheus scraping.
//!
//! Used by `approval-tests` (which adds in-process replicas and the client),
//! by the server's process tests and by the bench. Write a helper here once
//! rather than a copy in a test file.

use std::net::TcpListener;
use std::time::Duration;

pub mod metrics;
pub mod poll;
pub mod process;
pub mod redis_server;

pub use metrics::{metric_value, metrics_text, scrape_metrics};
pub use poll::{eventually, wait_for};
pub use process::{
    approvald_binary, cpu_time, rss_kib, send_signal, terminate, Listen, ServerProcess,
};
pub use redis_server::{
    redis_command_calls, redis_commands_processed, RedisBuilder, RedisServer, Sentinel,
};

/// Generous bound for things that should happen "at once".
pub const PROMPTLY: Duration = Duration::from_secs(10);

/// A loopback port nobody listens on right now, for a server the test
/// starts next.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), so
/// that no outgoing connection (a client, a Redis connection) can take it
/// between this call and the server's bind: a port from `bind(0)` is
/// ephemeral and was taken that way under load (the bench's fan-out, where
/// hundreds of connections open while the next replica starts). Never the
/// same port twice in one process.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let (low, high) = below_ephemeral_range();
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let span = u64::from(high - low);
    let start = random_u64() % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    // The whole range is busy: fall back to what the kernel hands out.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// `[10000, first ephemeral port)`, from `/proc/sys/net/ipv4/ip_local_port_range`
/// (32768 when it cannot be read or leaves too little room).
fn below_ephemeral_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&p| p >= LOW + 2_000)
        .unwrap_or(32_768);
    (LOW, first_ephemeral)
}

/// A random number from the standard library's per-process hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A fresh folder under the system's temporary folder, removed with what
/// it holds when dropped. Derefs to its path.
#[derive(Debug)]
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// `<tmp>/<prefix>-<uuid v7>`, created.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
