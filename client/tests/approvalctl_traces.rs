//! `approvalctl` honours `TRACEPARENT` / `TRACESTATE` from its environment
//! (issue 17): approvald, exporting traces to a receiver this test runs,
//! puts the span of approvalctl's call in that trace. Own test binary: it
//! installs approvald's exporter (process-wide).

use std::process::Stdio;
use std::time::Duration;

use approval_tests::otlp::OtlpReceiver;
use approval_tests::{Deployment, Store};
use approvald::telemetry::{self, Traces};
use tokio::process::Command;
use tracing_subscriber::prelude::*;

async fn list(server: &str, traceparent: &str) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_approvalctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("APPROVAL_") || k.starts_with("TRACE") {
            c.env_remove(k);
        }
    }
    let out = c
        .args(["--server", server, "list"])
        .env("TRACEPARENT", traceparent)
        .env("TRACESTATE", "ci=job-7")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("approvalctl ends")
        .expect("approvalctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvalctl_sends_traceparent_from_its_environment_and_skips_a_malformed_one() {
    let mut receiver = OtlpReceiver::start().await;
    let traces =
        Traces::from_vars(|k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| receiver.endpoint()))
            .expect("valid OTEL_* variables");
    let (layer, tracing) = telemetry::install(&traces)
        .expect("exporter builds")
        .expect("traces on");
    tracing_subscriber::registry().with(layer).init();
    let deployment = Deployment::start(Store::Memory).await;
    let server = deployment.replicas[0].endpoint();

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let (code, stderr) = list(&server, &format!("00-{trace_id}-{parent}-01")).await;
    assert_eq!(code, 0, "{stderr}");
    // Upper-case hex is not a W3C trace context: warned about, not sent.
    let (code, stderr) = list(
        &server,
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    )
    .await;
    assert_eq!(
        code, 0,
        "a malformed TRACEPARENT does not stop the call: {stderr}"
    );
    assert!(
        stderr.contains("TRACEPARENT") && stderr.contains("not sent"),
        "{stderr}"
    );

    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .expect("flush");
    let lists: Vec<_> = receiver
        .spans(Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|s| s.name == "approval.v1.ApprovalService/ListApprovals")
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    let joined: Vec<_> = lists.iter().filter(|s| s.trace_id == trace_id).collect();
    assert_eq!(
        joined.len(),
        1,
        "exactly the first call joins the trace: {lists:?}"
    );
    assert_eq!(joined[0].parent_span_id, parent);
    assert_eq!(joined[0].trace_state, "ci=job-7");
    let other = lists
        .iter()
        .find(|s| s.trace_id != trace_id)
        .expect("second call");
    assert!(
        other.parent_span_id.is_empty(),
        "the malformed one started a trace of its own"
    );
}
