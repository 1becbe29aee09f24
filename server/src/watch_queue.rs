//! The queue between one watcher's producer (snapshot, then live events) and
//! its gRPC response stream, bounded in bytes.
//!
//! The producer waits while the queue holds `max_bytes`; a client that reads
//! slowly therefore holds the producer, never memory. When the client has
//! taken nothing for `stall` while the queue is full, `send` gives up with
//! `Stalled`: the producer then ends the watch with `end`, which drops
//! whatever is queued so the memory comes back at once, whether or not the
//! client ever reads the final status.
//!
//! The receiver owns whatever must live exactly as long as the response
//! stream (the watcher's slot under the caps, its gauge): tonic drops the
//! stream when the HTTP/2 stream is gone, and with it the slot.
//!
//! `WatcherQuota` hands out those slots: the caps on open watchers.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::Stream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::domain::DomainError;

/// Why `send` did not queue the item.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The client is gone (the response stream was dropped).
    Closed,
    /// The queue stayed full, with nothing taken, for the whole stall time.
    Stalled { queued_bytes: usize },
}

struct State<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    /// Since when the receiver has taken nothing while items waited: when
    /// it last took one, or when an item arrived in the empty queue.
    last_taken: Instant,
    receiver_gone: bool,
    /// No more items will come after those queued.
    ended: bool,
    reader: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the producer: room was made, or the receiver went away.
    room: Notify,
    max_bytes: usize,
    stall: Duration,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The consuming end, a `Stream`. `keep` lives as long as it does.
pub struct Receiver<T, K> {
    shared: Arc<Shared<T>>,
    _keep: K,
}

/// A queue that holds at most `max_bytes` (one item more than that is let in
/// when the queue is empty, so an item larger than the bound still passes).
pub fn channel<T, K>(max_bytes: usize, stall: Duration, keep: K) -> (Sender<T>, Receiver<T, K>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            last_taken: Instant::now(),
            receiver_gone: false,
            ended: false,
            reader: None,
        }),
        room: Notify::new(),
        max_bytes,
        stall,
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            _keep: keep,
        },
    )
}

impl<T> Sender<T> {
    /// Queues `item` of `bytes`, waiting for room.
    pub async fn send(&self, item: T, bytes: usize) -> Result<(), SendError> {
        loop {
            // Ask to be woken before looking, so room made in between counts.
            let room = self.shared.room.notified();
            let give_up_at = {
                let mut state = self.shared.lock();
                if state.receiver_gone {
                    return Err(SendError::Closed);
                }
                if state.items.is_empty() || state.bytes + bytes <= self.shared.max_bytes {
                    if state.items.is_empty() {
                        // The reader was idle, not slow: its clock starts now.
                        state.last_taken = Instant::now();
                    }
                    state.bytes += bytes;
                    state.items.push_back((item, bytes));
                    if let Some(w) = state.reader.take() {
                        w.wake();
                    }
                    return Ok(());
                }
                let give_up_at = state.last_taken + self.shared.stall;
                if give_up_at <= Instant::now() {
                    return Err(SendError::Stalled {
                        queued_bytes: state.bytes,
                    });
                }
                give_up_at
            };
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep_until(give_up_at) => {}
            }
        }
    }

    /// Ends the stream with `last`: drops everything still queued (the
    /// client is too far behind for it to matter) and queues `last` alone.
    pub fn end_with(&self, last: T) {
        let mut state = self.shared.lock();
        state.items.clear();
        state.bytes = 0;
        state.items.push_back((last, 0));
        state.ended = true;
        if let Some(w) = state.reader.take() {
            w.wake();
        }
    }

    /// Resolves when the receiver is gone.
    pub async fn closed(&self) {
        loop {
            let room = self.shared.room.notified();
            if self.shared.lock().receiver_gone {
                return;
            }
            room.await;
        }
    }

    /// Bytes queued now (for tests and metrics).
    pub fn queued_bytes(&self) -> usize {
        self.shared.lock().bytes
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.ended = true;
        if let Some(w) = state.reader.take() {
            w.wake();
        }
    }
}

