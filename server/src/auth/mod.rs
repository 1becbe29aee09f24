//! Authentication: turns the credentials of a call (a bearer token, a JWT,
//! or a client certificate) into an `Identity`, using the authentication
//! sections of the operator's configuration file (`config_file` reads it,
//! and re-reads it on SIGHUP; a file that fails to load keeps the previous
//! one in force).

mod config;
mod jwt;
mod refusals;
mod sessions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::domain::{AuthMethod, Caller, DomainError, Identity, Principal, Roles};

pub use config::{AuthFile, CertificateSection, JwtSection, TokenEntry};
pub use refusals::Refusals;
use sessions::Sessions;
pub use sessions::{Credentials, Revocable, Revocation};

/// Verifies credentials against one loaded authentication file.
pub struct Authenticator {
    /// SHA-256 of each token -> who it is.
    tokens: HashMap<[u8; 32], Identity>,
    jwt: Option<jwt::JwtVerifier>,
    certificates: Option<CertificateRules>,
}

struct CertificateRules {
    use_san: bool,
    default_roles: Roles,
    clients: HashMap<String, Roles>,
}

/// The SHA-256 of a token, as the authentication file stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random bearer token (256 bits, hex).
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("apd_{}{}", a.simple(), b.simple())
}

fn err(key: &str, message: impl std::fmt::Display) -> String {
    format!("{key}: {message}")
}

impl Authenticator {
    /// The authentication sections of a parsed file; relative paths
    /// inside it are relative to `base`.
    pub fn from_file(file: AuthFile, base: &Path) -> Result<Self, String> {
        let roles =
            |key: &str, names: &[String]| Roles::parse(key, names).map_err(|e| e.to_string());
        let mut tokens = HashMap::new();
        for (i, t) in file.tokens.iter().enumerate() {
            let key = format!("tokens[{i}]");
            let principal = Principal::parse(&format!("{key}.principal"), &t.principal)
                .map_err(|e| e.to_string())?;
            let digest: [u8; 32] = hex::decode(t.sha256.trim())
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| {
                    err(
                        &format!("{key}.sha256"),
                        "must be 64 hex digits: the output of `approvald hash-token`",
                    )
                })?;
            let identity = Identity {
                principal,
                roles: roles(&format!("{key}.roles"), &t.roles)?,
                method: AuthMethod::Token,
            };
            if tokens.insert(digest, identity).is_some() {
                return Err(err(
                    &format!("{key}.sha256"),
                    "the same token is listed twice",
                ));
            }
        }
        let jwt = match &file.jwt {
            Some(section) => Some(jwt::JwtVerifier::new(section, base)?),
            None => None,
        };
        let certificates = match &file.certificates {
            Some(c) => {
                let use_san = match c.principal.as_str() {
                    "cn" => false,
                    "san" => true,
                    other => {
                        return Err(err(
                            "certificates.principal",
                            format!("{other:?}: use \"cn\" or \"san\""),
                        ))
                    }
                };
                let mut clients = HashMap::new();
                for (i, client) in c.clients.iter().enumerate() {
                    clients.insert(
                        client.principal.clone(),
                        roles(&format!("certificates.clients[{i}].roles"), &client.roles)?,
                    );
                }
                Some(CertificateRules {
                    use_san,
                    default_roles: roles("certificates.default_roles", &c.default_roles)?,
                    clients,
                })
            }
            None => None,
        };
        if tokens.is_empty() && jwt.is_none() && certificates.is_none() {
            return Err(
                "no credentials configured: add [[tokens]], [jwt] or [certificates]".into(),
            );
        }
        Ok(Self {
            tokens,
            jwt,
            certificates,
        })
    }

    /// Who made the call, from its metadata and (with mutual TLS) its
    /// client certificate chain.
    pub fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer_certificates: Option<&[tonic::transport::CertificateDer<'static>]>,
    ) -> Result<Caller, DomainError> {
        let credentials = Credentials {
            authorization: authorization(metadata)?,
            certificates: peer_certificates.map(|c| Arc::new(c.to_vec())),
        };
        Ok(Caller::Known {
            identity: self.identify(&credentials)?,
        })
    }

    /// Who these credentials are, under this file.
    pub fn identify(&self, credentials: &Credentials) -> Result<Identity, DomainError> {
        match &credentials.authorization {
            Some(value) => {
                let Some(credential) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
                    return Err(DomainError::Unauthenticated(
                        "the authorization header must be `Bearer <token>`".into(),
                    ));
                };
                self.bearer(credential.trim())
            }
            None => match (
                credentials.certificates.as_deref().and_then(|c| c.first()),
                &self.certificates,
            ) {
                (Some(leaf), Some(rules)) => certificate_identity(leaf, rules),
                _ => Err(DomainError::Unauthenticated(
                    "no credentials: send `authorization: Bearer <token>` (or a client certificate where mutual TLS is set up)".into(),
                )),
            },
        }
    }

    fn bearer(&self, credential: &str) -> Result<Identity, DomainError> {
        let looks_like_jwt = credential.split('.').count() == 3;
        if looks_like_jwt {
            if let Some(jwt) = &self.jwt {
                return jwt.verify(credential);
            }
        }
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        self.tokens
            .get(&digest)
            .cloned()
            .ok_or_else(|| DomainError::Unauthenticated("invalid bearer token".into()))
    }
}

