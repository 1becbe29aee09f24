//! `approvalctl webhooks failed` lists the webhook deliveries the server
//! gave up on (dead letters); `approvalctl webhooks retry ID` sends one
//! again. Both need the admin role when the server has authentication on.

use approval_client::ApprovalClient;
use comfy_table::{presets, ContentArrangement, Table};

use crate::cli::{Output, WebhooksCommand};
use crate::exit::{Exit, Failure};
use crate::output::{self, safe};

pub async fn run(
    client: &ApprovalClient,
    command: WebhooksCommand,
    out: Output,
) -> Result<Exit, Failure> {
    match command {
        WebhooksCommand::Failed { limit } => {
            let failed = client.failed_deliveries(limit).await?;
            match out {
                Output::Json => output::json(&failed),
                Output::Table if failed.is_empty() => println!("no failed webhook deliveries"),
                Output::Table => {
                    let mut table = Table::new();
                    table
                        .load_preset(presets::NOTHING)
                        .set_content_arrangement(ContentArrangement::Dynamic)
                        .set_header(vec![
                            "ID", "ENDPOINT", "EVENT", "APPROVAL", "ATTEMPTS", "FAILED", "ERROR",
                        ]);
                    for d in &failed {
                        table.add_row(vec![
                            safe(&d.id),
                            safe(&d.endpoint),
                            safe(&d.event_type),
                            safe(&d.approval_id),
                            d.attempts.to_string(),
                            d.failed_at.map(output::ago).unwrap_or_default(),
                            safe(&d.last_error),
                        ]);
                    }
                    println!("{table}");
                }
            }
        }
        WebhooksCommand::Retry { id } => {
            client.retry_delivery(&id).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({"id": id, "queued": true})),
                Output::Table => println!("{} queued again", safe(&id)),
            }
        }
    }
    Ok(Exit::Ok)
}
