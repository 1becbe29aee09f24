//! `approvalctl mcp`: the approval gates as Model Context Protocol tools, so
//! any MCP-capable agent can ask a human before it acts.
//!
//! The host (a desktop assistant, a coding agent) starts this process and
//! speaks JSON-RPC on its stdin/stdout; rmcp, the official Rust SDK, handles
//! the protocol. Each tool call becomes one or two approvald calls:
//!
//! - `tools.rs` says what the tools are: names, descriptions written for a
//!   model, JSON Schemas of their input and output;
//! - `gate.rs` does what they do: create, wait (bounded, with progress
//!   notifications), look up, list, cancel, answer a permission prompt;
//! - `failure.rs` turns every failure into a tool error a model can act on.
//!
//! Hosts cut tool calls that run long (often at 60 s), so no call waits
//! longer than `--wait`: a request still pending then returns `pending` with
//! its id, and `await_approval` waits again. The approval lives on in
//! approvald meanwhile, so a decision made between two calls is never lost.
//! A host that declares the MCP tasks extension gets a task instead, which
//! waits until the approval is final and is polled by the host.

mod failure;
mod gate;
mod tools;

use std::time::Duration;

use approval_client::ClientBuilder;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    GetTaskParams, GetTaskResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::cli::McpArgs;
use crate::exit::{Exit, Failure};
use gate::Gate;

/// The longest `--wait` accepted: a tool call blocked for longer than this
/// is cut by every host we know of.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A connection attempt to approvald gives up after this, so a host never
/// waits on a blackholed address.
const CONNECT_LIMIT: Duration = Duration::from_secs(3);

/// What the host tells the model about this server as a whole.
const INSTRUCTIONS: &str = "Human approval gates (approvald). Before any risky, costly or \
irreversible action (deploying, deleting data, spending money, sending messages on someone's \
behalf), call request_approval and act only if the status is `approved`. If it returns \
`pending`, call await_approval with the same id until the status is final; never act on \
`pending`, `rejected`, `expired` or `cancelled`.";

/// Serves the tools on stdin/stdout until the host closes stdin.
pub async fn run(builder: ClientBuilder, args: McpArgs) -> Result<Exit, Failure> {
    if args.wait.is_zero() || args.wait > MAX_WAIT {
        return Err(Failure::usage(format!(
            "--wait must be between 1s and {}s",
            MAX_WAIT.as_secs()
        )));
    }
    // Lazy: the server starts (and lists its tools) even while approvald is
    // down; each call then fails promptly with a tool error instead.
    let client = builder.connect_timeout(CONNECT_LIMIT).connect_lazy()?;
    let server = ApprovalTools {
        gate: Gate::new(client, args.wait, args.agent_id),
        tools: tools::all(),
    };
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    let running = server
        .serve((stdin, stdout))
        .await
        .map_err(|e| Failure::usage(format!("the MCP host did not initialize: {e}")))?;
    running.waiting().await.map_err(|e| Failure {
        exit: Exit::Failure,
        message: format!("the MCP session ended with an error: {e}"),
        hint: None,
    })?;
    Ok(Exit::Ok)
}

/// The MCP server: the tool list, and a [`Gate`] that runs the calls.
struct ApprovalTools {
    gate: Gate,
    tools: Vec<Tool>,
}

impl ServerHandler for ApprovalTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("approvald", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        let answer = match request.name.as_ref() {
            tools::REQUEST_APPROVAL => self.gate.request_approval(arguments, &context).await,
            tools::AWAIT_APPROVAL => self
                .gate
                .await_approval(arguments, &context)
                .await
                .map(Into::into),
            tools::GET_APPROVAL => self.gate.get_approval(arguments).await.map(Into::into),
            tools::LIST_PENDING => self.gate.list_pending(arguments).await.map(Into::into),
            tools::CANCEL_APPROVAL => self.gate.cancel_approval(arguments).await.map(Into::into),
            tools::PERMISSION_PROMPT => self.gate.permission_prompt(arguments, &context).await,
            other => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "no tool named {other:?}; the tools are: {}",
                        tools::NAMES.join(", ")
                    ),
                    None,
                ))
            }
        };
        Ok(match answer {
            Ok(response) => response,
            Err(error) => CallToolResult::error(vec![ContentBlock::text(error.to_string())]).into(),
        })
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.gate.tasks().get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.gate
            .tasks()
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.gate.tasks().cancel_task(&request.task_id)
    }
}
