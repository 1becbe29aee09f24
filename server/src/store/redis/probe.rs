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
        // One small write (with a TTL): refused exactly when approvals would be.
        let _: () = redis::cmd("SET")
            .arg(&self.keys.writable)
            .arg(1)
            .arg("PX")
            .arg(WRITABLE_PROBE_TTL_MS)
            .query_async(&mut self.conn()?)
            .await?;
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
        let (seconds, micros): (i64, i64) =
            redis::cmd("TIME").query_async(&mut self.conn()?).await?;
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
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn()?)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .filter(|policy| *policy != "noeviction")
            .map(String::from))
    }
}
