//! `approvalctl mcp`, the real binary, driven by a real MCP client (rmcp's,
//! over stdio, as a host spawns it) against live `approvald` replicas on a
//! real Redis. The human decides on the other replica.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approval_client::{ApprovalClient, ApprovalRequest, Status};
use approval_tests::{Deployment, Store, PROMPTLY};
use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    GetTaskParams, Implementation, ProgressNotificationParam, TaskPayload, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::time::Instant;

/// Generous bound for one tool call (process start and a loaded machine
/// included), well above every wait these tests configure.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A host: records the progress notifications it receives.
#[derive(Clone, Default)]
struct Host {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Host {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().expect("lock").push(params);
    }
}

struct Session {
    mcp: RunningService<RoleClient, Host>,
    host: Host,
    tools: Vec<Tool>,
}

/// Spawns `approvalctl --server <server> <global...> mcp <args...>` and
/// initializes an MCP session with it.
async fn session(server: &str, global: &[&str], args: &[&str]) -> Session {
    let transport = spawn(server, global, args);
    let host = Host::default();
    let mcp = tokio::time::timeout(CALL_LIMIT, host.clone().serve(transport))
        .await
        .expect("initialized within the bound")
        .expect("the MCP handshake succeeds");
    let tools = mcp.list_all_tools().await.expect("tools/list");
    Session { mcp, host, tools }
}

/// `approvalctl --server <server> <global...> mcp <args...>`, as a host
/// starts it, with no APPROVAL_* from the outside.
fn spawn(server: &str, global: &[&str], args: &[&str]) -> TokioChildProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_approvalctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("APPROVAL_") {
            command.env_remove(k);
        }
    }
    command
        .arg("--server")
        .arg(server)
        .args(global)
        .arg("mcp")
        .args(args);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("approvalctl mcp starts");
    transport
}

impl Session {
    /// Calls a tool; checks a successful result against the tool's output
    /// schema.
    async fn call(&self, name: &str, arguments: Value) -> CallToolResult {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object");
        };
        let params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments);
        let result = tokio::time::timeout(CALL_LIMIT, self.mcp.call_tool(params))
            .await
            .unwrap_or_else(|_| panic!("{name} answered within {CALL_LIMIT:?}"))
            .unwrap_or_else(|e| panic!("{name}: protocol error {e}"));
        if result.is_error != Some(true) {
            let tool = self.tools.iter().find(|t| t.name == name).expect("listed");
            let schema = Value::Object(
                tool.output_schema
                    .as_deref()
                    .expect("output schema")
                    .clone(),
            );
            let output = result
                .structured_content
                .clone()
                .expect("structured content");
            let validator = jsonschema::validator_for(&schema).expect("schema compiles");
            if let Err(e) = validator.validate(&output) {
                panic!("{name} output does not match its schema: {e}\n{output}");
            }
        }
        result
    }

    /// The structured output of a successful call.
    async fn ok(&self, name: &str, arguments: Value) -> Value {
        let result = self.call(name, arguments).await;
        assert_ne!(
            result.is_error,
            Some(true),
            "{name} failed: {}",
            text(&result)
        );
        result.structured_content.expect("structured content")
    }

    /// The message of a call that must fail as a tool error.
    async fn tool_error(&self, name: &str, arguments: Value) -> String {
        let result = self.call(name, arguments).await;
        assert_eq!(
            result.is_error,
            Some(true),
            "{name} should fail: {}",
            text(&result)
        );
        text(&result)
    }

    fn progress_count(&self) -> usize {
        self.host.progress.lock().expect("lock").len()
    }

    async fn close(self) {
        let _ = tokio::time::timeout(PROMPTLY, self.mcp.cancel()).await;
    }
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A client for the human, on the second replica.
async fn human(d: &Deployment) -> ApprovalClient {
    client(&d.replicas[1], "alice").await
}

