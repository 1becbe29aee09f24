//! `approvalctl request`: ask, wait, and exit with how it ended, so that
//! `approvalctl request --type deploy && ./deploy.sh` gates a deploy.
//!
//! It creates the approval first (to learn its id, which the human needs),
//! says on stderr how to approve it, then waits: the library re-attaches
//! across broken connections and replica restarts until the deadline.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use approval_client::{ApprovalClient, ApprovalRequest};
use crossterm::{cursor, terminal, QueueableCommand};
use serde_json::Value;

use crate::cli::{Output, RequestArgs};
use crate::exit::{Exit, Failure};
use crate::output;

pub async fn run(
    client: &ApprovalClient,
    args: RequestArgs,
    out: Output,
    server_flag: &str,
) -> Result<Exit, Failure> {
    let context = read_context(args.context.as_deref())?;
    let mut request = ApprovalRequest::new(args.approval_type)
        .context(context)
        .agent_id(args.agent_id);
    if let Some(timeout) = args.timeout {
        request = request.timeout(timeout);
    }
    for (k, v) in args.labels {
        request = request.label(k, v);
    }
    if let Some(key) = args.idempotency_key {
        request = request.idempotency_key(key);
    }

    let created = client.create(request).await?;
    let approval = created.approval;
    announce(&approval, created.created, server_flag);

    let show_time_left = out == Output::Table && std::io::stdout().is_terminal();
    let wait = showing_time_left(
        client.await_decision(&approval.id),
        approval.deadline,
        show_time_left,
    );
    tokio::select! {
        decision = wait => {
            let decision = decision?;
            output::decision(&decision, out);
            // Expired under a policy whose on_timeout is approve: go ahead.
            Ok(match decision.is_approved() {
                true => Exit::Ok,
                false => Exit::of(decision.outcome),
            })
        }
        _ = tokio::signal::ctrl_c() => {
            // Nobody waits any more: withdraw, so no human approves in vain.
            match client.cancel(&approval.id, "the requester was interrupted (Ctrl-C)").await {
                Ok(_) => eprintln!("interrupted: approval {} withdrawn", approval.id),
                Err(e) => eprintln!("interrupted: approval {} left as it is ({e})", approval.id),
            }
            Ok(Exit::Interrupted)
        }
    }
}

/// The context flag: inline JSON, `@file`, or `@-` for stdin.
fn read_context(flag: Option<&str>) -> Result<Value, Failure> {
    let Some(flag) = flag else {
        return Ok(Value::Object(Default::default()));
    };
    let (text, from) = match flag.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::usage(format!("--context @-: cannot read stdin: {e}")))?;
            (text, "stdin".to_string())
        }
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                Failure::usage(format!("--context @{path}: cannot read the file: {e}"))
            })?,
            path.to_string(),
        ),
        None => (flag.to_string(), "--context".to_string()),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{from} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::usage(format!(
            "{from} must be a JSON object, like '{{\"service\": \"billing\"}}'"
        )));
    }
    Ok(value)
}

/// Tells the human (on stderr, so stdout stays the answer) which approval
/// this is and how to decide it.
fn announce(a: &approval_client::Approval, created: bool, server_flag: &str) {
    let verb = if created {
        "waiting for"
    } else {
        "re-attached to"
    };
    eprintln!(
        "{verb} approval {} ({}), {}",
        a.id,
        a.approval_type,
        if a.is_final() {
            format!("already {}", a.status)
        } else {
            format!("expires in {}", output::short(a.time_left()))
        }
    );
    if !a.is_final() {
        eprintln!("  approve: approvalctl{server_flag} approve {}", a.id);
        eprintln!(
            "  reject:  approvalctl{server_flag} reject {} --reason '...'",
            a.id
        );
    }
}

/// Runs `wait`, redrawing "4m 58s left" once a second on the terminal.
async fn showing_time_left<T>(
    wait: impl Future<Output = T>,
    deadline: SystemTime,
    show: bool,
) -> T {
    if !show {
        return wait.await;
    }
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            answer = &mut wait => {
                let _ = clear_line(&mut stdout);
                return answer;
            }
            _ = tick.tick() => {
                let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
                let _ = clear_line(&mut stdout)
                    .and_then(|_| write!(stdout, "waiting for a decision: {} left", output::short(left)))
                    .and_then(|_| stdout.flush());
            }
        }
    }
}

fn clear_line(stdout: &mut std::io::Stdout) -> std::io::Result<()> {
    stdout
        .queue(cursor::MoveToColumn(0))?
        .queue(terminal::Clear(terminal::ClearType::CurrentLine))?;
    stdout.flush()
}
