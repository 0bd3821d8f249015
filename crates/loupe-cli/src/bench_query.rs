//! `loupe bench load` and `loupe bench query`: search and aggregation at scale.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use loupe_model::pricing::PriceBook;
use loupe_model::{Assessment, AssessmentKind, AssessmentSource, AssessmentValue, SourceType};
use loupe_store::{GroupKey, StatsQuery, TraceQuery, TraceStore};
use loupe_store_postgres::PostgresStore;
use loupe_store_sqlite::SqliteStore;

use crate::bench::{Shape, build_request};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Where to write (created if missing; traces are added to what is there).
    #[arg(long, required_unless_present = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// Write into this PostgreSQL database instead (`postgres://…`).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Traces to write (5 spans each).
    #[arg(long, default_value_t = 1_000_000)]
    pub traces: usize,
    /// Spread start times over this many days before now.
    #[arg(long, default_value_t = 7)]
    pub days: u64,
    /// In what order the traces arrive: `in-order` replays the days as ingest would have
    /// written them (starts rising, each up to a minute late); `scattered` gives every trace
    /// a start anywhere in the days, as an import of old traces would.
    #[arg(long, value_enum, default_value_t = Arrival::InOrder)]
    pub arrival: Arrival,
    /// Bytes of text in each span's inputs and in its outputs.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
    /// Give every trace a `quality` feedback (a score from 0 to 1, as an LLM judge would
    /// write), so `bench query` can time `feedback.*` filters.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub assessments: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    InOrder,
    Scattered,
}

/// How late a client reports a trace: starts arrive up to this long after later ones.
const LATE_NS: u64 = 60_000_000_000;

