use clap::Parser;
use tracing_subscriber::EnvFilter;

use approvald::config::LogFormat;
use approvald::{Application, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!(
            "approvald: --log {:?} is not a valid filter ({e}); using \"info\"",
            config.log
        );
        EnvFilter::new("info")
    });
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }

    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("approvald cannot start: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        approvald::shutdown::signal().await;
        shutdown.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("approvald stopped with an error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
