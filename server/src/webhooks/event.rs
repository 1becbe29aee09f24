//! What a webhook says: the event types receivers see, how store events
//! map onto them, and the message bodies (`standard` and `slack`).

use serde_json::{json, Map, Value};

use super::config::{Endpoint, Format};
use crate::domain::{Approval, DomainError, Event, EventKind, Status};

/// An event type a receiver can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookEvent {
    Created,
    /// A vote on an approval that is still pending.
    Vote,
    Approved,
    Rejected,
    Expired,
    Cancelled,
    /// The Nth reminder of a pending approval (from `remind_after`).
    Reminder(u32),
}

impl WebhookEvent {
    const NAMED: [WebhookEvent; 6] = [
        WebhookEvent::Created,
        WebhookEvent::Vote,
        WebhookEvent::Approved,
        WebhookEvent::Rejected,
        WebhookEvent::Expired,
        WebhookEvent::Cancelled,
    ];

    /// The `type` of the message.
    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::Created => "approval.created",
            WebhookEvent::Vote => "approval.vote",
            WebhookEvent::Approved => "approval.approved",
            WebhookEvent::Rejected => "approval.rejected",
            WebhookEvent::Expired => "approval.expired",
            WebhookEvent::Cancelled => "approval.cancelled",
            WebhookEvent::Reminder(_) => "approval.reminder",
        }
    }

    /// The webhook event of a store event, if it has one. Every kind of
    /// store event is one arm here (the compiler asks for a new kind's): a
    /// vote on a pending approval maps to `Vote`, the Nth reminder to
    /// `Reminder(n)`; the body (`render`) adds `data.reminder` for those.
    pub fn of(event: &Event) -> Option<Self> {
        match event.kind {
            EventKind::Added => Some(WebhookEvent::Created),
            EventKind::Resolved => match event.approval.status {
                Status::Approved => Some(WebhookEvent::Approved),
                Status::Rejected => Some(WebhookEvent::Rejected),
                Status::Expired => Some(WebhookEvent::Expired),
                Status::Cancelled => Some(WebhookEvent::Cancelled),
                Status::Pending => None,
            },
            EventKind::Updated => Some(WebhookEvent::Vote),
            EventKind::Reminder(n) => Some(WebhookEvent::Reminder(n)),
        }
    }
}

/// An entry of an endpoint's `events` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventPattern {
    Exactly(WebhookEvent),
    /// `approval.reminder`: every reminder.
    AnyReminder,
}

impl EventPattern {
    pub fn parse(key: &str, raw: &str) -> Result<Self, String> {
        if raw == "approval.reminder" {
            return Ok(EventPattern::AnyReminder);
        }
        if let Some(n) = raw.strip_prefix("approval.reminder.") {
            return match n.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(EventPattern::Exactly(WebhookEvent::Reminder(n))),
                _ => Err(format!(
                    "{key}: {raw:?}: the reminder number must be 1 or more (approval.reminder.2 \
                     is the second reminder)"
                )),
            };
        }
        WebhookEvent::NAMED
            .into_iter()
            .find(|e| e.name() == raw)
            .map(EventPattern::Exactly)
            .ok_or_else(|| {
                let names: Vec<&str> = WebhookEvent::NAMED.iter().map(|e| e.name()).collect();
                format!(
                    "{key}: {raw:?} is not an event type: use {}, approval.reminder or \
                     approval.reminder.N",
                    names.join(", ")
                )
            })
    }

    pub fn matches(self, event: WebhookEvent) -> bool {
        match self {
            EventPattern::Exactly(e) => e == event,
            EventPattern::AnyReminder => matches!(event, WebhookEvent::Reminder(_)),
        }
    }
}

/// The approval as receivers see it (the API's field names, JSON values).
fn approval_json(a: &Approval) -> Value {
    let resolution = a.resolution.as_ref();
    json!({
        "id": a.id.as_str(),
        "approval_type": a.approval_type,
        "agent_id": a.agent_id,
        "requester": a.requester,
        "context": crate::domain::context_json(&a.context),
        "context_digest": a.context_digest.to_string(),
        "labels": a.labels,
        "created_at": a.created_at.rfc3339(),
        "deadline": a.deadline.rfc3339(),
        "status": a.status.as_str(),
        "decided_by": resolution.map(|r| r.decided_by.as_str()),
        "reason": resolution.map(|r| r.reason.as_str()),
        "decided_at": resolution.map(|r| r.decided_at.rfc3339()),
    })
}

