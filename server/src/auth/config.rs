//! The configuration file (TOML), as written by operators: its
//! authentication sections, parsed into an `Authenticator` by
//! `Authenticator::from_file` (every error names the key), and the
//! sections other modules own (`[[policies]]`: `config_file`).

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Bearer tokens, stored as SHA-256 digests (`approvald hash-token`).
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    pub jwt: Option<JwtSection>,
    pub certificates: Option<CertificateSection>,
    /// Rules per approval type (`config_file::PolicyEntry`).
    #[serde(default)]
    pub policies: Vec<toml::Spanned<crate::config_file::PolicyEntry>>,
    /// Webhook endpoints (read by `crate::webhooks`).
    #[serde(default)]
    pub webhooks: Vec<crate::webhooks::WebhookEntry>,
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
