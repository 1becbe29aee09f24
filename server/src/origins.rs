//! Which web pages may call: the browser side of the API (gRPC-Web).
//!
//! Browsers send `Origin` with every POST, and any page the user opens can
//! aim one at `127.0.0.1`. So a call carrying `Origin` goes through only
//! when the origin is listed in `--cors-origins` (or the list is `*`, which
//! needs authentication), or the page is approvald's own (same origin: the
//! `Origin` names the host the call is addressed to). Without
//! authentication a same-origin call must also be addressed to a loopback
//! name: a page whose DNS name was rebound to 127.0.0.1 is "same origin"
//! with its own name, not with `localhost`. Calls without `Origin`
//! (programs, not browsers) are not concerned.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use http::{HeaderMap, Uri};
use tonic::Status;
use tower::{Layer, Service};

/// The configured origins and whether calls are authenticated.
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    listed: Arc<Vec<String>>,
    any: bool,
    authenticated: bool,
}

impl OriginPolicy {
    /// `origins` as given to `--cors-origins` (checked by `Config::check`).
    pub fn new(origins: &[String], authenticated: bool) -> Self {
        let listed: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty() && o != "*")
            .collect();
        Self {
            any: origins.iter().any(|o| o.trim() == "*"),
            listed: Arc::new(listed),
            authenticated,
        }
    }

    /// Why a call is refused, or `None` when it may go through.
    pub fn refusal(&self, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        let origin = headers.get(http::header::ORIGIN)?;
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        if self.any || self.listed.contains(&origin) {
            return None;
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let same_origin = !host.is_empty() && origin_host == host;
        if same_origin && (self.authenticated || is_loopback_name(&host)) {
            return None;
        }
        let shown = crate::domain::echo(&origin);
        Some(if same_origin {
            format!(
                "browser calls addressed to {} are refused while authentication is off: \
                 only loopback names (localhost, 127.0.0.1, [::1]) are trusted",
                crate::domain::echo(&host)
            )
        } else {
            format!("cross-origin call from {shown} refused: the origin is not in --cors-origins")
        })
    }
}

/// `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Applies an `OriginPolicy` in front of the services: refused calls get
/// PERMISSION_DENIED and never reach a handler.
#[derive(Clone)]
pub struct OriginCheckLayer(pub OriginPolicy);

impl<S> Layer<S> for OriginCheckLayer {
    type Service = OriginCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginCheck {
            inner,
            policy: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct OriginCheck<S> {
    inner: S,
    policy: OriginPolicy,
}

impl<S, B, R> Service<http::Request<B>> for OriginCheck<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.policy.refusal(request.headers(), request.uri()) {
            None => Either::Right(self.inner.call(request)),
            Some(why) => {
                tracing::debug!(path = %request.uri().path(), "{why}");
                Either::Left(ready(Ok(Status::permission_denied(why).into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_recognised_with_and_without_ports() {
        for host in [
            "localhost",
            "localhost:50051",
            "app.localhost:1",
            "127.0.0.1:9",
            "127.1.2.3",
            "[::1]:50051",
        ] {
            assert!(is_loopback_name(host), "{host}");
        }
        for host in [
            "evil.example:50051",
            "10.0.0.1:1",
            "localhost.evil.example",
            "[::2]:1",
        ] {
            assert!(!is_loopback_name(host), "{host}");
        }
    }
}
