//! Looks: the reads of waiting calls, batched.
//!
//! A replica restart brings every waiter of that replica back at once (its
//! clients retry into the new process), and a store outage's end makes every
//! waiter read again: tens of thousands of single reads queued on one Redis
//! connection then wait past its command timeout. Here a read that comes
//! while `IN_FLIGHT` batches are out waits for a slot, and all the reads that
//! came meanwhile go together in one pipelined batch of at most `BATCH` ids.
//! At low load a read goes out at once, alone: batching adds no wait.
//!
//! Bounded: at most `QUEUE` reads queued (a caller beyond waits to queue, as
//! it would for a connection) and `IN_FLIGHT` batches of `BATCH` ids out.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::domain::{Approval, ApprovalId, DomainError};
use crate::store::Store;

/// Most ids read in one batch (one pipeline of that many reads).
const BATCH: usize = 256;
/// Batches out at once.
const IN_FLIGHT: usize = 4;
/// Reads queued while every batch slot is taken.
const QUEUE: usize = 4 * BATCH;

type Found = Result<Option<Approval>, DomainError>;
type Read = (ApprovalId, oneshot::Sender<Found>);

#[derive(Clone)]
pub(super) struct Looks {
    queue: mpsc::Sender<Read>,
}

impl Looks {
    /// Starts the batcher; it ends when the last `Looks` is dropped.
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (queue, reads) = mpsc::channel(QUEUE);
        tokio::spawn(batch_reads(store, reads));
        Self { queue }
    }

    /// The approval as the store has it now (`None`: gone).
    pub(super) async fn get(&self, id: &ApprovalId) -> Found {
        let (answer, answered) = oneshot::channel();
        let gone = || DomainError::Unavailable("this replica's store reader has stopped".into());
        self.queue
            .send((id.clone(), answer))
            .await
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

async fn batch_reads(store: Arc<dyn Store>, mut reads: mpsc::Receiver<Read>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = reads.recv().await {
        // Taken before the batch is gathered: while every slot is out, reads
        // pile up in the queue and leave together.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match reads.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            answer(store.as_ref(), batch).await;
            drop(slot);
        });
    }
}

/// Reads the batch in one round trip. Should that fail otherwise than by the
/// store being out of reach (say, one record does not decode), each id is
/// read alone, so each caller gets its own answer.
async fn answer(store: &dyn Store, batch: Vec<Read>) {
    let ids: Vec<ApprovalId> = batch.iter().map(|(id, _)| id.clone()).collect();
    match store.get_many(&ids).await {
        Ok(found) if found.len() == batch.len() => {
            for ((_, answer), approval) in batch.into_iter().zip(found) {
                let _ = answer.send(Ok(approval));
            }
        }
        // The store is out of reach: so it is for each of them.
        Err(DomainError::Unavailable(why)) => {
            for (_, answer) in batch {
                let _ = answer.send(Err(DomainError::Unavailable(why.clone())));
            }
        }
        _ => {
            let alone = batch.into_iter().map(|(id, answer)| async move {
                let _ = answer.send(store.get(&id).await);
            });
            futures::future::join_all(alone).await;
        }
    }
}
