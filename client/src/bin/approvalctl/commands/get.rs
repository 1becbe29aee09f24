//! `approvalctl get ID`: one approval, every field.

use approval_client::ApprovalClient;

use crate::cli::{IdArg, Output};
use crate::exit::{Exit, Failure};
use crate::output;

pub async fn run(client: &ApprovalClient, args: IdArg, out: Output) -> Result<Exit, Failure> {
    let approval = client.get(&args.id).await?;
    output::approval(&approval, out);
    Ok(Exit::Ok)
}
