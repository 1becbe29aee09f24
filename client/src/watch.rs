//! The live queue of pending approvals as a `Stream` of typed events that
//! survives reconnections by itself.
//!
//! The service's `WatchPending` stream starts with a snapshot (events with an
//! empty cursor), then `synced`, then live changes, each with a cursor. When
//! the stream breaks (a replica shuts down, the connection drops), the
//! watcher reconnects with the last cursor it saw and the service replays
//! exactly what was missed, so the consumer sees no gap and no duplicate.
//! Two cases force a fresh snapshot instead: the stream broke before
//! `synced` (no cursor yet), or the cursor is too old (OUT_OF_RANGE). Both
//! yield [`WatchEvent::Reset`] first: a view must then drop what it holds.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::Code;

use crate::error::worth_retrying;
use crate::wait::Backoff;
use crate::{v1, Approval, ApprovalClient, Error, Result};

/// Which pending approvals to watch; the default watches all.
///
/// ```
/// let filter = approval_client::WatchFilter::default()
///     .approval_type("deploy:*")
///     .label("team", "payments");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchFilter {
    approval_types: Vec<String>,
    agent_id: String,
    labels: BTreeMap<String, String>,
}

impl WatchFilter {
    /// Only this approval type (repeat for several); a trailing `*` matches
    /// a prefix.
    ///
    /// ```
    /// let filter = approval_client::WatchFilter::default().approval_type("deploy:*");
    /// ```
    pub fn approval_type(mut self, approval_type: impl Into<String>) -> Self {
        self.approval_types.push(approval_type.into());
        self
    }

    /// Only approvals requested by this agent.
    ///
    /// ```
    /// let filter = approval_client::WatchFilter::default().agent_id("release-bot");
    /// ```
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = agent_id.into();
        self
    }

    /// Only approvals carrying this label (repeat: all must match).
    ///
    /// ```
    /// let filter = approval_client::WatchFilter::default().label("env", "production");
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn wire(&self, cursor: &str) -> v1::WatchPendingRequest {
        v1::WatchPendingRequest {
            approval_types: self.approval_types.clone(),
            agent_id: self.agent_id.clone(),
            labels: self.labels.clone().into_iter().collect(),
            cursor: cursor.to_string(),
        }
    }
}

/// One change in the queue of pending approvals.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// An approval is pending: from the snapshot, or newly created.
    Added(Approval),
    /// A pending approval became final (approved, rejected, expired or
    /// cancelled).
    Resolved(Approval),
    /// A pending approval changed and is still pending: a vote arrived
    /// (see [`Approval::votes`]). It replaces the one held.
    Updated(Approval),
    /// The snapshot is complete: what was `Added` so far is the whole queue,
    /// and live changes follow.
    Synced,
    /// The watch starts over with a fresh snapshot: forget every approval
    /// seen so far.
    Reset,
    /// The stream broke; the watcher is reconnecting (and will resume where
    /// it left off). Informational: nothing to undo.
    Reconnecting {
        /// Why the stream broke.
        reason: String,
    },
}

/// The stream [`ApprovalClient::watch_pending`] returns.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// The state between two events: where to resume, and the open stream.
struct Watcher {
    client: ApprovalClient,
    filter: WatchFilter,
    /// The cursor of the last event with one; empty before the first `synced`.
    cursor: String,
    stream: Option<tonic::Streaming<v1::WatchPendingResponse>>,
    /// Whether any stream ever opened: until then errors go to the caller
    /// (a wrong address should fail, not retry forever).
    opened_once: bool,
    /// Whether the consumer holds events that the next snapshot repeats
    /// (the stream broke mid-snapshot), so the next stream starts with
    /// [`WatchEvent::Reset`].
    holds_partial_snapshot: bool,
    /// Whether the next opened stream must begin with [`WatchEvent::Reset`].
    reset_on_open: bool,
    backoff: Backoff,
    /// When to try reconnecting next.
    retry_at: Option<Instant>,
    finished: bool,
}

