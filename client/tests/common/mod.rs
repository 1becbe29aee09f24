//! Shared by the library and `approvalctl` tests: a live `approvald` on a
//! real Redis (from the `approval-tests` harness) and typed-client helpers.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use approval_client::{Approval, ApprovalClient, ListFilter, Status};
pub use approval_tests::free_port;
use approval_tests::{wait_for, Deployment, RedisServer, Replica, ScratchDir, Store, PROMPTLY};
use approvald::Config;
use futures::TryStreamExt;

/// Two replicas on one Redis, short shutdown grace.
pub async fn deployment() -> Deployment {
    Deployment::start_with(Store::Redis, 2, |c| {
        c.shutdown_grace = Duration::from_secs(2);
    })
    .await
}

/// A typed client of one replica, responding as `responder`.
pub async fn client(replica: &Replica, responder: &str) -> ApprovalClient {
    ApprovalClient::builder(replica.endpoint())
        .agent_id("test-agent")
        .responder(responder)
        .connect()
        .await
        .expect("connect to approvald")
}

/// A replica on `port` (fixed, so that it can be replaced by another on the
/// same address), on `redis` under `prefix`.
pub async fn replica_on(port: u16, redis: &RedisServer, prefix: &str) -> Replica {
    let mut config = Config::for_tests();
    config.listen = format!("127.0.0.1:{port}").parse().expect("address");
    config.redis_url = Some(redis.url());
    config.redis_prefix = prefix.to_string();
    config.shutdown_grace = Duration::from_secs(2);
    Replica::start(config).await
}

/// The pending approvals of one type, newest first.
pub async fn pending(client: &ApprovalClient, approval_type: &str) -> Vec<Approval> {
    client
        .list(
            ListFilter::default()
                .status(Status::Pending)
                .approval_type(approval_type),
        )
        .try_collect()
        .await
        .expect("list")
}

/// Waits (bounded) until exactly `n` approvals of the type are pending.
pub async fn until_pending(
    client: &ApprovalClient,
    approval_type: &str,
    n: usize,
) -> Vec<Approval> {
    wait_for(PROMPTLY, || async {
        let found = pending(client, approval_type).await;
        (found.len() == n).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("{n} pending approvals of type {approval_type} did not appear"))
}

/// A UUIDv7 that names no approval.
pub fn unknown_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Two replicas on one Redis reading a configuration file with these
/// policies (written to a fresh folder, returned too).
pub async fn deployment_with_policies(policies: &str) -> (Deployment, ScratchDir) {
    let dir = ScratchDir::new("approvalctl-policy");
    let file = dir.join("config.toml");
    std::fs::write(&file, policies).expect("write the configuration file");
    let d = Deployment::start_with(Store::Redis, 2, |c| {
        c.shutdown_grace = Duration::from_secs(2);
        c.auth_config = Some(file.clone());
    })
    .await;
    (d, dir)
}
