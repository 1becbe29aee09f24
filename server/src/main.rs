use std::io::Read;
use std::process::ExitCode;

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::prelude::*;

use approvald::audit;
use approvald::config::{Command, LogFormat};
use approvald::telemetry::{self, Traces, Tracing};
use approvald::{Application, Config};

/// Logs to stdout (text or JSON). With --audit-log, audit records go to that
/// file instead (always JSON), not to the main log. Traces go over OTLP when
/// the OTEL_* variables ask for it (approvald::telemetry).
fn init_logs(config: &Config) -> Result<Option<Tracing>, String> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| format!("--log {:?} is not a valid filter: {e}", config.log))?;
    let audit_file = match &config.audit_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--audit-log {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let separate_audit = audit_file.is_some();
    let main = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    }
    .with_filter(filter_fn(move |m| {
        !(separate_audit && m.target() == audit::TARGET)
    }))
    .with_filter(filter);
    let audit = audit_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter_fn(|m| m.target() == audit::TARGET))
    });
    let traces = Traces::from_env()?;
    let (otel, tracing) = match telemetry::install(&traces)? {
        Some((layer, tracing)) => (Some(layer), Some(tracing)),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(main)
        .with(audit)
        .with(otel)
        .init();
    match &traces {
        Traces::Off => tracing::debug!("traces: off (no OTEL_* exporter configured)"),
        Traces::Otlp { endpoint } => tracing::info!(
            endpoint = endpoint.as_deref().unwrap_or("default"),
            "traces: exported over OTLP/gRPC"
        ),
    }
    Ok(tracing)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_args();
    match &config.command {
        Some(Command::HashToken) => {
            let mut token = String::new();
            if std::io::stdin().read_to_string(&mut token).is_err() || token.trim().is_empty() {
                eprintln!("approvald hash-token: give the token on standard input");
                return ExitCode::from(2);
            }
            println!("{}", approvald::auth::hash_token(&token));
            return ExitCode::SUCCESS;
        }
        Some(Command::NewToken) => {
            let token = approvald::auth::new_token();
            println!("token:  {token}");
            println!("sha256: {}", approvald::auth::hash_token(&token));
            return ExitCode::SUCCESS;
        }
        Some(Command::CheckConfig { file }) => {
            return match approvald::config_file::check(file, config.max_timeout) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
        None => {}
    }
    let traces = match init_logs(&config) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("approvald cannot start: {e}");
            return ExitCode::from(2);
        }
    };

    // Listen for SIGTERM/SIGINT before starting: one sent while the store
    // connects is then a clean stop, not a kill by the default action.
    let mut stop = Box::pin(approvald::shutdown::signal());
    let built = tokio::select! {
        built = Application::build(config) => built,
        _ = &mut stop => {
            tracing::info!("approvald stopped by a signal while starting");
            return ExitCode::SUCCESS;
        }
    };
    let app = match built {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("approvald cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        stop.await;
        shutdown.cancel();
    });
    let stopped = app.run_until_stopped().await;
    if let Some(traces) = traces {
        // Flushes the spans still queued, on a thread of its own (it blocks
        // while the runtime exports), and bounded: an unreachable collector
        // must not hold the exit.
        let (done, flushed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            traces.shutdown();
            let _ = done.send(());
        });
        let waited = tokio::task::spawn_blocking(move || {
            flushed.recv_timeout(std::time::Duration::from_secs(3))
        })
        .await;
        if !matches!(waited, Ok(Ok(()))) {
            tracing::warn!("traces: the last spans were not flushed within 3 s");
        }
    }
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("approvald stopped with an error: {e}");
            ExitCode::FAILURE
        }
    }
}
