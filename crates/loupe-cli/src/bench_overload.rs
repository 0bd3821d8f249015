//! `loupe bench overload`: more than the server can take, for minutes, then less; what it
//! refuses and how, what memory it holds, whether it loses anything it acknowledged, and how
//! soon it takes everything again.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rand::Rng;

use crate::bench::{self, Load};

#[derive(Debug, Args)]
pub struct OverloadArgs {
    /// Seconds of ingest at full speed (16 requests in flight) that measure what the server
    /// takes: its capacity.
    #[arg(long, default_value_t = 20)]
    pub capacity_seconds: u64,
    /// What is offered during the overload, as a multiple of the capacity.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// How long the overload lasts, in seconds.
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// Seconds at half the capacity after the overload, to see the server take everything
    /// again.
    #[arg(long, default_value_t = 30)]
    pub recover_seconds: u64,
    /// Traces per request (5 spans each).
    #[arg(long, default_value_t = 100)]
    pub traces_per_request: usize,
    /// Bytes of text in each span's inputs and in its outputs.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
}

/// Requests in flight past which the client skips a send instead of opening another
/// connection: a server that stopped answering must not make the client unbounded.
const MAX_IN_FLIGHT: u64 = 2_048;

/// An open-loop client: requests leave at a fixed rate, whatever the answers; a refused one is
/// dropped, as an exporter whose retries are spent drops it.
struct OpenLoop {
    load: Arc<Load>,
    url: String,
    spans_per_request: u64,
    in_flight: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    /// 503s without a `Retry-After`.
    refused_without_hint: AtomicU64,
    /// Answers other than 2xx and 503, and requests that got no answer.
    failed: AtomicU64,
    /// What the first of them was, to print.
    first_failure: std::sync::Mutex<Option<String>>,
    skipped: AtomicU64,
    ids: std::sync::Mutex<Vec<[u8; 16]>>,
}

