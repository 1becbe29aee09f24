//! Webhook dead letters (`approval.v1.WebhookService`): deliveries the
//! server gave up on, and sending one again. Admin only when the server has
//! authentication on.

use std::time::SystemTime;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::connect::BearerToken;
use crate::{v1, ApprovalClient, Result};

/// The generated webhook admin client, on the [`ApprovalClient`]'s
/// connection (with the same token).
pub type WebhookGrpcClient =
    v1::webhook_service_client::WebhookServiceClient<InterceptedService<Channel, BearerToken>>;

/// A webhook delivery the server gave up on (a dead letter).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FailedDelivery {
    /// The `webhook-id` (pass it to [`ApprovalClient::retry_delivery`]).
    pub id: String,
    /// The endpoint's name in the server's configuration file.
    pub endpoint: String,
    /// `approval.created`, `approval.approved`...
    pub event_type: String,
    pub approval_id: String,
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    #[serde(serialize_with = "crate::approval::rfc3339_opt")]
    pub planned_at: Option<SystemTime>,
    #[serde(serialize_with = "crate::approval::rfc3339_opt")]
    pub failed_at: Option<SystemTime>,
}

fn time(t: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(t).ok())
}

impl From<v1::FailedDelivery> for FailedDelivery {
    fn from(d: v1::FailedDelivery) -> Self {
        Self {
            id: d.id,
            endpoint: d.endpoint,
            event_type: d.event_type,
            approval_id: d.approval_id,
            attempts: d.attempts,
            last_error: d.last_error,
            planned_at: time(d.planned_at),
            failed_at: time(d.failed_at),
        }
    }
}

impl ApprovalClient {
    /// The newest webhook dead letters, at most `limit` (0: the server's
    /// default, 100).
    pub async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>> {
        let answer = self
            .webhook_grpc
            .clone()
            .list_failed_deliveries(v1::ListFailedDeliveriesRequest {
                page_size: limit.min(i32::MAX as u32) as i32,
            })
            .await
            .map_err(|s| self.error(s))?;
        Ok(answer
            .into_inner()
            .deliveries
            .into_iter()
            .map(FailedDelivery::from)
            .collect())
    }

    /// Sends a dead letter again (its attempts and retry horizon start
    /// over).
    pub async fn retry_delivery(&self, id: &str) -> Result<()> {
        self.webhook_grpc
            .clone()
            .retry_delivery(v1::RetryDeliveryRequest { id: id.to_string() })
            .await
            .map_err(|s| self.error(s))?;
        Ok(())
    }
}