/// The body sent to `endpoint` for `event`.
pub fn render(
    endpoint: &Endpoint,
    kind: WebhookEvent,
    event: &Event,
) -> Result<String, DomainError> {
    let value = match endpoint.format {
        Format::Standard => standard(endpoint, kind, event),
        Format::Slack => slack(endpoint, kind, &event.approval),
    };
    serde_json::to_string(&value).map_err(|e| DomainError::Internal(format!("webhook body: {e}")))
}

/// The Standard Webhooks shape: `type`, `timestamp` (of the event), `data`.
fn standard(endpoint: &Endpoint, kind: WebhookEvent, event: &Event) -> Value {
    let mut data = Map::new();
    data.insert("approval".into(), approval_json(&event.approval));
    if let WebhookEvent::Reminder(n) = kind {
        data.insert("reminder".into(), json!(n));
    }
    if let Some(inbox) = &endpoint.inbox_url {
        data.insert("inbox_url".into(), json!(inbox));
    }
    json!({
        "type": kind.name(),
        "timestamp": crate::domain::Millis(event.cursor.ms).rfc3339(),
        "data": data,
    })
}

/// Longest context summary in a Slack message, in characters.
const SLACK_SUMMARY_CHARS: usize = 600;
/// Most context fields shown in a Slack message.
const SLACK_SUMMARY_FIELDS: usize = 8;

/// Slack mrkdwn needs &, < and > escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// The first fields of the context, one `key: value` line each.
fn context_summary(a: &Approval) -> String {
    let context = crate::domain::context_json(&a.context);
    let Value::Object(fields) = context else {
        return String::new();
    };
    let mut lines: Vec<String> = fields
        .iter()
        .take(SLACK_SUMMARY_FIELDS)
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!(
                "• *{}*: {}",
                slack_escape(k),
                slack_escape(&shorten(&v, 200))
            )
        })
        .collect();
    if fields.len() > SLACK_SUMMARY_FIELDS {
        lines.push(format!(
            "… and {} more fields",
            fields.len() - SLACK_SUMMARY_FIELDS
        ));
    }
    shorten(&lines.join("\n"), SLACK_SUMMARY_CHARS)
}

/// A Slack incoming-webhook message: a headline, the context summary and a
/// link to the inbox.
fn slack(endpoint: &Endpoint, kind: WebhookEvent, a: &Approval) -> Value {
    let what = match kind {
        WebhookEvent::Created => "Approval requested".to_string(),
        WebhookEvent::Vote => "Vote recorded".to_string(),
        WebhookEvent::Approved => "Approved".to_string(),
        WebhookEvent::Rejected => "Rejected".to_string(),
        WebhookEvent::Expired => "Expired (nobody decided in time)".to_string(),
        WebhookEvent::Cancelled => "Cancelled by the requester".to_string(),
        WebhookEvent::Reminder(n) => format!("Reminder {n}: still waiting for a decision"),
    };
    let mut headline = format!(
        "*{what}*: `{}` requested by *{}*",
        slack_escape(&a.approval_type),
        slack_escape(&a.requester)
    );
    if !a.agent_id.is_empty() {
        headline.push_str(&format!(" (agent {})", slack_escape(&a.agent_id)));
    }
    if let Some(r) = &a.resolution {
        if !r.decided_by.is_empty() {
            headline.push_str(&format!("\nby *{}*", slack_escape(&r.decided_by)));
        }
        if !r.reason.is_empty() {
            headline.push_str(&format!(": {}", slack_escape(&shorten(&r.reason, 300))));
        }
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": headline},
    })];
    let summary = context_summary(a);
    if !summary.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": summary},
        }));
    }
    let mut footer = format!("id `{}` · deadline {}", a.id.as_str(), a.deadline.rfc3339());
    if let Some(inbox) = &endpoint.inbox_url {
        footer.push_str(&format!(" · <{}|Open the inbox>", slack_escape(inbox)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": footer}],
    }));
    json!({
        "text": format!("{what}: {} requested by {}", a.approval_type, a.requester),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_parse_back_to_their_events() {
        for e in WebhookEvent::NAMED {
            assert_eq!(
                EventPattern::parse("k", e.name()),
                Ok(EventPattern::Exactly(e))
            );
        }
        assert_eq!(
            EventPattern::parse("k", "approval.reminder"),
            Ok(EventPattern::AnyReminder)
        );
        assert!(EventPattern::parse("k", "approval.reminder.0").is_err());
        assert!(EventPattern::parse("k", "approval.updated").is_err());
    }

    #[test]
    fn slack_text_is_escaped_and_shortened() {
        assert_eq!(slack_escape("<a&b>"), "&lt;a&amp;b&gt;");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