/// The MCP server's replica.
fn first(d: &Deployment) -> String {
    d.replicas[0].endpoint()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_lists_the_six_tools_with_valid_json_schemas() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &[]).await;

    let info = s.mcp.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("approvald")
    );
    assert!(info.capabilities.tools.is_some());

    let names: BTreeSet<&str> = s.tools.iter().map(|t| t.name.as_ref()).collect();
    let expected: BTreeSet<&str> = [
        "request_approval",
        "await_approval",
        "get_approval",
        "list_pending",
        "cancel_approval",
        "permission_prompt",
    ]
    .into();
    assert_eq!(
        names, expected,
        "no approve or reject tool: agents cannot decide"
    );
    for tool in &s.tools {
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            description.len() > 60,
            "{} needs a description for a model",
            tool.name
        );
        for (kind, schema) in [
            ("input", Some(&tool.input_schema)),
            ("output", tool.output_schema.as_ref()),
        ] {
            let schema = Value::Object(schema.expect("both schemas").as_ref().clone());
            assert_eq!(schema["type"], "object", "{} {kind} schema", tool.name);
            jsonschema::meta::validate(&schema)
                .unwrap_or_else(|e| panic!("{} {kind} schema is not valid: {e}", tool.name));
        }
    }
    let request = s
        .tools
        .iter()
        .find(|t| t.name == "request_approval")
        .expect("listed");
    let required = request.input_schema["required"]
        .as_array()
        .expect("required");
    assert!(required.contains(&json!("approval_type")) && required.contains(&json!("summary")));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approval_returns_the_decision_a_human_makes_on_the_other_replica_while_it_waits() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "30s"]).await;
    let human = human(&d).await;

    let decide = async {
        let pending = until_pending(&human, "deploy:mcp-live", 1).await;
        assert_eq!(pending[0].context["summary"], "Deploy billing 1.4.2");
        assert_eq!(pending[0].context["service"], "billing");
        assert!(
            !pending[0].idempotency_key.is_empty(),
            "always an idempotency key"
        );
        // Let the call wait long enough to send a progress notification.
        tokio::time::sleep(Duration::from_millis(500)).await;
        human
            .approve(&pending[0].id, "looks good")
            .await
            .expect("approve");
        pending[0].id.clone()
    };
    let ask = s.ok(
        "request_approval",
        json!({
            "approval_type": "deploy:mcp-live",
            "summary": "Deploy billing 1.4.2",
            "context": {"service": "billing"},
            "timeout_seconds": 120
        }),
    );
    let (id, answer) = tokio::join!(decide, ask);

    assert_eq!(answer["status"], "approved");
    assert_eq!(answer["id"], id);
    assert_eq!(answer["decided_by"], "alice");
    assert_eq!(answer["reason"], "looks good");
    assert!(
        s.progress_count() >= 1,
        "no progress notification while waiting"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_pending_after_the_bounded_wait_returns_pending_and_the_decision_is_not_lost(
) {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "2s"]).await;
    let human = human(&d).await;
    let ask = json!({
        "approval_type": "deploy:mcp-later",
        "summary": "Drop the staging database",
        "timeout_seconds": 300
    });

    let started = Instant::now();
    let pending = s.ok("request_approval", ask.clone()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2) + PROMPTLY,
        "the wait is bounded"
    );
    assert_eq!(pending["status"], "pending");
    let id = pending["id"].as_str().expect("id").to_string();
    assert!(pending["deadline"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert!(pending["next_step"]
        .as_str()
        .expect("next step")
        .contains("await_approval"));

    // Decided while the agent was between calls...
    human.approve(&id, "go").await.expect("approve");
    // ...and returned by the next wait, at once.
    let decided = s.ok("await_approval", json!({"id": id})).await;
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], "alice");

    // The same request again while pending re-attaches instead of asking
    // twice; after its decision was reported it asks afresh.
    let again = s.ok("request_approval", ask.clone()).await;
    assert_eq!(again["status"], "pending");
    assert_ne!(
        again["id"],
        id.as_str(),
        "a reported decision does not approve a new request"
    );
    let once_more = s.ok("request_approval", ask).await;
    assert_eq!(
        once_more["id"], again["id"],
        "an open request is re-attached"
    );
    assert_eq!(pending_of(&human, "deploy:mcp-later").await, 1);

    let got = s.ok("get_approval", json!({"id": again["id"]})).await;
    assert_eq!(got["status"], "pending");
    assert_eq!(got["context"]["summary"], "Drop the staging database");
    let listed = s
        .ok("list_pending", json!({"approval_type": "deploy:mcp-*"}))
        .await;
    assert_eq!(listed["approvals"].as_array().expect("list").len(), 1);
    assert_eq!(listed["approvals"][0]["id"], again["id"]);
    let cancelled = s
        .ok(
            "cancel_approval",
            json!({"id": again["id"], "reason": "plan changed"}),
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(pending_of(&human, "deploy:mcp-later").await, 0);
    s.close().await;
}

