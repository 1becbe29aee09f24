//! An OTLP/gRPC trace receiver as a process, for the SDK suites
//! (sdk/tests/cluster.sh): it listens on 127.0.0.1 (port 0), prints
//! `port <n>` once, then one line per span received,
//! `span <trace_id> <parent_span_id> <name>` (ids in hex; an empty parent is
//! `-`), so that a test in any language can tell that approvald received its
//! caller's trace context.

use std::io::Write;

use approval_tests::otlp::OtlpReceiver;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut receiver = OtlpReceiver::start().await;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "port {}", receiver.port);
    let _ = out.flush();
    while let Some(batch) = receiver.next_batch().await {
        for span in batch {
            let parent = if span.parent_span_id.is_empty() {
                "-"
            } else {
                &span.parent_span_id
            };
            let _ = writeln!(out, "span {} {} {}", span.trace_id, parent, span.name);
        }
        if out.flush().is_err() {
            return;
        }
    }
}
