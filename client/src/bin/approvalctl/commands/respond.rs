//! `approvalctl approve ID` / `approvalctl reject ID --reason R`, each
//! optionally `--expect-digest D`. Under a policy needing several
//! approvals the answer may still be pending: the vote is recorded.

use approval_client::{ApprovalClient, Verdict};

use crate::cli::Output;
use crate::exit::{Exit, Failure};
use crate::output;

pub async fn run(
    client: &ApprovalClient,
    id: &str,
    verdict: Verdict,
    reason: String,
    expected_digest: &str,
    out: Output,
) -> Result<Exit, Failure> {
    let approval = client
        .respond_to_digest(id, verdict, reason, expected_digest)
        .await?;
    match out {
        Output::Json => output::json(&approval),
        Output::Table => println!("{}", output::sentence(&approval)),
    }
    Ok(Exit::Ok)
}
