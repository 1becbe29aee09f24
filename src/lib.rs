//! The `approval.v1` API: message types and gRPC stubs generated from
//! `proto/approval/v1/` (approval.proto, webhooks.proto) at build time, and
//! the facts the server (`approvald`) and the client (`approval-client`)
//! share about them, each defined once here:
//!
//! - [`Status`]: the lifecycle of an approval, its names and which statuses
//!   are final, and its wire form;
//! - [`CreateFields`]: the fields `RequestApproval` and `CreateApproval`
//!   share, converted to and from both request messages;
//! - the `google.rpc.ErrorInfo` contract: [`ERROR_DOMAIN`], the reasons
//!   ([`v1::ErrorReason::reason`]) and metadata keys
//!   ([`v1::ErrorMetadataKey::key`]), declared in the proto so that every SDK
//!   gets them generated too.

mod create;
mod error_info;
mod status;

pub mod approval {
    pub mod v1 {
        tonic::include_proto!("approval.v1");

        /// The encoded `FileDescriptorSet` of the API, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/approval_descriptor.bin"));
    }
}

pub use approval::v1;
pub use create::CreateFields;
pub use error_info::ERROR_DOMAIN;
pub use status::{Status, UnknownStatus};

/// Response metadata of `WatchPending` when authentication is on: the
/// principal the server authenticated the caller as (the inbox shows it as
/// "Signed in as ...", whatever the credential: a static token, a JWT, a
/// client certificate or a proxy's header).
pub const PRINCIPAL_METADATA: &str = "approvald-principal";
