//! OpenTelemetry traces (issue 17): approvald, with traces on, exports its
//! server spans over OTLP/gRPC to a receiver this test runs (the published
//! OTLP trace service, from opentelemetry-proto), in the caller's trace.
//!
//! Own test binary: installing the exporter sets process-wide state (the
//! global `tracing` subscriber).

use std::time::Duration;

use approval_client::v1::GetApprovalRequest;
use approval_tests::otlp::OtlpReceiver;
use approval_tests::{approve, context, create_request, Deployment, Store};
use approvald::telemetry::{self, Traces};
use tonic::metadata::MetadataValue;
use tonic::Request;
use tracing_subscriber::prelude::*;

fn with_traceparent<T>(message: T, traceparent: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent).expect("ascii"),
    );
    r.metadata_mut()
        .insert("tracestate", MetadataValue::from_static("vendor=x"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_a_traceparent_export_approvald_spans_in_that_trace_with_approval_attributes() {
    let mut receiver = OtlpReceiver::start().await;
    let traces =
        Traces::from_vars(|k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| receiver.endpoint()))
            .expect("valid OTEL_* variables");
    assert!(
        telemetry::grpc_layer().is_none(),
        "no per-call layer before traces are on"
    );
    let (layer, tracing) = telemetry::install(&traces)
        .expect("exporter builds")
        .expect("traces on with an endpoint");
    tracing_subscriber::registry().with(layer).init();
    assert!(telemetry::grpc_layer().is_some());

    let deployment = Deployment::start(Store::Memory).await;
    let mut client = deployment.a().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let mut create = create_request("deploy:traced");
    create.context = Some(context(&[("secret", "hunter2-do-not-export")]));
    let created = client
        .create_approval(with_traceparent(create, &traceparent))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval");
    client
        .respond(with_traceparent(
            approve(&created.id, "alice"),
            &traceparent,
        ))
        .await
        .expect("respond");
    // A call without a traceparent starts a trace of its own.
    client
        .get_approval(GetApprovalRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get");

    // Flush what is queued (blocking: off the runtime's threads).
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .expect("flush");
    let spans = receiver.spans(Duration::from_secs(2)).await;
    let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    // The span tree as the README shows it (run with --nocapture).
    println!("trace {trace_id}\n└─ (caller) span {parent}");
    for s in &in_trace {
        let mut attrs: Vec<_> = s.attributes.iter().collect();
        attrs.sort();
        println!("   └─ {} ({:.1?}) {attrs:?}", s.name, s.duration);
    }
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    for (method, outcome) in [
        ("approval.v1.ApprovalService/CreateApproval", None),
        ("approval.v1.ApprovalService/Respond", Some("approved")),
    ] {
        let span = in_trace
            .iter()
            .find(|s| s.name == method)
            .unwrap_or_else(|| panic!("no {method} span in trace {trace_id}: {names:?}"));
        assert_eq!(
            span.service.as_deref(),
            Some("approvald"),
            "service.name defaults to approvald"
        );
        assert_eq!(
            span.parent_span_id, parent,
            "{method}: child of the caller's span"
        );
        assert_eq!(span.trace_state, "vendor=x", "{method}: tracestate kept");
        let attrs = &span.attributes;
        assert_eq!(
            attrs.get("approval.id"),
            Some(&created.id),
            "{method}: {attrs:?}"
        );
        assert_eq!(
            attrs.get("approval.type").map(String::as_str),
            Some("deploy:traced")
        );
        assert_eq!(attrs.get("approval.outcome").map(String::as_str), outcome);
        assert_eq!(attrs.get("rpc.system").map(String::as_str), Some("grpc"));
    }
    let get = spans
        .iter()
        .find(|s| s.name == "approval.v1.ApprovalService/GetApproval")
        .expect("a GetApproval span");
    assert_ne!(get.trace_id, trace_id, "no traceparent: a trace of its own");
    assert!(get.parent_span_id.is_empty());
    for s in &spans {
        let dump = format!("{:?}", s.attributes);
        assert!(
            !dump.contains("hunter2"),
            "the context leaked into {}: {dump}",
            s.name
        );
    }
}
