//! OpenTelemetry traces (issue 17): approvald, with traces on, exports its
//! server spans over OTLP/gRPC to a receiver this test runs (the published
//! OTLP trace service, from opentelemetry-proto), in the caller's trace.
//!
//! Own test binary: installing the exporter sets process-wide state (the
//! global `tracing` subscriber).

use std::collections::HashMap;
use std::time::Duration;

use approval_tests::{approve, context, create_request, Deployment, Store};
use approvald::telemetry::{self, Traces};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tracing_subscriber::prelude::*;

/// The OTLP trace service: hands every exported batch to the test.
struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _ = self.0.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_receiver() -> (u16, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (port, rx)
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}

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
    let (port, mut received) = start_receiver().await;
    let traces = Traces::from_vars(|k| {
        (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| format!("http://127.0.0.1:{port}"))
    })
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
        .get_approval(approval_client::v1::GetApprovalRequest {
            id: created.id.clone(),
        })
        .await
        .expect("get");

    // Flush what is queued (blocking: off the runtime's threads).
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .expect("flush");
    let mut spans = Vec::new();
    while let Ok(Some(batch)) = tokio::time::timeout(Duration::from_secs(2), received.recv()).await
    {
        for rs in batch.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            assert_eq!(
                service,
                Some(Value::StringValue("approvald".into())),
                "service.name defaults to approvald"
            );
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    // The span tree as the README shows it (run with --nocapture).
    println!("trace {trace_id}\n└─ (caller) span {parent}");
    for s in &in_trace {
        let ms = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6;
        let mut attrs: Vec<_> = attributes(s).into_iter().collect();
        attrs.sort();
        println!("   └─ {} ({ms:.1} ms) {attrs:?}", s.name);
    }
    for (method, outcome) in [
        ("approval.v1.ApprovalService/CreateApproval", None),
        ("approval.v1.ApprovalService/Respond", Some("approved")),
    ] {
        let span = in_trace
            .iter()
            .find(|s| s.name == method)
            .unwrap_or_else(|| panic!("no {method} span in trace {trace_id}: {names:?}"));
        assert_eq!(
            hex(&span.parent_span_id),
            parent,
            "{method}: child of the caller's span"
        );
        assert_eq!(span.trace_state, "vendor=x", "{method}: tracestate kept");
        let attrs = attributes(span);
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
    assert_ne!(
        hex(&get.trace_id),
        trace_id,
        "no traceparent: a trace of its own"
    );
    assert!(get.parent_span_id.is_empty());
    for s in &spans {
        let dump = format!("{:?}", attributes(s));
        assert!(
            !dump.contains("hunter2"),
            "the context leaked into {}: {dump}",
            s.name
        );
    }
}
