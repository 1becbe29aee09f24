//! `approvalctl`, the real binary, against live `approvald` replicas on a
//! real Redis: every subcommand, every documented exit code, the watch view.

mod common;

use std::process::Stdio;
use std::time::Duration;

use approval_client::{ApprovalRequest, Status};
use approval_tests::{Deployment, PROMPTLY};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Generous bound for one CLI run (process start included).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// `approvalctl --server <server>`, with no APPROVAL_* from the outside.
fn approvalctl(server: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_approvalctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("APPROVAL_") {
            c.env_remove(k);
        }
    }
    c.arg("--server")
        .arg(server)
        .env("USER", "tester")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

async fn run_strings(server: &str, args: &[String]) -> Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(server, &args).await
}

async fn run(server: &str, args: &[&str]) -> Run {
    let out = tokio::time::timeout(RUN_LIMIT, approvalctl(server).args(args).output())
        .await
        .expect("approvalctl finished within the bound")
        .expect("approvalctl runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts `approvalctl request ...` and returns it with the id it announced.
async fn start_request(server: &str, args: &[&str]) -> (Child, String) {
    let args: Vec<String> = std::iter::once("request")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    start_request_with(server, &args).await
}

/// Starts `approvalctl <args>` (a `request`) and returns it with the id it
/// announced on stderr.
async fn start_request_with(server: &str, args: &[String]) -> (Child, String) {
    let mut child = approvalctl(server)
        .args(args)
        .spawn()
        .expect("approvalctl runs");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let first = tokio::time::timeout(PROMPTLY, lines.next_line())
        .await
        .expect("the request is announced")
        .expect("stderr readable")
        .expect("a line");
    // "waiting for approval <ID> (<type>), expires in 5m"
    let id = first
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no id in {first:?}"))
        .to_string();
    // Keep draining stderr so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, id)
}

async fn finish(mut child: Child) -> Run {
    let mut stdout = child.stdout.take().expect("piped");
    let status = tokio::time::timeout(RUN_LIMIT, child.wait())
        .await
        .expect("the request ended within the bound")
        .expect("wait");
    let mut text = String::new();
    stdout.read_to_string(&mut text).await.expect("stdout");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: text,
        stderr: String::new(),
    }
}

fn servers(d: &Deployment) -> (String, String) {
    (d.replicas[0].endpoint(), d.replicas[1].endpoint())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_0_once_approved_from_a_second_terminal() {
    let d = deployment().await;
    let (a, b) = servers(&d);
    let (request, id) = start_request(
        &a,
        &[
            "--output",
            "json",
            "--type",
            "deploy:production",
            "--context",
            r#"{"service": "billing", "version": "1.4.2"}"#,
            "--label",
            "team=payments",
            "--timeout",
            "2m",
        ],
    )
    .await;

    let approved = run(
        &b,
        &[
            "--output",
            "json",
            "approve",
            &id,
            "--reason",
            "lgtm",
            "--responder",
            "alice",
        ],
    )
    .await;
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert_eq!(approved.json()["status"], "approved");

    let done = finish(request).await;
    assert_eq!(done.code, 0, "approved means exit 0");
    let decision = serde_json::from_str::<Value>(&done.stdout).expect("a JSON decision");
    assert_eq!(decision["outcome"], "approved");
    assert_eq!(decision["decided_by"], "alice");
    assert_eq!(decision["reason"], "lgtm");
    assert_eq!(decision["approval"]["id"], id.as_str());
    assert_eq!(decision["approval"]["context"]["version"], "1.4.2");
    assert_eq!(decision["approval"]["labels"]["team"], "payments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_1_when_rejected() {
    let d = deployment().await;
    let (a, b) = servers(&d);
    let (request, id) = start_request(&a, &["--type", "db:drop"]).await;

    let refused = run(&b, &["reject", &id]).await;
    assert_eq!(refused.code, 4, "a rejection needs a reason");
    assert!(refused.stderr.contains("--reason"), "{}", refused.stderr);

    let rejected = run(&b, &["reject", &id, "--reason", "not on a Friday"]).await;
    assert_eq!(rejected.code, 0, "{}", rejected.stderr);
    assert!(
        rejected.stdout.contains("rejected by tester"),
        "{}",
        rejected.stdout
    );

    let done = finish(request).await;
    assert_eq!(done.code, 1);
    assert!(
        done.stdout.contains("rejected by tester: not on a Friday"),
        "{}",
        done.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_2_when_nobody_decides_in_time() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let done = run(
        &a,
        &[
            "--output",
            "json",
            "request",
            "--type",
            "spend",
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(done.code, 2, "{}", done.stderr);
    assert_eq!(done.json()["outcome"], "expired");
    assert_eq!(done.json()["approval"]["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_3_when_cancelled() {
    let d = deployment().await;
    let (a, b) = servers(&d);
    let (request, id) = start_request(&a, &["--type", "rotate-keys"]).await;
    let cancelled = run(
        &b,
        &["--output", "json", "cancel", &id, "--reason", "superseded"],
    )
    .await;
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    assert_eq!(cancelled.json()["status"], "cancelled");
    let done = finish(request).await;
    assert_eq!(done.code, 3);
    assert!(done.stdout.contains("cancelled"), "{}", done.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_130_on_ctrl_c_and_withdraws_the_approval() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let (request, id) = start_request(&a, &["--type", "interrupted"]).await;
    let pid = request.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let done = finish(request).await;
    assert_eq!(done.code, 130, "Ctrl-C is exit code 130");
    let c = client(&d.replicas[1], "alice").await;
    let after = c.get(&id).await.expect("get");
    assert_eq!(
        after.status,
        Status::Cancelled,
        "nobody waits any more, so the approval is withdrawn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_error_exits_9() {
    // A gRPC server that is not an approval service (a replica's health-only
    // port) answers UNIMPLEMENTED: none of the specific codes fits.
    let d = Deployment::start_with(approval_tests::Store::Memory, 1, |c| {
        c.health_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let health = format!(
        "http://127.0.0.1:{}",
        d.replicas[0].health_port.expect("health port")
    );
    let other = run(&health, &["list"]).await;
    assert_eq!(other.code, 9, "{}", other.stderr);
    assert!(other.stderr.starts_with("error:"), "{}", other.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_show_approvals_as_json_and_as_tables() {
    let d = deployment().await;
    let (a, b) = servers(&d);
    let c = client(&d.replicas[0], "alice").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let created = c
            .create(ApprovalRequest::new("listed").label("n", i.to_string()))
            .await
            .expect("create");
        ids.push(created.approval.id);
    }
    c.approve(&ids[0], "first one").await.expect("approve");
    c.create(ApprovalRequest::new("unlisted"))
        .await
        .expect("create");

    let got = run(&b, &["--output", "json", "get", &ids[0]]).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    let got = got.json();
    assert_eq!(got["id"], ids[0].as_str());
    assert_eq!(got["status"], "approved");
    assert_eq!(got["decided_by"], "alice");
    assert_eq!(got["labels"]["n"], "0");

    let table = run(&b, &["get", &ids[1]]).await;
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("pending") && table.stdout.contains(&ids[1]),
        "{}",
        table.stdout
    );

    let listed = run(
        &a,
        &[
            "-o", "json", "list", "--status", "pending", "--type", "listed", "--limit", "5",
        ],
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed: Vec<String> = listed
        .json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].clone(), ids[1].clone()],
        "pending ones, newest first"
    );

    let limited = run(&a, &["-o", "json", "list", "--limit", "2"]).await;
    assert_eq!(limited.json().as_array().map(Vec::len), Some(2));

    let table = run(&a, &["list", "--type", "listed"]).await;
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("STATUS"), "{}", table.stdout);
    for id in &ids {
        assert!(table.stdout.contains(id.as_str()), "{}", table.stdout);
    }
    assert!(table.stdout.contains("first one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_with_documented_codes_and_say_what_to_do() {
    let d = deployment().await;
    let (a, b) = servers(&d);

    let help = run(&a, &["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);

    let bad_flag = run(&a, &["list", "--colour"]).await;
    assert_eq!(
        bad_flag.code, 4,
        "usage errors are 4, not clap's 2 (which means expired)"
    );

    let bad_type = run(&a, &["request", "--type", "has spaces"]).await;
    assert_eq!(bad_type.code, 4);
    assert!(
        bad_type.stderr.contains("approval_type") && bad_type.stderr.contains("--type"),
        "{}",
        bad_type.stderr
    );

    let bad_context = run(&a, &["request", "--type", "x", "--context", "{not json"]).await;
    assert_eq!(bad_context.code, 4);
    assert!(
        bad_context.stderr.contains("not valid JSON"),
        "{}",
        bad_context.stderr
    );

    let missing = run(&a, &["get", &unknown_id()]).await;
    assert_eq!(missing.code, 5, "{}", missing.stderr);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);

    let c = client(&d.replicas[0], "alice").await;
    let id = c
        .create(ApprovalRequest::new("conflict"))
        .await
        .expect("create")
        .approval
        .id;
    assert_eq!(
        run(&a, &["approve", &id, "--responder", "alice"])
            .await
            .code,
        0
    );
    assert_eq!(
        run(&b, &["approve", &id, "--responder", "alice"])
            .await
            .code,
        0,
        "an identical retry is fine"
    );
    let late = run(&b, &["reject", &id, "--reason", "no", "--responder", "bob"]).await;
    assert_eq!(late.code, 6, "{}", late.stderr);
    assert!(
        late.stderr.contains("alice"),
        "names the winner: {}",
        late.stderr
    );
    assert_eq!(c.get(&id).await.expect("get").status, Status::Approved);

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let unreachable = run(&nowhere, &["list"]).await;
    assert_eq!(unreachable.code, 7);
    assert!(
        unreachable.stderr.contains(&nowhere),
        "names the address: {}",
        unreachable.stderr
    );
    assert!(
        unreachable.stderr.contains("--server"),
        "says what to do: {}",
        unreachable.stderr
    );

    let completions = run(&a, &["completions", "bash"]).await;
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("approvalctl"));
}

/// The next JSON line of a running `watch --output json`.
async fn next_json(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(PROMPTLY, lines.next_line())
        .await
        .expect("a watch line within the bound")
        .expect("stdout readable")
        .expect("watch still running");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_the_live_queue_as_json_lines() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let c = client(&d.replicas[1], "alice").await;
    let before = c
        .create(ApprovalRequest::new("deploy:api"))
        .await
        .expect("create")
        .approval;
    c.create(ApprovalRequest::new("other"))
        .await
        .expect("create");

    let mut watch = approvalctl(&a)
        .args(["--output", "json", "watch", "--type", "deploy:*"])
        .spawn()
        .expect("approvalctl runs");
    let mut lines = BufReader::new(watch.stdout.take().expect("piped")).lines();

    let first = next_json(&mut lines).await;
    assert_eq!(first["event"], "added");
    assert_eq!(first["approval"]["id"], before.id.as_str());
    assert_eq!(next_json(&mut lines).await["event"], "synced");

    let live = c
        .create(ApprovalRequest::new("deploy:web"))
        .await
        .expect("create")
        .approval;
    let added = next_json(&mut lines).await;
    assert_eq!(added["event"], "added");
    assert_eq!(added["approval"]["id"], live.id.as_str());
    assert_eq!(added["approval"]["status"], "pending");

    c.approve(&before.id, "ship it").await.expect("approve");
    let resolved = next_json(&mut lines).await;
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["approval"]["id"], before.id.as_str());
    assert_eq!(resolved["approval"]["status"], "approved");
    assert_eq!(resolved["approval"]["decided_by"], "alice");

    watch.kill().await.expect("stop watch");
}

/// The next plain-text line of a running `watch` whose stdout is a pipe.
async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(PROMPTLY, lines.next_line())
        .await
        .expect("a watch line within the bound")
        .expect("stdout readable")
        .expect("watch still running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_says_it_re_synced_and_shows_a_fresh_snapshot_after_the_store_is_wiped() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let c = client(&d.replicas[1], "alice").await;
    let gone = c
        .create(ApprovalRequest::new("deploy:api"))
        .await
        .expect("create")
        .approval;
    let mut watch = approvalctl(&a)
        .arg("watch")
        .spawn()
        .expect("approvalctl runs");
    let mut lines = BufReader::new(watch.stdout.take().expect("piped")).lines();
    let first = next_line(&mut lines).await;
    assert!(
        first.starts_with("pending") && first.contains(&gone.id),
        "{first}"
    );
    assert!(next_line(&mut lines).await.starts_with("synced"));

    let mut conn = d.redis.as_ref().expect("redis").connection();
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).expect("FLUSHALL");

    let said = next_line(&mut lines).await;
    assert!(said.starts_with("re-synced"), "{said}");
    // The fresh snapshot: the wiped approval is not in it.
    let next = next_line(&mut lines).await;
    assert!(next.starts_with("synced"), "{next}");
    watch.kill().await.expect("stop watch");
}

/// Runs `approvalctl <args>` in a pseudo-terminal (`script`, from Debian's
/// bsdutils, which ./scripts/test installs), returning the child.
fn in_terminal(server: &str, args: &str) -> Child {
    let present = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        present,
        "the terminal test needs `script`: apt-get install -y bsdutils"
    );
    let command = format!(
        "stty cols 160 rows 40 2>/dev/null; {} --server {server} {args}",
        env!("CARGO_BIN_EXE_approvalctl")
    );
    let child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("USER", "tester")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script runs");
    child
}

/// Reads the terminal's output until it contains every one of `wanted`.
async fn read_until(out: &mut (impl tokio::io::AsyncRead + Unpin), wanted: &[&str]) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if wanted.iter().all(|w| text.contains(w)) {
            return text;
        }
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, out.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => panic!("the terminal never showed {wanted:?}; it showed:\n{text}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_watch_draws_a_table_and_request_shows_the_time_left() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let c = client(&d.replicas[1], "alice").await;
    let waiting = c
        .create(
            ApprovalRequest::new("deploy:tty").context(serde_json::json!({"service": "billing"})),
        )
        .await
        .expect("create")
        .approval;

    let mut watch = in_terminal(&a, "watch");
    let mut screen = watch.stdout.take().expect("piped");
    let drawn = read_until(
        &mut screen,
        &["1 pending (live)", "deploy:tty", &waiting.id],
    )
    .await;
    assert!(drawn.contains("TYPE") && drawn.contains("LEFT"), "{drawn}");
    c.approve(&waiting.id, "ok").await.expect("approve");
    read_until(&mut screen, &["0 pending (live)", "approved by alice"]).await;
    watch.kill().await.expect("stop watch");

    let mut request = in_terminal(&a, "request --type deploy:tty --timeout 2s");
    let mut screen = request.stdout.take().expect("piped");
    read_until(&mut screen, &["left"]).await;
    let status = tokio::time::timeout(RUN_LIMIT, request.wait())
        .await
        .expect("the request ends")
        .expect("wait");
    assert_eq!(status.code(), Some(2), "expired, through the terminal too");
}

// ---- a secured server: TLS, client certificates, bearer tokens ---------------

/// A CA, a server certificate for `localhost`, and a client certificate for
/// `oncall`, as PEM files in `dir`.
fn write_pki(dir: &std::path::Path) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "approvalctl test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    for (name, sans) in [
        ("server", vec!["localhost".to_string()]),
        ("oncall", vec![]),
    ] {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(sans).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).expect("cert");
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_tls_client_certificates_and_bearer_tokens_to_a_secured_server() {
    let dir = std::env::temp_dir().join(format!("approvalctl-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_pki(&dir);
    let auth = format!(
        "[[tokens]]\nprincipal = \"release-bot\"\nroles = [\"requester\"]\nsha256 = {:?}\n\n\
         [certificates]\nprincipal = \"cn\"\n[[certificates.clients]]\nprincipal = \"oncall\"\nroles = [\"approver\"]\n",
        approvald::auth::hash_token("tok-bot")
    );
    std::fs::write(dir.join("auth.toml"), auth).expect("write");
    let d = Deployment::start_with(approval_tests::Store::Redis, 1, |c| {
        c.auth_config = Some(dir.join("auth.toml"));
        c.tls_cert_file = Some(dir.join("server.pem"));
        c.tls_key_file = Some(dir.join("server.key"));
        c.tls_client_ca_file = Some(dir.join("ca.pem"));
    })
    .await;
    let server = format!("https://127.0.0.1:{}", d.replicas[0].port);
    let ca = dir.join("ca.pem").display().to_string();
    let tls: Vec<String> = ["--ca-cert", &ca, "--tls-domain", "localhost"]
        .map(String::from)
        .to_vec();
    let with = |extra: &[&str]| -> Vec<String> {
        tls.iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };

    // The agent authenticates with a token...
    let args = with(&[
        "--token",
        "tok-bot",
        "request",
        "--type",
        "deploy:tls",
        "--timeout",
        "2m",
    ]);
    let (request, id) = start_request_with(&server, &args).await;

    // ...the human with a client certificate; identity comes from it.
    let cert = dir.join("oncall.pem").display().to_string();
    let key = dir.join("oncall.key").display().to_string();
    let args = with(&[
        "--client-cert",
        &cert,
        "--client-key",
        &key,
        "-o",
        "json",
        "approve",
        &id,
    ]);
    let approved = run_strings(&server, &args).await;
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert_eq!(approved.json()["decided_by"], "oncall");
    assert_eq!(approved.json()["requester"], "release-bot");
    assert_eq!(finish(request).await.code, 0);

    let no_token = run_strings(&server, &with(&["list"])).await;
    assert_eq!(no_token.code, 8, "{}", no_token.stderr);
    assert!(no_token.stderr.contains("--token"), "{}", no_token.stderr);

    let untrusted = run(&server, &["--token", "tok-bot", "list"]).await;
    assert_eq!(untrusted.code, 7, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("--ca-cert"),
        "{}",
        untrusted.stderr
    );

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_request_survives_its_server_restarting_and_exits_with_the_decision() {
    let redis = approval_tests::RedisServer::start();
    let prefix = format!("cli-{}", uuid::Uuid::now_v7().simple());
    let port = free_port();
    let mut first = replica_on(port, &redis, &prefix).await;
    let server = first.endpoint();
    let (request, id) =
        start_request(&server, &["--type", "deploy:restart", "--timeout", "2m"]).await;

    first.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = replica_on(port, &redis, &prefix).await;
    let approved = run(
        &second.endpoint(),
        &["approve", &id, "--reason", "after the restart"],
    )
    .await;
    assert_eq!(approved.code, 0, "{}", approved.stderr);

    let done = finish(request).await;
    assert_eq!(done.code, 0, "the blip never reached the script");
    assert!(
        done.stdout
            .contains("approved by tester: after the restart"),
        "{}",
        done.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_print_control_and_invisible_characters_escaped() {
    let d = deployment().await;
    let (a, _) = servers(&d);
    let c = client(&d.replicas[0], "alice").await;
    // The server keeps `context` as given (it is data), so a hostile one
    // reaches the tables: a terminal reset, a bell, a bidi override, a
    // zero-width space.
    let hostile = "safe\u{1b}c\u{7}\u{202e}txt.exe\u{200b}";
    let created = c
        .create(ApprovalRequest::new("term:hostile").context(serde_json::json!({"note": hostile})))
        .await
        .expect("create")
        .approval;
    let raw = |text: &str| text.contains(['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}']);

    let table = run(&a, &["get", &created.id]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(!raw(&table.stdout), "{:?}", table.stdout);
    assert!(
        table.stdout.contains("\\u{202e}txt.exe\\u{200b}"),
        "{}",
        table.stdout
    );

    let mut watch = approvalctl(&a)
        .args(["watch", "--type", "term:*"])
        .spawn()
        .expect("approvalctl runs");
    let mut lines = BufReader::new(watch.stdout.take().expect("piped")).lines();
    let line = tokio::time::timeout(PROMPTLY, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    assert!(line.contains(&created.id), "{line:?}");
    assert!(!raw(&line), "{line:?}");
    assert!(line.contains("\\u{202e}"), "{line:?}");
    watch.kill().await.expect("stop watch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_timeout_gets_the_servers_default_and_sends_a_key() {
    // A default no client would pick: a deadline that follows it comes from
    // the server's --default-timeout, not from approvalctl.
    let server_default = Duration::from_secs(4321);
    let d = Deployment::start_with(approval_tests::Store::Memory, 1, |c| {
        c.default_timeout = server_default
    })
    .await;
    let server = d.replicas[0].endpoint();
    let (request, id) = start_request(&server, &["--type", "deploy:default"]).await;
    let watcher = client(&d.replicas[0], "alice").await;
    let waiting = watcher.get(&id).await.expect("get");
    let open = waiting
        .deadline
        .duration_since(waiting.created_at)
        .expect("deadline after creation");
    assert!(
        open.abs_diff(server_default) <= Duration::from_secs(1),
        "open for {open:?}, server default {server_default:?}"
    );
    assert!(!waiting.idempotency_key.is_empty(), "a key is always sent");
    watcher.cancel(&id, "test over").await.expect("cancel");
    assert_eq!(finish(request).await.code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_without_responder_decides_as_the_os_user() {
    let d = deployment().await;
    let (a, b) = servers(&d);
    // $USER wins when set.
    let (request, id) = start_request(&a, &["--type", "deploy:who"]).await;
    let approved = run(&b, &["--output", "json", "approve", &id]).await;
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert_eq!(approved.json()["decided_by"], "tester");
    assert_eq!(finish(request).await.code, 0);

    // With no $USER, $LOGNAME or $USERNAME (a container, cron), the
    // system's account name, as `id -un` prints it.
    let account = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    let account = String::from_utf8_lossy(&account.stdout).trim().to_string();
    let (request, id) = start_request(&a, &["--type", "deploy:who"]).await;
    let out = tokio::time::timeout(
        RUN_LIMIT,
        approvalctl(&b)
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("USERNAME")
            .args(["--output", "json", "reject", &id, "--reason", "not now"])
            .output(),
    )
    .await
    .expect("within the bound")
    .expect("approvalctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rejected: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(rejected["decided_by"], account.as_str());
    assert_eq!(finish(request).await.code, 1);
}

const TWO_APPROVERS: &str = r#"
[[policies]]
approval_types = ["deploy:production"]
required_approvals = 2

[[policies]]
approval_types = ["canary:*"]
on_timeout = "approve"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_records_a_vote_get_shows_the_votes_and_expect_digest_guards_the_context() {
    let (d, _dir) = deployment_with_policies(TWO_APPROVERS).await;
    let (a, b) = servers(&d);
    let c = client(&d.replicas[0], "bot").await;
    let created = c
        .create(ApprovalRequest::new("deploy:production"))
        .await
        .expect("create")
        .approval;
    assert_eq!(created.required_approvals, 2);
    let id = created.id.as_str();

    // A digest other than the approval's: refused, exit 6, nothing recorded.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let refused = run(
        &a,
        &[
            "approve",
            id,
            "--responder",
            "alice",
            "--expect-digest",
            &wrong,
        ],
    )
    .await;
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(refused.stderr.contains("context"), "{}", refused.stderr);
    assert!(c.get(id).await.expect("get").votes.is_empty());

    let first = run(
        &a,
        &[
            "approve",
            id,
            "--responder",
            "alice",
            "--reason",
            "diff read",
            "--expect-digest",
            &created.context_digest,
        ],
    )
    .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stdout.contains("pending (1 of 2 approvals)"),
        "{}",
        first.stdout
    );
    // alice changing her mind: exit 6, saying why.
    let changed = run(
        &b,
        &["reject", id, "--responder", "alice", "--reason", "no"],
    )
    .await;
    assert_eq!(changed.code, 6, "{}", changed.stderr);
    assert!(
        changed.stderr.contains("already voted"),
        "{}",
        changed.stderr
    );

    let table = run(&b, &["get", id]).await;
    assert!(table.stdout.contains("1 of 2 needed"), "{}", table.stdout);
    assert!(
        table.stdout.contains("approve by alice") && table.stdout.contains("diff read"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains(&created.context_digest),
        "{}",
        table.stdout
    );

    let second = run(&b, &["approve", id, "--responder", "bob"]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let json = run(&a, &["-o", "json", "get", id]).await.json();
    assert_eq!(json["status"], "approved");
    assert_eq!(json["decided_by"], "bob");
    assert_eq!(json["required_approvals"], 2);
    let voters: Vec<&str> = json["votes"]
        .as_array()
        .expect("votes")
        .iter()
        .map(|v| v["voter"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(voters, ["alice", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_exits_0_when_nobody_objects_before_the_deadline_of_an_approve_on_timeout_policy() {
    let (d, _dir) = deployment_with_policies(TWO_APPROVERS).await;
    let (a, _) = servers(&d);
    let done = run(
        &a,
        &[
            "-o",
            "json",
            "request",
            "--type",
            "canary:web",
            "--timeout",
            "1s",
        ],
    )
    .await;
    assert_eq!(done.code, 0, "the gate proceeds: {}", done.stderr);
    assert_eq!(done.json()["outcome"], "expired");
    assert_eq!(done.json()["approval"]["on_timeout"], "approve");
}

/// `approvalctl webhooks failed` and `webhooks retry`: an admin lists the
/// deliveries given up on and sends one again; others are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_failed_lists_dead_letters_and_retry_sends_one_again() {
    use approval_tests::webhooks::{
        as_, config_file, endpoint, until_received, Answer, Receiver, ADMIN, AGENT, HUMAN,
    };
    let receiver = Receiver::start(Answer::Fail).await;
    let file = config_file(&endpoint(
        "down",
        &receiver,
        "retry_for = \"2s\"\nevents = [\"approval.created\"]",
    ));
    let d = Deployment::start_with(approval_tests::Store::Redis, 2, |c| {
        c.auth_config = Some(file.to_path_buf())
    })
    .await;
    let server = d.replicas[0].endpoint();
    let created = approval_tests::connect(d.replicas[1].port)
        .await
        .create_approval(as_(AGENT, approval_tests::create_request("hook:deploy")))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval");
    let failed = |token: &'static str| {
        let server = server.clone();
        async move {
            run(
                &server,
                &["--token", token, "-o", "json", "webhooks", "failed"],
            )
            .await
        }
    };
    let mut listed = Value::Null;
    for _ in 0..150 {
        let r = failed(ADMIN).await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        listed = r.json();
        if listed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead = &listed[0];
    assert_eq!(dead["endpoint"], "down", "{listed}");
    assert_eq!(dead["event_type"], "approval.created");
    assert_eq!(dead["approval_id"], created.id.as_str());
    assert!(dead["attempts"].as_u64().unwrap_or(0) >= 2, "{listed}");
    assert!(
        dead["last_error"].as_str().unwrap_or("").contains("503"),
        "{listed}"
    );
    let id = dead["id"].as_str().expect("an id").to_string();

    let refused = failed(HUMAN).await;
    assert_eq!(refused.code, 8, "a non-admin is denied: {}", refused.stderr);
    assert!(refused.stderr.contains("admin"), "{}", refused.stderr);

    receiver.answer(Answer::Ok);
    let retried = run(&server, &["--token", ADMIN, "webhooks", "retry", &id]).await;
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert!(
        until_received(&receiver, PROMPTLY, |r| r
            .iter()
            .any(|r| r.id == id && r.status == 204))
        .await,
        "the retried delivery never arrived"
    );
    let after = failed(ADMIN).await;
    assert_eq!(
        after.json(),
        serde_json::json!([]),
        "no longer a dead letter"
    );
    let again = run(&server, &["--token", ADMIN, "webhooks", "retry", &id]).await;
    assert_eq!(
        again.code, 5,
        "not a dead letter any more: {}",
        again.stderr
    );
}