/// The `authorization` header, if any, as text.
fn authorization(metadata: &MetadataMap) -> Result<Option<Arc<str>>, DomainError> {
    metadata
        .get("authorization")
        .map(|value| {
            value.to_str().map(Arc::from).map_err(|_| {
                DomainError::Unauthenticated("the authorization header is not text".into())
            })
        })
        .transpose()
}

fn certificate_identity(
    leaf: &tonic::transport::CertificateDer<'static>,
    rules: &CertificateRules,
) -> Result<Identity, DomainError> {
    use x509_parser::prelude::*;
    let bad = |why: &str| DomainError::Unauthenticated(format!("client certificate: {why}"));
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|_| bad("cannot be parsed"))?;
    let name = if rules.use_san {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(u) => Some(u.to_string()),
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
            })
            .ok_or_else(|| bad("has no URI or DNS subject alternative name"))?
    } else {
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string)
            .ok_or_else(|| bad("has no subject common name"))?
    };
    let principal = Principal::parse("client certificate", &name)?;
    let roles = rules
        .clients
        .get(principal.as_str())
        .cloned()
        .unwrap_or_else(|| rules.default_roles.clone());
    Ok(Identity {
        principal,
        roles,
        method: AuthMethod::Certificate,
    })
}

/// The authentication in force, swapped whole on reload.
#[derive(Clone)]
pub struct AuthHandle {
    current: Arc<ArcSwap<Authenticator>>,
    sessions: Arc<Sessions>,
}

impl AuthHandle {
    pub fn new(auth: Authenticator) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(auth)),
            sessions: Arc::default(),
        }
    }

    /// Puts a newly loaded file in force. Open long calls whose
    /// credentials it refuses, or whose roles shrank, are ended (see
    /// `sessions`).
    pub fn replace(&self, auth: Authenticator) {
        let auth = Arc::new(auth);
        self.current.store(auth.clone());
        self.sessions.recheck(&auth);
    }
}

/// Puts the `Caller` of every API call into its extensions: `Caller::Open`
/// when authentication is off, the authenticated identity when it is on,
/// and refuses the call with UNAUTHENTICATED when credentials are missing
/// or invalid.
#[derive(Clone)]
pub struct Authenticate {
    auth: Option<AuthHandle>,
    refusals: Arc<Refusals>,
}

impl Authenticate {
    pub fn new(auth: Option<AuthHandle>, refusals: Arc<Refusals>) -> Self {
        Self { auth, refusals }
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = match &self.auth {
            None => Caller::Open,
            Some(handle) => {
                let peer = request.remote_addr();
                self.refusals.admit(peer)?;
                let generation = handle.sessions.generation();
                let auth = handle.current.load();
                let identified = authorization(request.metadata()).and_then(|authorization| {
                    let credentials = Credentials {
                        authorization,
                        certificates: request.peer_certs(),
                    };
                    auth.identify(&credentials)
                        .map(|identity| (identity, credentials))
                });
                match identified {
                    Ok((identity, credentials)) => {
                        request.extensions_mut().insert(Revocable {
                            handle: handle.clone(),
                            credentials,
                            identity: identity.clone(),
                            generation,
                        });
                        Caller::Known { identity }
                    }
                    Err(e) => {
                        self.refusals.refused(peer, &e);
                        return Err(e.into());
                    }
                }
            }
        };
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}
