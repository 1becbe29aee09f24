//! OpenTelemetry traces (issue 17): approvald, with traces on, exports its
//! spans over OTLP/gRPC to a receiver this test binary runs (the published
//! OTLP trace service, from opentelemetry-proto): server spans in the
//! caller's trace, and one trace per approval (votes, expiry, webhook
//! deliveries linked to the trace that created it, across replicas).
//!
//! Own test binary: installing the exporter sets process-wide state (the
//! global `tracing` subscriber). It is installed once, with the receiver,
//! on a runtime of its own (`collector`), and every test looks for the
//! spans of its own trace ids.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use approval_client::v1::{AwaitApprovalRequest, GetApprovalRequest};
use approval_tests::otlp::{OtlpReceiver, ReceivedSpan};
use approval_tests::webhooks::{as_, config_file, endpoint, Answer, Receiver, AGENT};
use approval_tests::{approve, context, create_request, millis, Deployment, Store};
use approvald::telemetry::{self, Traces, Tracing};
use tonic::metadata::MetadataValue;
use tonic::Request;
use tracing_subscriber::prelude::*;

/// The receiver's spans so far, and the exporter feeding it.
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    tracing: Tracing,
}

/// Starts the receiver and installs the exporter (once per binary, before
/// any replica starts: a replica adds the per-call layer only when traces
/// are on).
fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let (started, start) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("collector runtime");
            runtime.block_on(async move {
                let mut receiver = OtlpReceiver::start().await;
                let traces = Traces::from_vars(|k| {
                    (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| receiver.endpoint())
                })
                .expect("valid OTEL_* variables");
                let (layer, tracing) = telemetry::install(&traces)
                    .expect("exporter builds")
                    .expect("traces on with an endpoint");
                tracing_subscriber::registry().with(layer).init();
                let spans = Arc::new(Mutex::new(Vec::new()));
                started
                    .send((spans.clone(), tracing))
                    .expect("the test waits");
                while let Some(batch) = receiver.next_batch().await {
                    spans.lock().expect("spans").extend(batch);
                }
            });
        });
        let (spans, tracing) = start.recv().expect("the collector starts");
        Collector { spans, tracing }
    })
}

