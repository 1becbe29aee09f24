//! What the tools do. Each call parses its input (a bad field is a tool
//! error naming it), makes its approvald calls, each bounded in time, and
//! answers with structured content.
//!
//! Waiting is bounded by `wait`: `request_approval` and `await_approval`
//! return `pending` when no human decided by then, and the model calls
//! `await_approval` again. While a call waits it sends a progress
//! notification every few seconds (hosts that reset their timeout on
//! progress then keep the call alive; people see that it waits for a human).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_client::{Approval, ApprovalClient, ApprovalRequest, ListFilter, Status};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, JsonObject,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::{Peer, RoleServer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::failure::ToolError;
use super::tools::*;

/// One approvald call (create, get, list, cancel) gives up after this.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// How often a waiting call tells the host it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A task waits until the approval's deadline and this much more (approvald
/// needs a moment to mark it expired), and stays readable this long after.
const TASK_SLACK: Duration = Duration::from_secs(15);
const TASK_KEPT: Duration = Duration::from_secs(600);

/// How often a host should poll a task.
const TASK_POLL: Duration = Duration::from_secs(2);

/// How many open requests `Unreported` remembers.
const REMEMBERED: usize = 1024;

/// `list_pending` shows this many unless asked otherwise, and never more
/// than `LIST_MAX`.
const LIST_DEFAULT: u32 = 20;
const LIST_MAX: u32 = 100;

/// The agent id when neither `--agent` nor the host's name says otherwise.
const DEFAULT_AGENT: &str = "approvalctl-mcp";

/// Runs the tool calls. Cheap to clone: a task keeps a clone while it waits.
#[derive(Clone)]
pub struct Gate {
    client: ApprovalClient,
    /// The default and the ceiling of one call's wait.
    wait: Duration,
    agent_id: Option<String>,
    unreported: Arc<Unreported>,
    /// The waits running as MCP tasks, for hosts that support them.
    tasks: TaskManager,
}

impl Gate {
    pub fn new(client: ApprovalClient, wait: Duration, agent_id: Option<String>) -> Self {
        Gate {
            client,
            wait,
            agent_id,
            unreported: Arc::default(),
            tasks: TaskManager::new(),
        }
    }

    pub fn tasks(&self) -> &TaskManager {
        &self.tasks
    }

