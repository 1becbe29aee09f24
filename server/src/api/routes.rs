//! The routes of `approval.v1.ApprovalService`. Two methods are served here
//! rather than by tonic's generated service, each for what it costs at scale:
//!
//! - `WatchPending`: its messages are encoded before tonic sees them, so that
//!   a live change sent to many watchers is converted and encoded once, not
//!   once per watcher;
//! - `AwaitApproval`: what stays parked while a call waits is the wait
//!   alone, not tonic's generated handler, whose future keeps room for the
//!   whole request-decoding state for as long as the call lasts.
//!
//! Every other method goes to the generated service.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};

use approval_api::v1;
use approval_api::v1::approval_service_server::ApprovalServiceServer;
use prost::bytes::{BufMut, Bytes};
use prost::Message;
use tonic::codec::{
    Codec, EncodeBody, EncodeBuf, Encoder, SingleMessageCompressionOverride, Streaming,
};
use tonic::codegen::{Body as HttpBody, BoxFuture, BoxStream, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::ApprovalApi;
use crate::domain::{Epoch, Event};

const WATCH_PENDING: &str = "/approval.v1.ApprovalService/WatchPending";
const AWAIT_APPROVAL: &str = "/approval.v1.ApprovalService/AwaitApproval";

/// `ApprovalService` with `WatchPending` sending shared, pre-encoded messages.
#[derive(Clone)]
pub struct ApprovalRoutes {
    api: Arc<ApprovalApi>,
    generated: ApprovalServiceServer<ApprovalApi>,
    max_decoding_message_size: usize,
    max_encoding_message_size: usize,
}

impl ApprovalRoutes {
    pub fn new(
        api: ApprovalApi,
        max_decoding_message_size: usize,
        max_encoding_message_size: usize,
    ) -> Self {
        let api = Arc::new(api);
        let generated = ApprovalServiceServer::from_arc(api.clone())
            .max_decoding_message_size(max_decoding_message_size)
            .max_encoding_message_size(max_encoding_message_size);
        Self {
            api,
            generated,
            max_decoding_message_size,
            max_encoding_message_size,
        }
    }
}

impl NamedService for ApprovalRoutes {
    const NAME: &'static str = <ApprovalServiceServer<ApprovalApi> as NamedService>::NAME;
}

impl<B> tower::Service<http::Request<B>> for ApprovalRoutes
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            WATCH_PENDING => {}
            AWAIT_APPROVAL => {
                return await_approval(
                    self.api.clone(),
                    request,
                    self.max_decoding_message_size,
                    self.max_encoding_message_size,
                )
            }
            _ => return self.generated.call(request),
        }
        let watch = WatchPendingEncoded(self.api.clone());
        let mut grpc = Grpc::new(EncodedCodec::<v1::WatchPendingRequest>::default())
            .apply_max_message_size_config(
                Some(self.max_decoding_message_size),
                Some(self.max_encoding_message_size),
            );
        Box::pin(async move { Ok(grpc.server_streaming(watch, request).await) })
    }
}

/// `AwaitApproval`: the request is read in a future of its own, freed
/// before the wait; what stays parked is this future, holding the wait
/// (`ApprovalApi::await_call`) and nothing of the request. Built outside the
/// `async` block on purpose: what a block captures keeps its room for as
/// long as the block lives.
fn await_approval<B>(
    api: Arc<ApprovalApi>,
    request: http::Request<B>,
    max_decoding_message_size: usize,
    max_encoding_message_size: usize,
) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    let read = Box::pin(read_unary::<v1::AwaitApprovalRequest, B>(
        request,
        max_decoding_message_size,
    ));
    Box::pin(async move {
        let mut read = read;
        let request = (&mut read).await;
        drop(read);
        let answer = match request.and_then(|request| api.await_call(request)) {
            Ok(wait) => wait.await,
            Err(status) => Err(status),
        };
        Ok(unary_response(answer, max_encoding_message_size))
    })
}

/// The one message of a unary call, read as tonic's `Grpc::unary` reads it:
/// no compression accepted, the size bounded.
async fn read_unary<M, B>(request: http::Request<B>, max_size: usize) -> Result<Request<M>, Status>
where
    M: Message + Default + Send + 'static,
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    if let Some(encoding) = request.headers().get("grpc-encoding") {
        if encoding != "identity" {
            return Err(Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                encoding.to_str().unwrap_or("?")
            )));
        }
    }
    let (mut parts, body) = request.into_parts();
    let mut stream =
        Streaming::new_request(ProstDecoder::<M>::default(), body, None, Some(max_size));
    let message = stream
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing request message."))?;
    if let Some(trailers) = stream.trailers().await? {
        parts.headers.extend(trailers.into_headers());
    }
    Ok(Request::from_http(http::Request::from_parts(
        parts, message,
    )))
}

