//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
//! one per secret, space-separated (two during a key rotation).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::Secret;

/// The `webhook-signature` header of one attempt.
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|secret| {
            // HMAC takes a key of any length.
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            format!("v1,{sig}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries (secret, id, timestamp, payload and the signature they get).
    #[test]
    fn signs_the_reference_example_as_the_reference_libraries_do() {
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let sig = signature(
            &[Secret(key)],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
