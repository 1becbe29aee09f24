//! An agent that gates a (fake) production deploy behind a human decision.
//!
//! Start a server (`approvald`), run this example, then approve from a
//! second terminal:
//!
//! ```text
//! cargo run -p approvald
//! cargo run -p approval-client --example gate_deploy -- billing 1.4.2
//! approvalctl watch                     # see it waiting
//! approvalctl approve <ID> --reason "release notes checked"
//! ```
//!
//! `APPROVAL_SERVER` picks another server (default http://127.0.0.1:50051).
//! Killing and re-running the example re-attaches to the same approval: the
//! idempotency key names this service and version.

use std::time::Duration;

use approval_client::{ApprovalClient, ApprovalRequest, Outcome};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let service = args.next().unwrap_or_else(|| "billing".to_string());
    let version = args.next().unwrap_or_else(|| "1.4.2".to_string());
    let server =
        std::env::var("APPROVAL_SERVER").unwrap_or_else(|_| "http://127.0.0.1:50051".to_string());

    let client = ApprovalClient::builder(server)
        .agent_id("gate-deploy-example")
        .connect()
        .await?;

    println!("asking for approval to deploy {service} {version} to production...");
    let decision = client
        .request_approval(
            ApprovalRequest::new("deploy:production")
                .context(json!({
                    "service": service,
                    "version": version,
                    "changes": ["faster invoices", "fix rounding of VAT"],
                }))
                .label("service", service.as_str())
                .timeout(Duration::from_secs(10 * 60))
                .idempotency_key(format!("deploy-{service}-{version}")),
        )
        .await?;

    match decision.outcome {
        Outcome::Approved => {
            println!(
                "approved by {} ({}): deploying",
                decision.decided_by.as_deref().unwrap_or("?"),
                decision.reason
            );
            deploy(&service, &version).await;
            Ok(())
        }
        outcome => {
            println!("not deploying: {outcome} ({})", decision.reason);
            std::process::exit(1);
        }
    }
}

/// Stands in for the real thing.
async fn deploy(service: &str, version: &str) {
    for step in ["pulling image", "rolling out", "health checks green"] {
        println!("  {service} {version}: {step}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("deployed {service} {version}");
}
