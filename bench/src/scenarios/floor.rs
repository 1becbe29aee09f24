//! The floor: what this machine allows before approvald does anything.
//! A Redis PING round trip, a bare gRPC unary round trip (grpc.health Check,
//! no store involved), and GetApproval of an unknown id (gRPC plus one
//! Redis read), each one call at a time.

use std::time::{Duration, Instant};

use approval_api::v1::GetApprovalRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::within;
use crate::stats::{Latencies, Summary};
use crate::{Bench, BenchResult};

#[derive(Clone, Debug)]
pub struct Floor {
    pub redis_ping: Summary,
    pub grpc_health: Summary,
    pub get_unknown: Summary,
}

/// A well-formed UUIDv7 that no approval has.
const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

pub async fn run(b: &Bench) -> BenchResult<Floor> {
    let n = b.sizes.floor_calls;
    let limit = Duration::from_secs(60);
    eprintln!("\n== floor ({n} calls each, one at a time)");

    let mut conn = b.redis.connection().await?;
    let redis_ping = within("redis PING", limit, async {
        let mut lat = Latencies::default();
        for _ in 0..n {
            let t0 = Instant::now();
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            lat.record(t0.elapsed());
        }
        Ok(lat.summary())
    })
    .await?;
    eprintln!("redis PING:               {redis_ping}");

    let prefix = b.prefix("floor");
    let replica = b.replica(&prefix, "a").await?;
    let mut health = HealthClient::new(replica.channel().await?);
    let grpc_health = within("grpc.health Check", limit, async {
        let mut lat = Latencies::default();
        for _ in 0..n {
            let t0 = Instant::now();
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            lat.record(t0.elapsed());
        }
        Ok(lat.summary())
    })
    .await?;
    eprintln!("gRPC health Check:        {grpc_health}");

    let mut client = replica.client().await?;
    let get_unknown = within("GetApproval (unknown id)", limit, async {
        let mut lat = Latencies::default();
        for _ in 0..n {
            let t0 = Instant::now();
            let reply = client
                .get_approval(GetApprovalRequest {
                    id: UNKNOWN_ID.into(),
                })
                .await;
            lat.record(t0.elapsed());
            match reply {
                Err(s) if s.code() == tonic::Code::NotFound => {}
                other => return Err(format!("GetApproval of an unknown id: {other:?}").into()),
            }
        }
        Ok(lat.summary())
    })
    .await?;
    eprintln!("GetApproval (unknown id): {get_unknown}");
    Ok(Floor {
        redis_ping,
        grpc_health,
        get_unknown,
    })
}
