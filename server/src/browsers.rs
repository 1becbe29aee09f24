//! Browser calls and program calls take different paths through the server.
//!
//! Browsers speak gRPC-Web, send `Origin` and preflight with `OPTIONS`: their
//! calls need CORS, the gRPC-Web translation and the origin check. A program
//! speaks gRPC (`content-type: application/grpc...`) and sends no `Origin`:
//! none of that concerns it, yet each layer keeps state for as long as a call
//! lasts (CORS prepares its response headers when the call starts). A call
//! blocked in `AwaitApproval` for hours would carry it all that time, so
//! program calls skip those layers.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};

/// Applies `L` (the browser layers) to browser calls only.
#[derive(Clone)]
pub struct BrowsersOnly<L>(pub L);

impl<S: Clone, L: Layer<S>> Layer<S> for BrowsersOnly<L> {
    type Service = Split<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Split {
            browser: self.0.layer(inner.clone()),
            program: inner,
        }
    }
}

/// Browser calls to `browser`, program calls to `program` (the same service
/// without the browser layers).
#[derive(Clone)]
pub struct Split<B, P> {
    browser: B,
    program: P,
}

/// A gRPC call (not gRPC-Web) that carries no `Origin`: made by a program,
/// not a page.
fn from_a_program<T>(request: &http::Request<T>) -> bool {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
        });
    grpc && request.method() == http::Method::POST
        && !request.headers().contains_key(http::header::ORIGIN)
}

impl<B, P, Req, Res> Service<http::Request<Req>> for Split<B, P>
where
    B: Service<http::Request<Req>, Response = http::Response<Res>>,
    P: Service<http::Request<Req>, Response = http::Response<Res>, Error = B::Error>,
{
    type Response = http::Response<Res>;
    type Error = B::Error;
    /// Boxed on the browser side: a program call's future is only as large
    /// as its own path needs.
    type Future = Either<Pin<Box<B::Future>>, P::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The next call may take either path. Neither holds a reservation
        // when ready (the routes are always ready), so asking both is safe.
        ready!(self.browser.poll_ready(cx))?;
        self.program.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Req>) -> Self::Future {
        if from_a_program(&request) {
            Either::Right(self.program.call(request))
        } else {
            Either::Left(Box::pin(self.browser.call(request)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, origin: Option<&str>) -> http::Request<()> {
        let mut r = http::Request::post("/approval.v1.ApprovalService/AwaitApproval");
        r = r.header(http::header::CONTENT_TYPE, content_type);
        if let Some(origin) = origin {
            r = r.header(http::header::ORIGIN, origin);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn grpc_without_origin_is_a_program_and_anything_a_browser_sends_is_not() {
        assert!(from_a_program(&request("application/grpc", None)));
        assert!(from_a_program(&request("application/grpc+proto", None)));
        assert!(!from_a_program(&request("application/grpc-web", None)));
        assert!(!from_a_program(&request(
            "application/grpc-web+proto",
            None
        )));
        assert!(!from_a_program(&request("application/grpc-web-text", None)));
        assert!(!from_a_program(&request(
            "application/grpc",
            Some("https://a.example")
        )));
        let preflight = http::Request::options("/x").body(()).unwrap();
        assert!(!from_a_program(&preflight));
    }
}
