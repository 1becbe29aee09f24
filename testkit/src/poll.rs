//! Test-side waits for a condition, with a bound. Not timing assertions:
//! a loaded machine only makes them slower.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked again.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(limit, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await
    .is_some()
}

/// Polls `probe` until it yields a value or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(EVERY).await;
    }
    None
}
