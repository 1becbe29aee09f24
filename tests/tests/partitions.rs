//! `--redis-partitions`: the key layout of one partition is the layout of
//! before (byte for byte), the layout is recorded and a replica started
//! with another count refuses to start; over several partitions the Redis
//! store places each approval in a partition its id names, routes reads and
//! writes by the id alone, and merges listing and the reaper's queue.
//!
//! The layout tests drive the Redis store directly; the service tests run
//! two replicas with three partitions (a watch resumed by cursor, waiters,
//! webhooks), on a real `redis-server` and on the real Cluster fixture.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use approval_client::v1;
use approval_tests::*;
use approvald::domain::{
    AgentId, ApprovalId, ApprovalPolicy, ApprovalType, Caller, Context, Ending, Finished, Labels,
    Limits, ListQuery, Millis, NewApproval, PageToken, Principal, Timeout,
};
use approvald::store::{RedisOptions, RedisStore, Retention, Store as _};

fn namespace() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

fn store_at(url: &str, prefix: &str, partitions: usize) -> Arc<RedisStore> {
    let limits = Limits::default();
    Arc::new(
        RedisStore::connect(RedisOptions {
            url: url.to_string(),
            prefix: prefix.to_string(),
            partitions,
            retention: Retention {
                final_approvals: Duration::from_secs(3600),
                max_events: 1000,
                max_event_bytes: Retention::DEFAULT_MAX_EVENT_BYTES,
                max_timeout: limits.max_timeout,
            },
            timeout: Duration::from_secs(5),
            durability: None,
            clock_skew_ms: 0,
        })
        .expect("store"),
    )
}

fn new_approval(requester: &str, timeout: Option<Duration>) -> NewApproval {
    let limits = Limits::default();
    NewApproval {
        approval_type: ApprovalType::parse("approval_type", "deploy").unwrap(),
        agent_id: AgentId::parse("agent_id", "agent").unwrap(),
        requester: Principal::parse("requester", requester).unwrap(),
        context: Context::parse("context", None, &limits).unwrap(),
        labels: Labels::default(),
        timeout: Timeout::parse(
            "timeout",
            timeout.map(|d| prost_types::Duration {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            }),
            &limits,
        )
        .unwrap(),
        idempotency_key: None,
        policy: ApprovalPolicy::default(),
        trace: None,
    }
}

/// Creates one approval of `requester` the way the service does (placed,
/// then created); returns its id.
async fn create_in(store: &RedisStore, requester: &str) -> ApprovalId {
    let id = store.place(ApprovalId::generate_at(store.now()), requester);
    let created = store
        .create(id.clone(), new_approval(requester, None), 100)
        .await
        .expect("create");
    assert!(created.created);
    assert_eq!(created.approval.id, id);
    id
}