impl<T, K: Unpin> Stream for Receiver<T, K> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some((item, bytes)) = state.items.pop_front() {
            state.bytes -= bytes;
            state.last_taken = Instant::now();
            drop(state);
            self.shared.room.notify_one();
            return Poll::Ready(Some(item));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T, K> Drop for Receiver<T, K> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        state.items.clear();
        state.bytes = 0;
        drop(state);
        self.shared.room.notify_one();
    }
}

/// The caps on open `WatchPending` streams of this replica: in all, and per
/// principal (when known).
pub struct WatcherQuota {
    max_total: usize,
    max_per_principal: usize,
    open: Arc<Mutex<OpenWatchers>>,
}

#[derive(Default)]
struct OpenWatchers {
    total: usize,
    per_principal: HashMap<String, usize>,
}

/// A place among the replica's open watchers (and its principal's, when
/// known), given back on drop.
pub struct WatcherSlot {
    open: Arc<Mutex<OpenWatchers>>,
    key: Option<String>,
}

impl WatcherQuota {
    pub fn new(max_total: usize, max_per_principal: usize) -> Self {
        Self {
            max_total,
            max_per_principal,
            open: Arc::default(),
        }
    }

    /// A slot for a watcher of principal `key` (`None`: unauthenticated),
    /// or `ResourceExhausted` when a cap is reached.
    pub fn take(&self, key: Option<String>) -> Result<WatcherSlot, DomainError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(DomainError::ResourceExhausted(format!(
                "this replica already has {} WatchPending streams open (--max-watchers): retry later or on another replica",
                self.max_total
            )));
        }
        if let Some(key) = &key {
            let max = self.max_per_principal;
            let n = open.per_principal.entry(key.clone()).or_default();
            if *n >= max {
                return Err(DomainError::ResourceExhausted(format!(
                    "{key} already has {max} WatchPending streams open on this replica: close one first"
                )));
            }
            *n += 1;
        }
        open.total += 1;
        Ok(WatcherSlot {
            open: self.open.clone(),
            key,
        })
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(key) = &self.key {
            if let Some(n) = open.per_principal.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.per_principal.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_full_queue_holds_the_producer_and_a_reader_makes_room() {
        let (tx, mut rx) = channel::<u32, ()>(10, Duration::from_secs(30), ());
        tx.send(1, 6).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(2, 6)).await;
        assert!(blocked.is_err(), "a second item over the bound waits");
        assert_eq!(tx.queued_bytes(), 6);
        assert_eq!(rx.next().await, Some(1));
        tx.send(2, 6).await.unwrap();
        assert_eq!(rx.next().await, Some(2));
    }

    #[tokio::test]
    async fn a_reader_that_takes_nothing_for_the_stall_time_stalls_the_sender() {
        let stall = Duration::from_millis(200);
        let (tx, _rx) = channel::<u32, ()>(10, stall, ());
        tx.send(1, 8).await.unwrap();
        let started = Instant::now();
        assert_eq!(
            tx.send(2, 8).await,
            Err(SendError::Stalled { queued_bytes: 8 })
        );
        assert!(started.elapsed() >= stall);
        tx.end_with(9);
        assert_eq!(tx.queued_bytes(), 0, "ending drops what was queued");
    }

    #[tokio::test]
    async fn a_reader_idle_for_long_is_not_stalled_by_a_sudden_burst() {
        let stall = Duration::from_millis(200);
        let (tx, mut rx) = channel::<u32, ()>(10, stall, ());
        tokio::time::sleep(stall * 2).await;
        tx.send(1, 8).await.unwrap();
        let reader = tokio::spawn(async move {
            tokio::time::sleep(stall / 4).await;
            (rx.next().await, rx.next().await)
        });
        assert_eq!(tx.send(2, 8).await, Ok(()));
        assert_eq!(reader.await.unwrap(), (Some(1), Some(2)));
    }

    #[tokio::test]
    async fn a_dropped_receiver_closes_the_sender() {
        let (tx, rx) = channel::<u32, ()>(10, Duration::from_secs(30), ());
        tx.send(1, 8).await.unwrap();
        drop(rx);
        assert_eq!(tx.send(2, 8).await, Err(SendError::Closed));
        tx.closed().await;
    }
}
