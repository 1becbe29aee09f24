//! Waiting for a decision across broken connections and replica restarts.
//!
//! A blocked `RequestApproval` / `AwaitApproval` can end early for reasons
//! that say nothing about the approval: the connection broke, the replica is
//! shutting down (UNAVAILABLE), or the call's own gRPC deadline came first.
//! The approval itself is safe in the store, so the wait simply calls again
//! (same idempotency key, or same id: any replica will do) after a jittered
//! backoff, until the approval's deadline has passed and the service has had
//! a moment to mark it expired. Only then does a still-failing call reach the
//! caller.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::worth_retrying;
use crate::Error;

/// Each call's gRPC deadline is the approval's deadline plus this, so the
/// service (which expires the approval exactly at its deadline) answers
/// before the caller's side gives up.
const CALL_SLACK: Duration = Duration::from_secs(5);

/// How long past the approval's deadline the wait keeps retrying: long enough
/// for a restarted replica to come back and report EXPIRED.
const SETTLE: Duration = Duration::from_secs(15);

/// Calls `call(call_timeout)` until it succeeds, fails for a reason a retry
/// cannot fix, or `deadline` + [`SETTLE`] passes.
pub(crate) async fn until_final<T, F, Fut>(
    deadline: Instant,
    endpoint: &str,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let give_up = deadline + SETTLE;
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let call_timeout = deadline.saturating_duration_since(started) + CALL_SLACK;
        match call(call_timeout).await {
            Ok(answer) => return Ok(answer),
            Err(status) if worth_retrying(&status) && Instant::now() < give_up => {
                // A call that held for a while was a healthy connection that
                // then broke: start the backoff over.
                if started.elapsed() > Backoff::MAX {
                    backoff = Backoff::default();
                }
                let pause = backoff.next_pause();
                tokio::time::sleep_until((Instant::now() + pause).min(give_up)).await;
            }
            Err(status) => return Err(Error::from_status(status, endpoint)),
        }
    }
}

/// Exponential backoff with jitter: 100 ms, 200 ms, ... up to 5 s, each
/// pause a random point in its upper half so that many waiters cut off by
/// one replica's shutdown do not all come back at the same instant.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    pub(crate) const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn next_pause(&mut self) -> Duration {
        let ceiling = Self::FIRST
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(Self::MAX);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(ceiling_ms / 2..=ceiling_ms))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_and_starts_over_on_reset() {
        let mut b = Backoff::default();
        let first = b.next_pause();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_pause() <= Backoff::MAX);
        }
        assert!(b.next_pause() >= Backoff::MAX / 2);
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_retries_what_a_retry_can_fix_and_nothing_else() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut calls = 0;
        let answer = until_final(deadline, "http://test", |_| {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 => Err(tonic::Status::unavailable("shutting down")),
                    2 => Err(tonic::Status::deadline_exceeded("call deadline")),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(answer.expect("third call answers"), 3);

        let refused = until_final(deadline, "http://test", |_| async {
            Err::<(), _>(tonic::Status::not_found("no such approval"))
        })
        .await;
        assert!(matches!(refused, Err(Error::NotFound { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_gives_up_once_the_deadline_has_settled() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = until_final(deadline, "http://test", |_| async {
            Err::<(), _>(tonic::Status::unavailable("down"))
        })
        .await;
        assert!(matches!(outcome, Err(Error::Unavailable { .. })));
        assert!(Instant::now() >= deadline + SETTLE);
    }
}
