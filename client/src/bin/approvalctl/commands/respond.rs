//! `approvalctl approve ID` / `approvalctl reject ID --reason R`.

use approval_client::{ApprovalClient, Verdict};

use crate::cli::Output;
use crate::exit::{Exit, Failure};
use crate::output;

pub async fn run(
    client: &ApprovalClient,
    id: &str,
    verdict: Verdict,
    reason: String,
    out: Output,
) -> Result<Exit, Failure> {
    let approval = client.respond(id, verdict, reason).await?;
    match out {
        Output::Json => output::json(&approval),
        Output::Table => println!("{}", output::sentence(&approval)),
    }
    Ok(Exit::Ok)
}
