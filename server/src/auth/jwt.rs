//! JWT verification (HS256, RS256, ES256) with keys from files or a JWKS
//! file; issuer, audience, expiry and not-before are checked.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::config::JwtSection;
use crate::domain::{AuthMethod, DomainError, Identity, Principal, Roles};

pub struct JwtVerifier {
    algorithms: Vec<Algorithm>,
    /// (kid, algorithm family, key)
    keys: Vec<(Option<String>, Family, DecodingKey)>,
    issuer: String,
    audience: String,
    principal_claim: String,
    roles_claim: String,
    leeway: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Hmac,
    Rsa,
    Ec,
}

fn family(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::HS256 => Some(Family::Hmac),
        Algorithm::RS256 => Some(Family::Rsa),
        Algorithm::ES256 => Some(Family::Ec),
        _ => None,
    }
}

impl JwtVerifier {
    pub fn new(section: &JwtSection, base: &Path) -> Result<Self, String> {
        let read = |key: &str, file: &str| {
            std::fs::read(base.join(file)).map_err(|e| format!("{key}: cannot read {file}: {e}"))
        };
        let mut algorithms = Vec::new();
        for (i, name) in section.algorithms.iter().enumerate() {
            let alg = match name.as_str() {
                "HS256" => Algorithm::HS256,
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                other => {
                    return Err(format!(
                    "jwt.algorithms[{i}]: {other:?} is not supported; use HS256, RS256 or ES256"
                ))
                }
            };
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err("jwt.algorithms: list at least one of HS256, RS256, ES256".into());
        }
        let mut keys = Vec::new();
        if let Some(file) = &section.hs256_secret_file {
            let mut secret = read("jwt.hs256_secret_file", file)?;
            while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                secret.pop();
            }
            if secret.len() < 32 {
                return Err("jwt.hs256_secret_file: the secret must be at least 32 bytes".into());
            }
            keys.push((None, Family::Hmac, DecodingKey::from_secret(&secret)));
        }
        for (i, file) in section.public_key_files.iter().enumerate() {
            let key = format!("jwt.public_key_files[{i}]");
            let pem = read(&key, file)?;
            let parsed = DecodingKey::from_rsa_pem(&pem)
                .map(|k| (Family::Rsa, k))
                .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| (Family::Ec, k)))
                .map_err(|e| format!("{key}: {file} is not an RSA or EC public key in PEM: {e}"))?;
            keys.push((None, parsed.0, parsed.1));
        }
        if let Some(file) = &section.jwks_file {
            let text = read("jwt.jwks_file", file)?;
            let set: JwkSet =
                serde_json::from_slice(&text).map_err(|e| format!("jwt.jwks_file: {file}: {e}"))?;
            for (i, jwk) in set.keys.iter().enumerate() {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("jwt.jwks_file: key {i}: {e}"))?;
                let fam = match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Family::Rsa,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => Family::Hmac,
                    _ => return Err(format!("jwt.jwks_file: key {i}: unsupported key type")),
                };
                keys.push((jwk.common.key_id.clone(), fam, key));
            }
        }
        if keys.is_empty() {
            return Err("jwt: give hs256_secret_file, public_key_files or jwks_file".into());
        }
        let leeway = humantime::parse_duration(&section.leeway)
            .map_err(|e| format!("jwt.leeway: {e}"))?
            .as_secs();
        Ok(Self {
            algorithms,
            keys,
            issuer: section.issuer.clone(),
            audience: section.audience.clone(),
            principal_claim: section.principal_claim.clone(),
            roles_claim: section.roles_claim.clone(),
            leeway,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, DomainError> {
        let refuse = |why: String| DomainError::Unauthenticated(format!("invalid JWT: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed".into()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(refuse(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let fam = family(header.alg).ok_or_else(|| refuse("unsupported algorithm".into()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let candidates = self.keys.iter().filter(|(kid, f, _)| {
            *f == fam && (header.kid.is_none() || kid.is_none() || kid == &header.kid)
        });
        let mut last = refuse("no key for its algorithm and kid".into());
        for (_, _, key) in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                key,
                &validation,
            ) {
                Ok(data) => return self.identity(data.claims),
                Err(e) => {
                    last = refuse(match e.kind() {
                        ErrorKind::ExpiredSignature => "expired".into(),
                        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
                        ErrorKind::InvalidAudience => "wrong audience".into(),
                        ErrorKind::InvalidIssuer => "wrong issuer".into(),
                        ErrorKind::InvalidSignature => "bad signature".into(),
                        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
                        _ => "cannot be verified".into(),
                    });
                    // A bad signature may just be the wrong key: try the next.
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn identity(
        &self,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Identity, DomainError> {
        let refuse = |why: String| DomainError::Unauthenticated(format!("invalid JWT: {why}"));
        let principal = claims
            .get(&self.principal_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                refuse(format!(
                    "no string claim {:?} to name the principal",
                    self.principal_claim
                ))
            })?;
        let principal = Principal::parse(&self.principal_claim, principal)
            .map_err(|e| refuse(e.to_string()))?;
        let names: Vec<String> = match claims.get(&self.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(String::from).collect(),
            _ => Vec::new(),
        };
        // Unknown role names in a token are ignored rather than fatal: the
        // identity provider may carry roles for other systems.
        let known: Vec<&String> = names
            .iter()
            .filter(|n| Roles::parse("roles", std::slice::from_ref(n)).is_ok())
            .collect();
        let roles = Roles::parse("roles", &known).unwrap_or_default();
        Ok(Identity {
            principal,
            roles,
            method: AuthMethod::Jwt,
        })
    }
}
