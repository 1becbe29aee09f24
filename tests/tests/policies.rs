//! Policies per approval type (the `--config` file): M-of-N votes with a
//! veto, who may vote, what a deadline means, per-type timeouts, reminders,
//! and reloading. Real Redis with several replicas, and the memory store.

use std::path::Path;
use std::time::Duration;

use approval_client::v1;
use approval_tests::*;
use tonic::{Code, Request};

/// A fresh folder holding `config.toml` with `text`.
fn config_dir(text: &str) -> ScratchDir {
    let dir = ScratchDir::new("approvald-policy");
    std::fs::write(dir.join("config.toml"), text).unwrap();
    dir
}

const POLICIES: &str = r#"
[[policies]]
approval_types = ["deploy:*"]
required_approvals = 2

[[policies]]
approval_types = ["deploy:production"]
required_approvals = 3

[[policies]]
approval_types = ["spend:*"]
on_timeout = "approve"
default_timeout = "400ms"
max_timeout = "1h"

[[policies]]
approval_types = ["fire:*"]
on_timeout = "reject"
default_timeout = "400ms"
"#;

/// A deployment (with `replicas` on Redis) reading `text` as its
/// configuration file, re-read every 100 ms when it changes.
async fn deployment(store: Store, replicas: usize, text: &str) -> (Deployment, ScratchDir) {
    let dir = config_dir(text);
    let file = dir.join("config.toml");
    let d = Deployment::start_with(store, replicas, |c| {
        c.auth_config = Some(file.clone());
        c.auth_reload_interval = Duration::from_millis(100);
    })
    .await;
    (d, dir)
}

async fn respond(
    client: &mut Client,
    r: v1::RespondRequest,
) -> Result<v1::Approval, tonic::Status> {
    client
        .respond(r)
        .await
        .map(|r| r.into_inner().approval.expect("approval in response"))
}

fn voters(a: &v1::Approval) -> Vec<(String, i32)> {
    a.votes
        .iter()
        .map(|v| (v.voter.clone(), v.decision))
        .collect()
}

const APPROVE: i32 = v1::Decision::Approve as i32;
const REJECT: i32 = v1::Decision::Reject as i32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_three_racing_on_three_replicas_approves_with_exactly_two_and_loses_no_vote() {
    let (d, _dir) = deployment(Store::Redis, 3, POLICIES).await;
    let mut clients = Vec::new();
    for r in &d.replicas {
        clients.push(r.client().await);
    }
    for trial in 0..25 {
        let a = create(&mut clients[0], "deploy:staging").await;
        assert_eq!(a.required_approvals, 2);
        // A waiter on the first replica.
        let mut waiter = clients[0].clone();
        let id = a.id.clone();
        let waited = tokio::spawn(async move {
            waiter
                .await_approval(v1::AwaitApprovalRequest { id })
                .await
                .map(|r| r.into_inner())
        });
        // Three voters at once, each on its own replica.
        let mut votes = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let mut client = client.clone();
            let r = approve(&a.id, &format!("voter-{i}"));
            votes.push(tokio::spawn(async move { respond(&mut client, r).await }));
        }
        let mut ok = 0;
        for v in votes {
            match v.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "trial {trial}: {e:?}");
                    assert!(e.message().contains("already approved"), "{}", e.message());
                }
            }
        }
        assert_eq!(ok, 2, "trial {trial}: exactly two votes count");
        let done = waited.await.unwrap().expect("the waiter gets the outcome");
        let approval = done.approval.unwrap();
        assert!(done.approved);
        assert_eq!(status(&approval), v1::ApprovalStatus::Approved);
        assert_eq!(
            approval.votes.len(),
            2,
            "trial {trial}: {:?}",
            voters(&approval)
        );
        assert_eq!(
            approval.decided_by, approval.votes[1].voter,
            "the voter who completed it decided it"
        );

        // Two racing votes where three are needed: both kept, still pending.
        let b = create(&mut clients[1], "deploy:production").await;
        assert_eq!(b.required_approvals, 3);
        let (mut c0, mut c2) = (clients[0].clone(), clients[2].clone());
        let (x, y) = tokio::join!(
            respond(&mut c0, approve(&b.id, "alice")),
            respond(&mut c2, approve(&b.id, "bob"))
        );
        x.expect("alice's vote");
        y.expect("bob's vote");
        let b = get(&mut clients[1], &b.id).await;
        assert_eq!(status(&b), v1::ApprovalStatus::Pending, "trial {trial}");
        let mut names: Vec<_> = b.votes.iter().map(|v| v.voter.as_str()).collect();
        names.sort();
        assert_eq!(names, ["alice", "bob"], "trial {trial}: no vote lost");
    }
}

