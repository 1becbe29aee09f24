//! `approvalctl cancel ID`: the requester withdraws; its waiter ends
//! cancelled (exit code 3 for an `approvalctl request`).

use approval_client::ApprovalClient;

use crate::cli::{CancelArgs, Output};
use crate::exit::{Exit, Failure};
use crate::output;

pub async fn run(client: &ApprovalClient, args: CancelArgs, out: Output) -> Result<Exit, Failure> {
    let approval = client.cancel(&args.id, args.reason).await?;
    match out {
        Output::Json => output::json(&approval),
        Output::Table => println!("{}", output::sentence(&approval)),
    }
    Ok(Exit::Ok)
}
