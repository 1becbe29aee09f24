//! Scale of the pending set, part two: listing one page of pending
//! approvals (ListApprovals, statuses = PENDING, page_size = the page) when
//! the Redis holds nothing else, then again once U unrelated keys share it.
//! The reference lists its pending requests (`get_pending_approvals`) on the
//! same Redis at the same two moments.

use std::time::{Duration, Instant};

use approval_api::v1::{ApprovalStatus, ListApprovalsRequest};

use super::{create_many, within};
use crate::reference::Reference;
use crate::stats::{Latencies, Summary};
use crate::{Bench, BenchResult};

#[derive(Clone, Debug)]
pub struct ListingRow {
    pub unrelated_keys: usize,
    pub redis_keys: u64,
    pub approvald: Summary,
    pub reference: Option<Summary>,
}

#[derive(Clone, Debug)]
pub struct Listing {
    pub page: usize,
    pub rows: Vec<ListingRow>,
}

pub async fn run(b: &Bench, reference: Option<&Reference>) -> BenchResult<Listing> {
    let page = b.sizes.listing_page;
    let unrelated = b.sizes.unrelated_keys;
    eprintln!("\n== listing a page of {page} pending, with 0 then {unrelated} unrelated keys");
    b.redis.flush().await?;
    let prefix = b.prefix("listing");
    let replica = b.replica(&prefix, "a").await?;
    let mut client = replica.client().await?;
    create_many(std::slice::from_ref(&client), page, 32, "bench:listing").await?;
    if let Some(r) = reference {
        r.seed_pending(&b.redis.url(), page).await?;
    }
    let mut rows = Vec::new();
    for keys in [0, unrelated] {
        if keys > 0 {
            seed_unrelated(b, keys).await?;
        }
        let mut conn = b.redis.connection().await?;
        let redis_keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await?;
        let calls = b.sizes.listing_calls;
        let approvald = within("ListApprovals", Duration::from_secs(60), async {
            let mut lat = Latencies::default();
            for _ in 0..calls {
                let t0 = Instant::now();
                let reply = client
                    .list_approvals(ListApprovalsRequest {
                        statuses: vec![ApprovalStatus::Pending as i32],
                        page_size: page as i32,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                lat.record(t0.elapsed());
                if reply.approvals.len() != page {
                    return Err(
                        format!("listed {} pending, not {page}", reply.approvals.len()).into(),
                    );
                }
            }
            Ok(lat.summary())
        })
        .await?;
        eprintln!("approvald ListApprovals, {redis_keys} keys in Redis: {approvald}");
        let reference = match reference {
            Some(r) => {
                let s = r
                    .list_pending(&b.redis.url(), b.sizes.reference_listing_calls, page)
                    .await?;
                eprintln!("reference get_pending_approvals:            {s}");
                Some(s)
            }
            None => None,
        };
        rows.push(ListingRow {
            unrelated_keys: keys,
            redis_keys,
            approvald,
            reference,
        });
    }
    Ok(Listing { page, rows })
}

/// `n` keys that belong to neither design (100-byte strings).
async fn seed_unrelated(b: &Bench, n: usize) -> BenchResult<()> {
    let mut conn = b.redis.connection().await?;
    let value = "x".repeat(100);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("unrelated:{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(())
}
