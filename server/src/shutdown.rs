//! One shutdown signal for every long-lived task and call: the event pump,
//! the reaper, the health monitor, waiting calls and watch streams all
//! `select!` on it, so SIGTERM ends them promptly instead of tonic waiting
//! for each to finish on its own.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when
/// this is called, not when it is first polled: a signal that arrives while
/// the server is still starting is kept and ends it once it runs, instead of
/// killing the process with the default action.
pub fn signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
