//! The `approval.v1` API: message types and gRPC stubs generated from
//! `proto/approval/v1/` (approval.proto, webhooks.proto) at build time.
//!
//! The server (`approvald`) and the client (`approval-client`) both build on
//! this crate, so there is exactly one definition of the wire format.

pub mod approval {
    pub mod v1 {
        tonic::include_proto!("approval.v1");

        /// The encoded `FileDescriptorSet` of the API, for gRPC reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/approval_descriptor.bin"));
    }
}

pub use approval::v1;
