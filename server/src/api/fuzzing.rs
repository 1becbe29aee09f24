//! The request validation layer, driven by arbitrary bytes: what the fuzz
//! target (`fuzz/fuzz_targets/validate.rs`) and a stable-Rust test run.
//! Any bytes may arrive on the wire; none may panic the server, and whatever
//! validation accepts must be within the limits.

use approval_api::v1;
use prost::Message;

use super::convert;
use crate::domain::{Limits, Position, Reason};

/// Decodes `data` as each request message the API takes and validates it.
/// Panics only if validation accepted something it must not.
pub fn validate_request_bytes(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(r) = v1::CreateApprovalRequest::decode(data) {
        if let Ok(new) = convert::new_approval_from_proto(r, None, &limits, &Default::default()) {
            let approval = new.into_approval(crate::domain::Millis(1_700_000_000_000));
            assert!(approval.labels.len() <= limits.max_labels);
            assert!(approval.context.encoded_len() <= limits.max_context_bytes);
            assert!(approval.deadline > approval.created_at);
            assert!(!approval.approval_type.is_empty());
        }
    }
    if let Ok(r) = v1::RespondRequest::decode(data) {
        let _ = convert::id_from_proto(&r.id);
        let _ = convert::verdict_from_proto(r.decision);
        if Reason::parse("reason", &r.reason, &limits).is_ok() {
            assert!(r.reason.len() <= limits.max_reason_bytes);
        }
    }
    if let Ok(r) = v1::ListApprovalsRequest::decode(data) {
        if let Ok(q) = convert::list_query_from_proto(r, &limits) {
            assert!(q.page_size >= 1 && q.page_size <= Limits::MAX_PAGE_SIZE);
        }
    }
    if let Ok(r) = v1::WatchPendingRequest::decode(data) {
        let _ = convert::filter_from_proto(&r.approval_types, &r.agent_id, r.labels, &limits);
        if let Ok(Some(c)) = convert::cursor_from_proto(&r.cursor) {
            assert_eq!(Position::parse("cursor", &c.to_string()).ok(), Some(c));
        }
    }
    if let Ok(r) = v1::GetApprovalRequest::decode(data) {
        if let Ok(id) = convert::id_from_proto(&r.id) {
            assert_eq!(convert::id_from_proto(id.as_str()).ok(), Some(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid requests, then every single-byte corruption and truncation of
    /// them, plus pseudo-random bytes: the same checks the fuzzer runs.
    #[test]
    fn arbitrary_request_bytes_never_panic_the_validation_layer() {
        let seeds: Vec<Vec<u8>> = vec![
            v1::CreateApprovalRequest {
                approval_type: "deploy:prod".into(),
                agent_id: "a".into(),
                labels: [("team".to_string(), "infra".to_string())].into(),
                timeout: Some(prost_types::Duration {
                    seconds: 5,
                    nanos: 0,
                }),
                ..Default::default()
            }
            .encode_to_vec(),
            v1::RespondRequest {
                id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
                decision: 1,
                reason: "ok".into(),
                responder: "alice".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            v1::ListApprovalsRequest {
                statuses: vec![1, 2],
                page_size: 10,
                ..Default::default()
            }
            .encode_to_vec(),
            v1::WatchPendingRequest {
                cursor: "1700000000000-3".into(),
                approval_types: vec!["deploy:*".into()],
                ..Default::default()
            }
            .encode_to_vec(),
        ];
        for seed in &seeds {
            validate_request_bytes(seed);
            for i in 0..seed.len() {
                validate_request_bytes(&seed[..i]);
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut mutated = seed.clone();
                    mutated[i] ^= flip;
                    validate_request_bytes(&mutated);
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            validate_request_bytes(&bytes);
        }
    }
}