/// Every key of the namespace `prefix` (all partitions), on any node.
async fn keys_of(url: &str, prefix: &str) -> BTreeSet<String> {
    match url.strip_prefix("redis+cluster://") {
        None => {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{{{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.into_iter().collect()
        }
        Some(nodes) => {
            let mut all = BTreeSet::new();
            for node in nodes.split(',') {
                let client = redis::Client::open(format!("redis://{node}")).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{{{prefix}*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                all.extend(keys);
            }
            all
        }
    }
}

fn url_of(store: Store) -> (String, Option<RedisServer>) {
    match store {
        Store::Redis => {
            let redis = RedisServer::start();
            (redis.url(), Some(redis))
        }
        Store::Cluster => (RedisCluster::shared().url(), None),
        Store::Memory => unreachable!("partitions are a Redis layout"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_keeps_the_key_layout_of_before_and_records_it() {
    let d = Deployment::start_with(Store::Redis, 1, |_| {}).await;
    let mut a = d.a().await;
    let created = create(&mut a, "layout").await;
    let url = d.redis.as_ref().unwrap().url();
    let keys = keys_of(&url, &d.prefix).await;
    let tag = d.hash_tag();
    let expected: BTreeSet<String> = [
        format!("{tag}:approval:{}", created.id),
        format!("{tag}:pending"),
        format!("{tag}:index"),
        format!("{tag}:events"),
        format!("{tag}:open"),
        format!("{tag}:epoch"),
        format!("{tag}:layout"),
    ]
    .into();
    // Nothing under a partition tag `{prefix:k}`; the write probe may or
    // may not have run.
    let seen: BTreeSet<String> = keys
        .into_iter()
        .filter(|k| !k.ends_with(":writable"))
        .collect();
    assert_eq!(seen, expected);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let layout: String = redis::cmd("GET")
        .arg(format!("{tag}:layout"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(layout, "partitions=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_with_another_partition_count_than_the_data_refuses_to_start() {
    let redis = RedisServer::start();
    let prefix = namespace();
    // Data laid out in three partitions (written by a store of three).
    let three = store_at(&redis.url(), &prefix, 3);
    assert_eq!(three.check_layout().await.unwrap(), None);
    create_in(&three, "alice").await;

    let mut config = approvald::Config::for_tests();
    config.redis_url = Some(redis.url());
    config.redis_prefix = prefix.clone();
    let refused = approvald::Application::build(config)
        .await
        .err()
        .expect("a replica of one partition on data of three is refused");
    let why = refused.to_string();
    assert!(why.contains("3 partition(s)"), "{why}");
    assert!(why.contains("--redis-partitions 1"), "{why}");
    assert!(
        why.contains("drain") && why.contains("--redis-prefix"),
        "says how to migrate: {why}"
    );
    // And a store of one refuses to write there (Redis was down at start).
    let one = store_at(&redis.url(), &prefix, 1);
    let id = one.place(ApprovalId::generate_at(one.now()), "bob");
    let write = one.create(id, new_approval("bob", None), 100).await;
    assert!(
        matches!(&write, Err(e) if e.to_string().contains("--redis-partitions 1")),
        "{write:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_layouts_were_recorded_counts_as_one_partition() {
    let redis = RedisServer::start();
    let prefix = namespace();
    let one = store_at(&redis.url(), &prefix, 1);
    create_in(&one, "alice").await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // As an older version left it: no layout record.
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:layout"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let three = store_at(&redis.url(), &prefix, 3);
    let why = three.check_layout().await.unwrap().expect("refused");
    assert!(why.contains("1 partition(s)"), "{why}");
    let again = store_at(&redis.url(), &prefix, 1);
    assert_eq!(again.check_layout().await.unwrap(), None);
}

async fn approvals_spread_over_partitions_and_are_found_by_id_alone(store: Store) {
    let (url, _redis) = url_of(store);
    let prefix = namespace();
    let s = store_at(&url, &prefix, 3);
    assert_eq!(s.check_layout().await.unwrap(), None);
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(create_in(&s, &format!("requester-{i}")).await);
    }
    // Several partitions hold approvals: their hash tags differ.
    let keys = keys_of(&url, &prefix).await;
    let tags: BTreeSet<&str> = keys
        .iter()
        .filter(|k| k.contains(":approval:"))
        .filter_map(|k| k.split_once('}').map(|(tag, _)| tag))
        .collect();
    assert!(tags.len() > 1, "all approvals in one partition: {tags:?}");
    for id in &ids {
        // Still a UUIDv7, which names its partition.
        let parsed = ApprovalId::parse("id", id.as_str()).expect("a UUIDv7");
        assert_eq!(&parsed, id);
        let part = usize::from_str_radix(&id.as_str()[34..], 16).unwrap();
        assert!(part < 3, "{id}");
        let tag = match part {
            0 => format!("{{{prefix}}}"),
            k => format!("{{{prefix}:{k}}}"),
        };
        assert!(
            keys.contains(&format!("{tag}:approval:{id}")),
            "{id} not under {tag}"
        );
        // Found by its id alone, decided in its partition.
        let got = s.get(id).await.unwrap().expect("found");
        assert_eq!(&got.id, id);
    }
    let ending = Ending::Decided {
        verdict: approvald::domain::Verdict::Approve,
        by: "alice".into(),
        reason: String::new(),
    };
    let finished = s.finish(&ids[0], &ending).await.unwrap();
    assert!(matches!(finished, Finished::Done(_)), "{finished:?}");
    let keys = keys_of(&url, &prefix).await;
    // An id naming a partition that does not exist: not found, nothing
    // written, no panic.
    let absent = ApprovalId::parse("id", &format!("{}{:02x}", &ids[1].as_str()[..34], 7)).unwrap();
    assert!(s.get(&absent).await.unwrap().is_none());
    assert!(matches!(
        s.finish(&absent, &ending).await.unwrap(),
        Finished::NotFound
    ));
    assert!(s.expire(&absent).await.unwrap().is_none());
    let many = s.get_many(&[absent.clone(), ids[2].clone()]).await.unwrap();
    assert!(many[0].is_none() && many[1].is_some());
    let unprobed = |mut keys: BTreeSet<String>| {
        keys.retain(|k| !k.ends_with(":writable"));
        keys
    };
    let before: BTreeSet<String> = unprobed(keys);
    assert_eq!(unprobed(keys_of(&url, &prefix).await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_spread_over_partitions_and_are_found_by_id_alone_on_redis() {
    approvals_spread_over_partitions_and_are_found_by_id_alone(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_spread_over_partitions_and_are_found_by_id_alone_on_cluster() {
    approvals_spread_over_partitions_and_are_found_by_id_alone(Store::Cluster).await;
}

/// What a snapshot sizes its pages by: about the size of each approval
/// once read, 0 for one that is gone, in every partition.
async fn the_size_of_approvals_is_known_without_reading_them(store: Store) {
    let (url, _redis) = url_of(store);
    let s = store_at(&url, &namespace(), 3);
    let limits = Limits::default();
    let mut ids = Vec::new();
    for (i, context_bytes) in [0usize, 1_000, 30_000, 60_000]
        .into_iter()
        .cycle()
        .take(12)
        .enumerate()
    {
        let requester = format!("requester-{i}");
        let mut new = new_approval(&requester, None);
        let text = "x".repeat(context_bytes);
        let context = prost_types::Struct {
            fields: [(
                "text".to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(text)),
                },
            )]
            .into(),
        };
        new.context = Context::parse("context", Some(context), &limits).unwrap();
        let id = s.place(ApprovalId::generate_at(s.now()), &requester);
        s.create(id.clone(), new, 100).await.expect("create");
        ids.push(id);
    }
    ids.push(ApprovalId::generate_at(s.now()));
    let sizes = s.sizes(&ids).await.expect("sizes");
    let read = s.get_many(&ids).await.expect("read");
    assert_eq!(sizes.len(), ids.len());
    for (size, approval) in sizes.iter().zip(&read) {
        match approval {
            Some(a) => {
                let wire = a.wire_bytes();
                assert!(
                    size.abs_diff(wire) <= 512,
                    "{}: sized {size} bytes, takes {wire}",
                    a.id
                );
            }
            None => assert_eq!(*size, 0, "a gone approval takes no room"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_of_approvals_is_known_without_reading_them_on_redis() {
    the_size_of_approvals_is_known_without_reading_them(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_of_approvals_is_known_without_reading_them_on_cluster() {
    the_size_of_approvals_is_known_without_reading_them(Store::Cluster).await;
}

async fn listing_merges_partitions_newest_first_page_by_page(store: Store) {
    let (url, _redis) = url_of(store);
    let prefix = namespace();
    let s = store_at(&url, &prefix, 3);
    let mut ids = Vec::new();
    for i in 0..17 {
        ids.push(create_in(&s, &format!("requester-{}", i % 5)).await);
    }
    ids.sort_by(|a, b| b.as_str().cmp(a.as_str()));
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let query = ListQuery {
            statuses: Vec::new(),
            filter: Default::default(),
            page_size: 4,
            after: after.clone(),
        };
        let page = s.list(&Caller::Open, &query).await.unwrap();
        assert!(page.approvals.len() <= 4);
        listed.extend(page.approvals.into_iter().map(|a| a.id));
        match page.next {
            Some(PageToken(next)) => after = Some(PageToken(next)),
            None => break,
        }
    }
    assert_eq!(listed, ids, "every approval once, newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_merges_partitions_newest_first_page_by_page_on_redis() {
    listing_merges_partitions_newest_first_page_by_page(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_merges_partitions_newest_first_page_by_page_on_cluster() {
    listing_merges_partitions_newest_first_page_by_page(Store::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_sees_deadlines_of_every_partition_earliest_first() {
    let redis = RedisServer::start();
    let prefix = namespace();
    let s = store_at(&redis.url(), &prefix, 3);
    let mut due = Vec::new();
    for i in 0..9 {
        let requester = format!("requester-{i}");
        let id = s.place(ApprovalId::generate_at(s.now()), &requester);
        let timeout = Duration::from_secs(60 + i);
        let created = s
            .create(id, new_approval(&requester, Some(timeout)), 100)
            .await
            .unwrap();
        due.push((created.approval.deadline, created.approval.id));
    }
    due.sort();
    let first = due[0].0;
    assert_eq!(s.next_deadline().await.unwrap(), Some(first));
    let later = Millis(due[4].0 .0);
    let listed = s.due(later, 100).await.unwrap();
    let expected: Vec<ApprovalId> = due[..5].iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(listed, expected);
    assert_eq!(s.due(later, 2).await.unwrap(), expected[..2].to_vec());
    let parts: BTreeSet<&str> = listed.iter().map(|id| &id.as_str()[34..]).collect();
    assert!(parts.len() > 1, "{parts:?}");
}

// ---- the service over three partitions -------------------------------------

/// Two replicas on `store`, with three partitions.
async fn three_partitions(store: Store) -> Deployment {
    Deployment::start_with(store, 2, |c| c.redis_partitions = 3).await
}

/// A creation that lands in partition `k` of three: without auth the
/// requester is the agent id, and `requester-k` hashes to partition `k`
/// (FNV-1a, pinned in the server's unit tests).
fn in_partition(k: usize, approval_type: &str) -> v1::CreateApprovalRequest {
    v1::CreateApprovalRequest {
        agent_id: format!("requester-{k}"),
        ..create_request(approval_type)
    }
}

async fn create_in_partition(client: &mut Client, k: usize, approval_type: &str) -> v1::Approval {
    let created = create_with(client, in_partition(k, approval_type)).await;
    assert!(
        created.id.ends_with(&format!("{k:02x}")),
        "{} is not in partition {k}",
        created.id
    );
    created
}

/// "added ID", "resolved ID"... for comparing streams.
fn describe(e: &v1::WatchPendingResponse) -> String {
    use v1::watch_pending_response::Event;
    match &e.event {
        Some(Event::Added(a)) => format!("added {}", a.id),
        Some(Event::Resolved(a)) => format!("resolved {}", a.id),
        Some(Event::Updated(a)) => format!("updated {}", a.id),
        other => format!("{other:?}"),
    }
}

async fn a_watch_over_three_partitions_resumed_by_cursor_sees_every_event_once(store: Store) {
    let d = three_partitions(store).await;
    let mut a = d.a().await;
    // Pending in every partition before the watch opens: the snapshot.
    let mut early = Vec::new();
    for k in 0..3 {
        early.push(create_in_partition(&mut a, k, "w").await.id);
    }
    let watch = synced_watch(&mut a, v1::WatchPendingRequest::default()).await;
    let snapshot: Vec<String> = watch.snapshot.iter().map(|x| x.id.clone()).collect();
    assert_eq!(snapshot, early, "every partition's pending, oldest first");
    assert_eq!(
        watch.cursor.split('.').next().unwrap().split(',').count(),
        3,
        "one position per partition: {}",
        watch.cursor
    );
    let mut stream = watch.stream;

    // Live: a change in every partition; the watcher takes two of them.
    let mut made = Vec::new();
    let mut later = Vec::new();
    for (k, id) in early.iter().enumerate() {
        a.respond(approve(id, "human")).await.unwrap();
        made.push(format!("resolved {id}"));
        let x = create_in_partition(&mut a, k, "w").await;
        made.push(format!("added {}", x.id));
        later.push(x.id);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..2 {
        let e = next_event(&mut stream).await;
        seen.push(describe(&e));
        cursor = e.cursor;
    }
    drop(stream);

    // While away: more changes in every partition.
    for (k, id) in later.iter().enumerate() {
        a.respond(approve(id, "human")).await.unwrap();
        made.push(format!("resolved {id}"));
        let y = create_in_partition(&mut a, k, "w").await;
        made.push(format!("added {}", y.id));
    }

    // Resumed on the other replica: every event after the two seen, once.
    let mut b = d.b().await;
    let mut resumed = b
        .watch_pending(v1::WatchPendingRequest {
            cursor,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut expected: Vec<String> = made.into_iter().filter(|m| !seen.contains(m)).collect();
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(describe(&next_event(&mut resumed).await));
    }
    // Within a partition, its log's order: an approval's resolution comes
    // before the next approval created after it there.
    for (id, next) in early.iter().zip(&later) {
        let (r, n) = (format!("resolved {id}"), format!("added {next}"));
        if let (Some(r), Some(n)) = (
            got.iter().position(|g| *g == r),
            got.iter().position(|g| *g == n),
        ) {
            assert!(r < n, "partition order lost: {got:?}");
        }
    }
    // Then live, nothing repeated: the next event is a new one.
    let z = create_in_partition(&mut a, 1, "w").await;
    assert_eq!(
        describe(&next_event(&mut resumed).await),
        format!("added {}", z.id)
    );
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_over_three_partitions_resumed_by_cursor_sees_every_event_once_on_redis() {
    a_watch_over_three_partitions_resumed_by_cursor_sees_every_event_once(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_over_three_partitions_resumed_by_cursor_sees_every_event_once_on_cluster() {
    a_watch_over_three_partitions_resumed_by_cursor_sees_every_event_once(Store::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_naming_another_number_of_logs_is_refused_naming_the_field() {
    let d = three_partitions(Store::Redis).await;
    let mut a = d.a().await;
    let synced = synced_watch(&mut a, v1::WatchPendingRequest::default()).await;
    let (positions, epoch) = synced.cursor.split_once('.').unwrap();
    // The cursor of one log (as a one-partition service gives), and of four.
    let first = positions.split(',').next().unwrap();
    for cursor in [
        format!("{first}.{epoch}"),
        format!("{positions},{first}.{epoch}"),
    ] {
        let refused = a
            .watch_pending(v1::WatchPendingRequest {
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{cursor}: {refused:?}"
        );
        assert!(refused.message().contains("cursor"), "{refused:?}");
    }
    // The cursor it gave is taken.
    a.watch_pending(v1::WatchPendingRequest {
        cursor: synced.cursor,
        ..Default::default()
    })
    .await
    .expect("its own cursor resumes");
}

async fn waiters_on_two_replicas_wake_for_approvals_in_every_partition(store: Store) {
    let d = three_partitions(store).await;
    let mut a = d.a().await;
    let (on_a, on_b) = (d.a().await, d.b().await);
    let mut waits = Vec::new();
    let mut ids = Vec::new();
    for k in 0..3 {
        let x = create_in_partition(&mut a, k, "wait").await;
        waits.push(spawn_await(&on_a, &x.id));
        waits.push(spawn_await(&on_b, &x.id));
        ids.push(x.id);
    }
    until_waiting(&d.replicas[0], 3).await;
    until_waiting(&d.replicas[1], 3).await;
    // Decided on B: the waiters of A learn it from B's writes to each log.
    let mut b = d.b().await;
    for id in &ids {
        b.respond(approve(id, "human")).await.unwrap();
    }
    for wait in waits {
        let answer = tokio::time::timeout(PROMPTLY, wait)
            .await
            .expect("the waiter wakes")
            .expect("the task")
            .expect("await")
            .into_inner();
        assert!(answer.approved);
        let approval = answer.approval.unwrap();
        assert!(ids.contains(&approval.id));
        assert_eq!(approval.decided_by, "human");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_two_replicas_wake_for_approvals_in_every_partition_on_redis() {
    waiters_on_two_replicas_wake_for_approvals_in_every_partition(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_two_replicas_wake_for_approvals_in_every_partition_on_cluster() {
    waiters_on_two_replicas_wake_for_approvals_in_every_partition(Store::Cluster).await;
}

async fn webhooks_fire_for_approvals_in_every_partition(store: Store) {
    use approval_tests::webhooks::{config_file, endpoint, until_received, Answer, Receiver};
    let receiver = Receiver::start(Answer::Ok).await;
    let file = config_file(&endpoint("all", &receiver, ""));
    // The fixture's file turns auth on: tokens of requesters that land in
    // partitions 0, 1 and 2 (`requester-k`) are added to it.
    let mut toml = std::fs::read_to_string(&file).unwrap();
    for k in 0..3 {
        toml += &format!(
            "\n[[tokens]]\nprincipal = \"requester-{k}\"\nroles = [\"requester\"]\nsha256 = {:?}\n",
            approvald::auth::hash_token(&format!("tok-requester-{k}"))
        );
    }
    std::fs::write(&file, toml).unwrap();
    let d = Deployment::start_with(store, 2, |c| {
        c.redis_partitions = 3;
        c.auth_config = Some(file.to_path_buf());
    })
    .await;
    let mut a = d.a().await;
    let mut ids = Vec::new();
    for k in 0..3 {
        let created = a
            .create_approval(approval_tests::webhooks::as_(
                &format!("tok-requester-{k}"),
                create_request("hook:deploy"),
            ))
            .await
            .expect("create")
            .into_inner()
            .approval
            .unwrap();
        assert!(created.id.ends_with(&format!("{k:02x}")), "{}", created.id);
        ids.push(created.id);
    }
    let want = |got: &[approval_tests::webhooks::Received]| {
        ids.iter().all(|id| {
            got.iter()
                .any(|r| r.json()["data"]["approval"]["id"] == id.as_str())
        })
    };
    assert!(
        until_received(&receiver, Duration::from_secs(20), want).await,
        "not every partition's approval.created went out: {:?}",
        receiver.received()
    );
    // One message per event: webhook ids of different partitions' events
    // never collide (their logs' positions may).
    let got = receiver.received();
    let mut webhook_ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    webhook_ids.sort();
    webhook_ids.dedup();
    assert_eq!(webhook_ids.len(), 3, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_fire_for_approvals_in_every_partition_on_redis() {
    webhooks_fire_for_approvals_in_every_partition(Store::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_fire_for_approvals_in_every_partition_on_cluster() {
    webhooks_fire_for_approvals_in_every_partition(Store::Cluster).await;
}

// ---- a measurement ----------------------------------------------------------

/// One primary's counters (INFO): commands run, bytes in and out, CPU.
#[derive(Clone, Copy, Default)]
struct NodeCounters {
    commands: u64,
    bytes: u64,
    cpu_ms: f64,
}

fn node_counters(port: u16) -> NodeCounters {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("everything")
        .query(&mut conn)
        .unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let commands = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    NodeCounters {
        commands,
        bytes: (field("total_net_input_bytes") + field("total_net_output_bytes")) as u64,
        cpu_ms: 1000.0 * (field("used_cpu_sys") + field("used_cpu_user")),
    }
}

fn primaries(cluster: &RedisCluster) -> Vec<u16> {
    let url = cluster.url();
    let mut ports: Vec<u16> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .filter_map(|n| n.rsplit(':').next()?.parse().ok())
        .filter(|&port| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut conn = client.get_connection().unwrap();
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap();
            info.contains("role:master")
        })
        .collect();
    ports.sort();
    ports
}

/// Redis commands, bytes and CPU per lifecycle (create, then approve; two
/// approvald replicas, a watcher on each) on each primary of a
/// three-primary Cluster, with one and with three partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn measure_redis_work_per_lifecycle_per_primary_with_one_and_three_partitions() {
    const LIFECYCLES: usize = 2_000;
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .expect("the cluster starts"),
    );
    let nodes = primaries(&cluster);
    assert_eq!(nodes.len(), 3);
    println!("| partitions | primary | commands per lifecycle | bytes per lifecycle | CPU ms per 1,000 lifecycles | share of the commands |");
    println!("|---|---|---|---|---|---|");
    for partitions in [1, 3] {
        // Three partitions on three primaries (the tags of a random prefix
        // land on three distinct primaries about 2 times in 9: draw again).
        let d = loop {
            let d = Deployment::start_on_cluster(cluster.clone(), 2, |c| {
                c.redis_partitions = partitions
            })
            .await;
            let on: BTreeSet<u16> = (0..partitions)
                .map(|k| match k {
                    0 => d.hash_tag(),
                    k => format!("{{{}:{k}}}", d.prefix),
                })
                .map(|tag| cluster.shard_of(&tag).primary)
                .collect();
            if on.len() == partitions {
                break d;
            }
        };
        let (mut a, mut b) = (d.a().await, d.b().await);
        let _watch_a = synced_watch(&mut a, v1::WatchPendingRequest::default()).await;
        let _watch_b = synced_watch(&mut b, v1::WatchPendingRequest::default()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before: Vec<NodeCounters> = nodes.iter().map(|&p| node_counters(p)).collect();
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (mut a, mut b) = (a.clone(), b.clone());
                tokio::spawn(async move {
                    for i in (t..LIFECYCLES).step_by(16) {
                        let created = create_with(
                            &mut a,
                            v1::CreateApprovalRequest {
                                agent_id: format!("requester-{}", i % 30),
                                ..create_request("measure")
                            },
                        )
                        .await;
                        b.respond(approve(&created.id, "human")).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        let after: Vec<NodeCounters> = nodes.iter().map(|&p| node_counters(p)).collect();
        let total: u64 = after
            .iter()
            .zip(&before)
            .map(|(x, y)| x.commands - y.commands)
            .sum();
        for ((port, x), y) in nodes.iter().zip(&after).zip(&before) {
            let n = LIFECYCLES as f64;
            let commands = (x.commands - y.commands) as f64;
            println!(
                "| {partitions} | :{port} | {:.1} | {:.0} | {:.0} | {:.0}% |",
                commands / n,
                (x.bytes - y.bytes) as f64 / n,
                (x.cpu_ms - y.cpu_ms) / n * 1000.0,
                100.0 * commands / total.max(1) as f64,
            );
        }
        println!(
            "| {partitions} | all | {:.1} | | | ({LIFECYCLES} lifecycles in {seconds:.1} s) |",
            total as f64 / LIFECYCLES as f64
        );
    }
}
