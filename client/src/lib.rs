//! Rust client for the `approval.v1` API.
//!
//! For now this is the generated gRPC client, re-exported:
//!
//! ```no_run
//! use approval_client::{ApprovalServiceClient, v1::GetApprovalRequest};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = ApprovalServiceClient::connect("http://127.0.0.1:50051").await?;
//! let reply = client
//!     .get_approval(GetApprovalRequest { id: "0190...".into() })
//!     .await?;
//! println!("{:?}", reply.into_inner().approval);
//! # Ok(()) }
//! ```

pub use approval_api::v1;
pub use approval_api::v1::approval_service_client::ApprovalServiceClient;
pub use tonic;