    pub async fn request_approval(
        &self,
        arguments: JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ToolError> {
        let input: RequestApprovalInput = parse(arguments)?;
        let wait = self.wait_for(input.wait_seconds)?;
        let mut details = input.context.unwrap_or_default();
        details.insert("summary".into(), Value::String(input.summary));
        let details = Value::Object(details);
        let mut request = ApprovalRequest::new(&input.approval_type)
            .context(details.clone())
            .agent_id(self.agent_id(context));
        if let Some(seconds) = input.timeout_seconds {
            request = request.timeout(Duration::from_secs(seconds));
        }
        for (k, v) in &input.labels {
            request = request.label(k, v);
        }
        let asked = Asked::new(&input.approval_type, &details, &input.labels);
        let approval = self.create(request, input.idempotency_key, &asked).await?;
        let answer = |a: &Approval| structured(&WaitOutput::of(a));
        if supports_tasks(context) {
            return Ok(self.as_task(approval, asked, answer));
        }
        let approval = self.wait_inline(approval, wait, context).await?;
        self.unreported.settle(&asked, &approval);
        answer(&approval).map(Into::into)
    }

    pub async fn await_approval(
        &self,
        arguments: JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ToolError> {
        let input: AwaitApprovalInput = parse(arguments)?;
        let wait = self.wait_for(input.wait_seconds)?;
        let approval = self.bounded(self.client.get(&input.id)).await?;
        let approval = self.wait_inline(approval, wait, context).await?;
        self.unreported.settle_approval(&approval);
        structured(&WaitOutput::of(&approval))
    }

    pub async fn get_approval(&self, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
        let input: GetApprovalInput = parse(arguments)?;
        let approval = self.bounded(self.client.get(&input.id)).await?;
        structured(&ApprovalView::from(approval))
    }

    pub async fn list_pending(&self, arguments: JsonObject) -> Result<CallToolResult, ToolError> {
        let input: ListPendingInput = parse(arguments)?;
        let limit = input.limit.unwrap_or(LIST_DEFAULT);
        if limit == 0 || limit > LIST_MAX {
            return Err(ToolError::field(
                "limit",
                format!("must be between 1 and {LIST_MAX}"),
            ));
        }
        let mut filter = ListFilter::default()
            .status(Status::Pending)
            .page_size(limit);
        if let Some(t) = input.approval_type {
            filter = filter.approval_type(t);
        }
        if let Some(agent) = input.agent_id {
            filter = filter.agent_id(agent);
        }
        for (k, v) in input.labels {
            filter = filter.label(k, v);
        }
        let page = self.bounded(self.client.list_page(&filter, "")).await?;
        structured(&ListOutput {
            more: page.next_page_token.is_some(),
            approvals: page.approvals.into_iter().map(ApprovalView::from).collect(),
        })
    }

    pub async fn cancel_approval(
        &self,
        arguments: JsonObject,
    ) -> Result<CallToolResult, ToolError> {
        let input: CancelApprovalInput = parse(arguments)?;
        let reason = input
            .reason
            .unwrap_or_else(|| "withdrawn by the agent".to_string());
        let approval = self.bounded(self.client.cancel(&input.id, reason)).await?;
        self.unreported.settle_approval(&approval);
        structured(&ApprovalView::from(approval))
    }

    /// The coding-agent permission prompt: "may `tool_name` run with
    /// `input`?". Only a human's approval allows; everything else denies,
    /// with a message that says why.
    pub async fn permission_prompt(
        &self,
        arguments: JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ToolError> {
        let input: PermissionPromptInput = parse(arguments)?;
        let approval_type = format!("tool:{}", input.tool_name);
        let mut details = Map::new();
        details.insert(
            "summary".into(),
            Value::String(format!(
                "The agent asks to run the tool {} with the input below.",
                input.tool_name
            )),
        );
        details.insert("tool_name".into(), Value::String(input.tool_name.clone()));
        details.insert("input".into(), Value::Object(input.input.clone()));
        // The tool use id is shown, but left out of the identity of the
        // request: asking again after a `pending` deny (a new tool use)
        // re-attaches to the approval still open.
        let asked = Asked::new(
            &approval_type,
            &Value::Object(details.clone()),
            &Default::default(),
        );
        if let Some(id) = &input.tool_use_id {
            details.insert("tool_use_id".into(), Value::String(id.clone()));
        }
        let request = ApprovalRequest::new(&approval_type)
            .context(Value::Object(details))
            .agent_id(self.agent_id(context));
        let approval = self.create(request, None, &asked).await?;
        let tool_input = input.input;
        let answer = move |a: &Approval| {
            let answer = permission(a, tool_input);
            // The host reads the text content: exactly the answer's JSON.
            let text = serde_json::to_string(&answer)
                .map_err(|e| ToolError::field("input", format!("cannot be encoded: {e}")))?;
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = serde_json::to_value(&answer).ok();
            Ok(result)
        };
        if supports_tasks(context) {
            return Ok(self.as_task(approval, asked, answer));
        }
        let approval = self.wait_inline(approval, self.wait, context).await?;
        self.unreported.settle(&asked, &approval);
        answer(&approval).map(Into::into)
    }

    /// For hosts that support MCP tasks: the call returns a task at once,
    /// and the task waits for the decision until the approval's deadline
    /// (no `--wait` bound: the host polls instead of holding a call open).
    /// Cancelling the task stops the wait; the approval stays open.
    fn as_task(
        &self,
        approval: Approval,
        asked: Asked,
        answer: impl FnOnce(&Approval) -> Result<CallToolResult, ToolError> + Send + 'static,
    ) -> CallToolResponse {
        let gate = self.clone();
        let wait = approval.time_left() + TASK_SLACK;
        let options = TaskOptions::new()
            .with_ttl_ms(millis(wait + TASK_KEPT))
            .with_poll_interval_ms(millis(TASK_POLL))
            .with_status_message(format!(
                "waiting for a human to decide approval {} ({})",
                approval.id, approval.approval_type
            ));
        let task = self.tasks.spawn(options, move |task| {
            Box::pin(async move {
                let waited = tokio::select! {
                    _ = task.cancelled() => return Err(TaskExit::Cancelled),
                    waited = gate.wait_until_final(approval, wait, None) => waited,
                };
                let outcome = waited.and_then(|approval| {
                    gate.unreported.settle(&asked, &approval);
                    answer(&approval)
                });
                Ok(outcome.unwrap_or_else(|e| {
                    CallToolResult::error(vec![ContentBlock::text(e.to_string())])
                }))
            })
        });
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// Creates the approval (or re-attaches to the open one for the same
    /// request), always with an idempotency key: the caller's, else the one
    /// remembered for this request while its decision is unreported, else a
    /// new one.
    async fn create(
        &self,
        request: ApprovalRequest,
        key: Option<String>,
        asked: &Asked,
    ) -> Result<Approval, ToolError> {
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            let created = self
                .bounded(self.client.create(request.idempotency_key(key)))
                .await?;
            return Ok(created.approval);
        }
        let key = self.unreported.key_for(asked);
        let created = self
            .bounded(self.client.create(request.idempotency_key(key)))
            .await?;
        Ok(created.approval)
    }

    /// [`Gate::wait_until_final`] within one tool call: with progress
    /// notifications, ending when the host cancels the call.
    async fn wait_inline(
        &self,
        approval: Approval,
        wait: Duration,
        context: &RequestContext<RoleServer>,
    ) -> Result<Approval, ToolError> {
        let id = approval.id.clone();
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (&context.peer, token));
        tokio::select! {
            waited = self.wait_until_final(approval, wait, progress) => waited,
            _ = context.ct.cancelled() => Err(ToolError::cancelled().about(&id)),
        }
    }

    /// Waits up to `wait` for `approval` to become final, telling the host
    /// it is still waiting every few seconds when it gave a progress token.
    /// Returns it final, or as it is when the wait is over (pending).
    async fn wait_until_final(
        &self,
        approval: Approval,
        wait: Duration,
        progress: Option<(&Peer<RoleServer>, ProgressToken)>,
    ) -> Result<Approval, ToolError> {
        if approval.is_final() {
            return Ok(approval);
        }
        let started = Instant::now();
        let until = started + wait;
        // The library's wait rides out broken connections until the
        // approval's deadline; this bound cuts it at `wait`.
        let decision = self.client.await_decision(&approval.id);
        tokio::pin!(decision);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tokio::select! {
                decided = &mut decision => {
                    return decided
                        .map(|d| d.approval)
                        .map_err(|e| ToolError::from(e).about(&approval.id));
                }
                _ = tokio::time::sleep_until(until) => break,
                _ = tick.tick() => {
                    if let Some((peer, token)) = &progress {
                        let waited = started.elapsed().as_secs_f64().floor();
                        let note = ProgressNotificationParam::new(token.clone(), waited)
                            .with_total(wait.as_secs_f64())
                            .with_message(format!(
                                "waiting for a human to decide approval {} ({})",
                                approval.id, approval.approval_type
                            ));
                        // A host that stopped listening is no reason to stop waiting.
                        let _ = peer.notify_progress(note).await;
                    }
                }
            }
        }
        // The wait is over: one last look, since a decision may have landed
        // just now.
        self.bounded(self.client.get(&approval.id))
            .await
            .map_err(|e| e.about(&approval.id))
    }

    /// One approvald call, bounded by `CALL_LIMIT`.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = approval_client::Result<T>>,
    ) -> Result<T, ToolError> {
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(ToolError::silent(self.client.endpoint(), CALL_LIMIT)),
        }
    }

    /// The wait of one call: what the model asked, at most the configured one.
    fn wait_for(&self, seconds: Option<u64>) -> Result<Duration, ToolError> {
        match seconds {
            None => Ok(self.wait),
            Some(s) if s <= self.wait.as_secs() => Ok(Duration::from_secs(s)),
            Some(_) => Err(ToolError::field(
                "wait_seconds",
                format!(
                    "must be at most {} (this server's --wait); leave it out to wait that long",
                    self.wait.as_secs()
                ),
            )),
        }
    }

    /// `--agent`, else the host's name from the MCP handshake.
    fn agent_id(&self, context: &RequestContext<RoleServer>) -> String {
        self.agent_id
            .clone()
            .or_else(|| {
                context
                    .peer
                    .peer_info()
                    .map(|info| format!("mcp:{}", info.client_info.name))
            })
            .unwrap_or_else(|| DEFAULT_AGENT.to_string())
    }
}

