//! How a client reaches the service: the endpoint, TLS (server CA, client
//! certificate for mTLS), a bearer token, and who the client speaks for.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{ApprovalClient, Error, Result};

/// The generated client behind [`ApprovalClient`], for calls this crate does
/// not wrap.
pub type GrpcClient = approval_api::v1::approval_service_client::ApprovalServiceClient<
    InterceptedService<Channel, BearerToken>,
>;

/// Adds `authorization: Bearer <token>` to every call when a token is set,
/// and the W3C `traceparent` / `tracestate` when a trace context is set.
#[derive(Clone, Default)]
pub struct BearerToken(
    Option<MetadataValue<Ascii>>,
    Option<(MetadataValue<Ascii>, Option<MetadataValue<Ascii>>)>,
);

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some((parent, state)) = &self.1 {
            request.metadata_mut().insert("traceparent", parent.clone());
            if let Some(state) = state {
                request.metadata_mut().insert("tracestate", state.clone());
            }
        }
        Ok(request)
    }
}

/// Settings for [`ApprovalClient`]; start with [`ApprovalClient::builder`].
///
/// ```no_run
/// use approval_client::ApprovalClient;
/// # async fn run() -> Result<(), approval_client::Error> {
/// let pem = std::fs::read("ca.pem").expect("CA file");
/// let client = ApprovalClient::builder("https://approvals.internal:443")
///     .ca_certificate(pem)
///     .bearer_token("s3cret")
///     .agent_id("release-bot")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    endpoint: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    client_identity: Option<(Vec<u8>, Vec<u8>)>,
    tls_domain: Option<String>,
    connect_timeout: Duration,
    agent_id: String,
    responder: String,
    trace_context: Option<(String, Option<String>)>,
}

