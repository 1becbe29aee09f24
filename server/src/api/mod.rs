//! The gRPC face of the service: thin handlers that parse the request into
//! domain types, call `Approvals`, and convert the answer back.

mod convert;
mod deadline;
mod status;

use std::pin::Pin;

use approval_api::v1;
use approval_api::v1::approval_service_server::ApprovalService;
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::approvals::{Approvals, WatchItem, WatchKind};
use crate::domain::{Approval, Principal, Reason, Status as ApprovalStatus};

pub use status::ERROR_DOMAIN;

use convert::{approval_to_proto, id_from_proto, CreateFields};

/// Implements `approval.v1.ApprovalService` over `Approvals`.
#[derive(Clone)]
pub struct ApprovalApi {
    approvals: Approvals,
}

impl ApprovalApi {
    pub fn new(approvals: Approvals) -> Self {
        Self { approvals }
    }
}

/// The authenticated principal of a call, if any. This is the seam for the
/// authentication layer: it will put a `Principal` into the request
/// extensions; until then every call is unauthenticated (`None`).
fn caller<T>(request: &Request<T>) -> Option<Principal> {
    request.extensions().get::<Principal>().cloned()
}

/// Items sent ahead of a slow watcher before the server stops reading events
/// for it (it then catches up from the store).
const WATCH_BUFFER: usize = 256;

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchPendingResponse, Status>> + Send>>;

fn final_answer(a: Approval) -> (v1::Approval, bool) {
    let approved = a.status == ApprovalStatus::Approved;
    (approval_to_proto(a), approved)
}

#[tonic::async_trait]
impl ApprovalService for ApprovalApi {
    async fn request_approval(
        &self,
        request: Request<v1::RequestApprovalRequest>,
    ) -> Result<Response<v1::RequestApprovalResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let caller = caller(&request);
        let new =
            CreateFields::from(request.into_inner()).parse(caller, self.approvals.limits())?;
        let created = self.approvals.create(new).await?;
        let done = self
            .approvals
            .wait_final(&created.approval.id, call_deadline)
            .await?;
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
        let caller = caller(&request);
        let new =
            CreateFields::from(request.into_inner()).parse(caller, self.approvals.limits())?;
        let created = self.approvals.create(new).await?;
        Ok(Response::new(v1::CreateApprovalResponse {
            approval: Some(approval_to_proto(created.approval)),
            created: created.created,
        }))
    }

    async fn await_approval(
        &self,
        request: Request<v1::AwaitApprovalRequest>,
    ) -> Result<Response<v1::AwaitApprovalResponse>, Status> {
        let call_deadline = deadline::of(&request);
        let id = id_from_proto(&request.get_ref().id)?;
        let done = self.approvals.wait_final(&id, call_deadline).await?;
        let (approval, approved) = final_answer(done);
        Ok(Response::new(v1::AwaitApprovalResponse {
            approval: Some(approval),
            approved,
        }))
    }

    type WatchPendingStream = WatchStream;

    async fn watch_pending(
        &self,
        request: Request<v1::WatchPendingRequest>,
    ) -> Result<Response<Self::WatchPendingStream>, Status> {
        let r = request.into_inner();
        let filter = convert::filter_from_proto(
            &r.approval_types,
            &r.agent_id,
            r.labels,
            self.approvals.limits(),
        )?;
        let cursor = convert::cursor_from_proto(&r.cursor)?;
        let items = self.approvals.watch(filter, cursor, WATCH_BUFFER).await?;
        let stream = ReceiverStream::new(items)
            .map(|item| item.map(watch_item_to_proto).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn respond(
        &self,
        request: Request<v1::RespondRequest>,
    ) -> Result<Response<v1::RespondResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let id = id_from_proto(&r.id)?;
        let decision = convert::decision_from_proto(r.decision)?;
        let responder = match caller {
            Some(p) => p,
            None => Principal::parse("responder", &r.responder)?,
        };
        let reason = Reason::parse("reason", &r.reason, self.approvals.limits())?;
        let approval = self
            .approvals
            .respond(&id, decision, responder, reason)
            .await?;
        Ok(Response::new(v1::RespondResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }

    async fn get_approval(
        &self,
        request: Request<v1::GetApprovalRequest>,
    ) -> Result<Response<v1::GetApprovalResponse>, Status> {
        let id = id_from_proto(&request.get_ref().id)?;
        let approval = self.approvals.get(&id).await?;
        Ok(Response::new(v1::GetApprovalResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }

    async fn list_approvals(
        &self,
        request: Request<v1::ListApprovalsRequest>,
    ) -> Result<Response<v1::ListApprovalsResponse>, Status> {
        let query = convert::list_query_from_proto(request.into_inner(), self.approvals.limits())?;
        let page = self.approvals.list(&query).await?;
        Ok(Response::new(v1::ListApprovalsResponse {
            approvals: page.approvals.into_iter().map(approval_to_proto).collect(),
            next_page_token: page.next.map(|t| t.0.to_string()).unwrap_or_default(),
        }))
    }

    async fn cancel_approval(
        &self,
        request: Request<v1::CancelApprovalRequest>,
    ) -> Result<Response<v1::CancelApprovalResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        let id = id_from_proto(&r.id)?;
        let reason = Reason::parse("reason", &r.reason, self.approvals.limits())?;
        let approval = self.approvals.cancel(&id, caller, reason).await?;
        Ok(Response::new(v1::CancelApprovalResponse {
            approval: Some(approval_to_proto(approval)),
        }))
    }
}

fn watch_item_to_proto(item: WatchItem) -> v1::WatchPendingResponse {
    use v1::watch_pending_response::Event;
    v1::WatchPendingResponse {
        cursor: item.cursor.map(|c| c.to_string()).unwrap_or_default(),
        event: Some(match item.kind {
            WatchKind::Added(a) => Event::Added(approval_to_proto(a)),
            WatchKind::Resolved(a) => Event::Resolved(approval_to_proto(a)),
            WatchKind::Synced => Event::Synced(v1::Synced {}),
        }),
    }
}