impl Collector {
    /// Flushes the exporter until the spans received pass `check` (30 s at
    /// most: the machine may be loaded); returns them.
    async fn until(
        &self,
        what: &str,
        check: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            tokio::task::spawn_blocking(|| collector().tracing.flush())
                .await
                .expect("flush");
            let spans = self.spans.lock().expect("spans").clone();
            if check(&spans) {
                return spans;
            }
            if Instant::now() > give_up {
                let names: Vec<_> = spans
                    .iter()
                    .map(|s| (s.name.as_str(), s.trace_id.as_str()))
                    .collect();
                panic!("{what}: not among the spans received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A fresh W3C context: (trace id, parent span id, traceparent).
fn new_trace() -> (String, String, String) {
    let trace_id = uuid::Uuid::now_v7().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    (trace_id, span_id, traceparent)
}

fn traced<T>(mut r: Request<T>, traceparent: &str) -> Request<T> {
    r.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(traceparent).expect("ascii"),
    );
    r.metadata_mut()
        .insert("tracestate", MetadataValue::from_static("vendor=x"));
    r
}

fn with_traceparent<T>(message: T, traceparent: &str) -> Request<T> {
    traced(Request::new(message), traceparent)
}

fn find<'a>(spans: &'a [ReceivedSpan], name: &str, trace_id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.name == name && s.trace_id == trace_id)
}

/// The span tree of `trace_id` as the README shows it (run with
/// --nocapture): the caller's span, approvald's spans in the trace, and
/// the spans of other traces linked to it.
fn print_tree(spans: &[ReceivedSpan], trace_id: &str, parent: &str) {
    println!("trace {trace_id}\n└─ (caller) span {parent}");
    let show = |s: &ReceivedSpan| {
        let mut attrs: Vec<_> = s
            .attributes
            .iter()
            .filter(|(k, _)| k.starts_with("approval.") || k.starts_with("webhook."))
            .collect();
        attrs.sort();
        format!("{} ({:.1?}) {attrs:?}", s.name, s.duration)
    };
    for s in spans.iter().filter(|s| s.trace_id == trace_id) {
        println!("   └─ {}", show(s));
    }
    for s in spans
        .iter()
        .filter(|s| s.trace_id != trace_id && s.links.iter().any(|(t, _)| t == trace_id))
    {
        println!("   ·· linked from trace {}: {}", s.trace_id, show(s));
    }
}

fn assert_linked_to(span: &ReceivedSpan, trace_id: &str, parent: &str) {
    assert!(
        span.links.iter().any(|(t, s)| t == trace_id && s == parent),
        "{}: no link to the requester's span {trace_id}/{parent}: {:?}",
        span.name,
        span.links
    );
}

/// No span attribute holds `secret` (an approval's context, a stored
/// traceparent).
fn assert_not_exported(spans: &[ReceivedSpan], secret: &str) {
    for s in spans {
        let dump = format!("{:?}", s.attributes);
        assert!(
            !dump.contains(secret),
            "{secret} leaked into {}: {dump}",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_a_traceparent_export_approvald_spans_in_that_trace_with_approval_attributes() {
    let collector = collector();
    assert!(telemetry::grpc_layer().is_some());
    let deployment = Deployment::start(Store::Memory).await;
    let mut client = deployment.a().await;
    let (trace_id, parent, traceparent) = new_trace();
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

    let is_get = |s: &ReceivedSpan| {
        s.name == "approval.v1.ApprovalService/GetApproval"
            && s.attributes.get("approval.id") == Some(&created.id)
    };
    let spans = collector
        .until("CreateApproval, Respond and GetApproval spans", |spans| {
            find(spans, "approval.v1.ApprovalService/Respond", &trace_id).is_some()
                && find(
                    spans,
                    "approval.v1.ApprovalService/CreateApproval",
                    &trace_id,
                )
                .is_some()
                && spans.iter().any(is_get)
        })
        .await;
    print_tree(&spans, &trace_id, &parent);
    for (method, outcome) in [
        ("approval.v1.ApprovalService/CreateApproval", None),
        ("approval.v1.ApprovalService/Respond", Some("approved")),
    ] {
        let span = find(&spans, method, &trace_id).expect("found above");
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
    let get = spans.iter().find(|s| is_get(s)).expect("found above");
    assert_ne!(get.trace_id, trace_id, "no traceparent: a trace of its own");
    assert!(get.parent_span_id.is_empty());
    assert_not_exported(&spans, "hunter2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_on_another_replica_links_to_the_requesters_trace_and_the_waiter_ends_when_it_wakes()
{
    let collector = collector();
    let deployment = Deployment::start(Store::Redis).await;
    let (mut a, mut b) = (deployment.a().await, deployment.b().await);
    let (requester, requester_span, requester_parent) = new_trace();
    let created = a
        .create_approval(with_traceparent(
            create_request("deploy:two-replicas"),
            &requester_parent,
        ))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval");
    // The requester waits on replica B, in its own trace.
    let mut waiter = b.clone();
    let await_parent = requester_parent.clone();
    let id = created.id.clone();
    let waiting = tokio::spawn(async move {
        waiter
            .await_approval(with_traceparent(AwaitApprovalRequest { id }, &await_parent))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A human votes on replica B, in a trace of their own.
    let (human, human_span, human_parent) = new_trace();
    b.respond(with_traceparent(
        approve(&created.id, "alice"),
        &human_parent,
    ))
    .await
    .expect("respond");
    let woke = waiting.await.expect("waiter").expect("await");
    assert!(woke.into_inner().approved);

    let spans = collector
        .until("the vote's and the waiter's spans", |spans| {
            find(spans, "approval.v1.ApprovalService/Respond", &human).is_some()
                && find(
                    spans,
                    "approval.v1.ApprovalService/AwaitApproval",
                    &requester,
                )
                .is_some()
        })
        .await;
    print_tree(&spans, &requester, &requester_span);
    let vote = find(&spans, "approval.v1.ApprovalService/Respond", &human).expect("found");
    assert_eq!(
        vote.parent_span_id, human_span,
        "the vote stays in the human's trace"
    );
    assert_linked_to(vote, &requester, &requester_span);
    assert_eq!(
        vote.attributes.get("approval.outcome").map(String::as_str),
        Some("approved")
    );
    let wait = find(
        &spans,
        "approval.v1.ApprovalService/AwaitApproval",
        &requester,
    )
    .expect("found");
    assert_eq!(
        wait.attributes.get("approval.outcome").map(String::as_str),
        Some("approved"),
        "the waiter's span ends with the outcome it woke to"
    );
    assert!(
        wait.duration >= Duration::from_millis(250),
        "the waiter's span lasts until the vote woke it: {:?}",
        wait.duration
    );
    assert_not_exported(&spans, &requester_parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_by_the_reaper_is_a_span_in_the_requesters_trace() {
    let collector = collector();
    let deployment = Deployment::start(Store::Redis).await;
    let mut a = deployment.a().await;
    let (trace_id, parent, traceparent) = new_trace();
    let mut create = create_request("deploy:expiring");
    create.timeout = Some(millis(Duration::from_secs(1)));
    let created = a
        .create_approval(with_traceparent(create, &traceparent))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval");
    // Nobody waits or votes: only a reaper can expire it.
    let spans = collector
        .until("the reaper's expiry span", |spans| {
            find(spans, "approval.expire", &trace_id).is_some()
        })
        .await;
    print_tree(&spans, &trace_id, &parent);
    let expiry = requester_child(&spans, "approval.expire", &trace_id, &parent);
    let attrs = &expiry.attributes;
    assert_eq!(attrs.get("approval.id"), Some(&created.id));
    assert_eq!(
        attrs.get("approval.type").map(String::as_str),
        Some("deploy:expiring")
    );
    assert_eq!(
        attrs.get("approval.outcome").map(String::as_str),
        Some("expired")
    );
    assert_not_exported(&spans, &traceparent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivery_is_a_span_in_the_requesters_trace() {
    let collector = collector();
    let hook = Receiver::start(Answer::Ok).await;
    let file = config_file(&endpoint("audit", &hook, ""));
    let deployment = Deployment::start_with(Store::Redis, 2, |c| {
        c.auth_config = Some(file.to_path_buf())
    })
    .await;
    let mut a = deployment.a().await;
    let (trace_id, parent, traceparent) = new_trace();
    let created = a
        .create_approval(traced(
            as_(AGENT, create_request("hook:traced")),
            &traceparent,
        ))
        .await
        .expect("create")
        .into_inner()
        .approval
        .expect("approval");
    let spans = collector
        .until("the webhook delivery's span", |spans| {
            find(spans, "webhook.deliver", &trace_id).is_some()
        })
        .await;
    print_tree(&spans, &trace_id, &parent);
    let delivery = requester_child(&spans, "webhook.deliver", &trace_id, &parent);
    let attrs = &delivery.attributes;
    assert_eq!(attrs.get("approval.id"), Some(&created.id));
    assert_eq!(
        attrs.get("approval.type").map(String::as_str),
        Some("hook:traced")
    );
    assert_eq!(
        attrs.get("webhook.endpoint").map(String::as_str),
        Some("audit")
    );
    assert_eq!(
        attrs.get("webhook.outcome").map(String::as_str),
        Some("delivered")
    );
    assert!(!hook.received().is_empty(), "the endpoint got the message");
    assert_not_exported(&spans, &traceparent);
}

/// The span `name` of trace `trace_id`, asserted to be a child of the
/// requester's span `parent` and linked to it (what every span without a
/// trace of its own is: expiry, reminders, webhook deliveries).
fn requester_child<'s>(
    spans: &'s [ReceivedSpan],
    name: &str,
    trace_id: &str,
    parent: &str,
) -> &'s ReceivedSpan {
    let span = find(spans, name, trace_id).expect("found");
    assert_eq!(
        span.parent_span_id, parent,
        "a child of the requester's span"
    );
    assert_linked_to(span, trace_id, parent);
    span
}
