//! `approvalctl watch`: the live queue, driven by the server's stream (never
//! by polling). Three renderings of the same events:
//! - on a terminal: a table redrawn in place (the once-a-second redraw only
//!   refreshes the "time left" column, it asks the server nothing);
//! - `--output json`: one JSON object per event (JSON lines);
//! - otherwise (piped): one text line per event.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use approval_client::{Approval, ApprovalClient, WatchEvent, WatchFilter};
use comfy_table::{presets, ContentArrangement, Table};
use crossterm::{cursor, terminal, ExecutableCommand, QueueableCommand};
use futures::{FutureExt, StreamExt};
use serde_json::json;

use crate::cli::{Output, WatchArgs};
use crate::exit::{Exit, Failure};
use crate::output;

/// How many recent decisions the table shows under the queue.
const RECENT: usize = 5;

/// At most this many events are applied between two redraws.
const BURST: usize = 1000;

pub async fn run(client: &ApprovalClient, args: WatchArgs, out: Output) -> Result<Exit, Failure> {
    let mut filter = WatchFilter::default();
    for t in args.approval_types {
        filter = filter.approval_type(t);
    }
    if let Some(agent) = args.agent_id {
        filter = filter.agent_id(agent);
    }
    for (k, v) in args.labels {
        filter = filter.label(k, v);
    }
    let events = client.watch_pending(filter);
    match out {
        Output::Json => print_lines(events, json_line).await,
        Output::Table if std::io::stdout().is_terminal() => {
            live_table(events, client.endpoint()).await
        }
        Output::Table => print_lines(events, text_line).await,
    }
}

/// One line per event until the stream ends or Ctrl-C.
async fn print_lines(
    mut events: approval_client::WatchStream,
    line: fn(&WatchEvent) -> Option<String>,
) -> Result<Exit, Failure> {
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if let Some(text) = line(&event) {
                        println!("{text}");
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(Exit::Ok),
            },
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Ok),
        }
    }
}

fn json_line(event: &WatchEvent) -> Option<String> {
    let value = match event {
        WatchEvent::Added(a) => json!({"event": "added", "approval": a}),
        WatchEvent::Resolved(a) => json!({"event": "resolved", "approval": a}),
        WatchEvent::Updated(a) => json!({"event": "updated", "approval": a}),
        WatchEvent::Synced => json!({"event": "synced"}),
        WatchEvent::Reset => json!({"event": "reset"}),
        WatchEvent::Reconnecting { reason } => json!({"event": "reconnecting", "reason": reason}),
        _ => return None,
    };
    Some(value.to_string())
}

fn text_line(event: &WatchEvent) -> Option<String> {
    Some(match event {
        WatchEvent::Added(a) => format!(
            "pending   {} {} agent={} left={} {}",
            output::safe(&a.id),
            output::safe(&a.approval_type),
            output::safe(&a.agent_id),
            output::short(a.time_left()),
            output::context_line(a, 60)
        ),
        WatchEvent::Resolved(a) => format!("{:<9} {}", a.status.to_string(), output::sentence(a)),
        WatchEvent::Updated(a) => format!("{:<9} {}", "voted", output::sentence(a)),
        WatchEvent::Synced => "synced    (live from here)".to_string(),
        WatchEvent::Reset => {
            "re-synced (the server could not resume this watch: a fresh snapshot follows)"
                .to_string()
        }
        WatchEvent::Reconnecting { reason } => {
            format!("reconnecting ({})", output::safe(reason))
        }
        _ => return None,
    })
}

/// What the table shows.
#[derive(Default)]
struct View {
    /// By id: UUIDv7 ids sort oldest first, the order the queue is served.
    pending: BTreeMap<String, Approval>,
    recent: VecDeque<Approval>,
    synced: bool,
    trouble: Option<String>,
}

impl View {
    fn apply(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Added(a) | WatchEvent::Updated(a) => {
                self.pending.insert(a.id.clone(), a);
            }
            WatchEvent::Resolved(a) => {
                self.pending.remove(&a.id);
                self.recent.push_front(a);
                self.recent.truncate(RECENT);
            }
            WatchEvent::Synced => {
                self.synced = true;
                self.trouble = None;
            }
            WatchEvent::Reset => {
                self.pending.clear();
                self.synced = false;
                self.trouble =
                    Some("the server could not resume this watch: re-syncing".to_string());
            }
            WatchEvent::Reconnecting { reason } => self.trouble = Some(reason),
            _ => {}
        }
    }

    fn render(&self, endpoint: &str) -> String {
        let state = match (&self.trouble, self.synced) {
            (Some(reason), _) => format!("reconnecting: {reason}"),
            (None, true) => "live".to_string(),
            (None, false) => "loading…".to_string(),
        };
        let mut text = format!(
            "approvald at {endpoint}: {} pending ({state})\n\n",
            self.pending.len()
        );
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec!["ID", "TYPE", "AGENT", "WAITING", "LEFT", "CONTEXT"]);
        for a in self.pending.values() {
            table.add_row(vec![
                output::safe(&a.id),
                output::safe(&a.approval_type),
                output::safe(&a.agent_id),
                output::ago(a.created_at)
                    .trim_end_matches(" ago")
                    .to_string(),
                output::short(a.time_left()),
                output::context_line(a, 60),
            ]);
        }
        text.push_str(&table.to_string());
        text.push('\n');
        if !self.recent.is_empty() {
            text.push_str("\nrecently decided:\n");
            for a in &self.recent {
                text.push_str(&format!("  {}\n", output::sentence(a)));
            }
        }
        text.push_str(
            "\napprove: approvalctl approve ID [--reason R]   reject: approvalctl reject ID --reason R   quit: Ctrl-C\n",
        );
        text
    }
}

/// The table, redrawn in place on each event and once a second, on the
/// terminal's alternate screen (restored on exit).
async fn live_table(
    mut events: approval_client::WatchStream,
    endpoint: &str,
) -> Result<Exit, Failure> {
    let mut stdout = std::io::stdout();
    let _ = stdout.execute(terminal::EnterAlternateScreen);
    let _ = stdout.execute(cursor::Hide);
    let mut view = View::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    view.apply(event);
                    // Apply what else has arrived (a snapshot comes in a
                    // burst) before drawing once.
                    let mut failed = None;
                    for _ in 0..BURST {
                        match events.next().now_or_never() {
                            Some(Some(Ok(event))) => view.apply(event),
                            Some(Some(Err(e))) => {
                                failed = Some(e);
                                break;
                            }
                            _ => break,
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e.into());
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(Exit::Ok),
            },
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break Ok(Exit::Ok),
        }
        let _ = draw(&mut stdout, &view.render(endpoint));
    };
    let _ = stdout.execute(cursor::Show);
    let _ = stdout.execute(terminal::LeaveAlternateScreen);
    outcome
}

fn draw(stdout: &mut std::io::Stdout, text: &str) -> std::io::Result<()> {
    stdout
        .queue(cursor::MoveTo(0, 0))?
        .queue(terminal::Clear(terminal::ClearType::All))?;
    for line in text.lines() {
        // \r\n: correct whether or not the terminal translates newlines.
        write!(stdout, "{line}\r\n")?;
    }
    stdout.flush()
}