/// The HTTP response of a unary call, as tonic's `Grpc::unary` makes it.
fn unary_response<M>(
    answer: Result<Response<M>, Status>,
    max_size: usize,
) -> http::Response<tonic::body::Body>
where
    M: Message + Send + 'static,
{
    let response = match answer {
        Ok(response) => response,
        Err(status) => return status.into_http(),
    };
    let (metadata, message, extensions) = response.into_parts();
    let mut http = http::Response::new(());
    *http.headers_mut() = metadata.into_headers();
    http.headers_mut().insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    *http.extensions_mut() = extensions;
    let body = EncodeBody::new_server(
        ProstEncoder::<M>::default(),
        tokio_stream::once(Ok(message)),
        None,
        SingleMessageCompressionOverride::default(),
        Some(max_size),
    );
    http.map(|()| tonic::body::Body::new(body))
}

/// `WatchPending`, answering with encoded `WatchPendingResponse`s.
struct WatchPendingEncoded(Arc<ApprovalApi>);

impl ServerStreamingService<v1::WatchPendingRequest> for WatchPendingEncoded {
    type Response = Bytes;
    type ResponseStream = BoxStream<Bytes>;
    type Future = BoxFuture<Response<BoxStream<Bytes>>, Status>;

    fn call(&mut self, request: Request<v1::WatchPendingRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { api.watch_pending_encoded(request).await })
    }
}

/// Decodes requests with prost; sends messages already encoded.
struct EncodedCodec<U>(PhantomData<U>);

impl<U> Default for EncodedCodec<U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<U: Message + Default + Send + 'static> Codec for EncodedCodec<U> {
    type Encode = Bytes;
    type Decode = U;
    type Encoder = Preencoded;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Preencoded {
        Preencoded
    }

    fn decoder(&mut self) -> ProstDecoder<U> {
        ProstDecoder::default()
    }
}

/// Writes a message's bytes as they are.
struct Preencoded;

impl Encoder for Preencoded {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// How many recent live changes keep their encoding for the watchers still
/// to send them.
const SHARED_EVENTS: usize = 32;
/// At most this many encoded bytes are kept (the newest encoding is kept
/// whatever its size).
const SHARED_BYTES: usize = 4 * 1024 * 1024;

/// The encoded `WatchPendingResponse` of recent live changes. Every watcher
/// of a replica gets a change as the same `Arc<Event>` from the pump's feed:
/// the first watcher to send it encodes it, the others send the same bytes.
/// An event is known by its allocation (held weakly: the entry never keeps
/// an event alive, and its address is not reused while the entry exists)
/// and the epoch of the watcher's cursors.
pub struct SharedEncodings<E = Event> {
    recent: Mutex<VecDeque<Shared<E>>>,
}

impl<E> Default for SharedEncodings<E> {
    fn default() -> Self {
        Self {
            recent: Mutex::default(),
        }
    }
}

struct Shared<E> {
    event: Weak<E>,
    epoch: Epoch,
    encoded: Arc<OnceLock<Bytes>>,
}

impl<E> SharedEncodings<E> {
    /// `event` encoded by `encode`, or by whichever watcher encoded it first.
    pub fn encoded(&self, event: &Arc<E>, epoch: Epoch, encode: impl FnOnce() -> Bytes) -> Bytes {
        let slot = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            let found = recent
                .iter()
                .rev()
                .find(|s| s.epoch == epoch && std::ptr::eq(s.event.as_ptr(), Arc::as_ptr(event)));
            match found {
                Some(s) => s.encoded.clone(),
                None => {
                    let slot = Arc::new(OnceLock::new());
                    recent.retain(|s| s.event.strong_count() > 0);
                    recent.push_back(Shared {
                        event: Arc::downgrade(event),
                        epoch,
                        encoded: slot.clone(),
                    });
                    let mut bytes: usize = recent
                        .iter()
                        .filter_map(|s| s.encoded.get())
                        .map(Bytes::len)
                        .sum();
                    while recent.len() > SHARED_EVENTS || (recent.len() > 1 && bytes > SHARED_BYTES)
                    {
                        if let Some(gone) = recent.pop_front() {
                            bytes -= gone.encoded.get().map_or(0, Bytes::len);
                        }
                    }
                    slot
                }
            }
        };
        // Outside the lock: other watchers of this event wait for the one
        // encoding, watchers of other events do not.
        slot.get_or_init(encode).clone()
    }

