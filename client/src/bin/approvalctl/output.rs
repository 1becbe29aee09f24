//! How results look: tables and sentences for people, JSON for programs.

use std::time::{Duration, SystemTime};

use approval_client::{Approval, Decision};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::cli::Output;

/// Prints one value as pretty JSON.
pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode the answer as JSON: {e}"),
    }
}

/// Prints one approval: every field (table) or the JSON object.
pub fn approval(a: &Approval, output: Output) {
    match output {
        Output::Json => json(a),
        Output::Table => {
            let mut table = Table::new();
            table.load_preset(presets::NOTHING);
            let mut row = |k: &str, v: String| {
                table.add_row(vec![k.to_string(), v]);
            };
            row("id", a.id.clone());
            row("status", a.status.to_string());
            row("type", a.approval_type.clone());
            row("agent", a.agent_id.clone());
            row("requester", a.requester.clone());
            row("created", timestamp(a.created_at));
            row("deadline", timestamp(a.deadline));
            if let Some(by) = &a.decided_by {
                row("decided by", by.clone());
            }
            if let Some(at) = a.decided_at {
                row("decided at", timestamp(at));
            }
            if !a.reason.is_empty() {
                row("reason", a.reason.clone());
            }
            if !a.labels.is_empty() {
                row("labels", labels(a));
            }
            if !a.idempotency_key.is_empty() {
                row("idempotency key", a.idempotency_key.clone());
            }
            row(
                "context",
                serde_json::to_string_pretty(&a.context).unwrap_or_default(),
            );
            println!("{table}");
        }
    }
}

/// Prints how a request ended.
pub fn decision(d: &Decision, output: Output) {
    match output {
        Output::Json => json(d),
        Output::Table => println!("{}", sentence(&d.approval)),
    }
}

/// "approved by alice: looks good", "expired: nobody decided in time".
pub fn sentence(a: &Approval) -> String {
    let mut text = format!("{} {}", a.id, a.status);
    if let Some(by) = &a.decided_by {
        text.push_str(&format!(" by {by}"));
    }
    if !a.reason.is_empty() {
        text.push_str(&format!(": {}", a.reason));
    }
    text
}

/// Approvals as a table, one per row.
pub fn approvals_table(approvals: &[Approval]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "ID",
            "STATUS",
            "TYPE",
            "AGENT",
            "CREATED",
            "DECIDED BY",
            "REASON",
        ]);
    for a in approvals {
        table.add_row(vec![
            a.id.clone(),
            a.status.to_string(),
            a.approval_type.clone(),
            a.agent_id.clone(),
            ago(a.created_at),
            a.decided_by.clone().unwrap_or_default(),
            a.reason.clone(),
        ]);
    }
    table
}

pub fn labels(a: &Approval) -> String {
    a.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The context on one line, cut to `max` characters.
pub fn context_line(a: &Approval, max: usize) -> String {
    let text = a.context.to_string();
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "3m 12s ago".
pub fn ago(t: SystemTime) -> String {
    match SystemTime::now().duration_since(t) {
        Ok(d) => format!("{} ago", short(d)),
        Err(_) => "just now".to_string(),
    }
}

/// A duration to the second: "4m 58s".
pub fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
