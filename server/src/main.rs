use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::prelude::*;

use approvald::config::{Command, LogFormat};
use approvald::{Application, Config, AUDIT_TARGET};

/// Logs to stdout (text or JSON). With --audit-log, audit records go to that
/// file instead (always JSON), not to the main log.
fn init_logs(config: &Config) -> Result<(), String> {
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
        !(separate_audit && m.target() == AUDIT_TARGET)
    }))
    .with_filter(filter);
    let audit = audit_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter_fn(|m| m.target() == AUDIT_TARGET))
    });
    tracing_subscriber::registry().with(main).with(audit).init();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    match config.command {
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
        None => {}
    }
    if let Err(e) = init_logs(&config) {
        eprintln!("approvald cannot start: {e}");
        return ExitCode::from(2);
    }

    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("approvald cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        approvald::shutdown::signal().await;
        shutdown.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("approvald stopped with an error: {e}");
            ExitCode::FAILURE
        }
    }
}
