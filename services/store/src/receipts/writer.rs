//! Group commit: receipts arriving concurrently are booked by a few writers in shared
//! transactions, in the style of TigerBeetle's batching. A writer takes the first receipt
//! waiting, then every other one already queued (up to the batch limit), without waiting for
//! more: under load batches grow by themselves while the previous batch commits, and a lone
//! receipt is booked at once. Each caller hears its outcome only after the commit that holds
//! its receipt. Two writers overlap one batch's commit (the fsync, under the chain-head lock)
//! with the next batch's reads and writes.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{ReceiptInput, ReceiptOutcome, book};
use crate::Store;
use crate::error::AppError;

/// How receipts are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptWriterConfig {
    /// The most receipts one transaction books.
    pub max_batch: usize,
    /// How many writers book batches concurrently.
    pub writers: usize,
    /// How long a writer whose previous batch held several receipts waits for more before
    /// booking a batch that is not full. Zero books what is queued at once.
    pub linger: std::time::Duration,
}

impl Default for ReceiptWriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            writers: 2,
            linger: std::time::Duration::ZERO,
        }
    }
}

type Job = (
    ReceiptInput,
    oneshot::Sender<Result<ReceiptOutcome, AppError>>,
    std::time::Instant,
);

/// The queue in front of the writers; held by every [`Store`] handle of the process.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    queue: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Queues `input` and waits for the commit that holds it.
    pub(crate) async fn submit(&self, input: ReceiptInput) -> Result<ReceiptOutcome, AppError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((input, reply, std::time::Instant::now()))
            .await
            .map_err(|_| AppError::Unavailable("the receipt writer has stopped".into()))?;
        answer.await.map_err(|_| {
            AppError::Unavailable("the receipt writer stopped before committing".into())
        })?
    }
}

/// Starts `config.writers` writers booking for `store` (which must not hold a writer itself)
/// and returns the queue in front of them. The writers stop once every handle is dropped and
/// the queue is drained.
pub(crate) fn start(store: Store, config: ReceiptWriterConfig) -> WriterHandle {
    let max_batch = config.max_batch.max(1);
    let (queue, receiver) = mpsc::channel::<Job>(max_batch * config.writers.max(1) * 4);
    let receiver = Arc::new(Mutex::new(receiver));
    let linger = config.linger;
    for _ in 0..config.writers.max(1) {
        let receiver = Arc::clone(&receiver);
        let store = store.clone();
        tokio::spawn(async move {
            let mut busy = false;
            loop {
                let mut batch = Vec::with_capacity(max_batch);
                {
                    let mut receiver = receiver.lock().await;
                    match receiver.recv().await {
                        Some(job) => batch.push(job),
                        None => return,
                    }
                    while batch.len() < max_batch {
                        match receiver.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    // Under load (the previous batch was not a lone receipt) a short wait
                    // grows the batch: fewer statements and commits per receipt. A quiet
                    // queue never waits.
                    if busy && !linger.is_zero() && batch.len() < max_batch {
                        let deadline = tokio::time::Instant::now() + linger;
                        while batch.len() < max_batch {
                            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                                Ok(Some(job)) => batch.push(job),
                                Ok(None) | Err(_) => break,
                            }
                        }
                    }
                }
                busy = batch.len() > 1;
                let started = std::time::Instant::now();
                // How long the batch's first receipt waited for a writer: with the batch
                // size, what tells a busy writer from a quiet queue.
                let waited = batch
                    .first()
                    .map_or(std::time::Duration::ZERO, |(_, _, queued)| {
                        started.duration_since(*queued)
                    });
                let (inputs, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|(i, r, _)| (i, r)).unzip();
                let size = inputs.len();
                let outcomes = book::book_batch(&store, inputs).await;
                tracing::debug!(
                    receipts = size,
                    waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
                    elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    "receipt batch committed"
                );
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that gave up (its connection closed) still has its receipt
                    // booked: nothing to do.
                    let _ = reply.send(outcome);
                }
            }
        });
    }
    WriterHandle { queue }
}

impl Store {
    /// This store with receipts booked in group commits by background writers (see the
    /// module documentation). Needs a Tokio runtime. The writers book with this store's
    /// clock: give it another clock before, not after.
    pub fn with_receipt_writer(mut self, config: ReceiptWriterConfig) -> Self {
        let mut inner = self.clone();
        inner.receipt_writer = None;
        self.receipt_writer = Some(start(inner, config));
        self
    }

    pub(crate) fn receipt_writer(&self) -> Option<&WriterHandle> {
        self.receipt_writer.as_ref()
    }
}
