//! What tracing costs the calling thread: a traced call against the same call untraced, with
//! the exporter running (to a local endpoint that accepts everything), small inputs.
//!
//!     cargo bench -p loupe-sdk --bench overhead

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Spans timed between two flushes (well under the queue's capacity).
const CHUNK: u64 = 100_000;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing_subscriber::prelude::*;

fn plain(order: u64, note: &str) -> u64 {
    order.wrapping_mul(31).wrapping_add(note.len() as u64)
}

#[loupe_sdk::trace(span_type = "TOOL")]
fn traced(order: u64, note: &str) -> u64 {
    order.wrapping_mul(31).wrapping_add(note.len() as u64)
}

#[tracing::instrument]
fn traced_by_tracing(order: u64, note: &str) -> u64 {
    order.wrapping_mul(31).wrapping_add(note.len() as u64)
}

/// Times `iters` calls of `f` in chunks that fit the queue, flushing (untimed) between chunks,
/// so every span measured is really queued for export, never dropped.
fn chunked(iters: u64, f: impl Fn()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let t0 = Instant::now();
        for _ in 0..n {
            f();
        }
        total += t0.elapsed();
        left -= n;
        loupe_sdk::flush(Duration::from_secs(60));
    }
    total
}

fn bench(c: &mut Criterion) {
    let guard = loupe_sdk::Config::default()
        .endpoint(support::endpoint_for_tests(Vec::new(), false).0)
        .queue_capacity(1 << 20)
        .init();
    tracing_subscriber::registry()
        .with(loupe_sdk::tracing_layer())
        .init();
    let mut g = c.benchmark_group("span overhead");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("untraced call", |b| {
        b.iter(|| plain(black_box(42), black_box("refund please")))
    });
    g.bench_function("traced call (#[trace], inputs and output recorded)", |b| {
        b.iter_custom(|iters| {
            chunked(iters, || {
                black_box(traced(black_box(42), black_box("refund please")));
            })
        })
    });
    g.bench_function(
        "tracing span (#[tracing::instrument] + tracing_layer)",
        |b| {
            b.iter_custom(|iters| {
                chunked(iters, || {
                    black_box(traced_by_tracing(black_box(42), black_box("refund please")));
                })
            })
        },
    );
    g.bench_function("manual span (start + drop)", |b| {
        b.iter_custom(|iters| {
            chunked(iters, || {
                let s = loupe_sdk::span("step").span_type("CHAIN").start();
                black_box(&s);
            })
        })
    });
    g.finish();
    drop(guard);
    eprintln!(
        "exported {} spans, dropped {}",
        loupe_sdk::exported_spans(),
        loupe_sdk::dropped_spans()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