    /// Events whose encoding is kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.recent.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Stands for an event: only its allocation matters.
    fn event(n: u32) -> Arc<u32> {
        Arc::new(n)
    }

    #[test]
    fn an_event_is_encoded_once_for_every_watcher_of_its_epoch() {
        let shared = SharedEncodings::<u32>::default();
        let e = event(7);
        let encodings = AtomicUsize::new(0);
        let encode = || {
            encodings.fetch_add(1, Ordering::Relaxed);
            Bytes::from_static(b"one")
        };
        for _ in 0..1000 {
            assert_eq!(shared.encoded(&e, Epoch(1), encode), "one");
        }
        assert_eq!(encodings.load(Ordering::Relaxed), 1);
        // Another epoch's cursors differ: encoded apart.
        assert_eq!(
            shared.encoded(&e, Epoch(2), || Bytes::from_static(b"two")),
            "two"
        );
        // An equal event of another allocation is another event.
        let other = event(7);
        assert_eq!(
            shared.encoded(&other, Epoch(1), || Bytes::from_static(b"three")),
            "three"
        );
    }

    #[test]
    fn encodings_kept_are_bounded_in_count_and_in_bytes() {
        let shared = SharedEncodings::<u32>::default();
        let events: Vec<_> = (0..100).map(event).collect();
        for e in &events {
            shared.encoded(e, Epoch(1), || Bytes::from_static(b"x"));
        }
        assert_eq!(shared.len(), SHARED_EVENTS);
        let big = Bytes::from(vec![0u8; SHARED_BYTES / 2 + 1]);
        for e in &events[..3] {
            shared.encoded(e, Epoch(9), || big.clone());
        }
        // Held: the last big one and, within the byte bound, one before it.
        assert!(shared.len() <= SHARED_EVENTS);
        let kept: usize = {
            let recent = shared.recent.lock().unwrap();
            recent
                .iter()
                .filter_map(|s| s.encoded.get())
                .map(Bytes::len)
                .sum()
        };
        assert!(kept <= SHARED_BYTES + big.len(), "kept {kept} bytes");
        // Events gone are forgotten when the next one comes.
        drop(events);
        let last = event(100);
        shared.encoded(&last, Epoch(1), || Bytes::from_static(b"y"));
        assert_eq!(shared.len(), 1);
    }
}

#[cfg(test)]
mod parked {
    use std::time::Duration;

    use super::*;
    use crate::api::RateLimit;
    use crate::approvals::Approvals;
    use crate::domain::{Limits, Policies};
    use crate::metrics::Metrics;
    use crate::shutdown::Shutdown;
    use crate::store::{MemoryStore, Retention};

    fn api() -> ApprovalApi {
        let limits = Limits::default();
        let store = MemoryStore::new(Retention {
            final_approvals: Duration::from_secs(60),
            max_events: Retention::DEFAULT_MAX_EVENTS,
            max_event_bytes: Retention::DEFAULT_MAX_EVENT_BYTES,
            max_timeout: limits.max_timeout,
        });
        let policies = Arc::new(arc_swap::ArcSwap::from_pointee(Policies::default()));
        let approvals = Approvals::new(
            Arc::new(store),
            limits,
            policies,
            Metrics::new(),
            Shutdown::new(),
        );
        ApprovalApi::new(approvals, RateLimit::new(100, 100))
    }

    /// What an idle `AwaitApproval` keeps besides the wait itself (boxed
    /// apart): the wait was stored twice (passed on by value) and the
    /// request beside it, about 1.8 KB per waiting call.
    #[tokio::test]
    async fn a_waiting_await_approval_call_holds_its_wait_once_and_not_its_request() {
        let request = Request::new(v1::AwaitApprovalRequest {
            id: "019ad3f0-0000-7000-8000-000000000000".into(),
        });
        let wait = api().await_call(request).expect("a valid request");
        let parked = std::mem::size_of_val(&wait);
        assert!(parked <= 512, "{parked} bytes parked beside the wait");
    }
}