async fn veto_after_one_approval(store: Store) {
    let (d, _dir) = deployment(store, 2, POLICIES).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let created = create(&mut a, "deploy:production").await;
    let after_one = respond(&mut a, approve(&created.id, "alice"))
        .await
        .unwrap();
    assert_eq!(status(&after_one), v1::ApprovalStatus::Pending);
    assert_eq!(voters(&after_one), [("alice".to_string(), APPROVE)]);
    let vetoed = respond(&mut b, reject(&created.id, "carol")).await.unwrap();
    assert_eq!(status(&vetoed), v1::ApprovalStatus::Rejected);
    assert_eq!(vetoed.decided_by, "carol");
    assert_eq!(vetoed.reason, "not now");
    assert_eq!(
        voters(&vetoed),
        [
            ("alice".to_string(), APPROVE),
            ("carol".to_string(), REJECT)
        ]
    );
    // A vote after the veto is refused and changes nothing.
    let late = respond(&mut a, approve(&created.id, "dave"))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert!(
        late.message().contains("already rejected"),
        "{}",
        late.message()
    );
    assert_eq!(get(&mut b, &created.id).await, vetoed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reject_vetoes_after_an_approval_on_redis() {
    veto_after_one_approval(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reject_vetoes_after_an_approval_in_memory() {
    veto_after_one_approval(Store::Memory).await;
}

async fn same_voter_twice(store: Store) {
    let (d, _dir) = deployment(store, 2, POLICIES).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let created = create(&mut a, "deploy:staging").await;
    let first = respond(&mut a, approve(&created.id, "alice"))
        .await
        .unwrap();
    // The identical retry, on another replica: OK, nothing added.
    let retry = respond(&mut b, approve(&created.id, "alice"))
        .await
        .unwrap();
    assert_eq!(retry, first);
    // A changed vote: refused, saying why.
    let changed = respond(&mut b, reject(&created.id, "alice"))
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::FailedPrecondition);
    assert!(
        changed.message().contains("alice already voted approve"),
        "{}",
        changed.message()
    );
    let now = get(&mut a, &created.id).await;
    assert_eq!(
        status(&now),
        v1::ApprovalStatus::Pending,
        "alice counted once"
    );
    assert_eq!(voters(&now), [("alice".to_string(), APPROVE)]);
    // The second voter completes it; alice's retry is still OK.
    let done = respond(&mut b, approve(&created.id, "bob")).await.unwrap();
    assert_eq!(status(&done), v1::ApprovalStatus::Approved);
    assert_eq!(done.decided_by, "bob");
    respond(&mut a, approve(&created.id, "alice"))
        .await
        .expect("a retry of a vote that counted is OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_voter_twice_counts_once_and_may_not_change_its_vote_on_redis() {
    same_voter_twice(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_voter_twice_counts_once_and_may_not_change_its_vote_in_memory() {
    same_voter_twice(Store::Memory).await;
}

async fn timeout_outcomes(store: Store) {
    let (d, _dir) = deployment(store, 2, POLICIES).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    // No timeout given: the policy's default (400 ms) applies.
    let proceed = a.request_approval(request_request("spend:coffee"));
    let stop = b.request_approval(request_request("fire:alarm"));
    let (proceed, stop) = tokio::join!(proceed, stop);
    let proceed = proceed
        .expect("the gate returns at the deadline")
        .into_inner();
    let stop = stop.expect("the gate returns at the deadline").into_inner();

    let p = proceed.approval.unwrap();
    assert_eq!(status(&p), v1::ApprovalStatus::Expired, "nobody decided");
    assert!(proceed.approved, "on_timeout = approve: the gate proceeds");
    assert_eq!(p.on_timeout, v1::OnTimeout::Approve as i32);
    assert!(p.reason.contains("policy \"spend:*\""), "{}", p.reason);
    let lasted = (p.deadline.unwrap().nanos as i64 / 1_000_000
        + p.deadline.unwrap().seconds * 1000)
        - (p.created_at.unwrap().nanos as i64 / 1_000_000 + p.created_at.unwrap().seconds * 1000);
    assert_eq!(lasted, 400, "the policy's default_timeout");

    let s = stop.approval.unwrap();
    assert_eq!(status(&s), v1::ApprovalStatus::Expired);
    assert!(!stop.approved, "on_timeout = reject: the gate stops");
    assert_eq!(s.on_timeout, v1::OnTimeout::Reject as i32);

    // AwaitApproval and GetApproval report the same.
    let again = b
        .await_approval(v1::AwaitApprovalRequest { id: p.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(again.approved);
    assert_eq!(get(&mut b, &p.id).await, p);
    // The auto-approval is counted as a policy decision.
    let text = metrics_text(d.replicas[0].metrics_port).await
        + &metrics_text(d.replicas[d.replicas.len() - 1].metrics_port).await;
    assert!(
        text.contains("approvald_policy_decisions_total{outcome=\"approve\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_decides_what_the_gate_returns_at_the_deadline_on_redis() {
    timeout_outcomes(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_decides_what_the_gate_returns_at_the_deadline_in_memory() {
    timeout_outcomes(Store::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_max_timeout_refuses_longer_timeouts_naming_the_field() {
    let (d, _dir) = deployment(Store::Memory, 1, POLICIES).await;
    let mut a = d.a().await;
    let mut r = create_request("spend:car");
    r.timeout = Some(millis(Duration::from_secs(7200)));
    let e = a.create_approval(r).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("timeout:"), "{}", e.message());
    assert!(e.message().contains("1h"), "{}", e.message());
    let mut r = create_request("deploy:x");
    r.timeout = Some(millis(Duration::from_secs(7200)));
    a.create_approval(r)
        .await
        .expect("other types keep the server's maximum");
}

async fn updated_events(store: Store) {
    let (d, _dir) = deployment(store, 2, POLICIES).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let mut watch = b
        .watch_pending(v1::WatchPendingRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next_event(&mut watch).await.event,
        Some(v1::watch_pending_response::Event::Synced(_))
    ));
    let created = create(&mut a, "deploy:production").await;
    let added = next_event(&mut watch).await;
    respond(&mut a, approve(&created.id, "alice"))
        .await
        .unwrap();
    let updated = next_event(&mut watch).await;
    let Some(v1::watch_pending_response::Event::Updated(u)) = &updated.event else {
        panic!("a vote on a pending approval is an updated event: {updated:?}")
    };
    assert_eq!(u.id, created.id);
    assert_eq!(status(u), v1::ApprovalStatus::Pending);
    assert_eq!(voters(u), [("alice".to_string(), APPROVE)]);
    assert!(!updated.cursor.is_empty());

    // Resuming from the `added` cursor replays the update, on either replica.
    let mut resumed = resumed_watch(&mut a, &added.cursor).await;
    let replayed = next_event(&mut resumed).await;
    assert_eq!(replayed, updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_on_a_pending_approval_is_an_updated_watch_event_resumable_by_cursor_on_redis() {
    updated_events(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_on_a_pending_approval_is_an_updated_watch_event_resumable_by_cursor_in_memory() {
    updated_events(Store::Memory).await;
}

/// (kind, reminder number, id, stream id ms) of every event in the log.
fn logged(conn: &mut redis::Connection, prefix: &str) -> Vec<(String, String, String, u64)> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{{{prefix}}}:events"))
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap();
    let text = |e: &redis::streams::StreamId, k: &str| e.get::<String>(k).unwrap_or_default();
    reply
        .ids
        .iter()
        .map(|e| {
            let ms = e.id.split('-').next().unwrap().parse().unwrap();
            (text(e, "kind"), text(e, "reminder"), text(e, "id"), ms)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_written_once_each_at_their_times_by_any_of_the_replicas() {
    let text = r#"
[[policies]]
approval_types = ["deploy:*"]
remind_after = ["300ms", "800ms", "5s"]
"#;
    let (d, _dir) = deployment(Store::Redis, 3, text).await;
    let mut a = d.a().await;
    let mut r = create_request("deploy:web");
    r.timeout = Some(millis(Duration::from_secs(2)));
    let created = a
        .create_approval(r)
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let decided = create(&mut a, "deploy:api").await;
    respond(&mut a, approve(&decided.id, "alice"))
        .await
        .unwrap();
    let created_ms = created.created_at.unwrap().seconds as u64 * 1000
        + created.created_at.unwrap().nanos as u64 / 1_000_000;
    let mut conn = d.redis.as_ref().unwrap().connection();
    // Past the deadline (2 s): the third reminder (5 s) never comes.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let reminders: Vec<_> = logged(&mut conn, &d.prefix)
        .into_iter()
        .filter(|(kind, ..)| kind == "reminder")
        .collect();
    assert_eq!(reminders.len(), 2, "{reminders:?}");
    for ((_, n, id, at), (want_n, offset)) in reminders.iter().zip([("1", 300), ("2", 800)]) {
        assert_eq!((n.as_str(), id.as_str()), (want_n, created.id.as_str()));
        assert!(
            *at >= created_ms + offset && *at < created_ms + offset + 1000,
            "reminder {n} at +{} ms, due at +{offset} ms",
            at - created_ms
        );
    }
    let mut written = 0;
    for r in &d.replicas {
        let text = metrics_text(r.metrics_port).await;
        written += text
            .lines()
            .find_map(|l| l.strip_prefix("approvald_reminders_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(written, 2, "each reminder written by exactly one replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_are_due_in_memory_too_and_not_shown_to_watchers() {
    let text = r#"
[[policies]]
approval_types = ["deploy:*"]
remind_after = ["200ms"]
"#;
    let (d, _dir) = deployment(Store::Memory, 1, text).await;
    let mut a = d.a().await;
    let mut watch = a
        .watch_pending(v1::WatchPendingRequest::default())
        .await
        .unwrap()
        .into_inner();
    next_event(&mut watch).await;
    let created = create(&mut a, "deploy:web").await;
    next_event(&mut watch).await;
    let port = d.replicas[0].metrics_port;
    let reminded = eventually(PROMPTLY, || async move {
        metrics_text(port)
            .await
            .contains("approvald_reminders_total 1")
    })
    .await;
    assert!(reminded, "the reminder is written");
    respond(&mut a, reject(&created.id, "alice")).await.unwrap();
    let next = next_event(&mut watch).await;
    assert!(
        matches!(
            next.event,
            Some(v1::watch_pending_response::Event::Resolved(_))
        ),
        "the reminder is not a watch event: {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_file_changes_nothing_and_a_fixed_one_applies_to_new_approvals_only() {
    let (d, dir) = deployment(Store::Redis, 2, POLICIES).await;
    let (mut a, mut b) = (d.a().await, d.b().await);
    let before = create(&mut a, "deploy:staging").await;
    assert_eq!(before.required_approvals, 2);
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        "[[policies]]\napproval_types = [\"deploy:*\"]\nrequired_approvals = \"many\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = create(&mut b, "deploy:staging").await;
    assert_eq!(
        during.required_approvals, 2,
        "the broken file is not in force"
    );
    std::fs::write(
        &file,
        "[[policies]]\napproval_types = [\"deploy:*\"]\nrequired_approvals = 4\n",
    )
    .unwrap();
    let mut a2 = a.clone();
    let applied = eventually(PROMPTLY, || {
        let mut a = a2.clone();
        async move { create(&mut a, "deploy:staging").await.required_approvals == 4 }
    })
    .await;
    assert!(applied, "the fixed file is re-read");
    a2 = b.clone();
    let applied_b = eventually(PROMPTLY, || {
        let mut b = a2.clone();
        async move { create(&mut b, "deploy:staging").await.required_approvals == 4 }
    })
    .await;
    assert!(applied_b, "every replica re-reads it");
    // The approval opened before keeps its copied policy.
    respond(&mut a, approve(&before.id, "alice")).await.unwrap();
    let done = respond(&mut b, approve(&before.id, "bob")).await.unwrap();
    assert_eq!(status(&done), v1::ApprovalStatus::Approved);
    assert_eq!(done.required_approvals, 2);
}

fn check_config(file: &Path) -> (bool, String, String) {
    let out = std::process::Command::new(approvald_binary())
        .arg("check-config")
        .arg(file)
        .output()
        .expect("approvald check-config runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_line_of_each_mistake() {
    let dir = config_dir(POLICIES);
    let (ok, out, _) = check_config(&dir.join("config.toml"));
    assert!(ok, "{out}");
    assert!(
        out.contains("valid; authentication off, 4 policies"),
        "{out}"
    );

    let cases = [
        (
            "[[policies]]\napproval_types = [\"deploy:*\"]\nrequired_approvals = 2\nvoters = [\"alice\", \"role:\"]\n",
            ":4:20: policies[0].voters[1]: \"role:\" needs a role name",
        ),
        (
            "[[policies]]\napproval_types = [\"deploy:*\"]\n\n\non_timeout = \"proceed\"\n",
            ":5:14: policies[0].on_timeout: \"proceed\": use \"reject\"",
        ),
        (
            "[[policies]]\napproval_types = [\"deploy:*\"]\nremind_after = [\"10 minutes and a bit\"]\n",
            ":3:17: policies[0].remind_after[0]",
        ),
        ("[[policies]]\napproval_types = [\"a\"]\nvotes = 2\n", ":3:1: unknown field `votes`"),
    ];
    for (text, want) in cases {
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let (ok, _, err) = check_config(&file);
        assert!(!ok, "{text:?} is refused");
        assert!(
            err.contains(&format!("{}{want}", file.display())),
            "{text:?}: {err}"
        );
    }
}

// ---- who may vote (authentication on) -----------------------------------

fn token_entry(token: &str, principal: &str, roles: &str) -> String {
    format!(
        "[[tokens]]\nprincipal = {principal:?}\nroles = {roles}\nsha256 = {:?}\n\n",
        approvald::auth::hash_token(token)
    )
}

fn as_<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_are_the_listed_principals_and_roles_and_the_requester_only_where_allowed() {
    let mut text = String::new();
    text += &token_entry("tok-bot", "bot", r#"["requester", "approver"]"#);
    text += &token_entry("tok-alice", "alice", r#"["sre"]"#);
    text += &token_entry("tok-bob", "bob", "[]");
    text += &token_entry("tok-carol", "carol", r#"["approver"]"#);
    text += r#"
[[policies]]
approval_types = ["deploy:*"]
required_approvals = 2
voters = ["role:sre", "bob", "bot"]

[[policies]]
approval_types = ["dev:*"]
allow_requester_vote = true
"#;
    let (d, _dir) = deployment(Store::Redis, 2, &text).await;
    let mut a = d.a().await;
    let create_as = |ty: &str| as_("tok-bot", create_request(ty));
    let deploy = a
        .create_approval(create_as("deploy:web"))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let policy = deploy.policy.clone().unwrap();
    assert_eq!(policy.voters, ["role:sre", "bob", "bot"]);
    assert!(!policy.allow_requester_vote);

    // carol is an approver, but not a voter of this policy; bot is listed
    // but is the requester.
    for (token, why) in [
        ("tok-carol", "lets only its voters vote"),
        ("tok-bot", "forbids self-approval"),
    ] {
        let e = a
            .respond(as_(token, approve(&deploy.id, "")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{token}");
        assert!(e.message().contains(why), "{token}: {}", e.message());
    }
    assert!(
        get_as(&mut a, &deploy.id).await.votes.is_empty(),
        "nothing recorded"
    );
    // alice by her role, bob by name.
    let one = a
        .respond(as_("tok-alice", approve(&deploy.id, "typed-name-ignored")))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(voters(&one), [("alice".to_string(), APPROVE)]);
    let two = a
        .respond(as_("tok-bob", approve(&deploy.id, "")))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(status(&two), v1::ApprovalStatus::Approved);
    assert_eq!(two.decided_by, "bob");

    // Where the policy allows it, the requester votes.
    let dev = a
        .create_approval(create_as("dev:box"))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap();
    let own = a
        .respond(as_("tok-bot", approve(&dev.id, "")))
        .await
        .expect("allow_requester_vote")
        .into_inner()
        .approval
        .unwrap();
    assert_eq!(status(&own), v1::ApprovalStatus::Approved);
}

async fn get_as(client: &mut Client, id: &str) -> v1::Approval {
    client
        .get_approval(as_(
            "tok-bot",
            v1::GetApprovalRequest { id: id.to_string() },
        ))
        .await
        .unwrap()
        .into_inner()
        .approval
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_approval_at_the_deadline_is_in_the_audit_log_as_a_decision_of_the_policy() {
    let dir = config_dir(POLICIES);
    let audit = dir.join("audit.log");
    let p = ApprovaldProcess::start(&[
        "--config".to_string(),
        dir.join("config.toml").display().to_string(),
        "--audit-log".to_string(),
        audit.display().to_string(),
    ])
    .await;
    let mut c = p.client().await;
    let proceed = c
        .request_approval(request_request("spend:tea"))
        .await
        .unwrap()
        .into_inner();
    assert!(proceed.approved);
    let stop = c
        .request_approval(request_request("fire:drill"))
        .await
        .unwrap()
        .into_inner();
    assert!(!stop.approved);
    let (p_id, s_id) = (proceed.approval.unwrap().id, stop.approval.unwrap().id);
    let audit = audit.clone();
    let lines = wait_for(PROMPTLY, || {
        let audit = audit.clone();
        let (p_id, s_id) = (p_id.clone(), s_id.clone());
        async move {
            let text = std::fs::read_to_string(&audit).unwrap_or_default();
            let of = |id: &str, action: &str| {
                text.lines()
                    .find(|l| l.contains(id) && l.contains(&format!("\"action\":\"{action}\"")))
                    .map(String::from)
            };
            Some((of(&p_id, "auto-approved")?, of(&s_id, "expired")?))
        }
    })
    .await;
    let (approved, expired) = lines.expect("both expiries are audited");
    assert!(
        approved.contains("\"principal\":\"policy:spend:*\""),
        "{approved}"
    );
    assert!(expired.contains("\"principal\":\"approvald\""), "{expired}");
}
