//! The bounded write queue and the batch writer behind it.
//!
//! Requests take permits from a span budget before they are queued; when the budget is spent
//! the request fails at once (the transport answers 503 / UNAVAILABLE with a retry hint), so
//! memory stays bounded whatever the load. One writer task drains the queue: it takes every
//! request waiting, hands them to the store in one [`TraceStore::write_spans`] call (one flush
//! to disk for all of them) and only then answers each. While a batch is being written, the
//! next one gathers.
//!
//! Log records (span events) take permits from the same budget: they are written at once, not
//! batched, but an overload of logs is refused as one of spans is, and both together never
//! hold more than the budget in memory.
//!
//! Before that, a request body is admitted ([`IngestQueue::admit`]) against a budget of bytes
//! being read and decoded, and refused at once when the span budget is spent: under overload
//! the spans' budget alone left every body of thousands of connections in memory, waiting for
//! the decode threads only to be refused afterwards (figures in docs/performance.md, "Memory").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use loupe_store::threads::PriorityPool;
use loupe_store::{EncodedEvent, EncodedSpan, StoreError, TraceStore, WriteOutcome};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::IngestError;

/// Queue limits.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    /// Spans that may wait for the writer at once (decoded and encoded, in memory).
    pub max_queued_spans: usize,
    /// The most spans in one batch (one [`TraceStore::write_spans`] call).
    pub max_batch_spans: usize,
    /// Request bytes that may be read and decoded at once ([`IngestQueue::admit`]).
    pub max_decoding_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_queued_spans: 20_000,
            max_batch_spans: 20_000,
            max_decoding_bytes: 8 << 20,
        }
    }
}

struct Job {
    spans: Vec<EncodedSpan>,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
    _permit: OwnedSemaphorePermit,
}

/// A request body's share of the decoding budget ([`IngestQueue::admit`]); returned on drop.
pub struct Admission(OwnedSemaphorePermit);

/// The sending side, shared by every transport. Cheap to clone.
#[derive(Clone)]
pub struct IngestQueue {
    tx: mpsc::UnboundedSender<Job>,
    budget: Arc<Semaphore>,
    max_queued: u32,
    decoding: Arc<Semaphore>,
    max_decoding: u32,
    closing: Arc<AtomicBool>,
    decoders: Arc<PriorityPool>,
    store: Arc<dyn TraceStore>,
}

/// The writer task; await [`WriterHandle::join`] after every sender is gone to flush the rest.
pub struct WriterHandle {
    task: JoinHandle<()>,
    closing: Arc<AtomicBool>,
}

impl WriterHandle {
    /// Refuses new submissions from now on; queued ones are still written.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Waits until the writer has written everything queued and exited. The writer exits when
    /// every [`IngestQueue`] clone has been dropped.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

impl IngestQueue {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn TraceStore>, config: QueueConfig) -> (Self, WriterHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let max_queued = u32::try_from(config.max_queued_spans.max(1)).unwrap_or(u32::MAX);
        let max_decoding = u32::try_from(config.max_decoding_bytes.max(1)).unwrap_or(u32::MAX);
        let closing = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run_writer(store.clone(), rx, config.max_batch_spans.max(1)));
        (
            Self {
                tx,
                budget: Arc::new(Semaphore::new(max_queued as usize)),
                max_queued,
                decoding: Arc::new(Semaphore::new(max_decoding as usize)),
                max_decoding,
                closing: closing.clone(),
                decoders: Arc::new(PriorityPool::new(
                    "loupe-decode",
                    decode_threads(),
                    DECODE_NICE,
                )),
                store,
            },
            WriterHandle { task, closing },
        )
    }

    /// Runs CPU-heavy request work (decode, normalize, compress) on the decode threads (see
    /// [`decode_threads`] and [`DECODE_NICE`]); further requests wait their turn.
    pub async fn cpu<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IngestError> {
        self.decoders.run(f).await.map_err(IngestError::Store)
    }

    /// Admits a request body of `bytes` to be read or decoded, at once or not at all: refused
    /// when the span budget is spent (its spans would be refused after decoding) or when too
    /// many bytes are being decoded already. A body larger than the whole budget takes all of
    /// it. Hold the admission until the body is decoded; call again with more bytes
    /// when the body turns out larger than first admitted (chunked, compressed).
    pub fn admit(
        &self,
        bytes: usize,
        admitted: Option<Admission>,
    ) -> Result<Admission, IngestError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(IngestError::ShuttingDown);
        }
        if self.budget.available_permits() == 0 {
            return Err(IngestError::Overloaded);
        }
        let held = admitted.as_ref().map_or(0, |a| a.0.num_permits());
        let want = u32::try_from(bytes.saturating_sub(held))
            .unwrap_or(u32::MAX)
            .min(
                self.max_decoding
                    .saturating_sub(u32::try_from(held).unwrap_or(u32::MAX)),
            );
        let more = self
            .decoding
            .clone()
            .try_acquire_many_owned(want)
            .map_err(|_| IngestError::Overloaded)?;
        Ok(match admitted {
            Some(mut a) => {
                a.0.merge(more);
                a
            }
            None => Admission(more),
        })
    }

    /// Permits for `items` spans or events, at once or not at all (the queue is full). A
    /// request larger than the whole budget takes all of it, so it can still pass alone.
    fn permits(&self, items: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(IngestError::ShuttingDown);
        }
        let want = u32::try_from(items)
            .unwrap_or(u32::MAX)
            .min(self.max_queued);
        self.budget
            .clone()
            .try_acquire_many_owned(want)
            .map_err(|_| IngestError::Overloaded)
    }

    /// Queues spans and waits until they are committed. Fails at once when the queue is full.
    pub async fn submit(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, IngestError> {
        if spans.is_empty() {
            return self.permits(0).map(|_| WriteOutcome::default());
        }
        let permit = self.permits(spans.len())?;
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Job {
                spans,
                reply,
                _permit: permit,
            })
            .map_err(|_| IngestError::ShuttingDown)?;
        match done.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(IngestError::Store(e)),
            Err(_) => Err(IngestError::ShuttingDown),
        }
    }

    /// Writes span events (OTLP log records) within the queue's budget, and waits until they
    /// are committed. Fails at once when the queue is full. Returns the events stored.
    pub async fn submit_events(&self, events: Vec<EncodedEvent>) -> Result<u64, IngestError> {
        let _permit = self.permits(events.len())?;
        if events.is_empty() {
            return Ok(0);
        }
        self.store
            .write_events(events)
            .await
            .map_err(IngestError::Store)
    }
}

