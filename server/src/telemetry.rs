//! OpenTelemetry traces over OTLP/gRPC, configured by the standard `OTEL_*`
//! environment variables and off unless they ask for it.
//!
//! On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set, or `OTEL_TRACES_EXPORTER=otlp` (then the OTLP default endpoint,
//! `http://localhost:4317`); off when `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none`, whatever else is set. Off means no exporter,
//! no background task and no per-call layer: [`grpc_layer`] is `None`.
//!
//! When on, every gRPC call gets a server span (`rpc` in the `approvald::rpc`
//! target) whose parent is the W3C `traceparent` / `tracestate` of the call's
//! metadata, if any. Handlers add the approval's id, type and outcome with
//! [`record_approval`] (never its context, which may be sensitive). The
//! exporter itself reads the other variables: `OTEL_EXPORTER_OTLP_HEADERS`,
//! `..._TIMEOUT`, `..._COMPRESSION`, `OTEL_SERVICE_NAME` (default here:
//! `approvald`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`.
//!
//! One trace per approval: the store keeps the W3C context of the call that
//! created an approval (`TraceContext`, bounded), and what happens to it
//! later is linked to that trace:
//! - a call about it (`Respond`, each vote; `CancelApproval`;
//!   `AwaitApproval`) stays in the caller's own trace (or a new one when it
//!   sent none: the layer starts the span before the approval is known) and
//!   gets a span *link* to the requester's context;
//! - work no call asked for (expiry by the reaper, reminders, webhook
//!   deliveries) has no trace of its own: its span is a *child* of the
//!   requester's context, so it shows in the requester's trace, and carries
//!   the same link, so every span about an approval is found the same way.
//!
//! Reading the context back costs one store call, made only while traces
//! are exported ([`enabled`]); storing it rides on the create call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::domain::{Approval, TraceContext};

/// Set once traces are exported; read when the gRPC server is built.
static ON: AtomicBool = AtomicBool::new(false);

/// What the `OTEL_*` variables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traces {
    Off,
    /// Export over OTLP/gRPC; `None`: the exporter's default endpoint.
    Otlp {
        endpoint: Option<String>,
    },
}

impl Traces {
    /// Reads the variables through `var` (`std::env::var` in the binary).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Traces::Off);
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
        match set("OTEL_TRACES_EXPORTER").as_deref() {
            Some("none") => Ok(Traces::Off),
            Some("otlp") => Ok(Traces::Otlp { endpoint }),
            Some(other) => Err(format!(
                "OTEL_TRACES_EXPORTER={other:?}: approvald exports traces with \"otlp\" (gRPC) or not at all (\"none\")"
            )),
            None if endpoint.is_some() => Ok(Traces::Otlp { endpoint }),
            None => Ok(Traces::Off),
        }
    }

    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|k| std::env::var(k).ok())
    }
}

/// Keeps the exporter; [`Tracing::shutdown`] flushes the spans still queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports what is queued now (blocks until the exporter answers).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "traces: flushing spans failed");
        }
    }

    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: flushing the last spans failed");
        }
    }
}

/// Builds the exporter and the `tracing` layer that feeds it, if `traces`
/// asks for them; call from inside the Tokio runtime. The layer only sees
/// approvald's own spans.
pub fn install<S>(traces: &Traces) -> Result<Option<(impl Layer<S>, Tracing)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let Traces::Otlp { endpoint } = traces else {
        return Ok(None);
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint.clone());
    }
    let exporter = exporter
        .build()
        .map_err(|e| format!("OTLP trace exporter: {e}"))?;
    let mut resource = Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name("approvald");
    }
    // The batch processor on the Tokio runtime: the tonic exporter needs it.
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("approvald"))
        // Spans carry what the call was about, not where in the code it ran.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target("approvald", tracing::Level::INFO));
    ON.store(true, Ordering::Release);
    Ok(Some((layer, Tracing { provider })))
}

/// The per-call layer of the gRPC server: `Some` only while traces are
/// exported (so it costs nothing otherwise).
pub fn grpc_layer() -> Option<TraceContextLayer> {
    ON.load(Ordering::Acquire).then_some(TraceContextLayer)
}

