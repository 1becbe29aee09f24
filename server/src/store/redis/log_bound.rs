//! The event log's bound in bytes (`--event-log-max-bytes`), beside its
//! bound in entries (`--event-log-cap`).
//!
//! Redis trims a stream by count (`XADD MAXLEN ~`), not by bytes, so the
//! bytes become a count: every write script trims to `cap()` entries, and
//! `cap()` is the byte bound (with a margin) divided by the size of an
//! entry as last measured (`MEMORY USAGE` and `XLEN`), never more than
//! `--event-log-cap`. A replica measures again after about a twentieth of
//! the bound was appended by its writes (estimated: the last average entry
//! plus what the write adds, such as a long reason), or a second after its
//! last measure, so entries that grow (long reasons, many votes) lower the
//! cap before they can pass the bound; when a measure finds the log over
//! its share, it trims right away. Each measure is two cheap commands on
//! one key (`MEMORY USAGE` adds up the sizes of the stream's nodes).
//!
//! With partitions, each partition's log has its own bound (both flags
//! apply to each log: N partitions hold up to N times the bytes and
//! entries), measured and trimmed apart: each log lives on its own
//! Cluster node, whose memory is what the bound protects.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::RedisStore;
use crate::domain::DomainError;

/// The share of the byte bound the cap aims at: the rest absorbs what the
/// replicas append between two measures and Redis trimming whole nodes.
const TARGET_PERCENT: usize = 85;
/// Measure again after this long, whatever was appended.
const MEASURE_EVERY: Duration = Duration::from_secs(1);
/// The size of an entry assumed before the first measure (a `resolved`
/// entry with a short reason is about this big).
const FIRST_GUESS: usize = 256;

pub(super) struct LogBound {
    max_bytes: usize,
    max_events: usize,
    /// How many entries the write scripts keep (`XADD MAXLEN ~`).
    cap: AtomicUsize,
    /// The average entry, in bytes, as last measured.
    entry_bytes: AtomicUsize,
    /// Bytes this replica appended since the last measure (estimated).
    appended: AtomicUsize,
    /// When the last measure ran.
    measured_at: Mutex<Option<Instant>>,
    /// One measure at a time per replica.
    measuring: AtomicBool,
}

impl LogBound {
    pub(super) fn new(max_events: usize, max_bytes: usize) -> Self {
        let bound = Self {
            max_bytes,
            max_events,
            cap: AtomicUsize::new(max_events),
            entry_bytes: AtomicUsize::new(FIRST_GUESS),
            appended: AtomicUsize::new(0),
            measured_at: Mutex::new(None),
            measuring: AtomicBool::new(false),
        };
        bound
            .cap
            .store(bound.cap_for(FIRST_GUESS), Ordering::Relaxed);
        bound
    }

    /// The most entries the log keeps now.
    pub(super) fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    fn cap_for(&self, entry_bytes: usize) -> usize {
        (self.max_bytes / 100 * TARGET_PERCENT / entry_bytes.max(1)).clamp(1, self.max_events)
    }

    /// Notes one append of an entry carrying `extra` bytes of text of its
    /// own (a reason, votes); true when a measure is due.
    fn note(&self, extra: usize) -> bool {
        let entry = self.entry_bytes.load(Ordering::Relaxed) + extra;
        let appended = self.appended.fetch_add(entry, Ordering::Relaxed) + entry;
        let elapsed = self
            .measured_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|t| t.elapsed() >= MEASURE_EVERY);
        appended >= self.max_bytes / 20 || elapsed
    }

    /// Takes a measure: the log holds `len` entries in `bytes`. Returns the
    /// new cap, and whether the log must be trimmed to it now.
    fn measured(&self, bytes: usize, len: usize) -> (usize, bool) {
        *self.measured_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.appended.store(0, Ordering::Relaxed);
        if len == 0 {
            return (self.cap(), false);
        }
        let entry = (bytes / len).max(1);
        self.entry_bytes.store(entry, Ordering::Relaxed);
        let cap = self.cap_for(entry);
        self.cap.store(cap, Ordering::Relaxed);
        (
            cap,
            bytes > self.max_bytes / 100 * TARGET_PERCENT && len > cap,
        )
    }
}

impl RedisStore {
    /// After a write that appended an event to partition `part`'s log:
    /// measures that log when due and trims it when over its bound. Best
    /// effort: a failure leaves the last cap in force (and the count bound
    /// always holds).
    pub(super) async fn appended(&self, part: usize, extra: usize) {
        let Some(bound) = self.log_bounds.get(part) else {
            return;
        };
        if !bound.note(extra) || bound.measuring.swap(true, Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.measure_log(part, bound).await {
            tracing::debug!(error = %e, "cannot measure the event log; keeping its last cap");
        }
        bound.measuring.store(false, Ordering::Release);
    }

    async fn measure_log(&self, part: usize, bound: &LogBound) -> Result<(), DomainError> {
        let Some(keys) = self.parts.get(part) else {
            return Ok(());
        };
        let mut conn = self.conn()?;
        let (bytes, len): (Option<usize>, usize) = redis::pipe()
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&keys.events)
            // Every node: sampling a few misjudges a log whose entries
            // differ in size. Still cheap: a node is a listpack that knows
            // its size, and 64 MiB of log is about 16,000 nodes.
            .arg("SAMPLES")
            .arg(0)
            .xlen(&keys.events)
            .query_async(&mut conn)
            .await?;
        let (cap, trim) = bound.measured(bytes.unwrap_or(0), len);
        if trim {
            let _: usize = redis::cmd("XTRIM")
                .arg(&keys.events)
                .arg("MAXLEN")
                .arg("~")
                .arg(cap)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_the_byte_bound_over_the_measured_entry_never_past_the_count_bound() {
        let bound = LogBound::new(100_000, 1_000_000);
        assert_eq!(bound.cap(), 1_000_000 / 100 * TARGET_PERCENT / FIRST_GUESS);
        // Entries of 10 KB: the bytes bound 85 of them.
        let (cap, trim) = bound.measured(2_000_000, 200);
        assert_eq!(cap, 85);
        assert!(trim, "a log over its bound is trimmed at once");
        // Tiny entries: the count bound governs.
        let (cap, trim) = bound.measured(1_000, 100);
        assert_eq!(cap, 85_000);
        assert!(!trim);
        let small = LogBound::new(10, 1_000_000);
        assert_eq!(small.measured(1_000, 10).0, 10);
    }

    #[test]
    fn a_measure_is_due_after_a_twentieth_of_the_bound_was_appended() {
        let bound = LogBound::new(100_000, 1_000_000);
        bound.measured(0, 0);
        assert!(!bound.note(0));
        // 50,000 bytes: a twentieth.
        assert!(bound.note(50_000));
    }
}
