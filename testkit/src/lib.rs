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

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
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
