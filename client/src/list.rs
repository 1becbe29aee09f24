//! Listing approvals, page after page, as one `Stream`.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::{Stream, StreamExt, TryStreamExt};

use crate::{v1, Approval, ApprovalClient, Error, Result, Status};

/// Which approvals to list (newest first); the default lists all.
///
/// ```
/// use approval_client::{ListFilter, Status};
/// let filter = ListFilter::default()
///     .status(Status::Pending)
///     .approval_type("deploy:*")
///     .page_size(100);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    statuses: Vec<Status>,
    approval_types: Vec<String>,
    agent_id: String,
    labels: BTreeMap<String, String>,
    page_size: u32,
}

impl ListFilter {
    /// Only this status (repeat for several).
    ///
    /// ```
    /// use approval_client::{ListFilter, Status};
    /// let finished = ListFilter::default().status(Status::Approved).status(Status::Rejected);
    /// ```
    pub fn status(mut self, status: Status) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only this approval type (repeat for several); a trailing `*` matches
    /// a prefix.
    ///
    /// ```
    /// let filter = approval_client::ListFilter::default().approval_type("deploy:*");
    /// ```
    pub fn approval_type(mut self, approval_type: impl Into<String>) -> Self {
        self.approval_types.push(approval_type.into());
        self
    }

    /// Only approvals requested by this agent.
    ///
    /// ```
    /// let filter = approval_client::ListFilter::default().agent_id("release-bot");
    /// ```
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = agent_id.into();
        self
    }

    /// Only approvals carrying this label (repeat: all must match).
    ///
    /// ```
    /// let filter = approval_client::ListFilter::default().label("team", "payments");
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// How many approvals to fetch per call (the service's default is 50,
    /// its maximum 1000). Only tunes the paging: the stream yields them all.
    ///
    /// ```
    /// let filter = approval_client::ListFilter::default().page_size(500);
    /// ```
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    pub(crate) fn wire(&self, page_token: &str) -> v1::ListApprovalsRequest {
        v1::ListApprovalsRequest {
            statuses: self.statuses.iter().map(|s| s.to_wire() as i32).collect(),
            approval_types: self.approval_types.clone(),
            agent_id: self.agent_id.clone(),
            labels: self.labels.clone().into_iter().collect(),
            page_size: i32::try_from(self.page_size).unwrap_or(i32::MAX),
            page_token: page_token.to_string(),
        }
    }
}

/// One page of [`ApprovalClient::list_page`].
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The approvals on this page (possibly fewer than the page size even
    /// when more follow).
    pub approvals: Vec<Approval>,
    /// Where the next page starts; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The stream [`ApprovalClient::list`] returns.
pub type ApprovalStream = Pin<Box<dyn Stream<Item = Result<Approval>> + Send>>;

pub(crate) fn list(client: ApprovalClient, filter: ListFilter) -> ApprovalStream {
    // State: the next page token, or `None` once the last page was fetched.
    let pages = futures::stream::try_unfold(Some(String::new()), move |token| {
        let client = client.clone();
        let filter = filter.clone();
        async move {
            let Some(token) = token else {
                return Ok::<_, Error>(None);
            };
            let page = client.list_page(&filter, &token).await?;
            let items = futures::stream::iter(page.approvals.into_iter().map(Ok));
            Ok(Some((items, page.next_page_token)))
        }
    });
    pages.try_flatten().boxed()
}
