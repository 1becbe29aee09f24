//! The gRPC face of the service: thin handlers that parse the request into
//! domain types, call `Approvals`, and convert the answer back.

pub mod convert;
mod deadline;
pub mod decode;
pub mod exhausted;
pub mod fuzzing;
mod rate;
pub mod routes;
mod status;
pub mod webhooks;

use std::pin::Pin;

use approval_api::v1::approval_service_server::ApprovalService;
use approval_api::{v1, CreateFields};
use futures::Stream;
use prost::bytes::Bytes;
use prost::Message;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::approvals::{Answer, Approvals, WatchItem};
use crate::auth::{Revocable, Revocation};
use crate::domain::{
    Approval, Caller, ContextDigest, DomainError, Epoch, EventKind, Frontier, NewApproval,
    Position, Principal, Reason, TraceContext,
};

pub use rate::RateLimit;
pub use routes::ApprovalRoutes;
use routes::SharedEncodings;

use convert::{approval_to_proto, id_from_proto, new_approval_from_proto};

/// Implements `approval.v1.ApprovalService` over `Approvals`.
#[derive(Clone)]
pub struct ApprovalApi {
    approvals: Approvals,
    rate: std::sync::Arc<RateLimit>,
    encodings: std::sync::Arc<SharedEncodings>,
}

impl ApprovalApi {
    pub fn new(approvals: Approvals, rate: RateLimit) -> Self {
        Self {
            approvals,
            rate: std::sync::Arc::new(rate),
            encodings: Default::default(),
        }
    }

