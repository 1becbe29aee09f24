//! What an agent asks for: [`ApprovalRequest`], a builder for the fields of
//! `RequestApprovalRequest` / `CreateApprovalRequest`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use approval_api::CreateFields;

use crate::{json, Error, Result};

/// How long an approval stays open when the request does not say, unless the
/// service runs with another `--default-timeout`: a request without
/// [`ApprovalRequest::timeout`] sends none, so the service's setting applies.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A request for a human decision, for [`ApprovalClient::request_approval`]
/// and [`ApprovalClient::create`].
///
/// [`ApprovalClient::request_approval`]: crate::ApprovalClient::request_approval
/// [`ApprovalClient::create`]: crate::ApprovalClient::create
///
/// ```
/// use std::time::Duration;
/// use approval_client::ApprovalRequest;
/// use serde_json::json;
///
/// let request = ApprovalRequest::new("deploy:production")
///     .context(json!({"service": "billing", "version": "1.4.2"}))
///     .label("team", "payments")
///     .timeout(Duration::from_secs(600))
///     .idempotency_key("deploy-billing-1.4.2");
/// assert_eq!(request.timeout_value(), Some(Duration::from_secs(600)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRequest {
    approval_type: String,
    agent_id: Option<String>,
    context: Value,
    labels: BTreeMap<String, String>,
    timeout: Option<Duration>,
    idempotency_key: Option<String>,
}

impl ApprovalRequest {
    /// A request for this kind of action, e.g. `deploy:production` (letters,
    /// digits and `. _ - : / *`, at most 128 characters).
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("db:drop-table");
    /// ```
    pub fn new(approval_type: impl Into<String>) -> Self {
        Self {
            approval_type: approval_type.into(),
            agent_id: None,
            context: Value::Object(Default::default()),
            labels: BTreeMap::new(),
            timeout: None,
            idempotency_key: None,
        }
    }

    /// What the human is shown: a JSON object (anything else is refused
    /// with [`Error::InvalidArgument`] naming `context`).
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("spend")
    ///     .context(serde_json::json!({"amount_eur": 1200, "vendor": "acme"}));
    /// ```
    pub fn context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }

    /// Adds a label (for filtering lists and watches).
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("deploy")
    ///     .label("env", "production")
    ///     .label("team", "payments");
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// How long the approval stays open before it expires. Without it none
    /// is sent and the service's `--default-timeout` applies (5 minutes
    /// unless set). The client keeps waiting, across reconnections, until then.
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("deploy")
    ///     .timeout(std::time::Duration::from_secs(15 * 60));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The agent asking (default: the client's
    /// [`agent_id`](crate::ClientBuilder::agent_id)).
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("deploy").agent_id("ci-runner-3");
    /// ```
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Requests with the same key (and requester) are one approval: a caller
    /// that restarts re-attaches to it instead of asking twice. One is
    /// generated when none is given.
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("deploy")
    ///     .idempotency_key("pipeline-4711-deploy");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into()).filter(|k| !k.is_empty());
        self
    }

    /// The timeout this request asks for; None: the service's default.
    ///
    /// ```
    /// let request = approval_client::ApprovalRequest::new("deploy");
    /// assert_eq!(request.timeout_value(), None);
    /// ```
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// The idempotency key, generating (and keeping) one when none was set, so
    /// that every retry of this request names the same approval.
    pub(crate) fn ensure_idempotency_key(&mut self) -> String {
        self.idempotency_key
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string())
            .clone()
    }

    /// The wire fields (for either create call), checked for what only this
    /// side can check.
    pub(crate) fn wire(&self, default_agent: &str) -> Result<CreateFields> {
        let context = json::to_struct(&self.context).ok_or_else(|| {
            Error::invalid(
                "context",
                "must be a JSON object, like {\"key\": \"value\"}",
            )
        })?;
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid("timeout", "must be greater than zero"));
        }
        Ok(CreateFields {
            approval_type: self.approval_type.clone(),
            agent_id: self
                .agent_id
                .clone()
                .unwrap_or_else(|| default_agent.to_string()),
            context: Some(context),
            labels: self.labels.clone().into_iter().collect(),
            timeout: self.timeout.map(|t| prost_types::Duration {
                seconds: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(t.subsec_nanos()).unwrap_or(0),
            }),
            idempotency_key: self.idempotency_key.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use serde_json::json;

    #[test]
    fn a_generated_idempotency_key_is_kept_for_every_retry() {
        let mut request = ApprovalRequest::new("deploy");
        let first = request.ensure_idempotency_key();
        assert!(!first.is_empty());
        assert_eq!(request.ensure_idempotency_key(), first);
    }

    #[test]
    fn a_timeout_is_sent_only_when_the_caller_gives_one() {
        let wire: v1::CreateApprovalRequest = ApprovalRequest::new("deploy")
            .wire("")
            .map(Into::into)
            .expect("valid");
        assert_eq!(wire.timeout, None);
        let wire: v1::CreateApprovalRequest = ApprovalRequest::new("deploy")
            .timeout(Duration::from_millis(1500))
            .wire("")
            .map(Into::into)
            .expect("valid");
        assert_eq!(
            wire.timeout,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn a_context_that_is_not_an_object_is_refused_naming_the_field() {
        let request = ApprovalRequest::new("deploy").context(json!([1, 2, 3]));
        match request.wire("") {
            Err(Error::InvalidArgument { field, .. }) => {
                assert_eq!(field.as_deref(), Some("context"))
            }
            _ => panic!("expected InvalidArgument"),
        }
    }

    #[test]
    fn the_clients_agent_id_applies_unless_the_request_has_its_own() {
        let wire: v1::CreateApprovalRequest = ApprovalRequest::new("deploy")
            .wire("bot")
            .map(Into::into)
            .expect("valid");
        assert_eq!(wire.agent_id, "bot");
        let wire: v1::CreateApprovalRequest = ApprovalRequest::new("deploy")
            .agent_id("other")
            .wire("bot")
            .map(Into::into)
            .expect("valid");
        assert_eq!(wire.agent_id, "other");
    }
}
