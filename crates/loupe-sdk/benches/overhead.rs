//! What tracing costs the calling thread: a traced call against the same call untraced, with
//! the exporter running (to a local endpoint that accepts everything), small inputs.
//!
//!     cargo bench -p loupe-sdk --bench overhead

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Spans timed between two flushes (well under the queue's capacity).
const CHUNK: u64 = 100_000;

use criterion::{Criterion, criterion_group, criterion_main};

fn plain(order: u64, note: &str) -> u64 {
    order.wrapping_mul(31).wrapping_add(note.len() as u64)
}

#[loupe_sdk::trace(span_type = "TOOL")]
fn traced(order: u64, note: &str) -> u64 {
    order.wrapping_mul(31).wrapping_add(note.len() as u64)
}

/// An OTLP/HTTP endpoint that answers 200 to every request (keep-alive), on its own thread.
fn sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut out = stream;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if out.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
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
        .endpoint(sink())
        .queue_capacity(1 << 20)
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
