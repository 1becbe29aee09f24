//! `approvalctl list`: approvals newest first, as a table or a JSON array.

use approval_client::{ApprovalClient, ListFilter};
use futures::{StreamExt, TryStreamExt};

use crate::cli::{ListArgs, Output};
use crate::exit::{Exit, Failure};
use crate::output;

/// The most approvals one call asks for.
const MAX_PAGE: usize = 1000;

pub async fn run(client: &ApprovalClient, args: ListArgs, out: Output) -> Result<Exit, Failure> {
    let mut filter = ListFilter::default().page_size(args.limit.clamp(1, MAX_PAGE) as u32);
    for s in args.status {
        filter = filter.status(s);
    }
    for t in args.approval_types {
        filter = filter.approval_type(t);
    }
    if let Some(agent) = args.agent_id {
        filter = filter.agent_id(agent);
    }
    for (k, v) in args.labels {
        filter = filter.label(k, v);
    }
    let approvals: Vec<_> = client.list(filter).take(args.limit).try_collect().await?;
    match out {
        Output::Json => output::json(&approvals),
        Output::Table if approvals.is_empty() => eprintln!("no approvals match"),
        Output::Table => println!("{}", output::approvals_table(&approvals)),
    }
    Ok(Exit::Ok)
}