async fn pending_of(human: &ApprovalClient, approval_type: &str) -> usize {
    pending(human, approval_type).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_comes_back_as_rejected_with_the_humans_reason() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "30s"]).await;
    let human = human(&d).await;
    let decide = async {
        let pending = until_pending(&human, "email:mcp-send", 1).await;
        human
            .reject(&pending[0].id, "not to the whole company")
            .await
            .expect("reject");
    };
    let ask = s.ok(
        "request_approval",
        json!({"approval_type": "email:mcp-send", "summary": "Email all staff"}),
    );
    let ((), answer) = tokio::join!(decide, ask);
    assert_eq!(answer["status"], "rejected");
    assert_eq!(answer["reason"], "not to the whole company");
    assert!(answer["next_step"]
        .as_str()
        .expect("next step")
        .contains("do not"));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_nobody_decides_comes_back_expired() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "30s"]).await;
    let answer = s
        .ok(
            "request_approval",
            json!({"approval_type": "deploy:mcp-expire", "summary": "Nobody looks", "timeout_seconds": 1}),
        )
        .await;
    assert_eq!(answer["status"], "expired");
    assert!(answer.get("decided_by").is_none());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_prompt_allows_with_the_input_and_denies_with_a_message_in_the_exact_shape() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "30s"]).await;
    let human = human(&d).await;
    let input = json!({"command": "rm -rf build/", "description": "clean the build"});

    // Allowed: {"behavior":"allow","updatedInput":<the input>} as text.
    let decide = async {
        let pending = until_pending(&human, "tool:Bash", 1).await;
        assert_eq!(pending[0].context["tool_name"], "Bash");
        assert_eq!(pending[0].context["input"], input);
        human.approve(&pending[0].id, "").await.expect("approve");
    };
    let ask = s.call(
        "permission_prompt",
        json!({"tool_name": "Bash", "input": input, "tool_use_id": "toolu_01"}),
    );
    let ((), allowed) = tokio::join!(decide, ask);
    assert_ne!(allowed.is_error, Some(true), "{}", text(&allowed));
    let answer: Value = serde_json::from_str(&text(&allowed)).expect("the text is JSON");
    assert_eq!(answer, json!({"behavior": "allow", "updatedInput": input}));

    // Denied: {"behavior":"deny","message":"..."} naming the reason.
    let decide = async {
        let pending = until_pending(&human, "tool:Write", 1).await;
        human
            .reject(&pending[0].id, "not in /etc")
            .await
            .expect("reject");
    };
    let ask = s.call(
        "permission_prompt",
        json!({"tool_name": "Write", "input": {"file_path": "/etc/hosts", "content": ""}}),
    );
    let ((), denied) = tokio::join!(decide, ask);
    assert_ne!(denied.is_error, Some(true), "{}", text(&denied));
    let answer: Value = serde_json::from_str(&text(&denied)).expect("the text is JSON");
    let keys: BTreeSet<&str> = answer
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["behavior", "message"].into());
    assert_eq!(answer["behavior"], "deny");
    assert!(answer["message"]
        .as_str()
        .expect("message")
        .contains("not in /etc"));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_token_can_request_but_not_touch_another_requesters_approvals() {
    let dir = std::env::temp_dir().join(format!("approvalctl-mcp-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut toml = String::new();
    for (token, principal, roles) in [
        ("tok-agent", "agent", r#"["requester"]"#),
        ("tok-other", "other", r#"["requester"]"#),
        ("tok-alice", "alice", r#"["approver"]"#),
    ] {
        toml += &format!(
            "[[tokens]]\nprincipal = {principal:?}\nroles = {roles}\nsha256 = {:?}\n\n",
            approvald::auth::hash_token(token)
        );
    }
    std::fs::write(dir.join("auth.toml"), toml).expect("write");
    let d = Deployment::start_with(Store::Redis, 2, |c| {
        c.auth_config = Some(dir.join("auth.toml"));
    })
    .await;
    let s = session(&first(&d), &["--token", "tok-agent"], &["--wait", "1s"]).await;

    // Requesting works, and the approval is the token's.
    let mine = s
        .ok(
            "request_approval",
            json!({"approval_type": "deploy:mcp-auth", "summary": "Deploy as the agent"}),
        )
        .await;
    assert_eq!(mine["status"], "pending");
    let got = s.ok("get_approval", json!({"id": mine["id"]})).await;
    assert_eq!(got["requester"], "agent");

    // Another requester's approval is off limits: not readable, not cancellable.
    let other = ApprovalClient::builder(d.replicas[1].endpoint())
        .bearer_token("tok-other")
        .connect()
        .await
        .expect("connect");
    let theirs = other
        .create(ApprovalRequest::new("deploy:mcp-auth"))
        .await
        .expect("create")
        .approval;
    let refused = s
        .tool_error("cancel_approval", json!({"id": theirs.id}))
        .await;
    assert!(refused.contains("not allowed"), "{refused}");
    let refused = s.tool_error("get_approval", json!({"id": theirs.id})).await;
    assert!(refused.contains("not allowed"), "{refused}");
    assert_eq!(
        other.get(&theirs.id).await.expect("get").status,
        Status::Pending
    );

    // The human approves with their own token; the agent sees it.
    let alice = ApprovalClient::builder(d.replicas[1].endpoint())
        .bearer_token("tok-alice")
        .connect()
        .await
        .expect("connect");
    alice
        .approve(mine["id"].as_str().expect("id"), "")
        .await
        .expect("approve");
    let decided = s.ok("await_approval", json!({"id": mine["id"]})).await;
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], "alice");

    // Without a token nothing works, and the message says what to fix.
    let anonymous = session(&first(&d), &[], &[]).await;
    let refused = anonymous.tool_error("list_pending", json!({})).await;
    assert!(refused.contains("token"), "{refused}");
    anonymous.close().await;
    s.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_approvald_is_a_prompt_tool_error_not_a_hang() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let s = session(&nobody, &[], &["--wait", "30s"]).await;
    for (tool, arguments) in [
        (
            "request_approval",
            json!({"approval_type": "deploy:mcp-down", "summary": "Deploy"}),
        ),
        ("await_approval", json!({"id": unknown_id()})),
        ("list_pending", json!({})),
        (
            "permission_prompt",
            json!({"tool_name": "Bash", "input": {"command": "ls"}}),
        ),
    ] {
        let started = Instant::now();
        let message = s.tool_error(tool, arguments).await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{tool} took {:?}",
            started.elapsed()
        );
        assert!(message.contains("unreachable"), "{tool}: {message}");
        assert!(message.contains(&nobody), "{tool}: {message}");
    }
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_input_is_a_tool_error_naming_the_field_and_creates_nothing() {
    let d = deployment().await;
    let s = session(&first(&d), &[], &["--wait", "5s"]).await;
    for (arguments, field) in [
        (json!({"summary": "no type"}), "approval_type"),
        (
            json!({"approval_type": "deploy:mcp-bad", "summary": "x", "context": 3}),
            "context",
        ),
        (
            json!({"approval_type": "deploy:mcp-bad", "summary": "x", "timeout_seconds": "soon"}),
            "timeout_seconds",
        ),
        (
            json!({"approval_type": "deploy:mcp-bad", "summary": "x", "timout": 30}),
            "timout",
        ),
        (
            json!({"approval_type": "deploy:mcp-bad", "summary": "x", "wait_seconds": 3600}),
            "wait_seconds",
        ),
        // Refused by approvald, which names its field.
        (
            json!({"approval_type": "deploy mcp bad!", "summary": "x"}),
            "approval_type",
        ),
    ] {
        let message = s.tool_error("request_approval", arguments.clone()).await;
        assert!(message.contains(field), "{arguments}: {message}");
    }
    let message = s
        .tool_error("permission_prompt", json!({"tool_name": "Bash"}))
        .await;
    assert!(message.contains("input"), "{message}");
    let message = s
        .tool_error("get_approval", json!({"id": unknown_id()}))
        .await;
    assert!(message.contains("not found"), "{message}");
    let human = human(&d).await;
    assert_eq!(
        pending_of(&human, "deploy:*").await,
        0,
        "nothing was created"
    );
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_tasks_gets_a_task_that_outlives_the_bounded_wait_and_ends_with_the_decision() {
    let d = deployment().await;
    let human = human(&d).await;
    let host = ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::new("task-host", "1.0"),
    );
    let mcp = tokio::time::timeout(
        CALL_LIMIT,
        host.serve(spawn(&first(&d), &[], &["--wait", "1s"])),
    )
    .await
    .expect("initialized within the bound")
    .expect("the MCP handshake succeeds");

    let arguments = json!({"approval_type": "deploy:mcp-task", "summary": "Deploy as a task"});
    let Value::Object(arguments) = arguments else {
        unreachable!()
    };
    let started = Instant::now();
    let response = tokio::time::timeout(
        CALL_LIMIT,
        mcp.call_tool_once(
            CallToolRequestParams::new("request_approval").with_arguments(arguments),
        ),
    )
    .await
    .expect("answered within the bound")
    .expect("tools/call");
    let CallToolResponse::Task(created) = response else {
        panic!("a host with tasks gets a task, got {response:?}");
    };
    assert!(started.elapsed() < PROMPTLY, "the task is returned at once");
    let task_id = created.task.task_id.clone();

    // The human decides after longer than --wait: a task is not cut by it.
    let pending = until_pending(&human, "deploy:mcp-task", 1).await;
    assert_eq!(pending[0].agent_id, "mcp:task-host");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = mcp
        .peer()
        .get_task(GetTaskParams::new(task_id.clone()))
        .await
        .expect("tasks/get");
    assert!(
        !running.task.status().is_terminal(),
        "still waiting for the human"
    );
    human
        .approve(&pending[0].id, "ship it")
        .await
        .expect("approve");

    let end = Instant::now() + PROMPTLY;
    let done = loop {
        let info = mcp
            .peer()
            .get_task(GetTaskParams::new(task_id.clone()))
            .await
            .expect("tasks/get");
        if info.task.status().is_terminal() {
            break info.task;
        }
        assert!(
            Instant::now() < end,
            "the task did not end after the decision"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let TaskPayload::Completed { result } = done.payload else {
        panic!("the task completes, got {:?}", done.payload);
    };
    let result: CallToolResult =
        serde_json::from_value(Value::Object(result)).expect("a tool result");
    let output = result.structured_content.expect("structured content");
    assert_eq!(output["status"], "approved");
    assert_eq!(output["id"], pending[0].id.as_str());
    assert_eq!(output["reason"], "ship it");
    let _ = tokio::time::timeout(PROMPTLY, mcp.cancel()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approvald_that_accepts_but_never_answers_is_a_tool_error_within_the_call_bound() {
    // The kernel completes the TCP handshake; nothing ever speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = format!("http://{}", silent.local_addr().expect("address"));
    let s = session(&server, &[], &["--wait", "30s"]).await;
    let started = Instant::now();
    let message = s
        .tool_error(
            "request_approval",
            json!({"approval_type": "deploy:mcp-silent", "summary": "Deploy"}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "took {:?}",
        started.elapsed()
    );
    assert!(message.contains("did not answer"), "{message}");
    assert!(message.contains("do not perform"), "{message}");
    s.close().await;
    drop(silent);
}
