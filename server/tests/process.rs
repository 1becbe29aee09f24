//! The real `approvald` binary, started the way a user starts it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use approval_api::v1;
use approval_api::v1::approval_service_client::ApprovalServiceClient;
use approval_testkit::{cpu_time, free_port, metric_value, scrape_metrics, Listen, ServerProcess};
use tonic_types::StatusExt;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_approvald"))
}

/// `approvald` on free loopback ports with `args` besides; the process and
/// its API address.
fn start(args: &[&str]) -> (ServerProcess, String) {
    let (process, listen) = ServerProcess::on_loopback(bin(), args);
    (process, listen.addr())
}

/// A client of the API at `addr` (`host:port`).
async fn client(addr: &str) -> ApprovalServiceClient<tonic::transport::Channel> {
    ApprovalServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// The smallest create: an approval of type `deploy`.
fn deploy() -> v1::CreateApprovalRequest {
    v1::CreateApprovalRequest {
        approval_type: "deploy".into(),
        ..Default::default()
    }
}

/// `message` with `token` as its bearer credentials.
fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn with_no_redis_url_it_runs_on_the_memory_store_says_so_and_stops_on_sigterm() {
    let (mut p, listen) = start(&[]);
    let store_line = p.line_with("store:");
    assert!(store_line.contains("in-memory"), "{store_line}");
    p.line_with("listening");

    let mut client = client(&listen).await;
    let created = client
        .create_approval(deploy())
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let id = created.id.clone();
    let mut waiting = client.clone();
    let waiter = tokio::spawn(async move {
        waiting
            .await_approval(v1::AwaitApprovalRequest { id })
            .await
    });
    client
        .respond(v1::RespondRequest {
            id: created.id,
            decision: v1::Decision::Approve as i32,
            reason: String::new(),
            responder: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(waiter.await.unwrap().unwrap().into_inner().approved);

    let status = tokio::task::spawn_blocking(move || p.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// `approvald --insecure-allow-unauthenticated` on these addresses.
fn start_insecure(listen: &str, metrics: &str) -> ServerProcess {
    let insecure = "--insecure-allow-unauthenticated";
    let args = ["--listen", listen, "--metrics-listen", metrics, insecure];
    ServerProcess::start(bin(), &args)
}

/// Runs approvald with `args` expecting it to refuse to start: the exit
/// code and everything it printed.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("APPROVALD_INSECURE_ALLOW_UNAUTHENTICATED")
        .env_remove("APPROVALD_AUTH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("approvald started with {args:?} instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn it_refuses_a_network_address_without_auth_unless_told_insecure() {
    let (code, text) = refused(&["--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--insecure-allow-unauthenticated"), "{text}");

    // Told insecure: it starts on every interface, warns, and serves
    // unauthenticated calls.
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut p = start_insecure(&listen, &metrics);
    let warning = p.line_with("authentication is OFF");
    assert!(warning.contains("UNAUTHENTICATED"), "{warning}");
    p.line_with("listening");
    let mut client = client(&format!("127.0.0.1:{port}")).await;
    let created = client
        .create_approval(deploy())
        .await
        .expect("an unauthenticated call is served");
    assert_eq!(
        created.into_inner().approval.unwrap().requester,
        "anonymous"
    );
    let status = tokio::task::spawn_blocking(move || p.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn without_auth_metrics_and_health_stay_on_loopback_unless_told_insecure() {
    for flag in ["--metrics-listen", "--health-listen"] {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        if flag != "--metrics-listen" {
            args.extend(["--metrics-listen", "127.0.0.1:0"]);
        }
        args.extend([flag, "0.0.0.0:0"]);
        let (code, text) = refused(&args);
        assert_eq!(code, Some(2), "{flag}: {text}");
        assert!(
            text.contains(flag) && text.contains("--insecure-allow-unauthenticated"),
            "{flag}: {text}"
        );
    }

    // Told insecure: metrics are served on every interface, with a warning.
    let metrics_port = free_port();
    let metrics = format!("0.0.0.0:{metrics_port}");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut p = start_insecure(&listen, &metrics);
    let warning = p.line_with("metrics address is not loopback");
    assert!(warning.contains("approval types and counts"), "{warning}");
    p.line_with("listening");
    let scrape = tokio::task::spawn_blocking(move || scrape_metrics(metrics_port))
        .await
        .unwrap()
        .expect("metrics are served");
    assert!(
        scrape.starts_with("HTTP/1.0 200") || scrape.starts_with("HTTP/1.1 200"),
        "{scrape}"
    );
    let status = tokio::task::spawn_blocking(move || p.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_configuration_is_refused_naming_the_flag() {
    let out = Command::new(bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--default-timeout",
            "30d",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--default-timeout"), "{text}");

    let out = Command::new(bin())
        .args(["--retention", "forever"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--retention"));
}

#[test]
fn a_bad_redis_url_is_a_start_error_saying_what_to_fix_without_the_password() {
    let cases = [
        ("nonsense://127.0.0.1:6379", "not a Redis URL"),
        (
            "redis+sentinel://app:s3cret@127.0.0.1:26379",
            "no master name after the sentinels",
        ),
        (
            "redis+cluster://127.0.0.1:7000/1",
            "a Redis Cluster has one database (0)",
        ),
    ];
    for (url, why) in cases {
        let out = Command::new(bin())
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--redis-url", url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {text}");
        assert!(text.contains("approvald cannot start"), "{url}: {text}");
        assert!(text.contains("--redis-url"), "{url}: {text}");
        assert!(text.contains(why), "{url}: {text}");
        assert!(
            text.contains("redis://HOST:6379/0"),
            "an example to follow: {text}"
        );
        assert!(
            !text.contains("s3cret"),
            "the password is not shown: {text}"
        );
        assert!(
            !text.contains("invalid argument"),
            "not a request error: {text}"
        );
    }
}

#[test]
fn json_logs_are_one_json_object_per_line() {
    let (mut p, _) = start(&["--log-format", "json"]);
    let line = p.line_with("store:");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(parsed["level"], "INFO");
    assert!(p.terminate().success());
}

#[test]
fn help_lists_every_setting_with_its_environment_variable() {
    use clap::CommandFactory;
    let out = Command::new(bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // The settings are whatever clap knows, so a new flag cannot drift out
    // of this check.
    let command = approvald::config::Config::command();
    let settings: Vec<_> = command
        .get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        // Hidden settings are for tests only (a simulated clock skew).
        .filter(|a| !a.is_hide_set())
        .collect();
    assert!(
        settings.len() > 30,
        "only {} settings found",
        settings.len()
    );
    // --help prints each option as a block: its `--flag` line, then its
    // description ending in `[env: NAME=...]`.
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            blocks.push(line.to_string());
        } else if let Some(block) = blocks.last_mut() {
            block.push('\n');
            block.push_str(line);
        }
    }
    for arg in settings {
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{} has no --flag", arg.get_id()));
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} has no environment variable"))
            .to_string_lossy()
            .to_string();
        assert_eq!(
            env,
            format!("APPROVALD_{}", long.to_uppercase().replace('-', "_")),
            "--{long}"
        );
        let flag = format!("--{long}");
        let block = blocks
            .iter()
            .find(|b| {
                b.lines().next().is_some_and(|l| {
                    l.split_whitespace()
                        .any(|w| w.trim_end_matches(',') == flag)
                })
            })
            .unwrap_or_else(|| panic!("--{long} missing from --help:\n{help}"));
        assert!(
            block.contains(&format!("[env: {env}")),
            "--{long} does not show {env} in --help:\n{block}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_auth_file_and_a_broken_one_keeps_the_old() {
    let dir = std::env::temp_dir().join(format!("approvald-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    let audit = dir.join("audit.log");
    let entry = |principal: &str, token: &str| {
        format!(
            "[[tokens]]\nprincipal = {principal:?}\nroles = [\"requester\", \"approver\"]\nsha256 = {:?}\n",
            approvald::auth::hash_token(token)
        )
    };
    std::fs::write(&file, entry("first", "token-one")).unwrap();
    let (p, listen) = start(&[
        "--auth-config",
        file.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--auth-reload-interval",
        "100ms",
    ]);
    p.line_with("listening");
    let create = |token: &'static str| {
        let listen = listen.clone();
        async move {
            client(&listen)
                .await
                .create_approval(bearer(token, deploy()))
                .await
        }
    };
    assert!(create("token-one").await.is_ok());
    assert_eq!(
        create("token-two").await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    std::fs::write(
        &file,
        entry("first", "token-one") + &entry("second", "token-two"),
    )
    .unwrap();
    let hup = || p.signal("-HUP");
    hup();
    p.line_with("configuration file reloaded");
    let created = create("token-two")
        .await
        .expect("the new token works after SIGHUP");
    assert_eq!(created.into_inner().approval.unwrap().requester, "second");

    std::fs::write(&file, "this is not toml [[[").unwrap();
    hup();
    p.line_with("NOT reloaded");
    assert!(
        create("token-two").await.is_ok(),
        "a broken file keeps the previous one in force"
    );

    // A changed file is picked up without a signal (a Kubernetes Secret
    // update swaps the mounted file), within the reload interval.
    std::fs::write(&file, entry("third", "token-three")).unwrap();
    let line = p.line_with("configuration file reloaded");
    assert!(line.contains("the file changed"), "{line}");
    assert!(
        create("token-three").await.is_ok(),
        "the changed file is in force"
    );
    assert_eq!(
        create("token-one").await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    // Every create and refusal is in the audit log, as JSON, with the principal.
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let created: Vec<_> = records
        .iter()
        .filter(|r| r["fields"]["action"] == "created")
        .collect();
    assert_eq!(created.len(), 4, "{text}");
    assert_eq!(created[1]["fields"]["principal"], "second");
    assert_eq!(created[1]["fields"]["auth"], "token");
    assert!(
        records.iter().any(|r| r["fields"]["action"] == "refused"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_audit_log_records_every_outcome_with_who_ended_it() {
    let dir = std::env::temp_dir().join(format!("approvald-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    let audit = dir.join("audit.log");
    let _ = std::fs::remove_file(&audit);
    let entry = |principal: &str, role: &str, token: &str| {
        format!(
            "[[tokens]]\nprincipal = {principal:?}\nroles = [{role:?}]\nsha256 = {:?}\n",
            approvald::auth::hash_token(token)
        )
    };
    std::fs::write(
        &file,
        entry("agent", "requester", "agent-token") + &entry("alice", "approver", "alice-token"),
    )
    .unwrap();
    let (mut p, listen) = start(&[
        "--auth-config",
        file.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    p.line_with("listening");
    let mut client = client(&listen).await;
    let create = async |timeout_secs: i64| {
        let request = v1::CreateApprovalRequest {
            approval_type: "deploy".into(),
            timeout: Some(prost_types::Duration {
                seconds: timeout_secs,
                nanos: 0,
            }),
            ..Default::default()
        };
        client
            .clone()
            .create_approval(bearer("agent-token", request))
            .await
            .unwrap()
            .into_inner()
            .approval
            .unwrap()
            .id
    };
    let approved = create(300).await;
    let rejected = create(300).await;
    let cancelled = create(300).await;
    let expired = create(1).await;
    for (id, decision) in [
        (&approved, v1::Decision::Approve),
        (&rejected, v1::Decision::Reject),
    ] {
        let respond = v1::RespondRequest {
            id: id.clone(),
            decision: decision as i32,
            reason: "checked".into(),
            responder: String::new(),
            ..Default::default()
        };
        client
            .respond(bearer("alice-token", respond))
            .await
            .expect("alice decides");
    }
    let cancel = v1::CancelApprovalRequest {
        id: cancelled.clone(),
        reason: "no longer needed".into(),
    };
    client
        .cancel_approval(bearer("agent-token", cancel))
        .await
        .expect("the requester cancels");

    // Each outcome is one JSON record naming the approval and who ended it
    // (expiry: the service itself).
    let want = [
        (&approved, "approved", "alice"),
        (&rejected, "rejected", "alice"),
        (&cancelled, "cancelled", "agent"),
        (&expired, "expired", "approvald"),
    ];
    let end = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON audit line"))
            .collect();
        if records.iter().any(|r| r["fields"]["action"] == "expired") {
            break records;
        }
        assert!(Instant::now() < end, "no expiry recorded:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (id, action, principal) in want {
        let matching: Vec<_> = records
            .iter()
            .filter(|r| r["fields"]["id"] == id.as_str() && r["fields"]["action"] == action)
            .collect();
        assert_eq!(matching.len(), 1, "{action} {id}: {records:#?}");
        let fields = &matching[0]["fields"];
        assert_eq!(fields["principal"], principal, "{action}: {fields}");
        assert_eq!(fields["status"], action, "{action}: {fields}");
        assert_eq!(fields["requester"], "agent", "{action}: {fields}");
    }
    assert!(p.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn invalid_credential_floods_are_refused_per_peer_and_summarised_in_the_audit_log() {
    let dir = std::env::temp_dir().join(format!("approvald-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    let audit = dir.join("audit.log");
    std::fs::write(
        &file,
        format!(
            "[[tokens]]\nprincipal = \"agent\"\nroles = [\"requester\"]\nsha256 = {:?}\n",
            approvald::auth::hash_token("good-token")
        ),
    )
    .unwrap();
    let (p, ports) = ServerProcess::on_loopback(
        bin(),
        &[
            "--auth-config",
            file.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--auth-failures-per-minute",
            "10",
            "--audit-summary-interval",
            "1s",
        ],
    );
    let listen = ports.addr();
    p.line_with("listening");
    let client = client(&listen).await;
    let call = |token: String| {
        let mut client = client.clone();
        async move {
            let request = bearer(&token, v1::GetApprovalRequest::default());
            client.get_approval(request).await.unwrap_err().code()
        }
    };
    const CALLS: usize = 300;
    let started = Instant::now();
    let mut codes = std::collections::HashMap::<tonic::Code, usize>::new();
    for i in 0..CALLS {
        *codes.entry(call(format!("guess-{i}")).await).or_default() += 1;
    }
    let unauthenticated = codes
        .get(&tonic::Code::Unauthenticated)
        .copied()
        .unwrap_or(0);
    let exhausted = codes
        .get(&tonic::Code::ResourceExhausted)
        .copied()
        .unwrap_or(0);
    assert!(
        unauthenticated <= 15,
        "at most the allowance is checked: {codes:?}"
    );
    assert_eq!(unauthenticated + exhausted, CALLS, "{codes:?}");
    // While over the limit, the peer is refused whatever it sends.
    let mut request = tonic::Request::new(v1::GetApprovalRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Bearer good-token".parse().unwrap());
    let refused = client.clone().get_approval(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    let info = refused.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(
        info.reason,
        approval_api::v1::ErrorReason::TooManyInvalidCredentials.reason()
    );
    // Every refusal is counted under its limit.
    let metrics = scrape_metrics(ports.metrics_port).unwrap();
    assert_eq!(
        metric_value(
            &metrics,
            "approvald_limit_refusals_total{limit=\"too_many_invalid_credentials\"}"
        ),
        Some((exhausted + 1) as f64),
        "{metrics}"
    );
    let intervals = started.elapsed().as_secs() + 2;

    // The audit log: at most 20 lines per interval (1 s), each naming the
    // peer, and summaries counting the rest.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<_> = records
        .iter()
        .filter(|r| r["fields"]["action"] == "refused")
        .collect();
    assert!(
        !lines.is_empty() && lines.len() as u64 <= 20 * intervals,
        "{} lines in {intervals} intervals",
        lines.len()
    );
    for line in &lines {
        let peer = line["fields"]["peer"].as_str().unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "{line}");
    }
    let summarised: u64 = records
        .iter()
        .filter(|r| r["fields"]["action"] == "refused_summary")
        .map(|r| {
            r["fields"]["unlogged"].as_u64().unwrap()
                + r["fields"]["fast_refused"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(
        lines.len() as u64 + summarised,
        CALLS as u64 + 1,
        "every refusal is a line or counted in a summary:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn at_start_the_open_file_limit_is_raised_and_the_connection_cap_follows_it() {
    let args = Listen::free().args_with(&["--log-format", "json"]);
    let limit_of = |p: &ServerProcess| {
        let line: serde_json::Value =
            serde_json::from_str(&p.line_with("open-file limit")).unwrap();
        line["fields"].clone()
    };
    // Soft 64, hard as inherited: raised to the hard limit.
    let p = ServerProcess::start_with_ulimit("-Sn 64", bin(), &args);
    let fields = limit_of(&p);
    assert_eq!(fields["was"], "64", "{fields}");
    assert_ne!(fields["now"], "64", "{fields}");
    drop(p);
    // Hard 64: nothing to raise; the cap leaves headroom under it.
    let p = ServerProcess::start_with_ulimit("-n 64", bin(), &args);
    let fields = limit_of(&p);
    assert_eq!(
        (&fields["now"], &fields["max_connections"]),
        (&serde_json::json!("64"), &serde_json::json!(32)),
        "{fields}"
    );
}

#[tokio::test]
async fn out_of_file_descriptors_it_backs_off_logs_once_and_serves_again() {
    let addresses = Listen::free();
    let listen = addresses.addr();
    // A cap above what 64 descriptors allow, so accepting itself fails.
    let p = ServerProcess::start_with_ulimit(
        "-n 64",
        bin(),
        &addresses.args_with(&["--max-connections", "1000"]),
    );
    p.line_with("listening");
    let held: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(&listen).expect("the backlog takes it"))
        .collect();
    let line = p.line_with("cannot accept connections");
    assert!(line.contains("file descriptors"), "{line}");

    let pid = p.pid();
    let before = cpu_time(pid).expect("approvald runs");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_time(pid).expect("approvald runs") - before;
    eprintln!("CPU used at the descriptor limit: {used:?} in 3 s");
    assert!(
        used < Duration::from_millis(600),
        "{used:?} of CPU in 3 s at the limit"
    );
    let repeated = p
        .lines()
        .try_iter()
        .filter(|l| l.contains("cannot accept"))
        .count();
    assert_eq!(repeated, 0, "one line per interval");

    drop(held);
    let served = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let attempt = async {
                let mut client = ApprovalServiceClient::connect(format!("http://{listen}"))
                    .await
                    .ok()?;
                client
                    .create_approval(v1::CreateApprovalRequest {
                        approval_type: "deploy".into(),
                        ..Default::default()
                    })
                    .await
                    .ok()
            };
            if attempt.await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "serves again once connections close");
    p.line_with("accepting connections again");
}
