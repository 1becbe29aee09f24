//! The authentication sections of the configuration file (TOML), as
//! written by operators: `[[tokens]]`, `[jwt]`, `[certificates]`, parsed
//! into an `Authenticator` by `Authenticator::from_file` (every error names
//! the key). The file as a whole (these and the sections other modules
//! own) is `config_file`'s.

use serde::Deserialize;

/// The authentication sections of one file.
#[derive(Debug, Default)]
pub struct AuthFile {
    /// Bearer tokens, stored as SHA-256 digests (`approvald hash-token`).
    pub tokens: Vec<TokenEntry>,
    pub jwt: Option<JwtSection>,
    pub certificates: Option<CertificateSection>,
}

impl AuthFile {
    /// True when the file has an authentication section (authentication
    /// is on).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.jwt.is_none() && self.certificates.is_none()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub principal: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Hex SHA-256 of the token.
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSection {
    pub issuer: String,
    pub audience: String,
    /// Accepted algorithms: any of HS256, RS256, ES256.
    pub algorithms: Vec<String>,
    /// The claim naming the principal (default `sub`).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim listing role names (default `roles`): an array of strings
    /// or one space-separated string.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// File holding the HS256 shared secret (raw bytes, trailing newline
    /// ignored).
    pub hs256_secret_file: Option<String>,
    /// PEM files with RSA or EC public keys.
    #[serde(default)]
    pub public_key_files: Vec<String>,
    /// A JWKS file (`{"keys": [...]}`), keys picked by `kid`.
    pub jwks_file: Option<String>,
    /// Clock skew allowed on exp and nbf (default 30s).
    #[serde(default = "default_leeway")]
    pub leeway: String,
}

fn default_principal_claim() -> String {
    "sub".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_leeway() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    /// Which part of a client certificate names the principal: `cn` (the
    /// subject's common name, default) or `san` (the first URI or DNS
    /// subject alternative name).
    #[serde(default = "default_cert_principal")]
    pub principal: String,
    /// Roles of certificate principals not listed in `clients`.
    #[serde(default)]
    pub default_roles: Vec<String>,
    #[serde(default)]
    pub clients: Vec<CertificateClient>,
}

fn default_cert_principal() -> String {
    "cn".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateClient {
    pub principal: String,
    pub roles: Vec<String>,
}
