//! An OTLP trace receiver (the published `TraceService` of
//! opentelemetry-proto, served by tonic on 127.0.0.1, port 0) that collects
//! the spans a process under test exports.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

struct Collect(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collect {
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

/// A span as the tests read it: ids in hex, string attributes.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub service: Option<String>,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// The spans it links to: (trace id, span id).
    pub links: Vec<(String, String)>,
    pub trace_state: String,
    pub duration: Duration,
    pub attributes: HashMap<String, String>,
}

pub struct OtlpReceiver {
    pub port: u16,
    batches: mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    Some(match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, batches) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Collect(tx)))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self { port, batches }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received until nothing more arrives for `quiet`.
    pub async fn spans(&mut self, quiet: Duration) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        while let Ok(Some(batch)) = tokio::time::timeout(quiet, self.next_batch()).await {
            out.extend(batch);
        }
        out
    }

    /// The spans of the next export call, as it arrives.
    pub async fn next_batch(&mut self) -> Option<Vec<ReceivedSpan>> {
        let batch = self.batches.recv().await?;
        let mut out = Vec::new();
        for rs in batch.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(&kv.value));
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                out.push(ReceivedSpan {
                    service: service.clone(),
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    trace_state: s.trace_state.clone(),
                    duration: Duration::from_nanos(
                        s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
                    ),
                    attributes: s
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(&kv.value)?)))
                        .collect(),
                });
            }
        }
        Some(out)
    }
}
