//! `WatchPending` and `AwaitApproval` as tests use them: open a watch and
//! read it up to `synced`, read the next event with a bound, wait on an
//! approval in a task of its own.

use approval_client::v1;
use approval_client::v1::watch_pending_response::Event;
use tokio::task::JoinHandle;

use crate::{Client, PROMPTLY};

/// A watch read up to its `synced` event.
pub struct SyncedWatch {
    /// The stream, positioned after `synced`: live changes come next.
    pub stream: tonic::Streaming<v1::WatchPendingResponse>,
    /// The approvals of the snapshot (the `added` events before `synced`).
    pub snapshot: Vec<v1::Approval>,
    /// The cursor `synced` carried.
    pub cursor: String,
}

impl SyncedWatch {
    /// The stream, failing the test unless the snapshot was empty (`synced`
    /// came first).
    pub fn expect_empty(self) -> tonic::Streaming<v1::WatchPendingResponse> {
        assert!(
            self.snapshot.is_empty(),
            "an empty snapshot, not {:?}",
            self.snapshot
        );
        self.stream
    }
}

/// Opens a watch with `request` (a `WatchPendingRequest`, or a
/// `tonic::Request` of one carrying credentials) and reads it up to
/// `synced`, failing the test if that does not come promptly or anything
/// but `added` comes before it.
pub async fn synced_watch(
    client: &mut Client,
    request: impl tonic::IntoRequest<v1::WatchPendingRequest>,
) -> SyncedWatch {
    let mut stream = client
        .watch_pending(request)
        .await
        .expect("the watch opens")
        .into_inner();
    let mut snapshot = Vec::new();
    loop {
        let message = next_event(&mut stream).await;
        match message.event {
            Some(Event::Added(approval)) => snapshot.push(approval),
            Some(Event::Synced(_)) => {
                return SyncedWatch {
                    stream,
                    snapshot,
                    cursor: message.cursor,
                }
            }
            other => panic!("before synced, only the snapshot's added events: {other:?}"),
        }
    }
}

/// Opens a watch resumed after `cursor`: no snapshot, the changes after it
/// come first. Fails the test if the service refuses it.
pub async fn resumed_watch(
    client: &mut Client,
    cursor: &str,
) -> tonic::Streaming<v1::WatchPendingResponse> {
    client
        .watch_pending(v1::WatchPendingRequest {
            cursor: cursor.to_string(),
            ..Default::default()
        })
        .await
        .expect("the resumed watch opens")
        .into_inner()
}

/// The next event of a watch stream, failing the test if none comes promptly.
pub async fn next_event(
    stream: &mut tonic::Streaming<v1::WatchPendingResponse>,
) -> v1::WatchPendingResponse {
    tokio::time::timeout(PROMPTLY, stream.message())
        .await
        .expect("a watch event within the bound")
        .expect("the watch stream is healthy")
        .expect("the watch stream is still open")
}

/// `AwaitApproval` for `id` on a clone of `client`, in a task of its own:
/// join it for the answer.
pub fn spawn_await(
    client: &Client,
    id: &str,
) -> JoinHandle<Result<tonic::Response<v1::AwaitApprovalResponse>, tonic::Status>> {
    let mut client = client.clone();
    let id = id.to_string();
    tokio::spawn(async move { client.await_approval(v1::AwaitApprovalRequest { id }).await })
}
