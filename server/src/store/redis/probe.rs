//! Redis itself, for health: the write probe, its clock, its eviction
//! policy.

use std::sync::atomic::Ordering;

use super::RedisStore;
use crate::domain::{DomainError, Millis};

/// A difference between this replica's clock and Redis's worth a log line.
const CLOCK_WARN_MS: i64 = 1000;
/// TTL of the key the health probe writes.
const WRITABLE_PROBE_TTL_MS: u64 = 60_000;

impl RedisStore {
    pub(super) async fn ping(&self) -> Result<(), DomainError> {
        self.link.check().await?;
        // One small write (with a TTL) per partition (each may be on a
        // shard of its own): refused exactly when approvals would be.
        let mut conn = self.conn()?;
        for keys in &self.parts {
            let _: () = redis::cmd("SET")
                .arg(&keys.writable)
                .arg(1)
                .arg("PX")
                .arg(WRITABLE_PROBE_TTL_MS)
                .query_async(&mut conn)
                .await?;
        }
        if let Some(waiter) = &self.durability {
            // Once, at the first health check: say which promise holds.
            waiter.detect(&mut self.conn()?, &self.keys.epoch).await?;
        }
        Ok(())
    }

    pub(super) fn now(&self) -> Millis {
        let ms =
            Millis::now().0 as i64 + self.clock_skew_ms + self.offset_ms.load(Ordering::Relaxed);
        Millis(ms.max(0) as u64)
    }

    pub(super) async fn sync_clock(&self) -> Result<(), DomainError> {
        let local = || Millis::now().0 as i64 + self.clock_skew_ms;
        let before = local();
        // The clock of the server that runs the scripts (on a Cluster, the
        // tag's primary).
        let (seconds, micros): (i64, i64) = self
            .conn()?
            .query_at(redis::cmd("TIME"), &self.keys.epoch)
            .await?;
        let after = local();
        let redis = seconds * 1000 + micros / 1000;
        let offset = redis - (before + after) / 2;
        let previous = self.offset_ms.swap(offset, Ordering::Relaxed);
        if (offset - previous).abs() > CLOCK_WARN_MS {
            tracing::warn!(
                offset_ms = offset,
                "this replica's wall clock is {offset} ms behind Redis's (negative: ahead); \
                 deadlines follow Redis's clock, so approvals are unaffected, but check NTP"
            );
        }
        Ok(())
    }

    pub(super) async fn eviction_policy(&self) -> Result<Option<String>, DomainError> {
        // INFO, not CONFIG GET: managed Redis services often disable CONFIG.
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        let info: String = self.conn()?.query_at(info, &self.keys.epoch).await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .filter(|policy| *policy != "noeviction")
            .map(String::from))
    }
}
