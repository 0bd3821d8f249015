//! The threads that run queries, at a lower CPU priority than ingest.
//!
//! On a machine with few cores, a query that runs without pause (a dashboard scanning a day of
//! spans) takes a core that the span writer and the request decoders were using, and ingest
//! slows down. Acknowledged writes matter more than query latency, so queries run on their own
//! threads with a higher nice value: when ingest needs the CPU, the scheduler gives it first, and
//! queries use what is left. With no ingest running, queries run at full speed as before.
//!
//! A thread can raise its own nice value without privileges (never lower it back), so these
//! threads are set once when they start and only ever run queries.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use loupe_store::StoreError;

/// Nice value of the query threads. The writer and the request handlers stay at the process's
/// own (normally 0); Linux then gives a busy query thread about a tenth of a contended core.
pub const READER_NICE: i32 = 10;

/// Queries that can run at once. More wait in line.
const READER_THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads, started on first use, that stop when the pool is
/// dropped.
pub struct ReaderPool {
    queue: Mutex<Option<Sender<Job>>>,
}

impl ReaderPool {
    pub fn new() -> Self {
        Self {
            queue: Mutex::new(None),
        }
    }

    /// Runs `f` on a query thread and waits for its answer without blocking the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.sender()?
            .send(job)
            .map_err(|_| StoreError::internal("the query threads have stopped"))?;
        rx.await
            .map_err(|_| StoreError::internal("a query thread failed"))?
    }

    fn sender(&self) -> Result<Sender<Job>, StoreError> {
        let mut queue = self
            .queue
            .lock()
            .map_err(|_| StoreError::internal("query thread pool poisoned"))?;
        if let Some(tx) = queue.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READER_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("loupe-query-{i}"))
                .spawn(move || {
                    lower_priority(READER_NICE);
                    serve(&rx);
                })
                .map_err(|e| StoreError::internal(format!("cannot start a query thread: {e}")))?;
        }
        *queue = Some(tx.clone());
        Ok(tx)
    }
}

/// Takes jobs until every sender is gone.
fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking query must not take the thread with it: its caller gets an error
            // (the answer channel is dropped) and the next query runs.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Raises the calling thread's nice value to `nice` (Linux: priorities are per thread); a thread
/// already nicer stays as it is. Failure only costs priority, so it is logged, not returned.
pub fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if current >= nice {
            return;
        }
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::debug!(error = %e, nice, "cannot lower the thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The calling thread's nice value, for tests.
#[cfg(all(test, target_os = "linux"))]
pub fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queries_run_at_the_reader_nice_value_and_survive_a_panic() {
        let pool = ReaderPool::new();
        let base = current_nice();
        let nice = pool.run(|| Ok(current_nice())).await.expect("runs");
        // A process already niced past READER_NICE stays where it is.
        assert_eq!(nice, READER_NICE.max(base));
        assert_eq!(current_nice(), base, "the caller's priority is untouched");
        let r: Result<(), _> = pool.run(|| panic!("a query bug")).await;
        assert!(r.is_err());
        let names = pool
            .run(|| Ok(std::thread::current().name().map(str::to_string)))
            .await
            .expect("the pool still answers after a panic");
        assert!(names.is_some_and(|n| n.starts_with("loupe-query-")));
    }
}
