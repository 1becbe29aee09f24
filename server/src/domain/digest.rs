//! `context_digest`: a fingerprint of exactly what a human is asked to
//! approve. `sha256:` + lowercase hex of the RFC 8785 (JSON Canonicalization
//! Scheme) form of the context, so any client can recompute it from the JSON
//! it shows, in any language, and `Respond` can refuse a decision made on a
//! different context than the one the approval carries.

use prost_types::value::Kind;
use sha2::{Digest, Sha256};

use super::DomainError;

/// The algorithm prefix of every digest this service issues.
const PREFIX: &str = "sha256:";

/// A validated `sha256:<64 lowercase hex>` string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextDigest(String);

impl ContextDigest {
    /// The digest of `context`. Non-finite numbers (which JSON cannot carry,
    /// and which `Context::parse` refuses) read as `null`.
    pub fn of(context: &prost_types::Struct) -> Self {
        let json = struct_to_json(context);
        // Serializing a `serde_json::Value` to a Vec cannot fail: every map
        // key is a string and every number is finite.
        let canonical = serde_json_canonicalizer::to_vec(&json).unwrap_or_default();
        Self(format!(
            "{PREFIX}{}",
            hex::encode(Sha256::digest(&canonical))
        ))
    }

    /// A digest sent by a client (`field` names it in the error).
    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let hex = raw.strip_prefix(PREFIX).ok_or_else(|| {
            DomainError::invalid(
                field,
                format!("must start with {PREFIX:?}, followed by 64 lowercase hex digits"),
            )
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DomainError::invalid(
                field,
                "must be \"sha256:\" followed by 64 lowercase hex digits",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// Trusts a digest this service wrote (read back from a store).
    pub fn trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for ContextDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The context as JSON: what webhooks send and the digest canonicalises.
pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// The proto3 JSON mapping of `google.protobuf.Value` (an unset kind is null).
fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(value_to_json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    fn text(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    fn object(fields: Vec<(&str, prost_types::Value)>) -> prost_types::Struct {
        prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    fn sha256_of(text: &str) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }

    #[test]
    fn digest_hashes_the_rfc8785_form_with_sorted_keys_and_ecmascript_numbers() {
        // RFC 8785 section 3.2.3 number examples, and keys in code-unit order.
        let context = object(vec![
            ("b", num(1e21)),
            ("a", num(1.0)),
            ("c", num(0.000001)),
            ("d", num(1e-7)),
            ("e", num(-0.0)),
            ("\u{20ac}", text("euro")),
            ("f", num(333333333.3333333)),
        ]);
        let expected = "{\"a\":1,\"b\":1e+21,\"c\":0.000001,\"d\":1e-7,\"e\":0,\
                        \"f\":333333333.3333333,\"\u{20ac}\":\"euro\"}";
        assert_eq!(ContextDigest::of(&context).as_str(), sha256_of(expected));
    }

    #[test]
    fn empty_context_digests_the_empty_object() {
        assert_eq!(
            ContextDigest::of(&prost_types::Struct::default()).as_str(),
            sha256_of("{}")
        );
    }

    #[test]
    fn parse_refuses_a_digest_that_is_not_sha256_hex_and_names_the_field() {
        for bad in [
            "",
            "md5:00",
            "sha256:XYZ",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            let err = ContextDigest::parse("expected_context_digest", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("expected_context_digest:"),
                "{err}"
            );
        }
        let good = sha256_of("{}");
        assert_eq!(ContextDigest::parse("x", &good).unwrap().as_str(), good);
    }
}