impl OpenLoop {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_failure.lock() {
            first.get_or_insert(why);
        }
    }

    async fn send(self: Arc<Self>, body: Vec<u8>, ids: Vec<[u8; 16]>) {
        let sent = self.load.export(&self.url, body).await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                if resp.bytes().await.is_ok() {
                    self.acked
                        .fetch_add(self.spans_per_request, Ordering::Relaxed);
                    if let Ok(mut all) = self.ids.lock() {
                        all.extend_from_slice(&ids);
                    }
                } else {
                    self.fail("the answer's body was cut off".into());
                }
            }
            Ok(resp) if resp.status().as_u16() == 503 => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if !resp.headers().contains_key("retry-after") {
                    self.refused_without_hint.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(resp) => self.fail(format!("answered {}", resp.status())),
            Err(e) => self.fail(format!("no answer: {e:?}")),
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Offers `spans_per_s` for `secs`, and returns per second: spans acknowledged, requests
    /// refused, and the server's RSS in KiB.
    async fn offer(self: &Arc<Self>, spans_per_s: f64, secs: u64, pid: u32) -> Vec<Second> {
        let gap = Duration::from_secs_f64(self.spans_per_request as f64 / spans_per_s.max(1.0));
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        let t0 = tokio::time::Instant::now();
        let (mut next, mut second) = (t0, t0 + Duration::from_secs(1));
        let mut marks = (
            self.acked.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
        let mut seconds = Vec::new();
        while seconds.len() < secs as usize {
            if next >= second {
                let now = (
                    self.acked.load(Ordering::Relaxed),
                    self.refused.load(Ordering::Relaxed),
                );
                seconds.push(Second {
                    acked_spans: now.0 - marks.0,
                    refused_requests: now.1 - marks.1,
                    rss_kb: bench::rss_kb(pid, "VmRSS:").unwrap_or(0),
                });
                marks = now;
                second += Duration::from_secs(1);
                continue;
            }
            tokio::time::sleep_until(next).await;
            next += gap;
            if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let template = &self.load.templates[rng.random_range(0..self.load.templates.len())];
            let mut ids = Vec::new();
            let body = template.fresh(&mut rng, bench::now_ns(), 60_000_000_000, &mut ids);
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(self.clone().send(body, ids));
        }
        seconds
    }
}

struct Second {
    acked_spans: u64,
    refused_requests: u64,
    rss_kb: u64,
}

pub async fn overload(args: OverloadArgs) -> anyhow::Result<ExitCode> {
    let mut server = bench::start_server(None, 0).await?;
    let pid = server.child.id().context("the server has no pid")?;
    let templates = bench::templates(args.traces_per_request, args.payload_bytes)?;
    let spans_per_request = (args.traces_per_request * 5) as u64;
    let load = Arc::new(Load::new(
        std::slice::from_ref(&server.url),
        templates,
        spans_per_request,
        MAX_IN_FLIGHT as usize,
    )?);

    // Capacity: closed-loop, 16 requests in flight, as `bench ingest` measures it.
    let t0 = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move { load.send_until_stopped().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.capacity_seconds)).await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let capacity = load.acked.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "overload: capacity {capacity:.0} spans/s ({} s at 16 requests in flight); server RSS peak so far {:.0} MB",
        args.capacity_seconds,
        bench::rss_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0
    );

    let open = Arc::new(OpenLoop {
        load: load.clone(),
        url: server.url.clone(),
        spans_per_request,
        in_flight: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        refused_without_hint: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: std::sync::Mutex::new(None),
        skipped: AtomicU64::new(0),
        ids: std::sync::Mutex::new(Vec::new()),
    });
    let offered = capacity * args.factor;
    let over = open.offer(offered, args.seconds, pid).await;
    let calm = capacity * 0.5;
    let after = open.offer(calm, args.recover_seconds, pid).await;
    // Let the last answers come.
    let settle = Instant::now();
    while open.in_flight.load(Ordering::Relaxed) > 0 && settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak_kb = bench::rss_kb(pid, "VmHWM:").unwrap_or(0);

    let rate =
        |s: &[Second]| s.iter().map(|s| s.acked_spans).sum::<u64>() as f64 / s.len().max(1) as f64;
    let refused: u64 = over.iter().map(|s| s.refused_requests).sum();
    let (lo, hi) = over.iter().fold((u64::MAX, 0), |(lo, hi), s| {
        (lo.min(s.acked_spans), hi.max(s.acked_spans))
    });
    println!(
        "overload: offered {offered:.0} spans/s ({}x) for {} s: acknowledged {:.0} spans/s ({:.0}% of capacity; seconds {lo}-{hi}); {refused} requests refused with 503, {} of them without Retry-After; {} failed otherwise; {} sends skipped at {MAX_IN_FLIGHT} in flight",
        args.factor,
        args.seconds,
        rate(&over),
        rate(&over) * 100.0 / capacity.max(1.0),
        open.refused_without_hint.load(Ordering::Relaxed),
        open.failed.load(Ordering::Relaxed),
        open.skipped.load(Ordering::Relaxed),
    );
    if let Ok(Some(first)) = open.first_failure.lock().as_deref() {
        println!("overload: the first failure: {first}");
    }
    println!(
        "overload: server RSS peak {:.0} MB (VmHWM), highest per-second sample {:.0} MB",
        peak_kb as f64 / 1024.0,
        over.iter()
            .chain(&after)
            .map(|s| s.rss_kb)
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    );
    // Recovered: from the first second after which nothing more is refused and each second
    // takes at least 90% of what is offered.
    let per_second = calm;
    let recovered = (0..=after.len()).find(|&i| {
        after[i..]
            .iter()
            .all(|s| s.refused_requests == 0 && s.acked_spans as f64 >= per_second * 0.9)
    });
    match recovered {
        Some(i) if i < after.len() => println!(
            "overload: after the drop to {calm:.0} spans/s, everything offered is taken from second {i} on ({:.0} spans/s over the {} s)",
            rate(&after),
            after.len()
        ),
        _ => println!(
            "overload: after the drop to {calm:.0} spans/s, the server never took everything offered ({:.0} spans/s)",
            rate(&after)
        ),
    }

    // Nothing acknowledged may be lost: SIGKILL the server, open its store, look every
    // acknowledged trace up.
    server.child.start_kill()?;
    let _ = server.child.wait().await;
    let ids = std::mem::take(&mut *open.ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let store =
        loupe_store_sqlite::SqliteStore::open(server.dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ok = bench::all_stored(&store, &ids).await?;
    Ok(
        if ok && open.refused_without_hint.load(Ordering::Relaxed) == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