    /// Who is calling (put there by `auth::Authenticate`), once the rate
    /// limit lets the call through. Limits count per authenticated
    /// principal: without authentication there is no principal to count
    /// against (names are self-declared), so they do not apply.
    fn admit<T>(&self, request: &Request<T>) -> Result<Caller, DomainError> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Open);
        if let Some(p) = caller.principal() {
            self.rate.check(p.as_str())?;
        }
        Ok(caller)
    }

    /// The approval a `RequestApproval` or `CreateApproval` call asks for,
    /// with the trace it was asked in.
    fn new_approval<R: Into<CreateFields>>(
        &self,
        request: Request<R>,
        caller: &Caller,
    ) -> Result<NewApproval, DomainError> {
        let trace = trace_of_call(&request);
        let mut new = new_approval_from_proto(
            request.into_inner(),
            caller.principal().cloned(),
            self.approvals.limits(),
            &self.approvals.policies(),
        )?;
        new.trace = trace;
        Ok(new)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchPendingResponse, Status>> + Send>>;

impl ApprovalApi {
    /// `WatchPending` with each message encoded: the live changes every
    /// watcher of this replica gets are encoded once for all of them
    /// (`routes::SharedEncodings`), the rest once for their watcher.
    pub async fn watch_pending_encoded(
        &self,
        request: Request<v1::WatchPendingRequest>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>>, Status> {
        let shared = self.encodings.clone();
        self.open_watch(request, move |item, epoch| match item {
            WatchItem::Change(e) => shared.encoded(&e, epoch, || {
                encode(&watch_item_to_proto(WatchItem::Change(e.clone()), epoch))
            }),
            item => encode(&watch_item_to_proto(item, epoch)),
        })
        .await
    }

    /// Opens a watch for the request and sends its items as `to_message`
    /// makes them, ended when the caller's credentials are revoked.
    async fn open_watch<M, F>(
        &self,
        request: Request<v1::WatchPendingRequest>,
        to_message: F,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>>, Status>
    where
        M: Send + 'static,
        F: Fn(WatchItem, Epoch) -> M + Send + 'static,
    {
        let caller = self.admit(&request)?;
        let revocation = revocation(&request);
        // Who the server says the caller is: a page cannot tell from a static token.
        let principal = caller
            .principal()
            .and_then(|p| MetadataValue::try_from(p.as_str()).ok());
        let r = request.into_inner();
        let filter = convert::filter_from_proto(
            &r.approval_types,
            &r.agent_id,
            r.labels,
            self.approvals.limits(),
        )?;
        let cursor = convert::cursor_from_proto(&r.cursor)?;
        let watch = self.approvals.watch(&caller, filter, cursor).await?;
        let epoch = watch.epoch;
        let stream = watch
            .items
            .map(move |item| item.map(|i| to_message(i, epoch)).map_err(Status::from));
        let mut response = Response::new(match revocation {
            None => Box::pin(stream) as Pin<Box<dyn Stream<Item = _> + Send>>,
            Some(revocation) => Box::pin(end_when_revoked(stream, revocation)),
        });
        if let Some(principal) = principal {
            response
                .metadata_mut()
                .insert(approval_api::PRINCIPAL_METADATA, principal);
        }
        Ok(response)
    }
}

impl ApprovalApi {
    /// `AwaitApproval`: what the wait needs is taken from the request at
    /// once (the request is not kept), and the returned future is the wait.
    /// `routes::ApprovalRoutes` parks it as it is, without tonic's handler
    /// around it.
    pub fn await_call(
        &self,
        request: Request<v1::AwaitApprovalRequest>,
    ) -> Result<
        impl std::future::Future<Output = Result<Response<v1::AwaitApprovalResponse>, Status>>
            + Send
            + 'static,
        Status,
    > {
        let call_deadline = deadline::of(&request);
        let caller = self.admit(&request)?;
        let revocation = revocation(&request);
        let id = id_from_proto(&request.into_inner().id)?;
        let approvals = self.approvals.clone();
        Ok(async move {
            // Boxed: its store read is not part of what stays parked.
            Box::pin(approvals.link_to_requester(&id)).await;
            // Boxed: passed on by value, it would be stored twice in
            // what stays parked.
            let wait = Box::pin(approvals.wait_final(&caller, &id, call_deadline));
            let done = unless_revoked(revocation, wait).await?;
            let (approval, approved) = final_answer(done);
            Ok(Response::new(v1::AwaitApprovalResponse {
                approval: Some(approval),
                approved,
            }))
        })
    }
}

/// A message's encoding, as tonic would write it.
fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// The W3C trace context the call carried, kept with the approval it
/// creates (validated and bounded: the headers are the network's).
fn trace_of_call<T>(request: &Request<T>) -> Option<TraceContext> {
    let header = |k: &str| request.metadata().get(k).and_then(|v| v.to_str().ok());
    TraceContext::from_headers(header("traceparent"), header("tracestate"))
}

/// The final approval and what the gate returns: approved by its voters,
/// or expired under a policy whose on_timeout is approve.
fn final_answer(a: Approval) -> (v1::Approval, bool) {
    let approved = a.approved();
    crate::telemetry::record_approval(&a);
    (approval_to_proto(a), approved)
}

#[tonic::async_trait]
impl ApprovalService for ApprovalApi {
    async fn request_approval(
        &self,
        request: Request<v1::RequestApprovalRequest>,
    ) -> Result<Response<v1::RequestApprovalResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let caller = self.admit(&request)?;
        let revocation = revocation(&request);
        let new = self.new_approval(request, &caller)?;
        // Boxed: passed on by value, it would be stored twice in what
        // stays parked while the call waits.
        let wait = Box::pin(self.approvals.request(
            &caller,
            new,
            call_deadline,
            crate::telemetry::record_approval,
        ));
        let done = unless_revoked(revocation, wait).await?;
        let (approval, approved) = final_answer(done);
        Ok(Response::new(v1::RequestApprovalResponse {
            approval: Some(approval),
            approved,
        }))
    }

    async fn create_approval(
        &self,
        request: Request<v1::CreateApprovalRequest>,
    ) -> Result<Response<v1::CreateApprovalResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let caller = self.admit(&request)?;
        let new = self.new_approval(request, &caller)?;
        let created = self.approvals.create(&caller, new, call_deadline).await?;
        crate::telemetry::record_approval(&created.approval);
        Ok(Response::new(v1::CreateApprovalResponse {
            approval: Some(approval_to_proto(created.approval)),
            created: created.created,
        }))
    }

    async fn await_approval(
        &self,
        request: Request<v1::AwaitApprovalRequest>,
    ) -> Result<Response<v1::AwaitApprovalResponse>, Status> {
        self.await_call(request)?.await
    }

    type WatchPendingStream = WatchStream;

    /// Served by `routes::ApprovalRoutes` (`watch_pending_encoded`); this
    /// path gives the same messages, each converted for its watcher.
    async fn watch_pending(
        &self,
        request: Request<v1::WatchPendingRequest>,
    ) -> Result<Response<Self::WatchPendingStream>, Status> {
        self.open_watch(request, watch_item_to_proto).await
    }

    async fn respond(
        &self,
        request: Request<v1::RespondRequest>,
    ) -> Result<Response<v1::RespondResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let caller = self.admit(&request)?;
        let r = request.into_inner();
        let id = id_from_proto(&r.id)?;
        let verdict = convert::verdict_from_proto(r.decision)?;
        let responder = match caller.principal() {
            Some(p) => p.clone(),
            None => Principal::parse("responder", &r.responder)?,
        };
        let reason = Reason::parse("reason", &r.reason, self.approvals.limits())?;
        let expected_digest = match r.expected_context_digest.as_str() {
            "" => None,
            raw => Some(ContextDigest::parse("expected_context_digest", raw)?),
        };
        let approval = self
            .approvals
            .respond(
                &caller,
                &id,
                Answer {
                    verdict,
                    responder,
                    reason,
                    expected_digest,
                },
                call_deadline,
            )
            .await?;
        crate::telemetry::record_approval(&approval);
        Ok(Response::new(v1::RespondResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }

    async fn get_approval(
        &self,
        request: Request<v1::GetApprovalRequest>,
    ) -> Result<Response<v1::GetApprovalResponse>, Status> {
        let caller = self.admit(&request)?;
        let id = id_from_proto(&request.get_ref().id)?;
        let approval = self.approvals.get(&caller, &id).await?;
        crate::telemetry::record_approval(&approval);
        Ok(Response::new(v1::GetApprovalResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }

    async fn list_approvals(
        &self,
        request: Request<v1::ListApprovalsRequest>,
    ) -> Result<Response<v1::ListApprovalsResponse>, Status> {
        let caller = self.admit(&request)?;
        let query = convert::list_query_from_proto(request.into_inner(), self.approvals.limits())?;
        let page = self.approvals.list(&caller, &query).await?;
        Ok(Response::new(v1::ListApprovalsResponse {
            approvals: page.approvals.into_iter().map(approval_to_proto).collect(),
            next_page_token: page.next.map(|t| t.0.to_string()).unwrap_or_default(),
        }))
    }

    async fn cancel_approval(
        &self,
        request: Request<v1::CancelApprovalRequest>,
    ) -> Result<Response<v1::CancelApprovalResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let caller = self.admit(&request)?;
        let r = request.into_inner();
        let id = id_from_proto(&r.id)?;
        let reason = Reason::parse("reason", &r.reason, self.approvals.limits())?;
        let approval = self
            .approvals
            .cancel(&caller, &id, reason, call_deadline)
            .await?;
        crate::telemetry::record_approval(&approval);
        Ok(Response::new(v1::CancelApprovalResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }
}

/// Registers a long call to end if a reload of the authentication file
/// revokes its credentials (auth on only).
fn revocation<T>(request: &Request<T>) -> Option<Revocation> {
    request
        .extensions()
        .get::<Revocable>()
        .cloned()
        .map(Revocable::register)
}

/// `work`, unless the caller's credentials are revoked first.
async fn unless_revoked<T>(
    revocation: Option<Revocation>,
    work: impl std::future::Future<Output = Result<T, DomainError>>,
) -> Result<T, DomainError> {
    let Some(mut revocation) = revocation else {
        return work.await;
    };
    tokio::select! {
        biased;
        e = revocation.revoked() => Err(e),
        done = work => done,
    }
}

/// `stream`, ended with the revocation's status when the watcher's
/// credentials are revoked.
fn end_when_revoked<S, M>(
    stream: S,
    revocation: Revocation,
) -> impl Stream<Item = Result<M, Status>> + Send
where
    S: Stream<Item = Result<M, Status>> + Send + Unpin,
    M: Send,
{
    futures::stream::unfold(Some((stream, revocation)), |state| async move {
        let (mut stream, mut revocation) = state?;
        tokio::select! {
            biased;
            e = revocation.revoked() => Some((Err(Status::from(e)), None)),
            item = stream.next() => item.map(|item| (item, Some((stream, revocation)))),
        }
    })
}

fn watch_item_to_proto(item: WatchItem, epoch: Epoch) -> v1::WatchPendingResponse {
    use v1::watch_pending_response::Event;
    let cursor = |at: Frontier| {
        Position {
            at,
            epoch: Some(epoch),
        }
        .to_string()
    };
    let (cursor, event) = match item {
        WatchItem::Pending(a) => (String::new(), Event::Added(approval_to_proto(*a))),
        WatchItem::Synced(at) => (cursor(at), Event::Synced(v1::Synced {})),
        WatchItem::Change(e) => {
            let approval = approval_to_proto(e.approval.clone());
            let event = match e.kind {
                EventKind::Added => Event::Added(approval),
                EventKind::Resolved => Event::Resolved(approval),
                // Watchers are not sent reminders (`Approvals::follow`);
                // were one to come, it is a change of a pending approval.
                EventKind::Updated | EventKind::Reminder(_) => Event::Updated(approval),
            };
            (cursor(e.resume.clone()), event)
        }
    };
    v1::WatchPendingResponse {
        cursor,
        event: Some(event),
    }
}
