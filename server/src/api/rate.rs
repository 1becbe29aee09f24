//! Per-principal rate limit (a GCRA token bucket per authenticated
//! principal, on this replica): keyed by identity, not by connection, so
//! reconnecting does not reset it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::{DomainError, Limit};

pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    per_second: u32,
    checks: AtomicU64,
}

impl RateLimit {
    /// `per_second` 0 turns the limit off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            per_second,
            checks: AtomicU64::new(0),
        }
    }

    pub fn check(&self, key: &str) -> Result<(), DomainError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Forget idle keys now and then, so the map stays small.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            Limit::RateLimited {
                principal: key.to_string(),
                per_second: self.per_second,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
            .into()
        })
    }
}
