//! Calls refused for bad credentials, counted per peer address.
//!
//! Guessing tokens costs the guesser one call and the server a hash, a JWT
//! check and an audit line. So: after `--auth-failures-per-minute` bad
//! credentials from one peer (an IPv4 address, or an IPv6 /64), that peer's
//! calls are refused at once with RESOURCE_EXHAUSTED, without looking at
//! their credentials, until its allowance refills. And the audit log gets
//! at most `LINES_PER_INTERVAL` refusal lines per `--audit-summary-interval`;
//! past that, one summary line per interval counts the rest by peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::audit;
use crate::domain::DomainError;
use crate::shutdown::Shutdown;

/// Refusal lines written one by one per interval, before summarising.
pub const LINES_PER_INTERVAL: usize = 20;
/// Peers tracked at once (blocked, or counted in a summary); more are
/// counted together, so a spread-out flood cannot grow these maps.
const MAX_TRACKED_PEERS: usize = 10_000;
/// Peers named in a summary line.
const PEERS_IN_SUMMARY: usize = 5;

pub struct Refusals {
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_minute: u32,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    interval: Mutex<Interval>,
    recorded: AtomicU64,
}

/// What the audit log has not said yet about the current interval.
#[derive(Default)]
struct Interval {
    lines: usize,
    unlogged: u64,
    fast_refused: u64,
    by_peer: HashMap<IpAddr, u64>,
}

/// The key a peer is counted under: its address, or its /64 for IPv6 (one
/// host usually holds a whole /64).
fn peer_key(peer: SocketAddr) -> IpAddr {
    match peer.ip().to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !0xffff_ffff_ffff_ffffu128).into()),
        v4 => v4,
    }
}

impl Refusals {
    /// `per_minute` 0 turns the per-peer limit off (lines are still capped).
    pub fn new(per_minute: u32) -> Self {
        Self {
            failures: NonZeroU32::new(per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
            per_minute,
            blocked: Mutex::default(),
            interval: Mutex::default(),
            recorded: AtomicU64::new(0),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interval(&self) -> std::sync::MutexGuard<'_, Interval> {
        self.interval.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before looking at credentials: refuses a peer that sent too many bad
    /// ones lately.
    pub fn admit(&self, peer: Option<SocketAddr>) -> Result<(), DomainError> {
        let Some(peer) = peer else { return Ok(()) };
        let key = peer_key(peer);
        let until = match self.blocked().get(&key) {
            Some(until) if *until > Instant::now() => *until,
            _ => return Ok(()),
        };
        let mut interval = self.interval();
        interval.fast_refused += 1;
        count_peer(&mut interval.by_peer, key);
        drop(interval);
        let wait = until.saturating_duration_since(Instant::now());
        Err(DomainError::ResourceExhausted(format!(
            "too many calls with invalid credentials from {}: at most {} per minute; retry in {} ms",
            key,
            self.per_minute,
            wait.as_millis().max(1)
        )))
    }

    /// A call from `peer` was refused for `why`: counts it against the
    /// peer, and writes the audit line unless this interval has had its
    /// share.
    pub fn refused(&self, peer: Option<SocketAddr>, why: &DomainError) {
        let key = peer.map(peer_key);
        if let (Some(limiter), Some(key)) = (&self.failures, key) {
            if self.recorded.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&key) {
                let until =
                    Instant::now() + not_until.wait_time_from(DefaultClock::default().now());
                let mut blocked = self.blocked();
                if blocked.len() >= MAX_TRACKED_PEERS {
                    let now = Instant::now();
                    blocked.retain(|_, t| *t > now);
                }
                if blocked.len() < MAX_TRACKED_PEERS {
                    blocked.insert(key, until);
                }
            }
        }
        let mut interval = self.interval();
        if interval.lines < LINES_PER_INTERVAL {
            interval.lines += 1;
            drop(interval);
            let peer = peer
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown".into());
            tracing::info!(target: audit::TARGET, action = "refused", peer = %peer, reason = %why, "unauthenticated call refused");
        } else {
            interval.unlogged += 1;
            if let Some(key) = key {
                count_peer(&mut interval.by_peer, key);
            }
        }
    }

    /// Ends the interval: one audit line for what was not logged line by
    /// line (nothing when there was nothing).
    pub fn summarise(&self) {
        let done = std::mem::take(&mut *self.interval());
        if done.unlogged == 0 && done.fast_refused == 0 {
            return;
        }
        let mut peers: Vec<(IpAddr, u64)> = done.by_peer.into_iter().collect();
        peers.sort_by_key(|p| std::cmp::Reverse(p.1));
        let top = peers
            .iter()
            .take(PEERS_IN_SUMMARY)
            .map(|(ip, n)| format!("{ip}={n}"))
            .collect::<Vec<_>>()
            .join(",");
        tracing::warn!(
            target: audit::TARGET,
            action = "refused_summary",
            unlogged = done.unlogged,
            fast_refused = done.fast_refused,
            peers = peers.len(),
            top = %top,
            "unauthenticated calls refused without a line each (invalid credentials, or peers over --auth-failures-per-minute)"
        );
        let now = Instant::now();
        self.blocked().retain(|_, t| *t > now);
    }

    /// Summarises every `every` until shutdown (then once more).
    pub async fn report_every(self: std::sync::Arc<Self>, every: Duration, shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.summarise(),
                _ = shutdown.cancelled() => {
                    self.summarise();
                    return;
                }
            }
        }
    }
}

fn count_peer(by_peer: &mut HashMap<IpAddr, u64>, key: IpAddr) {
    if by_peer.len() < MAX_TRACKED_PEERS || by_peer.contains_key(&key) {
        *by_peer.entry(key).or_default() += 1;
    }
}