/// True when the host declared the MCP tasks extension.
fn supports_tasks(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|caps| caps.supports_tasks())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The tool's arguments as `T`, or a tool error naming the bad field.
fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(Value::Object(arguments))
        .map_err(|e| ToolError::input(&e.path().to_string(), e.inner()))
}

fn structured<T: Serialize>(output: &T) -> Result<CallToolResult, ToolError> {
    let value = serde_json::to_value(output)
        .map_err(|e| ToolError::field("output", format!("cannot be encoded: {e}")))?;
    Ok(CallToolResult::structured(value))
}

/// The permission answer for an approval, final or still pending.
fn permission(approval: &Approval, input: Map<String, Value>) -> PermissionOutput {
    let deny = |message: String| PermissionOutput {
        behavior: Behavior::Deny,
        updated_input: None,
        message: Some(message),
    };
    let why = |a: &Approval| {
        if a.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", a.reason)
        }
    };
    match approval.status {
        Status::Approved => PermissionOutput {
            behavior: Behavior::Allow,
            updated_input: Some(input),
            message: None,
        },
        Status::Rejected => deny(format!(
            "A human rejected this ({}{}{}). Do not run it; tell the user.",
            approval.id,
            approval
                .decided_by
                .as_deref()
                .map(|by| format!(", by {by}"))
                .unwrap_or_default(),
            why(approval)
        )),
        Status::Expired => deny(format!(
            "Nobody approved this in time (approval {} expired). Do not run it.",
            approval.id
        )),
        Status::Cancelled => deny(format!(
            "The approval {} was withdrawn{}. Do not run it.",
            approval.id,
            why(approval)
        )),
        Status::Pending => deny(format!(
            "No human has decided yet (approval {} stays open until {}). Do not run it now; \
             asking again with the same input re-attaches to this approval.",
            approval.id,
            rfc3339(approval.deadline)
        )),
    }
}

