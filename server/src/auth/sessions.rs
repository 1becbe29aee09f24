//! Calls that outlive a reload of the authentication file: open
//! `WatchPending` streams and blocking waits (`RequestApproval`,
//! `AwaitApproval`). Each registers its credentials while it runs; a reload
//! checks them again against the new file and ends those that no longer
//! authenticate (UNAUTHENTICATED) or lost a role (PERMISSION_DENIED).
//! Short calls never register: they finish under the file they began with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Authenticator;
use crate::domain::{DomainError, Identity, Roles};

/// What a call proved itself with, kept so a reload can check it again.
#[derive(Clone, Default)]
pub struct Credentials {
    pub authorization: Option<Arc<str>>,
    pub certificates: Option<Arc<Vec<tonic::transport::CertificateDer<'static>>>>,
}

struct Open {
    credentials: Credentials,
    identity: Identity,
    end: oneshot::Sender<DomainError>,
}

/// The long calls open on this replica, and which file generation they were
/// last checked against.
#[derive(Default)]
pub(super) struct Sessions {
    generation: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
}

impl Sessions {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// After `auth` replaced the file in force: ends every open call whose
    /// credentials it refuses or whose roles shrank.
    pub(super) fn recheck(&self, auth: &Authenticator) {
        let mut open = self.open();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let ended: Vec<u64> = open
            .iter()
            .filter_map(|(id, o)| verdict(auth, &o.credentials, &o.identity).map(|_| *id))
            .collect();
        for id in ended {
            if let Some(o) = open.remove(&id) {
                if let Some(e) = verdict(auth, &o.credentials, &o.identity) {
                    tracing::info!(
                        target: crate::audit::TARGET,
                        action = "revoked",
                        principal = %o.identity.principal.as_str(),
                        reason = %e,
                        "open call ended after the authentication file was reloaded"
                    );
                    let _ = o.end.send(e);
                }
            }
        }
    }
}

/// Why `credentials`, once `identity`, may no longer keep a call open under
/// `auth`; `None` when they still may.
fn verdict(
    auth: &Authenticator,
    credentials: &Credentials,
    identity: &Identity,
) -> Option<DomainError> {
    match auth.identify(credentials) {
        Err(e) => Some(DomainError::Unauthenticated(format!(
            "credentials revoked: the authentication file was reloaded and they no longer authenticate ({e})"
        ))),
        Ok(now) if now.principal != identity.principal => Some(DomainError::Unauthenticated(
            "credentials revoked: the authentication file was reloaded and they now name another principal"
                .into(),
        )),
        Ok(now) if lost_a_role(&identity.roles, &now.roles) => {
            Some(DomainError::PermissionDenied(format!(
                "the authentication file was reloaded and {} no longer has the roles this call was allowed with (had: {}; now: {})",
                identity.principal.as_str(),
                identity.roles,
                now.roles
            )))
        }
        Ok(_) => None,
    }
}

fn lost_a_role(before: &Roles, now: &Roles) -> bool {
    (before.requester && !now.requester)
        || (before.admin && !now.admin)
        || before.approver.iter().any(|p| !now.approver.contains(p))
        || before.named.iter().any(|r| !now.named.contains(r))
}

/// Put into a call's extensions by `Authenticate` (auth on): lets a long
/// call register to be ended when its credentials are revoked.
#[derive(Clone)]
pub struct Revocable {
    pub(super) handle: super::AuthHandle,
    pub(super) credentials: Credentials,
    pub(super) identity: Identity,
    /// The file generation the call was authenticated under.
    pub(super) generation: u64,
}

impl Revocable {
    /// Registers the call until the returned guard is dropped.
    pub fn register(self) -> Revocation {
        let sessions = self.handle.sessions.clone();
        let (end, ended) = oneshot::channel();
        let id = sessions.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = sessions.open();
        // A reload between authentication and now: check against it here.
        let missed = (sessions.generation() != self.generation)
            .then(|| {
                verdict(
                    &self.handle.current.load(),
                    &self.credentials,
                    &self.identity,
                )
            })
            .flatten();
        match missed {
            Some(e) => {
                let _ = end.send(e);
            }
            None => {
                open.insert(
                    id,
                    Open {
                        credentials: self.credentials,
                        identity: self.identity,
                        end,
                    },
                );
            }
        }
        drop(open);
        Revocation {
            id,
            sessions,
            ended,
        }
    }
}

/// A registered long call; unregisters on drop (the call ended, or its
/// client went away).
pub struct Revocation {
    id: u64,
    sessions: Arc<Sessions>,
    ended: oneshot::Receiver<DomainError>,
}

impl Revocation {
    /// Resolves when a reload revokes the call's credentials.
    pub async fn revoked(&mut self) -> DomainError {
        match (&mut self.ended).await {
            Ok(e) => e,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        self.sessions.open().remove(&self.id);
    }
}