/// Whether traces are exported (then the requester's context is read back
/// to link spans to it).
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The remote span a stored context names (invalid if it names none).
fn span_context(trace: &TraceContext) -> opentelemetry::trace::SpanContext {
    use opentelemetry::trace::TraceContextExt as _;
    TraceContextPropagator::new()
        .extract(&Stored(trace))
        .span()
        .span_context()
        .clone()
}

/// Links the current call's span to the requester's trace.
pub fn link_current(trace: &TraceContext) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.add_link(span_context(trace));
    }
}

/// A span for work on an approval that no call asked for (expiry, a
/// reminder, a webhook delivery): a child of the requester's context when
/// there is one, linked to it too. `name` is the span's name; the caller
/// enters it around the work and records `approval.outcome` (for a
/// webhook, `webhook.endpoint` and `webhook.outcome`: delivered, retry or
/// dead) when known.
pub fn approval_span(
    name: &'static str,
    a: &Approval,
    trace: Option<&TraceContext>,
) -> tracing::Span {
    approval_span_of(name, a.id.as_str(), &a.approval_type, trace)
}

/// [`approval_span`] from the id and type alone.
pub fn approval_span_of(
    name: &'static str,
    id: &str,
    approval_type: &str,
    trace: Option<&TraceContext>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "approvald::approval",
        "approval",
        otel.name = name,
        otel.kind = "internal",
        approval.id = id,
        approval.type = approval_type,
        approval.outcome = Empty,
        webhook.endpoint = Empty,
        webhook.outcome = Empty,
    );
    if let Some(trace) = trace {
        let linked = span_context(trace);
        if linked.is_valid() {
            use opentelemetry::trace::TraceContextExt as _;
            let remote = opentelemetry::Context::new().with_remote_span_context(linked.clone());
            // Only fails if the span is disabled: then there is nothing to link.
            let _ = span.set_parent(remote);
            span.add_link(linked);
        }
    }
    span
}

/// Adds the approval's id, type and (once final) outcome to the current
/// call's span. Never the context: it may hold anything.
pub fn record_approval(a: &Approval) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("approval.id", a.id.as_str());
    span.record("approval.type", a.approval_type.as_str());
    if a.is_final() {
        span.record("approval.outcome", a.status.as_str());
    }
}

/// Starts a server span per call, child of the caller's W3C trace context.
#[derive(Clone, Copy, Debug)]
pub struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceContextService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct TraceContextService<S> {
    inner: S,
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A stored context, read like headers.
struct Stored<'a>(&'a TraceContext);

impl Extractor for Stored<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0.traceparent()),
            "tracestate" => Some(self.0.tracestate()),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

impl<S, B> tower::Service<http::Request<B>> for TraceContextService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
        let method = req.uri().path();
        let span = tracing::info_span!(
            target: "approvald::rpc",
            "rpc",
            otel.name = method.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = method,
            approval.id = Empty,
            approval.type = Empty,
            approval.outcome = Empty,
        );
        // Only fails if the span is disabled: then there is nothing to link.
        let _ = span.set_parent(parent);
        self.inner.call(req).instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(vars: &[(&str, &str)]) -> Result<Traces, String> {
        Traces::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn with_traces_off_nothing_is_installed_and_no_context_is_read_back() {
        let installed = install::<tracing_subscriber::Registry>(&Traces::Off).expect("off");
        assert!(installed.is_none(), "no exporter, no layer");
        assert!(grpc_layer().is_none(), "no per-call layer");
        assert!(!enabled(), "stored contexts are not read back");
    }

    #[test]
    fn traces_are_off_unless_an_otel_variable_asks_for_them() {
        assert_eq!(traces(&[]), Ok(Traces::Off));
        assert_eq!(traces(&[("OTEL_SERVICE_NAME", "x")]), Ok(Traces::Off));
        let on = Traces::Otlp {
            endpoint: Some("http://c:4317".into()),
        };
        assert_eq!(
            traces(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
            Ok(on.clone())
        );
        assert_eq!(
            traces(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317")]),
            Ok(on)
        );
        assert_eq!(
            traces(&[("OTEL_TRACES_EXPORTER", "otlp")]),
            Ok(Traces::Otlp { endpoint: None })
        );
        for off in [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            assert_eq!(
                traces(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), off]),
                Ok(Traces::Off)
            );
        }
        assert!(traces(&[("OTEL_TRACES_EXPORTER", "zipkin")])
            .unwrap_err()
            .contains("OTEL_TRACES_EXPORTER"));
    }
}
