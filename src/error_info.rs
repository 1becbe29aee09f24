//! The `google.rpc.ErrorInfo` contract: its domain, and the spelling of the
//! proto's `ErrorReason` and `ErrorMetadataKey` values on the wire (the
//! proto documents the rule; every SDK applies the same one).

use crate::v1::{ErrorMetadataKey, ErrorReason};

/// `ErrorInfo.domain` of every error the service sets details on.
pub const ERROR_DOMAIN: &str = "approval.v1";

const REASON_PREFIX: &str = "ERROR_REASON_";
const KEY_PREFIX: &str = "ERROR_METADATA_KEY_";

impl ErrorReason {
    /// The `ErrorInfo.reason` string: the value's name without its prefix.
    ///
    /// ```
    /// use approval_api::v1::ErrorReason;
    /// assert_eq!(ErrorReason::AlreadyFinal.reason(), "ALREADY_FINAL");
    /// ```
    pub fn reason(self) -> &'static str {
        let name = self.as_str_name();
        name.strip_prefix(REASON_PREFIX).unwrap_or(name)
    }

    /// The reason an `ErrorInfo.reason` string stands for; `None` for one
    /// this version does not know (and for `UNSPECIFIED`, never sent).
    pub fn from_reason(reason: &str) -> Option<Self> {
        match Self::from_str_name(&format!("{REASON_PREFIX}{reason}"))? {
            ErrorReason::Unspecified => None,
            known => Some(known),
        }
    }
}

impl ErrorMetadataKey {
    /// The key in `ErrorInfo.metadata`: the value's name without its prefix,
    /// in lowercase.
    ///
    /// ```
    /// use approval_api::v1::ErrorMetadataKey;
    /// assert_eq!(ErrorMetadataKey::DecidedBy.key(), "decided_by");
    /// ```
    pub fn key(self) -> String {
        let name = self.as_str_name();
        name.strip_prefix(KEY_PREFIX)
            .unwrap_or(name)
            .to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_sent_as_their_names_without_the_prefix() {
        assert_eq!(ErrorReason::AlreadyFinal.reason(), "ALREADY_FINAL");
        assert_eq!(
            ErrorReason::IdempotencyKeyReused.reason(),
            "IDEMPOTENCY_KEY_REUSED"
        );
        assert_eq!(
            ErrorReason::from_reason("STORE_REFUSES_WRITES"),
            Some(ErrorReason::StoreRefusesWrites)
        );
    }

    #[test]
    fn unknown_and_unspecified_reasons_are_no_reason() {
        assert_eq!(ErrorReason::from_reason("SOMETHING_NEW"), None);
        assert_eq!(ErrorReason::from_reason("UNSPECIFIED"), None);
        assert_eq!(ErrorReason::from_reason("ERROR_REASON_ALREADY_FINAL"), None);
    }

    #[test]
    fn metadata_keys_are_lowercase_names_without_the_prefix() {
        assert_eq!(ErrorMetadataKey::Id.key(), "id");
        assert_eq!(
            ErrorMetadataKey::ExpectedContextDigest.key(),
            "expected_context_digest"
        );
    }
}
