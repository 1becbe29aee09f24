//! The command line: global options and one subcommand per action.

use std::path::PathBuf;
use std::time::Duration;

use approval_client::Status;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// Human approval gates from the command line: ask and wait, watch the
/// queue, approve or reject.
#[derive(Debug, Parser)]
#[command(name = "approvalctl", version, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The approvald address (http://host:port, https://host:port, or host:port).
    #[arg(
        long,
        global = true,
        env = "APPROVAL_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,

    /// Bearer token sent with every call.
    #[arg(long, global = true, env = "APPROVAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// How to print results: a table for people, JSON for programs (JSON
    /// lines for `watch`).
    #[arg(long, short, global = true, env = "APPROVAL_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// CA certificate (PEM) to trust for the server's certificate; turns TLS on.
    #[arg(long, global = true, env = "APPROVAL_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; needs --client-key.
    #[arg(
        long,
        global = true,
        env = "APPROVAL_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// Client private key (PEM) for mutual TLS; needs --client-cert.
    #[arg(
        long,
        global = true,
        env = "APPROVAL_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// The name to expect in the server's certificate, if not the host's.
    #[arg(long, global = true, env = "APPROVAL_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask for a human decision and wait for it. The exit code tells how it
    /// ended: 0 approved, 1 rejected, 2 expired, 3 cancelled. Ctrl-C
    /// withdraws the request.
    Request(RequestArgs),
    /// Watch the queue of pending approvals live (a table that updates in
    /// place on a terminal; JSON lines with --output json).
    Watch(WatchArgs),
    /// Approve a pending approval.
    Approve(ApproveArgs),
    /// Reject a pending approval.
    Reject(RejectArgs),
    /// Show one approval.
    Get(IdArg),
    /// List approvals, newest first.
    List(ListArgs),
    /// Withdraw a pending approval (its waiter ends with exit code 3).
    Cancel(CancelArgs),
    /// Serve the approval tools to an AI agent over the Model Context Protocol
    /// (stdio): request_approval, await_approval, get_approval, list_pending,
    /// cancel_approval and permission_prompt. Started by the agent's host.
    Mcp(McpArgs),
    /// Webhook deliveries the server gave up on (admin).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Print a shell completion script, e.g. `approvalctl completions bash > /etc/bash_completion.d/approvalctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// What kind of action this gates, e.g. deploy:production.
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub approval_type: String,

    /// What the human is shown: a JSON object, @FILE to read one from a
    /// file, or @- to read it from stdin.
    #[arg(long, short, value_name = "JSON|@FILE")]
    pub context: Option<String>,

    /// How long the approval stays open before it expires (e.g. 90s, 5m, 2h;
    /// default: the server's --default-timeout, 5m unless set).
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,

    /// A label, key=value (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,

    /// Who is asking.
    #[arg(
        long = "agent",
        env = "APPROVAL_AGENT_ID",
        default_value = "approvalctl"
    )]
    pub agent_id: String,

    /// Re-running with the same key re-attaches to the same approval instead
    /// of asking again (e.g. the CI job id).
    #[arg(long, env = "APPROVAL_IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this approval type (repeatable; a trailing * matches a prefix).
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub approval_types: Vec<String>,

    /// Only approvals requested by this agent.
    #[arg(long = "agent")]
    pub agent_id: Option<String>,

    /// Only approvals with this label, key=value (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct Responder {
    /// Who decides (default: the OS user name, from $USER, $LOGNAME or the
    /// system's account, as git does). Ignored by a server with
    /// authentication, which records the token's principal.
    #[arg(long, env = "APPROVAL_RESPONDER")]
    pub responder: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The approval's id.
    pub id: String,
    /// Why.
    #[arg(long, short, default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub responder: Responder,
    #[command(flatten)]
    pub digest: ExpectDigest,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The approval's id.
    pub id: String,
    /// Why (required: the requester deserves to know).
    #[arg(long, short)]
    pub reason: String,
    #[command(flatten)]
    pub responder: Responder,
    #[command(flatten)]
    pub digest: ExpectDigest,
}

#[derive(Debug, Args)]
pub struct ExpectDigest {
    /// Vote only if the approval's context_digest is this one (as
    /// `approvalctl get` showed it): a context other than the one you read
    /// is refused (exit 6) and nothing changes.
    #[arg(long, value_name = "SHA256_DIGEST")]
    pub expect_digest: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The approval's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (repeatable).
    #[arg(long, short, value_parser = status)]
    pub status: Vec<Status>,

    /// Only this approval type (repeatable; a trailing * matches a prefix).
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    pub approval_types: Vec<String>,

    /// Only approvals requested by this agent.
    #[arg(long = "agent")]
    pub agent_id: Option<String>,

    /// Only approvals with this label, key=value (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,

    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the failed deliveries (dead letters: given up after their
    /// endpoint's retry_for), newest first.
    Failed {
        /// At most this many (0: the server's default, 100).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Send a failed delivery again (its attempts and retry horizon start
    /// over).
    Retry {
        /// The delivery's id (the ID column of `webhooks failed`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The approval's id.
    pub id: String,
    /// Why it is withdrawn.
    #[arg(long, short, default_value = "")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// How long one tool call waits for a human before it returns `pending`
    /// (the agent then calls await_approval). Keep it under the host's
    /// tool-call timeout, often 60s.
    #[arg(long, env = "APPROVAL_MCP_WAIT", value_parser = duration, default_value = "25s")]
    pub wait: Duration,

    /// Who is asking, recorded on every approval (default: "mcp:" and the
    /// host's name from the MCP handshake).
    #[arg(long = "agent", env = "APPROVAL_AGENT_ID")]
    pub agent_id: Option<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90s, 5m, 2h)"))
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

fn status(s: &str) -> Result<Status, approval_client::UnknownStatus> {
    s.parse()
}
