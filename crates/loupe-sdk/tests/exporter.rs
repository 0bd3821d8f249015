//! The exporter never blocks: with an endpoint that never answers and a tiny queue, spans
//! beyond the queue are dropped and counted, and the caller goes on at full speed. (Retries are
//! in `retry.rs`: each test binary has its own process-wide exporter.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::endpoint_for_tests;

#[loupe_sdk::trace]
fn work(i: u32) -> u32 {
    i + 1
}

#[test]
fn full_queue_drops_and_refusals_are_retried() {
    // 1. An endpoint that never answers and a queue of 4: the caller never waits.
    let (url, _) = endpoint_for_tests(Vec::new(), true);
    let mut config = loupe_sdk::Config::default().endpoint(url).queue_capacity(4);
    config.batch_size = 2;
    config.max_retries = 0;
    config.request_timeout = Duration::from_secs(3600);
    config.flush_timeout = Duration::from_millis(200);
    let guard = config.init();
    let t0 = Instant::now();
    for i in 0..10_000 {
        work(i);
    }
    let took = t0.elapsed();
    assert!(
        loupe_sdk::dropped_spans() > 9_000,
        "spans beyond the queue are dropped and counted ({})",
        loupe_sdk::dropped_spans()
    );
    assert!(
        took < Duration::from_secs(2),
        "the caller never blocks ({took:?} for 10,000 calls)"
    );
    // The export thread is stuck on the stalled request; leave it (the process ends with it).
    std::mem::forget(guard);
}
