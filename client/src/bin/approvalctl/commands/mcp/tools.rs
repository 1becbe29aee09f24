//! What the tools are: their names, a description written for the model
//! that calls them, and the JSON Schemas of their input and output (derived
//! from the types below, so the schema and the parser never disagree).

use std::collections::BTreeMap;

use approval_client::{Approval, Status};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const REQUEST_APPROVAL: &str = "request_approval";
pub const AWAIT_APPROVAL: &str = "await_approval";
pub const GET_APPROVAL: &str = "get_approval";
pub const LIST_PENDING: &str = "list_pending";
pub const CANCEL_APPROVAL: &str = "cancel_approval";
pub const PERMISSION_PROMPT: &str = "permission_prompt";

pub const NAMES: [&str; 6] = [
    REQUEST_APPROVAL,
    AWAIT_APPROVAL,
    GET_APPROVAL,
    LIST_PENDING,
    CANCEL_APPROVAL,
    PERMISSION_PROMPT,
];

/// Every tool, as `tools/list` shows them.
pub fn all() -> Vec<Tool> {
    vec![
        Tool::new(
            REQUEST_APPROVAL,
            "Ask a human to approve an action before you perform it, and wait for the decision. \
             Use it before anything risky, costly or irreversible. Returns `status`: act only on \
             `approved`. `rejected`, `expired` and `cancelled` mean do not act (tell the user, \
             with `reason`). `pending` means no human has decided yet within this call's wait: \
             call await_approval with the returned `id` (the approval stays open until \
             `deadline`). Calling request_approval again with the same arguments re-attaches \
             to the same open approval instead of asking twice.",
            schema_for_type::<RequestApprovalInput>(),
        )
        .with_output_schema::<WaitOutput>()
        .annotate(ToolAnnotations::with_title("Request human approval").read_only(false)),
        Tool::new(
            AWAIT_APPROVAL,
            "Wait again for the decision on an approval that request_approval returned as \
             `pending`. Returns the same shape: act only on `approved`; on `pending`, call \
             await_approval again. A decision made while you were not waiting is returned \
             at once.",
            schema_for_type::<AwaitApprovalInput>(),
        )
        .with_output_schema::<WaitOutput>()
        .annotate(ToolAnnotations::with_title("Wait for a decision").read_only(true)),
        Tool::new(
            GET_APPROVAL,
            "Look up one approval by id without waiting: its status, deadline, context and, \
             once final, who decided and why.",
            schema_for_type::<GetApprovalInput>(),
        )
        .with_output_schema::<ApprovalView>()
        .annotate(ToolAnnotations::with_title("Look up an approval").read_only(true)),
        Tool::new(
            LIST_PENDING,
            "List approvals still waiting for a human, newest first, optionally filtered by \
             type, agent or labels.",
            schema_for_type::<ListPendingInput>(),
        )
        .with_output_schema::<ListOutput>()
        .annotate(ToolAnnotations::with_title("List pending approvals").read_only(true)),
        Tool::new(
            CANCEL_APPROVAL,
            "Withdraw a pending approval you no longer need (for example because the plan \
             changed), so no human decides it in vain. Fails if it is already decided.",
            schema_for_type::<CancelApprovalInput>(),
        )
        .with_output_schema::<ApprovalView>()
        .annotate(
            ToolAnnotations::with_title("Withdraw an approval")
                .read_only(false)
                .destructive(true),
        ),
        Tool::new(
            PERMISSION_PROMPT,
            "Permission prompt for coding agents (for example Claude Code's \
             --permission-prompt-tool): asks a human whether the tool `tool_name` may run with \
             `input`, as an approval of type `tool:<tool_name>`. Returns \
             {\"behavior\":\"allow\",\"updatedInput\":{...}} when a human approved, otherwise \
             {\"behavior\":\"deny\",\"message\":\"...\"}; if no human decided in time the \
             message says so and asking again with the same input re-attaches to the same \
             open approval.",
            schema_for_type::<PermissionPromptInput>(),
        )
        .with_output_schema::<PermissionOutput>()
        .annotate(ToolAnnotations::with_title("Ask a human for tool permission").read_only(false)),
    ]
}

// ---- inputs -----------------------------------------------------------------

/// Input of `request_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestApprovalInput {
    /// What kind of action this gates, e.g. `deploy:production`, `db:migrate` or
    /// `email:send` (letters, digits and `. _ - : / *`, at most 128 characters).
    /// Approvers may be allowed only some types, so keep it stable per kind of action.
    pub approval_type: String,
    /// One or two sentences for the human: what you are about to do, and why.
    pub summary: String,
    /// Details the human needs to decide, as a JSON object (for example the
    /// command, the target, the amount). Shown to the human next to the summary.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// How long the approval stays open for a human, in seconds (default 300).
    /// After that it expires and counts as not approved.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<u64>,
    /// How long this call waits for the decision before returning `pending`, in
    /// seconds (default and maximum: the server's configured wait, 25 s unless changed).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// Optional: calls with the same key are the same approval (a retry
    /// re-attaches instead of asking again). Without one, a key is derived so that
    /// repeating the same request re-attaches to the approval still open.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Optional labels (string keys and values) for filtering, e.g. {"repo": "billing"}.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Input of `await_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwaitApprovalInput {
    /// The approval's id, as returned by request_approval.
    pub id: String,
    /// How long this call waits before returning `pending` again, in seconds
    /// (default and maximum: the server's configured wait).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Input of `get_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetApprovalInput {
    /// The approval's id.
    pub id: String,
}

