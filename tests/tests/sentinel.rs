//! Redis Sentinel: replicas follow a failover to the new master by
//! themselves, and a waiter gets a decision made after it.

use std::time::Duration;

use approval_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_a_sentinel_failover_and_waiters_get_the_decision() {
    let mut master = RedisServer::start();
    let replica = RedisServer::start_replica_of(master.port);
    // Its link must be up before WAIT below can count it.
    replica.wait_in_sync();
    let sentinel = Sentinel::start("approvals", master.port);
    let known = wait_for(PROMPTLY, || async {
        (sentinel.master_port("approvals") == Some(master.port)).then_some(())
    })
    .await;
    assert!(known.is_some(), "the sentinel watches the master");

    let url = format!("redis+sentinel://127.0.0.1:{}/approvals", sentinel.port);
    let prefix = format!("sentinel-{}", uuid::Uuid::now_v7().simple());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut config = approvald::Config::for_tests();
        config.redis_url = Some(url.clone());
        config.redis_prefix = prefix.clone();
        config.health_interval = Duration::from_millis(200);
        replicas.push(Replica::start(config).await);
    }
    let a = replicas[0].client().await;
    let created = wait_for(PROMPTLY, || {
        let mut a = a.clone();
        async move { a.create_approval(create_request("deploy:prod")).await.ok() }
    })
    .await
    .expect("approvald finds the master through Sentinel")
    .into_inner()
    .approval
    .unwrap();
    let waiter = spawn_await(&a, &created.id);
    until_waiting(&replicas[0], 1).await;
    // Make sure the replica has everything before the master dies.
    let mut conn = master.connection();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut conn)
        .unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the writes");

    master.stop();
    let promoted = wait_for(Duration::from_secs(60), || async {
        (sentinel.master_port("approvals") == Some(replica.port)).then_some(())
    })
    .await;
    assert!(promoted.is_some(), "Sentinel promoted the replica");

    let b = replicas[1].client().await;
    let decided = wait_for(Duration::from_secs(30), || {
        let mut b = b.clone();
        let id = created.id.clone();
        async move { b.respond(approve(&id, "alice")).await.ok() }
    })
    .await;
    assert!(decided.is_some(), "Respond works on the new master");
    let answer = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter woke after the failover")
        .unwrap()
        .expect("await")
        .into_inner();
    assert!(answer.approved);
    assert_eq!(answer.approval.unwrap().decided_by, "alice");
}
