//! `--redis-partitions`: the key layout of one partition is the layout of
//! before (byte for byte), the layout is recorded and a replica started
//! with another count refuses to start; over several partitions the Redis
//! store places each approval in a partition its id names, routes reads and
//! writes by the id alone, and merges listing and the reaper's queue.
//!
//! The service itself serves one partition yet (the event log is not merged
//! across partitions), so the multi-partition tests drive the Redis store
//! directly, on a real `redis-server` and on the real Cluster fixture.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_refuses_more_than_one_partition_until_it_merges_their_event_logs() {
    let redis = RedisServer::start();
    let mut config = approvald::Config::for_tests();
    config.redis_url = Some(redis.url());
    config.redis_partitions = 3;
    let refused = approvald::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("--redis-partitions 3"),
        "{refused}"
    );
}