pub(crate) fn watch(client: ApprovalClient, filter: WatchFilter) -> WatchStream {
    let watcher = Watcher {
        client,
        filter,
        cursor: String::new(),
        stream: None,
        opened_once: false,
        holds_partial_snapshot: false,
        reset_on_open: false,
        backoff: Backoff::default(),
        retry_at: None,
        finished: false,
    };
    futures::stream::unfold(watcher, |mut w| async move {
        let item = w.next_event().await?;
        Some((item, w))
    })
    .boxed()
}

impl Watcher {
    async fn next_event(&mut self) -> Option<Result<WatchEvent>> {
        if self.finished {
            return None;
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                if let Some(at) = self.retry_at.take() {
                    tokio::time::sleep_until(at).await;
                }
                match self.open().await {
                    Ok(Some(event)) => return Some(Ok(event)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
            };
            match stream.message().await {
                Ok(Some(message)) => match self.accept(message) {
                    Ok(Some(event)) => return Some(Ok(event)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                },
                // The server ended the stream (it is shutting down cleanly):
                // resume elsewhere, as after a broken connection.
                Ok(None) => return Some(Ok(self.lost("the server closed the stream".to_string()))),
                Err(status) if status.code() == Code::OutOfRange => {
                    return Some(Ok(self.start_over()))
                }
                Err(status) if worth_retrying(&status) => {
                    let reason = Error::from_status(status, self.client.endpoint()).to_string();
                    return Some(Ok(self.lost(reason)));
                }
                Err(status) => {
                    self.finished = true;
                    return Some(Err(Error::from_status(status, self.client.endpoint())));
                }
            }
        }
    }

    /// Opens a stream from the cursor. `Ok(None)`: not now, try again later.
    async fn open(&mut self) -> Result<Option<WatchEvent>> {
        let mut grpc = self.client.grpc();
        match grpc.watch_pending(self.filter.wire(&self.cursor)).await {
            Ok(response) => {
                self.stream = Some(response.into_inner());
                self.opened_once = true;
                if std::mem::take(&mut self.reset_on_open) {
                    self.holds_partial_snapshot = false;
                    return Ok(Some(WatchEvent::Reset));
                }
                Ok(None)
            }
            Err(status) if status.code() == Code::OutOfRange => Ok(Some(self.start_over())),
            Err(status) if self.opened_once && worth_retrying(&status) => {
                self.retry_at = Some(Instant::now() + self.backoff.next_pause());
                Ok(None)
            }
            Err(status) => Err(Error::from_status(status, self.client.endpoint())),
        }
    }

    /// One message from the service as an event (`None`: nothing to report).
    fn accept(&mut self, message: v1::WatchPendingResponse) -> Result<Option<WatchEvent>> {
        use v1::watch_pending_response::Event;
        if !message.cursor.is_empty() {
            self.cursor = message.cursor;
            // Resuming works: the connection is healthy again.
            self.backoff.reset();
        }
        Ok(match message.event {
            Some(Event::Added(a)) => {
                if self.cursor.is_empty() {
                    self.holds_partial_snapshot = true;
                }
                Some(WatchEvent::Added(a.try_into()?))
            }
            Some(Event::Resolved(a)) => Some(WatchEvent::Resolved(a.try_into()?)),
            Some(Event::Updated(a)) => Some(WatchEvent::Updated(a.try_into()?)),
            Some(Event::Synced(_)) => {
                self.backoff.reset();
                Some(WatchEvent::Synced)
            }
            // A newer service's event this client does not know: skip it.
            None => None,
        })
    }

    /// The stream broke: reconnect after a pause, and say so. Before the
    /// first cursor there is nothing to resume from: the snapshot restarts.
    fn lost(&mut self, reason: String) -> WatchEvent {
        self.stream = None;
        self.reset_on_open = self.cursor.is_empty() && self.holds_partial_snapshot;
        self.retry_at = Some(Instant::now() + self.backoff.next_pause());
        WatchEvent::Reconnecting { reason }
    }

    /// The cursor is too old: drop it and tell the consumer to reset.
    fn start_over(&mut self) -> WatchEvent {
        self.stream = None;
        self.cursor.clear();
        self.holds_partial_snapshot = false;
        self.reset_on_open = false;
        WatchEvent::Reset
    }
}