impl Arrival {
    /// The shape of the traces `made..made + n` of `total`, spread over the `spread_ns`
    /// before `now`. In order, sessions are new over time too: about four traces each, close
    /// together, as a conversation's are.
    fn shape(self, now: u64, spread_ns: u64, made: usize, n: usize, total: usize) -> Shape {
        let oldest = now.saturating_sub(spread_ns);
        match self {
            Arrival::Scattered => Shape {
                starts: oldest..now,
                sessions: 0..50_000,
            },
            Arrival::InOrder => {
                let at =
                    |i: usize| oldest + (spread_ns as f64 * i as f64 / total.max(1) as f64) as u64;
                let first_session = made as u64 / 16;
                Shape {
                    starts: at(made).saturating_sub(LATE_NS).max(oldest)
                        ..at(made + n).max(at(made) + 1),
                    sessions: first_session..first_session + (n as u64 / 16).max(1),
                }
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A data directory written by `loupe bench load`.
    #[arg(long, required_unless_present = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// Query this PostgreSQL database instead (written by `loupe bench load --database-url`).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Runs per query class (the median is reported).
    #[arg(long, default_value_t = 15)]
    pub runs: usize,
    /// Keep ingesting (the same synthetic traces, in-process, each judged as `bench load` judges
    /// them) while the queries run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub with_ingest: bool,
}

fn anyhow_store(e: loupe_store::StoreError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// The store a bench works on: SQLite in a data directory, or PostgreSQL.
enum BenchStore {
    Sqlite(SqliteStore, PathBuf),
    Postgres(PostgresStore),
}

impl BenchStore {
    async fn open(data_dir: Option<&PathBuf>, url: Option<&str>) -> anyhow::Result<Self> {
        Ok(match (url, data_dir) {
            (Some(url), _) => {
                BenchStore::Postgres(PostgresStore::connect(url).await.map_err(anyhow_store)?)
            }
            (None, Some(dir)) => {
                BenchStore::Sqlite(SqliteStore::open(dir).map_err(anyhow_store)?, dir.clone())
            }
            (None, None) => anyhow::bail!("give --data-dir or --database-url"),
        })
    }

    fn store(&self) -> Arc<dyn TraceStore> {
        match self {
            BenchStore::Sqlite(s, _) => Arc::new(s.clone()),
            BenchStore::Postgres(s) => Arc::new(s.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            BenchStore::Sqlite(_, dir) => dir.display().to_string(),
            BenchStore::Postgres(s) => format!("PostgreSQL {}", s.describe()),
        }
    }

    /// Bytes on disk: in all, of the database, of the text index.
    async fn bytes(&self) -> anyhow::Result<(u64, u64, u64)> {
        Ok(match self {
            BenchStore::Sqlite(_, dir) => {
                let size = |files: [&str; 2]| -> u64 {
                    files
                        .iter()
                        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
                        .map(|m| m.len())
                        .sum()
                };
                (
                    crate::bench::dir_bytes(dir),
                    size(["loupe.db", "loupe.db-wal"]),
                    size(["text.db", "text.db-wal"]),
                )
            }
            BenchStore::Postgres(s) => {
                let (all, text) = s.database_bytes().await.map_err(anyhow_store)?;
                (all, all.saturating_sub(text), text)
            }
        })
    }
}

pub async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let bench = BenchStore::open(args.data_dir.as_ref(), args.database_url.as_deref()).await?;
    let store = bench.store();
    let prices = Arc::new(PriceBook::builtin());
    let per_batch = 400; // traces per transaction
    let spread = args.days.max(1) * 86_400_000_000_000;
    let t0 = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    // Encode on a blocking thread while the store writes the previous batch.
    let total = args.traces;
    let payload = args.payload_bytes;
    let with_assessments = args.assessments;
    let arrival = args.arrival;
    let now = crate::bench::now_ns();
    let producer = tokio::task::spawn_blocking(move || {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        let mut made = 0;
        while made < total {
            let n = per_batch.min(total - made);
            let shape = arrival.shape(now, spread, made, n, total);
            let req = build_request(&mut rng, n, payload, shape);
            let Ok(p) = loupe_ingest::convert_request(req, None, &prices) else {
                break;
            };
            let judged = if with_assessments {
                judge(&mut rng, &p.spans)
            } else {
                Vec::new()
            };
            if tx.blocking_send((p.spans, judged)).is_err() {
                break;
            }
            made += n;
        }
    });
    let mut written = 0usize;
    let mut last_report = 0;
    // A bar on a terminal; a line per 5% otherwise (logs).
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "load {bar:40} {pos}/{len} traces  {msg}  eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut million = Stretch::start(0);
    // Two batches in flight, as the server's ingest queue writes (`WRITES_IN_FLIGHT`): one is
    // applied while the one before it is flushed to disk. Each batch's assessments follow its
    // spans.
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some((spans, judged)) = rx.recv().await {
        if in_flight.len() >= 2
            && let Some(done) = in_flight.join_next().await
        {
            done??;
        }
        let store = store.clone();
        in_flight.spawn(async move {
            store.write_spans(spans).await.map_err(anyhow_store)?;
            if !judged.is_empty() {
                store.put_assessments(judged).await.map_err(anyhow_store)?;
            }
            anyhow::Ok(())
        });
        let before = written;
        written += per_batch.min(total - written);
        if written / 1_000_000 > before / 1_000_000
            || (written == total && !written.is_multiple_of(1_000_000))
        {
            let line = million.report(written);
            match &bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
            million = Stretch::start(written);
        }
        let rate = written as f64 * 5.0 / t0.elapsed().as_secs_f64();
        if let Some(bar) = &bar {
            bar.set_position(written as u64);
            bar.set_message(format!("{rate:.0} spans/s"));
            continue;
        }
        let pct = written * 100 / total.max(1);
        if pct >= last_report + 5 || written == total {
            last_report = pct;
            eprintln!("load: {pct:>3}%  {written} traces  {rate:.0} spans/s");
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    producer.await?;
    let secs = t0.elapsed().as_secs_f64();
    let t_text = Instant::now();
    store.flush_text_index().await.map_err(anyhow_store)?;
    println!(
        "load: text index caught up {:.1} s after the last write ({:.0} s in all)",
        t_text.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    let (bytes, db_bytes, text_bytes) = bench.bytes().await?;
    let per_million = |b: u64| b as f64 / 1e6 / (written.max(1) as f64 * 5.0 / 1e6);
    println!(
        "load: {written} traces ({} spans) in {secs:.0} s ({:.0} spans/s) into {}; data {:.2} GB = {:.0} MB per million spans",
        written * 5,
        written as f64 * 5.0 / secs,
        bench.describe(),
        bytes as f64 / 1e9,
        per_million(bytes),
    );
    println!(
        "load: of which database {:.0} MB, text index {:.0} MB, span bodies (SQLite: the body log) {:.0} MB (per million spans)",
        per_million(db_bytes),
        per_million(text_bytes),
        per_million(bytes.saturating_sub(db_bytes + text_bytes)),
    );
    Ok(ExitCode::SUCCESS)
}

use loupe_model::now_ms;

/// One million traces of a load: how fast, and what each span cost in disk writes and CPU
/// (the whole process, so the writer, its checkpoints and the text indexer), to see where
/// the cost grows with the store.
struct Stretch {
    traces_before: usize,
    at: Instant,
    written_bytes: u64,
    cpu_secs: f64,
}

impl Stretch {
    fn start(traces_before: usize) -> Stretch {
        Stretch {
            traces_before,
            at: Instant::now(),
            written_bytes: crate::bench::written_bytes("self"),
            cpu_secs: crate::bench::cpu_secs("self"),
        }
    }

    fn report(&self, traces: usize) -> String {
        let spans = ((traces - self.traces_before) * 5).max(1) as f64;
        let secs = self.at.elapsed().as_secs_f64();
        let written = crate::bench::written_bytes("self") - self.written_bytes;
        let cpu = crate::bench::cpu_secs("self") - self.cpu_secs;
        format!(
            "load: traces {:.1}M-{:.1}M: {:.0} spans/s, {:.1} KB written and {:.1} µs CPU per span",
            self.traces_before as f64 / 1e6,
            traces as f64 / 1e6,
            spans / secs,
            written as f64 / spans / 1e3,
            cpu * 1e6 / spans,
        )
    }
}

/// A `quality` feedback from a judge for each trace of a batch, scored uniformly from 0 to 1.
fn judge(rng: &mut impl rand::Rng, spans: &[loupe_store::EncodedSpan]) -> Vec<Assessment> {
    let mut seen = std::collections::HashSet::new();
    spans
        .iter()
        .filter(|s| seen.insert(s.trace_id))
        .map(|s| {
            let score = (rng.random::<f64>() * 1000.0).round() / 1000.0;
            Assessment::new(
                loupe_model::new_assessment_id(),
                s.trace_id,
                "quality".into(),
                AssessmentKind::Feedback,
                AssessmentValue::from_json(serde_json::json!(score)),
                AssessmentSource {
                    source_type: SourceType::LlmJudge,
                    source_id: "bench-judge".into(),
                },
            )
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The trace-list queries `bench query` times: (class, query).
const PAGE_QUERIES: &[(&str, &str)] = &[
    ("filtered first page", "status = 'ERROR'"),
    (
        "filtered first page",
        "duration_ms > 5s AND start > now - 1d",
    ),
    (
        "filtered first page",
        "span.model LIKE 'claude%' AND total_tokens > 5000",
    ),
    (
        "filtered first page",
        "session_id IS NOT NULL AND cost_usd > 0.001",
    ),
    (
        "filtered first page",
        "span.type = 'TOOL' AND span.status = 'ERROR'",
    ),
    // `refund` is in most traces; the others in about one in 1,700.
    ("full-text first page", "text ~ 'refund'"),
    (
        "full-text first page",
        "text ~ 'refund' AND status = 'ERROR'",
    ),
    ("full-text first page", "text ~ '退款'"),
    ("full-text first page", "text ~ 'استرداد'"),
    ("full-text first page", "text ~ 'creme brulee'"),
    // `bench load` scores every trace's `quality` uniformly from 0 to 1.
    ("feedback first page", "feedback.quality >= 0.9"),
    ("feedback first page", "feedback.quality >= 0.999"),
    (
        "feedback first page",
        "feedback.quality < 0.1 AND status = 'ERROR'",
    ),
];

/// Writes fresh traces, each judged as it arrives (as an online evaluator keeps up with
/// ingest), until `stop`; counts the spans written in `ingested`.
fn ingest_beside(
    store: Arc<dyn TraceStore>,
    stop: Arc<AtomicBool>,
    ingested: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let prices = PriceBook::builtin();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        while !stop.load(Ordering::Relaxed) {
            let req = build_request(
                &mut rng,
                100,
                512,
                crate::bench::Shape::recent(60_000_000_000),
            );
            let Ok(p) = loupe_ingest::convert_request(req, None, &prices) else {
                break;
            };
            let n = p.spans.len() as u64;
            let judged = judge(&mut rng, &p.spans);
            if store.write_spans(p.spans).await.is_err()
                || store.put_assessments(judged).await.is_err()
            {
                break;
            }
            ingested.fetch_add(n, Ordering::Relaxed);
        }
    })
}

/// Times each of the [`PAGE_QUERIES`]' first page of 50, `runs` times, and prints the medians.
async fn time_pages(store: &dyn TraceStore, runs: usize) -> anyhow::Result<()> {
    for (class, q) in PAGE_QUERIES {
        let query = TraceQuery {
            limit: 50,
            filter: Some(loupe_query::parse(q, now_ms()).with_context(|| q.to_string())?),
            ..TraceQuery::default()
        };
        let mut times = Vec::new();
        let mut hits = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let p = store
                .list_traces(query.clone())
                .await
                .map_err(anyhow_store)?;
            times.push(t.elapsed());
            hits = p.traces.len();
        }
        println!(
            "  {class:<24} p50 {:>8.1} ms  ({hits} rows)  {q}",
            median(times).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// Times the day's aggregations (by hour; by model and hour), up to 7 times each, and prints
/// the medians.
async fn time_stats(store: &dyn TraceStore, runs: usize) -> anyhow::Result<()> {
    for (label, group_by, q) in [
        (
            "24h by hour (traces)",
            vec![GroupKey::Time],
            "start > now - 24h",
        ),
        (
            "24h by model, hour (spans)",
            vec![GroupKey::Model, GroupKey::Time],
            "start > now - 24h",
        ),
    ] {
        let mut times = Vec::new();
        let mut groups = 0;
        for _ in 0..runs.min(7) {
            let t = Instant::now();
            let g = store
                .stats(StatsQuery {
                    filter: Some(loupe_query::parse(q, now_ms())?),
                    group_by: group_by.clone(),
                    bucket_ms: 3_600_000,
                    start_from_ms: None,
                    start_to_ms: None,
                })
                .await
                .map_err(anyhow_store)?;
            times.push(t.elapsed());
            groups = g.len();
        }
        println!(
            "  {label:<24} p50 {:>8.1} ms  ({groups} groups)  {q}",
            median(times).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

pub async fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if let (None, Some(dir)) = (&args.database_url, &args.data_dir) {
        anyhow::ensure!(
            dir.join(loupe_store_sqlite::DB_FILE).exists(),
            "no Loupe data in {}; run `loupe bench load` first",
            dir.display()
        );
    }
    let bench = BenchStore::open(args.data_dir.as_ref(), args.database_url.as_deref()).await?;
    let store = bench.store();
    // Ingest beside the queries, as a live server would.
    let stop = Arc::new(AtomicBool::new(false));
    let ingested = Arc::new(AtomicU64::new(0));
    let ingest = args
        .with_ingest
        .then(|| ingest_beside(store.clone(), stop.clone(), ingested.clone()));
    let phase = |since: (u64, Instant)| -> f64 {
        (ingested.load(Ordering::Relaxed) - since.0) as f64 / since.1.elapsed().as_secs_f64()
    };
    // Ingest alone first, for the speed to compare with while queries run.
    let alone = if args.with_ingest {
        let began = (ingested.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(8)).await;
        Some(phase(began))
    } else {
        None
    };
    let n_before = ingested.load(Ordering::Relaxed);
    let t_ingest = Instant::now();
    println!(
        "query bench on {} ({} runs each, median):",
        bench.describe(),
        args.runs
    );
    let pages_began = (ingested.load(Ordering::Relaxed), Instant::now());
    time_pages(&*store, args.runs).await?;
    let during_pages = phase(pages_began);
    let stats_began = (ingested.load(Ordering::Relaxed), Instant::now());
    time_stats(&*store, args.runs).await?;
    let during_stats = phase(stats_began);
    let queries_took = t_ingest.elapsed();
    if let Some(h) = ingest {
        let n = ingested.load(Ordering::Relaxed) - n_before;
        // Alone again after the queries: the speed drifts as the store grows, so the queries
        // are compared with the mean of the windows on either side of them.
        let after_began = (ingested.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(8)).await;
        let after = phase(after_began);
        stop.store(true, Ordering::Relaxed);
        h.await?;
        let before = alone.unwrap_or_default();
        let mean = (before + after) / 2.0;
        let share = |v: f64| if mean > 0.0 { 100.0 * v / mean } else { 0.0 };
        println!(
            "  ingest, spans/s (in-process writer, 100 traces per batch): alone {before:.0} before \
             and {after:.0} after the queries; during the page queries {during_pages:.0} ({:.0}% \
             of alone); during the aggregations {during_stats:.0} ({:.0}%); {n} spans in {:.1} s \
             of queries in all",
            share(during_pages),
            share(during_stats),
            queries_took.as_secs_f64(),
        );
    }
    stop.store(true, Ordering::Relaxed);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000_000_000;

    #[test]
    fn in_order_replays_the_days_and_sessions_move_on() {
        let now = 40 * DAY;
        let (total, n) = (10_000, 400);
        let mut last = None;
        for made in (0..total).step_by(n) {
            let s = Arrival::InOrder.shape(now, 30 * DAY, made, n, total);
            assert!(
                s.starts.start >= 10 * DAY && s.starts.end <= now,
                "within the days"
            );
            assert!(s.starts.end - s.starts.start <= 30 * DAY / 25 + LATE_NS + 1);
            if let Some((starts, sessions)) = last.replace((s.starts.clone(), s.sessions.clone())) {
                let (starts, sessions): (std::ops::Range<u64>, std::ops::Range<u64>) =
                    (starts, sessions);
                assert!(s.starts.start > starts.start, "starts rise");
                assert_eq!(
                    s.sessions.start, sessions.end,
                    "new sessions, one after another"
                );
            }
            assert_eq!(
                s.sessions.end - s.sessions.start,
                25,
                "four session traces each"
            );
        }
        let s = Arrival::Scattered.shape(now, 30 * DAY, 5_000, n, total);
        assert_eq!((s.starts, s.sessions), (10 * DAY..now, 0..50_000));
    }
}
