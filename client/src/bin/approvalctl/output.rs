//! How results look: tables and sentences for people, JSON for programs.

use std::time::{Duration, SystemTime};

use approval_client::{Approval, Decision};
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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
            row("id", safe(&a.id));
            row("status", a.status.to_string());
            row("type", safe(&a.approval_type));
            row("agent", safe(&a.agent_id));
            row("requester", safe(&a.requester));
            row("created", timestamp(a.created_at));
            row("deadline", timestamp(a.deadline));
            if !a.policy.is_empty() {
                row("policy", safe(&a.policy));
            }
            row(
                "approvals",
                format!(
                    "{} of {} needed",
                    a.votes
                        .iter()
                        .filter(|v| v.decision == approval_client::Verdict::Approve)
                        .count(),
                    a.required_approvals
                ),
            );
            row("on timeout", a.on_timeout.to_string());
            if !a.votes.is_empty() {
                row("votes", votes(a));
            }
            if !a.context_digest.is_empty() {
                row("context digest", safe(&a.context_digest));
            }
            if let Some(by) = &a.decided_by {
                row("decided by", safe(by));
            }
            if let Some(at) = a.decided_at {
                row("decided at", timestamp(at));
            }
            if !a.reason.is_empty() {
                row("reason", safe_lines(&a.reason));
            }
            if !a.labels.is_empty() {
                row("labels", labels(a));
            }
            if !a.idempotency_key.is_empty() {
                row("idempotency key", safe(&a.idempotency_key));
            }
            row(
                "context",
                safe_lines(&serde_json::to_string_pretty(&a.context).unwrap_or_default()),
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

/// "approved by alice: looks good", "expired: nobody decided in time",
/// "pending (1 of 2 approvals)".
pub fn sentence(a: &Approval) -> String {
    let mut text = format!("{} {}", safe(&a.id), a.status);
    if !a.is_final() && !a.votes.is_empty() {
        let approvals = a
            .votes
            .iter()
            .filter(|v| v.decision == approval_client::Verdict::Approve)
            .count();
        text.push_str(&format!(
            " ({approvals} of {} approvals)",
            a.required_approvals
        ));
    }
    if let Some(by) = &a.decided_by {
        text.push_str(&format!(" by {}", safe(by)));
    }
    if !a.reason.is_empty() {
        text.push_str(&format!(": {}", safe(&a.reason)));
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
            safe(&a.id),
            a.status.to_string(),
            safe(&a.approval_type),
            safe(&a.agent_id),
            ago(a.created_at),
            safe(a.decided_by.as_deref().unwrap_or_default()),
            safe(&a.reason),
        ]);
    }
    table
}

/// One line per vote: "approve by alice at <time>: reason".
pub fn votes(a: &Approval) -> String {
    a.votes
        .iter()
        .map(|v| {
            let mut line = format!(
                "{} by {} at {}",
                v.decision,
                safe(&v.voter),
                timestamp(v.voted_at)
            );
            if !v.reason.is_empty() {
                line.push_str(&format!(": {}", safe(&v.reason)));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn labels(a: &Approval) -> String {
    a.labels
        .iter()
        .map(|(k, v)| format!("{}={}", safe(k), safe(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The context on one line, cut to `max` characters.
pub fn context_line(a: &Approval, max: usize) -> String {
    let text = safe(&a.context.to_string());
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Text from the server as it is safe to print on a terminal, on one line:
/// control characters (ESC, BEL, CR, NUL, newline...) and invisible format
/// characters (bidi overrides, zero-width spaces) are shown escaped, as
/// `\u{1b}`, so no field can move the cursor, clear the screen or make text
/// read differently than it is. The server refuses most of them already; a
/// table must not depend on that.
pub fn safe(text: &str) -> String {
    escape(text, false)
}

/// Like `safe`, keeping newlines (multi-line table cells).
pub fn safe_lines(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let unsafe_char = c.is_control()
            || matches!(
                c.general_category(),
                GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            );
        if unsafe_char && !(keep_newlines && c == '\n') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_invisible_characters_are_printed_escaped() {
        let hostile = "ok\u{1b}[2J\u{7}\r\u{0}\u{202e}evil\u{200b}";
        let shown = safe(hostile);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() || c == '\u{202e}' || c == '\u{200b}'),
            "{shown:?}"
        );
        assert_eq!(
            shown,
            "ok\\u{1b}[2J\\u{7}\\u{d}\\u{0}\\u{202e}evil\\u{200b}"
        );
        assert_eq!(safe_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
    }
}
