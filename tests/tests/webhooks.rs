//! Webhooks end to end: real receivers (HTTP servers on free ports), real
//! replicas on a real Redis or on the memory store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use approval_client::v1;
use approval_tests::webhooks::{
    as_, config_file, endpoint, until_received, Answer, ConfigFile, Receiver, ADMIN, AGENT, HUMAN,
    SECRET,
};
use approval_tests::{
    approve, create_request, metrics_text, reject, status, ApprovaldProcess, Client, Deployment,
    RedisServer, Store,
};

async fn create_as(client: &mut Client, approval_type: &str) -> v1::Approval {
    client
        .create_approval(as_(AGENT, create_request(approval_type)))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("an approval")
}

async fn decide(client: &mut Client, request: v1::RespondRequest) {
    client.respond(as_(HUMAN, request)).await.expect("respond");
}

/// Two replicas reading a configuration file with `webhooks` (kept with
/// them: the replicas re-read it).
async fn deployment(store: Store, webhooks: &str) -> (Deployment, ConfigFile) {
    let file = config_file(webhooks);
    let d = Deployment::start_with(store, 2, |c| c.auth_config = Some(file.to_path_buf())).await;
    (d, file)
}

fn ids_of(received: &[approval_tests::webhooks::Received]) -> Vec<String> {
    let mut ids: Vec<String> = received.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_sends_each_event_to_the_endpoints_that_want_it() {
    let all = Receiver::start(Answer::Ok).await;
    let filtered = Receiver::start(Answer::Ok).await;
    let (d, _config) = deployment(
        Store::Memory,
        &(endpoint("all", &all, "")
            + &endpoint(
                "filtered",
                &filtered,
                r#"events = ["approval.rejected"]
approval_types = ["hook:other*"]"#,
            )),
    )
    .await;
    let mut a = d.a().await;
    let approval = create_as(&mut a, "hook:deploy").await;
    decide(&mut a, approve(&approval.id, "human")).await;

    assert!(
        until_received(&all, Duration::from_secs(20), |r| r.len() >= 2).await,
        "the endpoint never got both events: {:?}",
        all.received()
    );
    let got = all.received();
    let types: Vec<String> = got.iter().map(|r| r.event_type()).collect();
    assert_eq!(types, ["approval.created", "approval.approved"]);
    for r in &got {
        let data = &r.json()["data"]["approval"];
        assert_eq!(data["id"], approval.id.as_str());
        assert_eq!(data["approval_type"], "hook:deploy");
        assert_eq!(data["requester"], "agent");
        assert!(r.signature.starts_with("v1,"), "{r:?}");
        assert!(r.id.starts_with("msg_"), "{r:?}");
    }
    assert_eq!(got[1].json()["data"]["approval"]["decided_by"], "human");
    assert_ne!(got[0].id, got[1].id, "two events, two webhook ids");

    // Neither the type nor the events of the filtered endpoint matched.
    let other = create_as(&mut a, "hook:other-1").await;
    decide(&mut a, reject(&other.id, "human")).await;
    assert!(
        until_received(&filtered, Duration::from_secs(20), |r| !r.is_empty()).await,
        "the filtered endpoint never got its rejection"
    );
    assert!(
        until_received(&all, Duration::from_secs(20), |r| r.len() >= 4).await,
        "the first endpoint never got the second approval's events"
    );
    let types: Vec<String> = filtered.received().iter().map(|r| r.event_type()).collect();
    assert_eq!(types, ["approval.rejected"]);
    assert_eq!(
        filtered.received()[0].json()["data"]["approval"]["id"],
        other.id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_exactly_one_success_per_webhook_id() {
    let receiver = Receiver::start(Answer::FailFirst(2)).await;
    let (d, _config) = deployment(Store::Redis, &endpoint("flaky", &receiver, "")).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let approvals = 4;
    for _ in 0..approvals {
        let created = create_as(&mut a, "hook:deploy").await;
        decide(&mut b, approve(&created.id, "human")).await;
    }
    let events = approvals * 2;
    assert!(
        until_received(&receiver, Duration::from_secs(60), |_| {
            ids_of(&receiver.successes()).len() >= events
        })
        .await,
        "not every event got through: {} of {events}",
        ids_of(&receiver.successes()).len()
    );
    // Time for any duplicate to show up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut attempts: HashMap<String, (usize, usize)> = HashMap::new();
    for r in receiver.received() {
        let entry = attempts.entry(r.id.clone()).or_default();
        entry.0 += 1;
        if (200..300).contains(&r.status) {
            entry.1 += 1;
        }
    }
    assert_eq!(attempts.len(), events, "{attempts:?}");
    for (id, (tries, successes)) in &attempts {
        assert_eq!(*successes, 1, "{id}: {successes} successes");
        assert_eq!(*tries, 3, "{id}: two failures, then one success");
    }
    let text = metrics_text(d.replicas[0].metrics_port).await
        + &metrics_text(d.replicas[1].metrics_port).await;
    let count = |outcome: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("approvald_webhook_deliveries_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(count("ok"), events as u64, "{text}");
    assert_eq!(count("retry"), 2 * events as u64, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_leaves_the_delivery_to_another() {
    let redis = RedisServer::start();
    let receiver = Receiver::start(Answer::Never).await;
    let file = config_file(&endpoint("slow", &receiver, "timeout = \"2s\""));
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let args = vec![
        "--redis-url".to_string(),
        redis.url(),
        "--redis-prefix".into(),
        prefix,
        "--auth-config".into(),
        file.display().to_string(),
    ];
    let first = ApprovaldProcess::start(&args).await;
    let created = create_as(&mut first.client().await, "hook:deploy").await;
    assert!(
        until_received(&receiver, Duration::from_secs(20), |r| !r.is_empty()).await,
        "the first replica never sent the delivery"
    );
    // The other replica is up; the first dies holding the request open.
    let second = ApprovaldProcess::start(&args).await;
    receiver.answer(Answer::Ok);
    drop(first); // SIGKILL
    assert!(
        until_received(&receiver, Duration::from_secs(30), |r| r
            .iter()
            .any(|r| r.status == 204))
        .await,
        "nobody delivered after the first replica died"
    );
    let got = receiver.received();
    assert_eq!(
        got[0].id,
        got[got.len() - 1].id,
        "the same delivery, resent"
    );
    assert_eq!(
        got[got.len() - 1].json()["data"]["approval"]["id"],
        created.id.as_str()
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_decisions() {
    let receiver = Receiver::start(Answer::Never).await;
    let (d, _config) = deployment(
        Store::Redis,
        &endpoint("black-hole", &receiver, "timeout = \"60s\""),
    )
    .await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    // More approvals than requests in flight, each webhook held a minute.
    let n = 40;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        let created = create_as(&mut a, "hook:deploy").await;
        decide(&mut b, approve(&created.id, "human")).await;
        ids.push(created.id);
    }
    let took = started.elapsed();
    eprintln!("{n} creates and decisions while every webhook hangs: {took:?}");
    assert!(
        until_received(&receiver, Duration::from_secs(20), |r| r.len() >= 32).await,
        "the receiver should be holding requests open: {}",
        receiver.received().len()
    );
    for id in &ids {
        let mut r = tonic::Request::new(v1::GetApprovalRequest { id: id.clone() });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        let got = a.get_approval(r).await.expect("get").into_inner().approval;
        assert_eq!(
            status(got.as_ref().expect("approval")),
            v1::ApprovalStatus::Approved
        );
    }
    // 40 decisions, each of whose webhooks would hold a minute.
    assert!(
        took < Duration::from_secs(20),
        "{n} creates and decisions took {took:?} with webhooks hanging"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_past_its_retry_horizon_becomes_a_dead_letter() {
    let receiver = Receiver::start(Answer::Fail).await;
    let (d, _config) = deployment(
        Store::Redis,
        &endpoint(
            "down",
            &receiver,
            "retry_for = \"3s\"\nevents = [\"approval.created\"]",
        ),
    )
    .await;
    let mut a = d.a().await;
    create_as(&mut a, "hook:deploy").await;
    let dead_on = |text: &str| {
        text.lines().any(|l| {
            l.starts_with("approvald_webhook_deliveries_total")
                && l.contains("outcome=\"dead\"")
                && l.ends_with(" 1")
        })
    };
    let mut dead = false;
    let end = Instant::now() + Duration::from_secs(30);
    while !dead && Instant::now() < end {
        for r in &d.replicas {
            dead |= dead_on(&metrics_text(r.metrics_port).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dead, "the delivery never became a dead letter");
    let tries = receiver.received().len();
    assert!(tries >= 2, "it was retried before being given up: {tries}");
    // Given up: no more attempts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), tries, "attempts after giving up");
    // The dead-letter gauge shows it (measured every few seconds).
    let mut gauge = false;
    let end = Instant::now() + Duration::from_secs(15);
    while !gauge && Instant::now() < end {
        for r in &d.replicas {
            gauge |= metrics_text(r.metrics_port)
                .await
                .lines()
                .any(|l| l == "approvald_webhook_dead_letters 1");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gauge, "approvald_webhook_dead_letters never showed 1");
}

/// Run by scripts/suites/46-webhooks.sh, which installs Python's
/// `standardwebhooks` and points APPROVALD_WEBHOOK_PYTHON at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python's standardwebhooks: scripts/suites/46-webhooks.sh runs it"]
async fn signatures_verify_with_pythons_standard_webhooks_library() {
    let python = std::env::var("APPROVALD_WEBHOOK_PYTHON").unwrap_or_else(|_| "python3".into());
    let receiver = Receiver::start(Answer::Ok).await;
    let (d, _config) = deployment(Store::Memory, &endpoint("signed", &receiver, "")).await;
    let mut a = d.a().await;
    let created = create_as(&mut a, "hook:deploy").await;
    decide(&mut a, approve(&created.id, "human")).await;
    assert!(until_received(&receiver, Duration::from_secs(20), |r| r.len() >= 2).await);
    let messages: Vec<serde_json::Value> = receiver
        .received()
        .iter()
        .map(|r| {
            serde_json::json!({
                "body": r.body,
                "headers": {
                    "webhook-id": r.id,
                    "webhook-timestamp": r.timestamp,
                    "webhook-signature": r.signature,
                },
            })
        })
        .collect();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, messages = sys.argv[1], json.loads(sys.stdin.read())
wh = Webhook(secret)
for m in messages:
    wh.verify(m["body"], m["headers"])
    try:
        wh.verify(m["body"] + " ", m["headers"])
    except Exception:
        pass
    else:
        sys.exit("a tampered body verified")
print(len(messages), "verified")
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script, SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&messages).unwrap().as_bytes())
        .expect("write messages");
    let out = child.wait_with_output().expect("python ran");
    assert!(
        out.status.success(),
        "verification failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2 verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_endpoint_gets_a_message_with_the_context_and_an_inbox_link() {
    slack_message(Store::Memory).await;
}

/// On Redis the event log's entries leave the context out: the planner
/// reads it from the approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_endpoint_gets_a_message_with_the_context_and_an_inbox_link_on_redis() {
    slack_message(Store::Redis).await;
}

async fn slack_message(store: Store) {
    let slack = Receiver::start(Answer::Ok).await;
    let (d, _config) = deployment(
        store,
        &format!(
            "[[webhooks]]\nname = \"slack\"\nurl = {:?}\nformat = \"slack\"\ninbox_url = \"https://approvals.example.com/\"\n",
            slack.url()
        ),
    )
    .await;
    let mut a = d.a().await;
    let request = v1::CreateApprovalRequest {
        context: Some(approval_tests::context(&[
            ("service", "billing"),
            ("note", "<b>&"),
        ])),
        ..create_request("hook:deploy")
    };
    a.create_approval(as_(AGENT, request))
        .await
        .expect("create");
    assert!(until_received(&slack, Duration::from_secs(20), |r| !r.is_empty()).await);
    let got = &slack.received()[0];
    let message = got.json();
    let text = message["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Approval requested") && text.contains("hook:deploy"),
        "{message}"
    );
    let blocks = message["blocks"].as_array().expect("blocks");
    let headline = blocks[0]["text"]["text"].as_str().unwrap_or_default();
    assert!(
        headline.contains("`hook:deploy`") && headline.contains("*agent*"),
        "{headline}"
    );
    let summary = blocks[1]["text"]["text"].as_str().unwrap_or_default();
    assert!(summary.contains("*service*: billing"), "{summary}");
    assert!(summary.contains("&lt;b&gt;&amp;"), "escaped: {summary}");
    let footer = blocks[blocks.len() - 1]["elements"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        footer.contains("<https://approvals.example.com/|Open the inbox>"),
        "{footer}"
    );
    assert!(got.signature.is_empty(), "no secret, no signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_changes_the_endpoints_and_a_broken_one_changes_nothing() {
    let first = Receiver::start(Answer::Ok).await;
    let second = Receiver::start(Answer::Ok).await;
    let file = config_file(&endpoint("first", &first, ""));
    let d = Deployment::start_with(Store::Memory, 1, |c| {
        c.auth_config = Some(file.to_path_buf());
        c.auth_reload_interval = Duration::from_millis(100);
    })
    .await;
    let tokens = std::fs::read_to_string(&file)
        .unwrap()
        .split("[[webhooks]]")
        .next()
        .unwrap()
        .to_string();
    let rewrite = |webhooks: String| std::fs::write(&file, tokens.clone() + &webhooks).unwrap();
    let mut a = d.a().await;
    create_as(&mut a, "hook:deploy").await;
    assert!(until_received(&first, Duration::from_secs(20), |r| r.len() == 1).await);

    rewrite(endpoint("first", &first, "format = \"teams\""));
    tokio::time::sleep(Duration::from_secs(1)).await;
    create_as(&mut a, "hook:deploy").await;
    assert!(
        until_received(&first, Duration::from_secs(20), |r| r.len() == 2).await,
        "a broken file must keep the last good endpoints"
    );

    rewrite(endpoint("second", &second, ""));
    tokio::time::sleep(Duration::from_secs(1)).await;
    create_as(&mut a, "hook:deploy").await;
    assert!(
        until_received(&second, Duration::from_secs(20), |r| r.len() == 1).await,
        "the new endpoint never got the event"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(first.received().len(), 2, "the removed endpoint got more");
}
