//! [`ApprovalClient`]: one method per thing a program does with approvals.
//! Each converts to the wire, calls, and converts back; the blocking waits
//! go through `wait`, the streams through `watch` and `list`.

use std::sync::Arc;

use tokio::time::Instant;

use crate::approval::required;
use crate::connect::GrpcClient;
use crate::list::{ApprovalStream, ListFilter, Page};
use crate::watch::{WatchFilter, WatchStream};
use crate::{v1, wait, Approval, ApprovalRequest, ClientBuilder, Decision, Error, Result, Verdict};

/// A client of `approvald`. Cheap to clone (clones share one connection);
/// every method takes `&self`, so one client serves many tasks at once.
///
/// ```no_run
/// use approval_client::{ApprovalClient, ApprovalRequest};
/// use serde_json::json;
///
/// # async fn run() -> Result<(), approval_client::Error> {
/// let client = ApprovalClient::connect("http://127.0.0.1:50051").await?;
/// let decision = client
///     .request_approval(ApprovalRequest::new("deploy:production").context(json!({"service": "billing"})))
///     .await?;
/// if decision.is_approved() {
///     println!("deploying, approved by {:?}", decision.decided_by);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApprovalClient {
    pub(crate) grpc: GrpcClient,
    /// The webhook admin service on the same connection (`webhooks.rs`).
    pub(crate) webhook_grpc: crate::webhooks::WebhookGrpcClient,
    pub(crate) endpoint: Arc<str>,
    pub(crate) agent_id: Arc<str>,
    pub(crate) responder: Arc<str>,
}

impl std::fmt::Debug for ApprovalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalClient")
            .field("endpoint", &self.endpoint)
            .field("agent_id", &self.agent_id)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

/// What [`ApprovalClient::create`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    /// The approval, pending (or already final when re-attaching late).
    pub approval: Approval,
    /// False when the idempotency key attached to an existing approval.
    pub created: bool,
}

