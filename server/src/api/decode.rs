//! Statuses for requests refused before a handler runs (tonic's decoder),
//! rewritten to the codes the API promises. Applied as a response layer in
//! `app.rs`: these refusals are trailers-only responses, so the status is
//! in the response headers.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Limits;

/// The one rewrite step: a message over `--max-message-bytes` (tonic says
/// OUT_OF_RANGE) is RESOURCE_EXHAUSTED, as other gRPC servers answer; a
/// `context` nested deeper than the protobuf decoder accepts (tonic says
/// INTERNAL "failed to decode") is INVALID_ARGUMENT naming the limit.
pub fn client_errors<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let status = headers.get("grpc-status").map(|s| s.as_bytes().to_vec());
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    let says = |text: &str| message.contains(text) || message.contains(&text.replace(' ', "%20"));
    match status.as_deref() {
        Some(b"11") if says("message length too large") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
        Some(b"13") if says("recursion limit reached") => {
            headers.remove("grpc-message");
            headers.remove("grpc-status-details-bin");
            let _ = too_deep().add_header(headers);
        }
        _ => {}
    }
    response
}

/// The only recursive field of any request is `context` (a Struct).
fn too_deep() -> Status {
    let description = format!(
        "nests deeper than the protobuf decoder accepts ({} nested messages; \
         {} levels of objects or {} levels of lists are always accepted); flatten it",
        Limits::DECODER_NESTING_LIMIT,
        Limits::MAX_CONTEXT_OBJECT_DEPTH,
        Limits::MAX_CONTEXT_LIST_DEPTH,
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("context: {description}"),
        ErrorDetails::with_bad_request_violation("context", description),
    )
}
