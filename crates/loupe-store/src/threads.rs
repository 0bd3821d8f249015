//! Fixed sets of threads that run CPU work at a lower priority than the span writer.
//!
//! On a machine with few cores, whatever runs beside the single span writer takes CPU from it:
//! a query that scans a day of spans, or the request decoders of ingest itself. The writer is
//! the one stage of ingest that cannot run in parallel, so when it waits for a core, all of
//! ingest waits. Work that can wait therefore runs on its own threads with a higher nice
//! value: when the writer needs the CPU the scheduler gives it first, and the rest use what is
//! left. With nothing else running, these threads run at full speed.
//!
//! A thread can raise its own nice value without privileges (never lower it back), so these
//! threads are set once when they start and only ever run the work of their pool.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use crate::StoreError;

/// Nice value of the query threads and the text indexer. Linux then gives a busy query thread
/// about a tenth of a core that ingest contends for.
pub const QUERY_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads at one nice value, started on first use, that stop when the pool is
/// dropped.
pub struct PriorityPool {
    name: &'static str,
    threads: usize,
    nice: i32,
    queue: Mutex<Option<Sender<Job>>>,
}

impl PriorityPool {
    /// A pool of `threads` threads named `name-N`, each at nice value `nice` (or the process's
    /// own, if that is nicer already).
    pub fn new(name: &'static str, threads: usize, nice: i32) -> Self {
        Self {
            name,
            threads: threads.max(1),
            nice,
            queue: Mutex::new(None),
        }
    }

    /// Runs `f` on one of the pool's threads and waits for its result without blocking the
    /// async runtime. Jobs beyond the number of threads wait in line. A job that panics
    /// returns an error; the thread lives on.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.sender()?
            .send(job)
            .map_err(|_| StoreError::internal(format!("the {} threads have stopped", self.name)))?;
        rx.await
            .map_err(|_| StoreError::internal(format!("a {} thread failed", self.name)))
    }

    fn sender(&self) -> Result<Sender<Job>, StoreError> {
        let mut queue = self
            .queue
            .lock()
            .map_err(|_| StoreError::internal(format!("{} thread pool poisoned", self.name)))?;
        if let Some(tx) = queue.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.threads {
            let rx = rx.clone();
            let nice = self.nice;
            std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    lower_priority(nice);
                    serve(&rx);
                })
                .map_err(|e| {
                    StoreError::internal(format!("cannot start a {} thread: {e}", self.name))
                })?;
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
            // A panicking job must not take the thread with it: its caller gets an error (the
            // answer channel is dropped) and the next job runs.
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

/// The calling thread's nice value (Linux; 0 elsewhere).
pub fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_the_pool_nice_value_and_survive_a_panic() {
        let pool = PriorityPool::new("loupe-test", 2, QUERY_NICE);
        let base = current_nice();
        let nice = pool.run(current_nice).await.expect("runs");
        // A process already niced past the pool's value stays where it is.
        assert_eq!(nice, QUERY_NICE.max(base));
        assert_eq!(current_nice(), base, "the caller's priority is untouched");
        let r: Result<(), _> = pool.run(|| panic!("a job bug")).await;
        assert!(r.is_err());
        let names = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .expect("the pool still answers after a panic");
        assert!(names.is_some_and(|n| n.starts_with("loupe-test-")));
    }
}
