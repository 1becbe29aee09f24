//! One shutdown signal for every long-lived task and call: the event pump,
//! the reaper, the health monitor, waiting calls and watch streams all
//! `select!` on it, so SIGTERM ends them promptly instead of tonic waiting
//! for each to finish on its own.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