/// Nice value of the decode threads. The span writer is the one stage of ingest that runs on a
/// single thread; at the same priority the decoders took its core away about half of the time,
/// and it was what limited ingest. At nice 5 the writer gets about three quarters of a core the
/// decoders contend for, and the decoders still come before queries and the text indexer (nice
/// 10) (figures: docs/performance.md, "Ingest decode pool and priorities").
pub const DECODE_NICE: i32 = 5;

/// Decode tasks at once: one per core. One task in all, or two per core, ingested less;
/// unbounded, sixteen requests decoding at once starved the single writer thread, which limits
/// ingest (figures: docs/performance.md, "Ingest decode pool and priorities").
fn decode_threads() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZero::get)
        .unwrap_or(1)
}

/// Batches written at once: one inserting while the one before it is flushed to disk.
const WRITES_IN_FLIGHT: usize = 2;

async fn run_writer(
    store: Arc<dyn TraceStore>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    max_batch: usize,
) {
    let in_flight = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        // Wait for a write slot before gathering, so the batch takes everything that queued
        // up meanwhile.
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let mut n = first.spans.len();
        let mut jobs = vec![first];
        while n < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    n += job.spans.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        tasks.spawn(async move {
            let mut spans = Vec::with_capacity(n);
            let mut waiting = Vec::with_capacity(jobs.len());
            for job in jobs {
                spans.extend(job.spans);
                waiting.push((job.reply, job._permit));
            }
            let started = std::time::Instant::now();
            let result = store.write_spans(spans).await;
            let took = started.elapsed();
            if let Err(e) = &result {
                tracing::error!(error = %e, "batch write failed");
            }
            let reqs = waiting.len();
            for (reply, permit) in waiting {
                let _ = reply.send(result.clone());
                drop(permit);
            }
            drop(slot);
            tracing::debug!(spans = n, requests = reqs, ?took, "batch committed");
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use loupe_store::threads::current_nice;

    #[tokio::test]
    async fn requests_decode_below_the_writer_priority() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = loupe_store_sqlite::SqliteStore::open(dir.path()).expect("store");
        let (queue, _writer) = IngestQueue::start(Arc::new(store), QueueConfig::default());
        let base = current_nice();
        let (nice, name) = queue
            .cpu(|| {
                (
                    current_nice(),
                    std::thread::current().name().map(str::to_string),
                )
            })
            .await
            .expect("decodes");
        assert_eq!(nice, DECODE_NICE.max(base));
        assert!(name.is_some_and(|n| n.starts_with("loupe-decode-")));
        assert_eq!(current_nice(), base, "the caller keeps its priority");
    }
}