/// What identifies a request between calls: its type, context and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Asked(u64);

impl Asked {
    fn new(
        approval_type: &str,
        context: &Value,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let mut h = DefaultHasher::new();
        approval_type.hash(&mut h);
        // serde_json's `to_string` writes object keys in a fixed order.
        context.to_string().hash(&mut h);
        labels.hash(&mut h);
        Asked(h.finish())
    }
}

/// The idempotency keys of requests whose decision the agent has not been
/// told yet. Asking the same thing again while its approval is open (a host
/// cut the call, the model retried) re-attaches to it, so a decision made
/// meanwhile is not lost; once the decision was reported, the same request
/// asks afresh (yesterday's approval does not approve today's action).
/// Bounded: the oldest entries go first.
#[derive(Default)]
struct Unreported {
    inner: Mutex<UnreportedInner>,
}

#[derive(Default)]
struct UnreportedInner {
    keys: HashMap<Asked, Arc<str>>,
    order: VecDeque<Asked>,
}

impl Unreported {
    /// The key for `asked`: the remembered one, else a new one (remembered).
    fn key_for(&self, asked: &Asked) -> String {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = inner.keys.get(asked) {
            return key.to_string();
        }
        let key: Arc<str> = Arc::from(uuid::Uuid::now_v7().to_string());
        inner.keys.insert(*asked, key.clone());
        inner.order.push_back(*asked);
        while inner.order.len() > REMEMBERED {
            if let Some(oldest) = inner.order.pop_front() {
                inner.keys.remove(&oldest);
            }
        }
        key.to_string()
    }

    /// After answering: a final decision is reported, so forget its key.
    fn settle(&self, asked: &Asked, approval: &Approval) {
        if approval.is_final() {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.keys.remove(asked);
            inner.order.retain(|a| a != asked);
        }
    }

    /// The decision on `approval` was reported through another tool
    /// (`await_approval`, `cancel_approval`): forget its key.
    fn settle_approval(&self, approval: &Approval) {
        if !approval.is_final() || approval.idempotency_key.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = approval.idempotency_key.as_str();
        let found = inner
            .keys
            .iter()
            .find(|(_, k)| k.as_ref() == key)
            .map(|(asked, _)| *asked);
        if let Some(asked) = found {
            inner.keys.remove(&asked);
            inner.order.retain(|a| *a != asked);
        }
    }
}
