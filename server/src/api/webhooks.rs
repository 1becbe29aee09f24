//! `approval.v1.WebhookService`: the webhook dead letters, for operators
//! (admins when authentication is on).

use approval_api::v1;
use approval_api::v1::webhook_service_server::WebhookService;
use tonic::{Request, Response, Status};

use crate::domain::{Caller, DomainError, Millis};
use crate::store::outbox::{DeadLetter, MAX_DEAD};
use crate::webhooks::Webhooks;

/// Dead letters listed when the request says no `page_size`.
const DEFAULT_PAGE_SIZE: usize = 100;

pub struct WebhookApi {
    webhooks: Webhooks,
}

impl WebhookApi {
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }
}

/// Who is calling, when they may manage webhooks: an admin (anyone without
/// authentication, which only listens on loopback).
fn admin<T>(request: &Request<T>) -> Result<String, DomainError> {
    match request.extensions().get::<Caller>() {
        None | Some(Caller::Open) => Ok(String::new()),
        Some(Caller::Known { identity, .. }) if identity.roles.admin => {
            Ok(identity.principal.as_str().to_string())
        }
        Some(Caller::Known { identity, .. }) => Err(DomainError::PermissionDenied(format!(
            "{} may not manage webhook deliveries: it needs the admin role (it has {})",
            identity.principal.as_str(),
            identity.roles
        ))),
    }
}

fn failed_to_proto(letter: DeadLetter) -> v1::FailedDelivery {
    let d = letter.delivery;
    v1::FailedDelivery {
        id: d.id,
        endpoint: d.endpoint,
        event_type: d.event,
        approval_id: d.approval_id,
        attempts: d.attempts,
        last_error: d.last_error,
        planned_at: Some(Millis(d.planned_at).to_timestamp()),
        failed_at: Some(Millis(letter.died_at).to_timestamp()),
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn list_failed_deliveries(
        &self,
        request: Request<v1::ListFailedDeliveriesRequest>,
    ) -> Result<Response<v1::ListFailedDeliveriesResponse>, Status> {
        admin(&request)?;
        let size = request.into_inner().page_size;
        let limit = match size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 || n as usize > MAX_DEAD => {
                return Err(DomainError::invalid(
                    "page_size",
                    format!("is {n}; use 1 to {MAX_DEAD}, or 0 for {DEFAULT_PAGE_SIZE}"),
                )
                .into())
            }
            n => n as usize,
        };
        let letters = self.webhooks.dead_letters(limit).await?;
        Ok(Response::new(v1::ListFailedDeliveriesResponse {
            deliveries: letters.into_iter().map(failed_to_proto).collect(),
        }))
    }

    async fn retry_delivery(
        &self,
        request: Request<v1::RetryDeliveryRequest>,
    ) -> Result<Response<v1::RetryDeliveryResponse>, Status> {
        let by = admin(&request)?;
        let id = request.into_inner().id;
        if id.is_empty() || id.len() > 256 {
            return Err(DomainError::invalid(
                "id",
                "must be the id of a failed delivery (ListFailedDeliveries)",
            )
            .into());
        }
        if !self.webhooks.revive(&id, &by).await? {
            return Err(Status::not_found(format!(
                "no failed delivery {}: list them with ListFailedDeliveries (approvalctl webhooks failed)",
                crate::domain::echo(&id)
            )));
        }
        Ok(Response::new(v1::RetryDeliveryResponse {}))
    }
}