/// Input of `list_pending`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPendingInput {
    /// Only this approval type; a trailing `*` matches a prefix (`deploy:*`).
    #[serde(default)]
    pub approval_type: Option<String>,
    /// Only approvals requested by this agent id.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Only approvals carrying all of these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// At most this many (default 20, at most 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// Input of `cancel_approval`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelApprovalInput {
    /// The approval's id.
    pub id: String,
    /// Why it is withdrawn (shown to humans and kept in the audit trail).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Input of `permission_prompt`, as coding agents send it.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PermissionPromptInput {
    /// The name of the tool that wants to run, e.g. `Bash` or `Write`.
    pub tool_name: String,
    /// The input that tool would run with.
    pub input: Map<String, Value>,
    /// The host's id for this tool use, if it has one.
    #[serde(default)]
    pub tool_use_id: Option<String>,
}

// ---- outputs ----------------------------------------------------------------

/// Where an approval is: `pending` until a human decides, then final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No decision yet.
    Pending,
    /// A human approved: go ahead.
    Approved,
    /// A human rejected: do not act.
    Rejected,
    /// Nobody decided before the deadline: do not act.
    Expired,
    /// Withdrawn: do not act.
    Cancelled,
}

impl From<Status> for State {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => State::Pending,
            Status::Approved => State::Approved,
            Status::Rejected => State::Rejected,
            Status::Expired => State::Expired,
            Status::Cancelled => State::Cancelled,
        }
    }
}

/// What `request_approval` and `await_approval` return.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WaitOutput {
    /// `approved` is the only status that allows the action.
    pub status: State,
    /// The approval's id (for await_approval, get_approval, cancel_approval).
    pub id: String,
    pub approval_type: String,
    /// When the approval expires if nobody decides (RFC 3339).
    pub deadline: String,
    /// Who decided (or cancelled); absent while pending and when it expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The human's reason (or why it expired or was cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it became final (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// What to do now.
    pub next_step: String,
}

impl WaitOutput {
    pub fn of(a: &Approval) -> Self {
        let status = State::from(a.status);
        let next_step = match status {
            State::Approved => "A human approved: go ahead with the action.".to_string(),
            State::Rejected => {
                "A human rejected this: do not perform the action; tell the user why.".to_string()
            }
            State::Expired => "Nobody decided before the deadline: do not perform the action; \
                               request approval again if it is still needed."
                .to_string(),
            State::Cancelled => {
                "The approval was withdrawn: do not perform the action.".to_string()
            }
            State::Pending => format!(
                "No decision yet: do not perform the action. Call await_approval with id {} to \
                 keep waiting (the approval stays open until {}).",
                a.id,
                rfc3339(a.deadline)
            ),
        };
        WaitOutput {
            status,
            id: a.id.clone(),
            approval_type: a.approval_type.clone(),
            deadline: rfc3339(a.deadline),
            decided_by: a.decided_by.clone(),
            reason: Some(a.reason.clone()).filter(|r| !r.is_empty()),
            decided_at: a.decided_at.map(rfc3339),
            next_step,
        }
    }
}

/// One approval, as `get_approval`, `list_pending` and `cancel_approval` show it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ApprovalView {
    pub id: String,
    pub status: State,
    pub approval_type: String,
    /// The agent that asked.
    pub agent_id: String,
    /// The principal that created it.
    pub requester: String,
    /// What the human is shown.
    pub context: Map<String, Value>,
    pub labels: BTreeMap<String, String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it expires if nobody decides (RFC 3339).
    pub deadline: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

impl From<Approval> for ApprovalView {
    fn from(a: Approval) -> Self {
        ApprovalView {
            status: a.status.into(),
            context: match a.context {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            labels: a.labels,
            created_at: rfc3339(a.created_at),
            deadline: rfc3339(a.deadline),
            decided_by: a.decided_by,
            reason: Some(a.reason).filter(|r| !r.is_empty()),
            decided_at: a.decided_at.map(rfc3339),
            id: a.id,
            approval_type: a.approval_type,
            agent_id: a.agent_id,
            requester: a.requester,
        }
    }
}

/// What `list_pending` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    /// Newest first.
    pub approvals: Vec<ApprovalView>,
    /// True when more matched than `limit`.
    pub more: bool,
}

/// The permission-prompt answer, in the exact shape coding agents expect.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct PermissionOutput {
    pub behavior: Behavior,
    /// With `allow`: the input the tool runs with (unchanged).
    #[serde(rename = "updatedInput", skip_serializing_if = "Option::is_none")]
    pub updated_input: Option<Map<String, Value>>,
    /// With `deny`: why, for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    Allow,
    Deny,
}

pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
