//! `approvalctl`: human approval gates from the command line.
//!
//! `approvalctl request --type deploy:production && ./deploy.sh` asks for a
//! decision, waits, and exits 0 only when a human approved. `approvalctl
//! watch` shows the live queue; `approve`, `reject`, `get`, `list` and
//! `cancel` do the rest; `mcp` serves the same gates to AI agents over the
//! Model Context Protocol. Exit codes are in `exit.rs` (and `--help`).

mod cli;
mod commands;
mod exit;
mod output;

use std::process::ExitCode;

use approval_client::{ApprovalClient, ClientBuilder, Verdict};
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, ExpectDigest, Global, Responder};
use crate::exit::{Exit, Failure};

/// Where the server is when nothing says otherwise.
const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; everything else is a
            // usage error, with our code (clap's own 2 means "expired" here).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failure.code());
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.exit.code())
        }
    }
}

async fn run(cli: Cli) -> Result<Exit, Failure> {
    let out = cli.global.output;
    let server_flag = if cli.global.server == DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {}", cli.global.server)
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "approvalctl",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::Request(args) => {
            let client = connect(&cli.global, None).await?;
            commands::request::run(&client, args, out, &server_flag).await
        }
        Command::Watch(args) => {
            let client = connect(&cli.global, None).await?;
            commands::watch::run(&client, args, out).await
        }
        // Two commands for their own flags (a reject needs a reason).
        Command::Approve(a) => {
            let vote = (a.id, a.reason, a.responder, a.digest);
            respond(&cli.global, Verdict::Approve, vote).await
        }
        Command::Reject(a) => {
            let vote = (a.id, a.reason, a.responder, a.digest);
            respond(&cli.global, Verdict::Reject, vote).await
        }
        Command::Get(args) => {
            let client = connect(&cli.global, None).await?;
            commands::get::run(&client, args, out).await
        }
        Command::List(args) => {
            let client = connect(&cli.global, None).await?;
            commands::list::run(&client, args, out).await
        }
        Command::Cancel(args) => {
            let client = connect(&cli.global, None).await?;
            commands::cancel::run(&client, args, out).await
        }
        Command::Mcp(args) => commands::mcp::run(builder(&cli.global, None)?, args).await,
        Command::Webhooks(command) => {
            let client = connect(&cli.global, None).await?;
            commands::webhooks::run(&client, command, out).await
        }
    }
}

/// A client for the global flags (server, token, TLS files).
/// `approve` and `reject`: the vote (id, reason, who, the digest to
/// expect), cast as the responder the flags name.
async fn respond(
    global: &Global,
    verdict: Verdict,
    (id, reason, who, digest): (String, String, Responder, ExpectDigest),
) -> Result<Exit, Failure> {
    let client = connect(global, Some(responder(who, global.token.is_some())?)).await?;
    let digest = digest.expect_digest.unwrap_or_default();
    commands::respond::run(&client, &id, verdict, reason, &digest, global.output).await
}

async fn connect(global: &Global, responder: Option<String>) -> Result<ApprovalClient, Failure> {
    Ok(builder(global, responder)?.connect().await?)
}

/// The client settings the global flags give, not yet connected.
fn builder(global: &Global, responder: Option<String>) -> Result<ClientBuilder, Failure> {
    let mut builder = ApprovalClient::builder(global.server.clone());
    if let Some(token) = &global.token {
        builder = builder.bearer_token(token.clone());
    }
    if let Some(path) = &global.ca_cert {
        builder = builder.ca_certificate(read_file(path, "--ca-cert")?);
    }
    if let (Some(cert), Some(key)) = (&global.client_cert, &global.client_key) {
        builder = builder.client_certificate(
            read_file(cert, "--client-cert")?,
            read_file(key, "--client-key")?,
        );
    }
    if let Some(domain) = &global.tls_domain {
        builder = builder.tls_domain(domain.clone());
    }
    if let Some(responder) = responder {
        builder = builder.responder(responder);
    }
    // The caller's trace (W3C, as CI systems and `otel-cli` export it):
    // approvald's spans for these calls join it.
    // One that is not a W3C trace context is left out (with a warning), as
    // W3C asks of receivers: tracing must not stop the gate.
    if let Ok(parent) = std::env::var("TRACEPARENT") {
        if approval_client::is_traceparent(parent.trim()) {
            builder = builder.trace_context(parent, std::env::var("TRACESTATE").ok());
        } else if !parent.trim().is_empty() {
            eprintln!("warning: TRACEPARENT {parent:?} is not a W3C trace context; not sent");
        }
    }
    Ok(builder)
}

fn read_file(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("{flag} {}: cannot read it: {e}", path.display())))
}

/// Who responds: --responder, APPROVAL_RESPONDER, or the OS user name. With a
/// token the server records the token's principal instead, so no name is
/// needed then.
fn responder(flag: Responder, has_token: bool) -> Result<String, Failure> {
    flag.responder
        .filter(|r| !r.trim().is_empty())
        .or_else(os_user_name)
        .or_else(|| has_token.then(|| "token holder".to_string()))
        .ok_or_else(|| {
            Failure::usage("who is responding? pass --responder NAME or set APPROVAL_RESPONDER")
        })
}

/// The login name: $USER, $LOGNAME, $USERNAME (Windows), else the system's
/// account for this process (a container or cron job often has no $USER).
fn os_user_name() -> Option<String> {
    let named = |name: String| (!name.trim().is_empty()).then_some(name);
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().and_then(named))
        .or_else(|| whoami::username().ok().and_then(named))
}