impl ClientBuilder {
    pub(crate) fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: None,
            ca_pem: None,
            client_identity: None,
            tls_domain: None,
            connect_timeout: Duration::from_secs(5),
            agent_id: String::new(),
            responder: String::new(),
            trace_context: None,
        }
    }

    /// Sends `authorization: Bearer <token>` with every call.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .bearer_token(std::env::var("APPROVAL_TOKEN").unwrap_or_default())
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// Trusts this CA (PEM) for the server's certificate, and turns TLS on.
    /// Without it, `https://` endpoints are checked against the system's roots.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("https://approvals.internal")
    ///     .ca_certificate(std::fs::read("ca.pem").expect("CA file"))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS, and
    /// turns TLS on.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("https://approvals.internal")
    ///     .client_certificate(
    ///         std::fs::read("agent.pem").expect("cert"),
    ///         std::fs::read("agent.key").expect("key"),
    ///     )
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The name to expect in the server's certificate, when it differs from
    /// the endpoint's host.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("https://10.0.0.7:50051")
    ///     .tls_domain("approvals.internal")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_domain(mut self, name: impl Into<String>) -> Self {
        self.tls_domain = Some(name.into());
        self
    }

    /// How long to wait for a connection (default 5 s).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .connect_timeout(std::time::Duration::from_secs(2))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The agent id sent with approval requests that do not set their own.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .agent_id("release-bot")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = agent_id.into();
        self
    }

    /// Who responds with this client's [`ApprovalClient::respond`]. Required
    /// while the service runs without authentication; ignored by a service
    /// that authenticates callers (it uses the caller's identity).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .responder("alice")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn responder(mut self, responder: impl Into<String>) -> Self {
        self.responder = responder.into();
        self
    }

    /// Sends this W3C trace context (`traceparent`, and `tracestate` if
    /// any) with every call, so approvald's spans join the caller's trace.
    /// A `traceparent` that is not `00-<32 hex>-<16 hex>-<2 hex>` is refused
    /// at connect with [`Error::Config`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .trace_context(std::env::var("TRACEPARENT").unwrap_or_default(), None)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn trace_context(
        mut self,
        traceparent: impl Into<String>,
        tracestate: Option<String>,
    ) -> Self {
        let parent = traceparent.into();
        self.trace_context = (!parent.trim().is_empty()).then(|| {
            (
                parent.trim().to_string(),
                tracestate.filter(|s| !s.trim().is_empty()),
            )
        });
        self
    }

    /// Connects now: fails with [`Error::Unavailable`] (naming the address)
    /// when the service cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("127.0.0.1:50051")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<ApprovalClient> {
        let (endpoint, url) = self.endpoint()?;
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable {
            message: format!("cannot reach approvald at {url}: {}", source_chain(&e)),
            endpoint: url.clone(),
        })?;
        self.finish(channel, url)
    }

    /// Connects on the first call instead (and reconnects as needed), so a
    /// client can be made before the service is up. Call it within a Tokio
    /// runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .connect_lazy()
    ///     .expect("a valid endpoint");
    /// assert_eq!(client.endpoint(), "http://127.0.0.1:50051");
    /// # }
    /// ```
    pub fn connect_lazy(self) -> Result<ApprovalClient> {
        let (endpoint, url) = self.endpoint()?;
        let channel = endpoint.connect_lazy();
        self.finish(channel, url)
    }

    fn finish(self, channel: Channel, url: String) -> Result<ApprovalClient> {
        let token = match self.token {
            Some(t) => Some(MetadataValue::try_from(format!("Bearer {t}")).map_err(|_| {
                Error::Config("the bearer token has characters a header cannot carry".into())
            })?),
            None => None,
        };
        let trace = match self.trace_context {
            Some((parent, state)) => Some(trace_headers(&parent, state.as_deref())?),
            None => None,
        };
        let webhook_grpc =
            approval_api::v1::webhook_service_client::WebhookServiceClient::with_interceptor(
                channel.clone(),
                BearerToken(token.clone(), trace.clone()),
            );
        let grpc =
            approval_api::v1::approval_service_client::ApprovalServiceClient::with_interceptor(
                channel,
                BearerToken(token, trace),
            );
        Ok(ApprovalClient {
            grpc,
            webhook_grpc,
            endpoint: Arc::from(url),
            agent_id: Arc::from(self.agent_id),
            responder: Arc::from(self.responder),
        })
    }

    /// The tonic endpoint and the URL it stands for. A bare `host:port` gets
    /// `http://`, or `https://` when TLS settings were given.
    fn endpoint(&self) -> Result<(Endpoint, String)> {
        let wants_tls = self.ca_pem.is_some() || self.client_identity.is_some();
        let raw = self.endpoint.trim();
        if raw.is_empty() {
            return Err(Error::Config(
                "no server address: give one like http://127.0.0.1:50051".into(),
            ));
        }
        let url = if raw.contains("://") {
            raw.to_string()
        } else if wants_tls {
            format!("https://{raw}")
        } else {
            format!("http://{raw}")
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::Config(format!("bad server address {url:?}: {e}")))?
            .connect_timeout(self.connect_timeout)
            // Finds a dead connection while a call waits for hours, so the
            // wait can re-attach instead of hanging until its deadline.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(Duration::from_secs(30)));
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &self.client_identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = &self.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                Error::Config(format!("TLS settings for {url}: {}", source_chain(&e)))
            })?;
        } else if wants_tls {
            return Err(Error::Config(format!(
                "TLS certificates were given but {url} is not https://: use an https:// address"
            )));
        }
        Ok((endpoint, url))
    }
}

/// Whether `s` is a W3C `traceparent` of version 00:
/// `00-<32 lower hex trace id>-<16 lower hex parent id>-<2 hex flags>`, ids
/// not all zero.
pub fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    matches!(parts.as_slice(), [v, t, p, f]
        if *v == "00" && hex(t, 32) && hex(p, 16) && hex(f, 2)
            && t.bytes().any(|b| b != b'0') && p.bytes().any(|b| b != b'0'))
}

/// A W3C `traceparent` and `tracestate` as metadata values.
#[allow(clippy::type_complexity)]
fn trace_headers(
    parent: &str,
    state: Option<&str>,
) -> Result<(MetadataValue<Ascii>, Option<MetadataValue<Ascii>>)> {
    if !is_traceparent(parent) {
        return Err(Error::Config(format!(
            "traceparent {parent:?} is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)"
        )));
    }
    let parent = MetadataValue::try_from(parent)
        .map_err(|_| Error::Config("traceparent: not a header value".into()))?;
    let state = match state {
        Some(s) => Some(
            MetadataValue::try_from(s)
                .map_err(|_| Error::Config("tracestate: not a header value".into()))?,
        ),
        None => None,
    };
    Ok((parent, state))
}

/// An error and its causes, `a: b: c` (tonic's transport errors say little
/// on their own: the cause says "connection refused").
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
