//! Rust client for `approvald`: human approval gates as a service.
//!
//! An agent about to do something risky asks for a human decision and
//! waits for it, in three lines:
//!
//! ```no_run
//! use approval_client::{ApprovalClient, ApprovalRequest};
//! use serde_json::json;
//!
//! # async fn deploy() {}
//! # async fn run() -> Result<(), approval_client::Error> {
//! let client = ApprovalClient::connect("http://127.0.0.1:50051").await?;
//! let request = ApprovalRequest::new("deploy:production").context(json!({"service": "billing"}));
//! if client.request_approval(request).await?.is_approved() {
//!     deploy().await;
//! }
//! # Ok(()) }
//! ```
//!
//! [`ApprovalClient::request_approval`] blocks until a human approves or
//! rejects, the approval's timeout passes, or it is cancelled, and returns a
//! typed [`Decision`] (how, who, why, when). It survives broken connections
//! and replica restarts by re-attaching with the request's idempotency key.
//!
//! Humans (or their tools) see the queue with
//! [`ApprovalClient::watch_pending`], a `Stream` of [`WatchEvent`]s that
//! reconnects by itself, and decide with [`ApprovalClient::respond`]. The
//! rest of the API: [`create`](ApprovalClient::create),
//! [`await_decision`](ApprovalClient::await_decision),
//! [`get`](ApprovalClient::get), [`list`](ApprovalClient::list) (a `Stream`
//! over every page), [`cancel`](ApprovalClient::cancel). Every failure is one
//! [`Error`] a program can `match`.
//!
//! The generated gRPC types stay available as [`v1`] and
//! [`ApprovalServiceClient`] for anything this crate does not wrap.
//!
//! The crate also builds the `approvalctl` command line (feature `cli`, on by
//! default; library users can turn it off with `default-features = false`).

mod approval;
mod client;
mod connect;
mod error;
mod json;
mod list;
mod request;
mod wait;
mod watch;
mod webhooks;

#[allow(deprecated)]
pub use approval::VoteDecision;
pub use approval::{Approval, Decision, OnTimeout, Outcome, Verdict, Vote};
pub use client::{ApprovalClient, Created};
pub use connect::{is_traceparent, BearerToken, ClientBuilder, GrpcClient};
pub use error::{Error, Limit};
pub use list::{ApprovalStream, ListFilter, Page};
pub use request::{ApprovalRequest, DEFAULT_TIMEOUT};
pub use watch::{WatchEvent, WatchFilter, WatchStream};
pub use webhooks::{FailedDelivery, WebhookGrpcClient};

pub use approval_api::v1;
pub use approval_api::v1::approval_service_client::ApprovalServiceClient;
pub use approval_api::PRINCIPAL_METADATA;
pub use approval_api::{Status, UnknownStatus};
pub use tonic;

/// What every call of this crate returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;
