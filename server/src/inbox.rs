//! The web inbox: the page humans decide on, served on the API's own port.
//!
//! The page is static (built from `ui/` and embedded here at compile time,
//! so a Rust-only build needs no Node); it talks gRPC-Web to the same origin.
//! This layer answers every GET/HEAD (gRPC and gRPC-Web are always POST) and
//! passes everything else to the gRPC stack. Every response carries headers
//! that keep the page from being framed, sniffed or fed inline script.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tonic::body::Body;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../ui/dist/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../ui/dist/app.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("../../ui/dist/app.css"),
};

/// Same-origin script and styles only (no inline script, no eval), API
/// calls to this origin only, never inside a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page (and its single-page routes) or an asset for `path`.
fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        "/" | "/index.html" | "/history" => Some(&INDEX),
        "/assets/app.js" => Some(&SCRIPT),
        "/assets/app.css" => Some(&STYLE),
        // One approval's page: a link to paste in chat. The page reads the
        // id from the address; a bad id shows as "not found" there.
        p if p.strip_prefix("/approvals/").is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) =>
        {
            Some(&INDEX)
        }
        _ => None,
    }
}

/// The response to a GET or HEAD.
fn page(method: &Method, path: &str) -> Response<Body> {
    let (status, content_type, bytes): (_, _, &'static [u8]) = match asset(path) {
        Some(a) => (StatusCode::OK, a.content_type, a.bytes),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found: the inbox is at /\n",
        ),
    };
    let body = if method == Method::HEAD {
        &[][..]
    } else {
        bytes
    };
    let mut response = Response::new(Body::new(Full::new(hyper::body::Bytes::from_static(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let set = |h: &mut http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        http::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    // Small files embedded in the binary: always revalidate, so a new
    // release is picked up by the next load.
    set(headers, header::CACHE_CONTROL, "no-cache");
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    response
}

/// Serves the inbox in front of the gRPC services.
#[derive(Clone, Copy, Debug, Default)]
pub struct InboxLayer;

impl<S> tower::Layer<S> for InboxLayer {
    type Service = Inbox<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Inbox { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Inbox<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<Request<B>> for Inbox<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method();
        if method == Method::GET || method == Method::HEAD {
            let response = page(method, request.uri().path());
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// The address to open, for the start-up log.
pub fn address(tls: bool, listen: std::net::SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}/", listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_routes_serve_the_page_and_unknown_paths_are_not_found() {
        for path in [
            "/",
            "/history",
            "/approvals/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ] {
            assert_eq!(page(&Method::GET, path).status(), StatusCode::OK, "{path}");
        }
        for path in [
            "/approvals/",
            "/approvals/a/b",
            "/favicon.ico",
            "/assets/x.js",
        ] {
            assert_eq!(
                page(&Method::GET, path).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[test]
    fn every_response_carries_the_security_headers() {
        for path in ["/", "/assets/app.js", "/nope"] {
            let r = page(&Method::GET, path);
            let h = r.headers();
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self';"));
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        }
    }

    #[test]
    fn address_names_a_host_a_browser_can_open() {
        let any: std::net::SocketAddr = "0.0.0.0:50051".parse().unwrap();
        assert_eq!(address(false, any), "http://127.0.0.1:50051/");
        let v6: std::net::SocketAddr = "[::1]:8443".parse().unwrap();
        assert_eq!(address(true, v6), "https://[::1]:8443/");
    }
}