impl ApprovalClient {
    /// Connects to `endpoint` (`http://host:port`, `https://host:port`, or a
    /// bare `host:port` for plain HTTP/2). Fails with [`Error::Unavailable`]
    /// naming the address when nothing answers there.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::connect("http://127.0.0.1:50051").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self> {
        ClientBuilder::new(endpoint).connect().await
    }

    /// Settings beyond the address: TLS, bearer token, agent id, responder.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), approval_client::Error> {
    /// let client = approval_client::ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .agent_id("release-bot")
    ///     .bearer_token("s3cret")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    /// The address this client talks to, as used in error messages.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = approval_client::ApprovalClient::builder("127.0.0.1:50051")
    ///     .connect_lazy()
    ///     .expect("a valid endpoint");
    /// assert_eq!(client.endpoint(), "http://127.0.0.1:50051");
    /// # }
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The generated gRPC client on the same connection (with the same
    /// token), for anything this crate does not wrap.
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), tonic::Status> {
    /// use approval_client::v1::GetApprovalRequest;
    /// let reply = client.grpc().get_approval(GetApprovalRequest { id: "0190...".into() }).await?;
    /// # Ok(()) }
    /// ```
    pub fn grpc(&self) -> GrpcClient {
        self.grpc.clone()
    }

    /// Asks for a human decision and waits for it: returns once the
    /// approval is approved, rejected, expired or cancelled.
    ///
    /// The wait outlives broken connections and replica restarts: it
    /// re-attaches with the request's idempotency key (one is generated when
    /// none was given) after a jittered backoff, until the approval's
    /// deadline. Only a failure a retry cannot fix (a refused argument, say)
    /// or a service that stays unreachable past the deadline is an error.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use approval_client::{ApprovalClient, ApprovalRequest, Outcome};
    /// use serde_json::json;
    ///
    /// # async fn run(client: ApprovalClient) -> Result<(), approval_client::Error> {
    /// let decision = client
    ///     .request_approval(
    ///         ApprovalRequest::new("db:migrate")
    ///             .context(json!({"database": "orders", "migration": "0042_add_index"}))
    ///             .timeout(Duration::from_secs(600)),
    ///     )
    ///     .await?;
    /// match decision.outcome {
    ///     Outcome::Approved => println!("migrating"),
    ///     other => println!("not migrating: {other} ({})", decision.reason),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn request_approval(&self, mut request: ApprovalRequest) -> Result<Decision> {
        request.ensure_idempotency_key();
        let Some(timeout) = request.timeout_value() else {
            // No timeout given: the service's default applies, which only
            // the service knows. Create (retried like a wait: the key makes
            // every attempt the same approval), then wait until the deadline
            // the service set.
            let wire: v1::CreateApprovalRequest = request.wire(&self.agent_id)?.into();
            let answer = wait::until_final(Instant::now(), &self.endpoint, |call_timeout| {
                let mut grpc = self.grpc();
                let mut call = tonic::Request::new(wire.clone());
                call.set_timeout(call_timeout);
                async move { grpc.create_approval(call).await }
            })
            .await?;
            let approval = required(answer.into_inner().approval)?;
            return self.await_decision(&approval.id).await;
        };
        let wire: v1::RequestApprovalRequest = request.wire(&self.agent_id)?.into();
        // The approval's deadline as this side sees it: it can only be
        // later on the service's side (it starts counting on arrival).
        let deadline = Instant::now() + timeout;
        let answer = wait::until_final(deadline, &self.endpoint, |call_timeout| {
            let mut grpc = self.grpc();
            let mut call = tonic::Request::new(wire.clone());
            call.set_timeout(call_timeout);
            async move { grpc.request_approval(call).await }
        })
        .await?;
        Decision::try_from(required(answer.into_inner().approval)?)
    }

    /// Creates an approval and returns at once, pending (or attaches to the
    /// existing one with the same idempotency key). Wait for its end with
    /// [`ApprovalClient::await_decision`].
    ///
    /// ```no_run
    /// use approval_client::{ApprovalClient, ApprovalRequest};
    /// # async fn run(client: ApprovalClient) -> Result<(), approval_client::Error> {
    /// let created = client.create(ApprovalRequest::new("deploy:staging")).await?;
    /// println!("approve it with: approvalctl approve {}", created.approval.id);
    /// let decision = client.await_decision(&created.approval.id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, mut request: ApprovalRequest) -> Result<Created> {
        request.ensure_idempotency_key();
        let wire: v1::CreateApprovalRequest = request.wire(&self.agent_id)?.into();
        let answer = self
            .grpc()
            .create_approval(wire)
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(Created {
            approval: required(answer.approval)?,
            created: answer.created,
        })
    }

    /// Waits until the approval `id` is final and returns its decision (at
    /// once if it already is). Like [`ApprovalClient::request_approval`], it
    /// keeps waiting across broken connections until the approval's deadline.
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let decision = client.await_decision("0190c0de-0000-7000-8000-000000000000").await?;
    /// println!("{} by {:?}: {}", decision.outcome, decision.decided_by, decision.reason);
    /// # Ok(()) }
    /// ```
    pub async fn await_decision(&self, id: &str) -> Result<Decision> {
        // First learn the deadline; a blip here is ridden out like one
        // during the wait (retrying for a few seconds).
        let lookup = v1::GetApprovalRequest { id: id.to_string() };
        let answer = wait::until_final(Instant::now(), &self.endpoint, |call_timeout| {
            let mut grpc = self.grpc();
            let mut call = tonic::Request::new(lookup.clone());
            call.set_timeout(call_timeout);
            async move { grpc.get_approval(call).await }
        })
        .await?;
        let approval = required(answer.into_inner().approval)?;
        if approval.is_final() {
            return Decision::try_from(approval);
        }
        let deadline = Instant::now() + approval.time_left();
        let wire = v1::AwaitApprovalRequest { id: id.to_string() };
        let answer = wait::until_final(deadline, &self.endpoint, |call_timeout| {
            let mut grpc = self.grpc();
            let mut call = tonic::Request::new(wire.clone());
            call.set_timeout(call_timeout);
            async move { grpc.await_approval(call).await }
        })
        .await?;
        Decision::try_from(required(answer.into_inner().approval)?)
    }

    /// Records a human decision, as this client's
    /// [`responder`](ClientBuilder::responder). The first decision wins: a
    /// different one made earlier fails with [`Error::AlreadyFinal`] naming
    /// the winner, while repeating the winning decision succeeds.
    ///
    /// ```no_run
    /// use approval_client::{ApprovalClient, Error, Verdict};
    /// # async fn run() -> Result<(), Error> {
    /// let client = ApprovalClient::builder("http://127.0.0.1:50051")
    ///     .responder("alice")
    ///     .connect()
    ///     .await?;
    /// let approval = client
    ///     .respond("0190c0de-0000-7000-8000-000000000000", Verdict::Reject, "not on a Friday")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn respond(
        &self,
        id: &str,
        verdict: Verdict,
        reason: impl Into<String>,
    ) -> Result<Approval> {
        self.respond_to_digest(id, verdict, reason, "").await
    }

    /// [`ApprovalClient::respond`], only if the approval's context is the
    /// one seen: `expected_context_digest` is its
    /// [`Approval::context_digest`] as shown to the person deciding. When
    /// the context differs the vote is refused (FAILED_PRECONDITION) and
    /// nothing changes. An empty digest checks nothing.
    ///
    /// ```no_run
    /// use approval_client::Verdict;
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let shown = client.get("0190c0de-0000-7000-8000-000000000000").await?;
    /// client
    ///     .respond_to_digest(&shown.id, Verdict::Approve, "checked", &shown.context_digest)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn respond_to_digest(
        &self,
        id: &str,
        verdict: Verdict,
        reason: impl Into<String>,
        expected_context_digest: &str,
    ) -> Result<Approval> {
        let wire = v1::RespondRequest {
            id: id.to_string(),
            decision: verdict.to_proto() as i32,
            reason: reason.into(),
            responder: self.responder.to_string(),
            expected_context_digest: expected_context_digest.to_string(),
        };
        let answer = self.grpc().respond(wire).await.map_err(|s| self.error(s))?;
        required(answer.into_inner().approval)
    }

    /// Approves `id`: [`ApprovalClient::respond`] with [`Verdict::Approve`].
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// client.approve("0190c0de-0000-7000-8000-000000000000", "checked the diff").await?;
    /// # Ok(()) }
    /// ```
    pub async fn approve(&self, id: &str, reason: impl Into<String>) -> Result<Approval> {
        self.respond(id, Verdict::Approve, reason).await
    }

    /// Rejects `id`: [`ApprovalClient::respond`] with [`Verdict::Reject`].
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// client.reject("0190c0de-0000-7000-8000-000000000000", "freeze until Monday").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reject(&self, id: &str, reason: impl Into<String>) -> Result<Approval> {
        self.respond(id, Verdict::Reject, reason).await
    }

    /// One approval by id, final or not; [`Error::NotFound`] when there is
    /// none (or it aged out).
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let approval = client.get("0190c0de-0000-7000-8000-000000000000").await?;
    /// println!("{} is {}", approval.id, approval.status);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: &str) -> Result<Approval> {
        let answer = self
            .grpc()
            .get_approval(v1::GetApprovalRequest { id: id.to_string() })
            .await
            .map_err(|s| self.error(s))?;
        required(answer.into_inner().approval)
    }

    /// Every approval matching `filter`, newest first, fetched page by page
    /// as the stream is read.
    ///
    /// ```no_run
    /// use futures::TryStreamExt;
    /// use approval_client::{ListFilter, Status};
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let pending: Vec<_> = client
    ///     .list(ListFilter::default().status(Status::Pending))
    ///     .try_collect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn list(&self, filter: ListFilter) -> ApprovalStream {
        crate::list::list(self.clone(), filter)
    }

    /// One page of approvals matching `filter`, from `page_token` (empty
    /// for the first page).
    ///
    /// ```no_run
    /// use approval_client::ListFilter;
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let filter = ListFilter::default().page_size(20);
    /// let first = client.list_page(&filter, "").await?;
    /// if let Some(token) = first.next_page_token {
    ///     let second = client.list_page(&filter, &token).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_page(&self, filter: &ListFilter, page_token: &str) -> Result<Page> {
        let answer = self
            .grpc()
            .list_approvals(filter.wire(page_token))
            .await
            .map_err(|s| self.error(s))?
            .into_inner();
        Ok(Page {
            approvals: answer
                .approvals
                .into_iter()
                .map(Approval::try_from)
                .collect::<Result<_>>()?,
            next_page_token: Some(answer.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// Withdraws a pending approval; its waiter gets
    /// [`Outcome::Cancelled`](crate::Outcome::Cancelled).
    ///
    /// ```no_run
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// client.cancel("0190c0de-0000-7000-8000-000000000000", "superseded by a newer build").await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, id: &str, reason: impl Into<String>) -> Result<Approval> {
        let answer = self
            .grpc()
            .cancel_approval(v1::CancelApprovalRequest {
                id: id.to_string(),
                reason: reason.into(),
            })
            .await
            .map_err(|s| self.error(s))?;
        required(answer.into_inner().approval)
    }

    /// The live queue of pending approvals matching `filter`: first every
    /// one pending now ([`WatchEvent::Added`](crate::WatchEvent::Added)),
    /// then [`WatchEvent::Synced`](crate::WatchEvent::Synced), then changes
    /// as they happen. The stream reconnects by itself with its resume
    /// cursor (no gap, no duplicate); it ends only on an error a retry
    /// cannot fix, or when the first connection fails.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use approval_client::{WatchEvent, WatchFilter};
    /// # async fn run(client: approval_client::ApprovalClient) -> Result<(), approval_client::Error> {
    /// let mut events = client.watch_pending(WatchFilter::default().approval_type("deploy:*"));
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         WatchEvent::Added(a) => println!("waiting: {} {}", a.id, a.approval_type),
    ///         WatchEvent::Resolved(a) => println!("done: {} {}", a.id, a.status),
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_pending(&self, filter: WatchFilter) -> WatchStream {
        crate::watch::watch(self.clone(), filter)
    }

    pub(crate) fn error(&self, status: tonic::Status) -> Error {
        Error::from_status(status, &self.endpoint)
    }
}
