//! `loupe bench ingest`: realistic LLM traces over OTLP/HTTP protobuf, from this process to a
//! `loupe serve` child (or any server), measuring acknowledged spans per second, request
//! latency, and the server's start-up time and memory.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::bench_template;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// OTLP/HTTP protobuf ingest throughput, latency and server memory.
    Ingest(IngestArgs),
    /// The store's writer alone: pre-encoded spans written in batches, no HTTP.
    Write(WriteArgs),
    /// Write N synthetic traces straight into a data directory (for `bench query`).
    Load(crate::bench_query::LoadArgs),
    /// Time each query class against a data directory, while ingest runs beside it.
    Query(crate::bench_query::QueryArgs),
    /// Offer more than the server takes for minutes, then less: refusals, memory, recovery,
    /// and every acknowledged trace looked up afterwards.
    Overload(crate::bench_overload::OverloadArgs),
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Spans to write.
    #[arg(long, default_value_t = 200_000)]
    pub spans: usize,
    /// Spans per transaction.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Bytes of text in each span's inputs and in its outputs.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Benchmark this server instead of starting one (memory is then not measured).
    #[arg(long)]
    pub server: Option<String>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Traces per request (5 spans each).
    #[arg(long, default_value_t = 100)]
    pub traces_per_request: usize,
    /// Bytes of text in each span's inputs and in its outputs.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
    /// Start the servers on this PostgreSQL database instead of a temporary data directory;
    /// afterwards every acknowledged trace is looked up in it.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Servers to start on `--database-url`; requests go to them in turn (a round-robin
    /// balancer that leaves out a server that stopped answering).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// SIGKILL the last replica this many seconds into the run.
    #[arg(long)]
    pub kill_replica_after: Option<u64>,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Write(args) => write(args).await,
        BenchCommand::Load(args) => crate::bench_query::load(args).await,
        BenchCommand::Query(args) => crate::bench_query::query(args).await,
        BenchCommand::Overload(args) => crate::bench_overload::overload(args).await,
    }
}

/// The words `make_text` draws from, one per line: data, kept beside the code.
const WORDS_TEXT: &str = include_str!("bench_words.txt");

fn words() -> &'static [&'static str] {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| WORDS_TEXT.lines().filter(|w| !w.is_empty()).collect())
}

/// English-like text: words drawn from a few hundred common ones, with order numbers, amounts
/// and punctuation mixed in, so it compresses about as well as real prompts do.
fn make_text(rng: &mut impl Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        match rng.random_range(0..20) {
            0 => s.push_str(&format!("#{} ", rng.random_range(100_000..999_999))),
            1 => s.push_str(&format!(
                "${}.{:02} ",
                rng.random_range(1..500),
                rng.random_range(0..100)
            )),
            2 => s.push_str(". "),
            _ => {
                let words = words();
                s.push_str(words[rng.random_range(0..words.len())]);
                s.push(' ');
            }
        }
    }
    s
}

/// Replies in other languages, added to one output in a thousand.
pub(crate) const RARE_TEXTS: [&str; 3] = [
    " 客户说：我要退款，订单还没到。",
    " العميل يريد استرداد المبلغ",
    " Le client a reçu un remboursement pour la crème brûlée.",
];

/// Distinct texts the client picks from, so generating requests costs the client little CPU
/// (the server compresses each span on its own, so repeats across spans do not help it).
const TEXT_POOL: usize = 512;

fn text(rng: &mut impl Rng, bytes: usize) -> String {
    thread_local! {
        static POOL: std::cell::RefCell<(usize, Vec<String>)> = const { std::cell::RefCell::new((0, Vec::new())) };
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.0 != bytes || p.1.is_empty() {
            let texts = (0..TEXT_POOL).map(|_| make_text(rng, bytes)).collect();
            *p = (bytes, texts);
        }
        p.1[rng.random_range(0..TEXT_POOL)].clone()
    })
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn sv(key: &str, s: String) -> KeyValue {
    kv(key, any_value::Value::StringValue(s))
}

/// Now, in nanoseconds since the epoch.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// When the traces of a request start, and the sessions a quarter of them belong to.
pub(crate) struct Shape {
    /// Nanoseconds since the epoch; each trace starts at random in here.
    pub starts: std::ops::Range<u64>,
    /// Session numbers; each trace with a session takes one at random in here.
    pub sessions: std::ops::Range<u64>,
}

impl Shape {
    /// Starts spread over the `spread_ns` before now, in 50,000 sessions.
    pub(crate) fn recent(spread_ns: u64) -> Shape {
        let now = now_ns();
        Shape {
            starts: now - spread_ns.min(now)..now.max(1),
            sessions: 0..50_000,
        }
    }
}

/// One request: `traces` traces of an agent calling a retriever, a chat model, a tool and the
/// chat model again, shaped by `shape`; each span with inputs and outputs of `payload` bytes.
pub(crate) fn build_request(
    rng: &mut impl Rng,
    traces: usize,
    payload: usize,
    shape: Shape,
) -> ExportTraceServiceRequest {
    let Shape { starts, sessions } = shape;
    const MODELS: [&str; 4] = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "gpt-4.1-mini"];
    let mut spans = Vec::with_capacity(traces * 5);
    let layout: [(&str, &str, u64, u64); 5] = [
        ("agent", "AGENT", 0, 2_400),
        ("retrieve_documents", "RETRIEVER", 10, 120),
        ("ChatCompletion", "CHAT_MODEL", 140, 1_100),
        ("lookup_order", "TOOL", 1_110, 1_300),
        ("ChatCompletion", "CHAT_MODEL", 1_310, 2_390),
    ];
    for _ in 0..traces {
        let trace_id: [u8; 16] = rng.random();
        let ids: [[u8; 8]; 5] = rng.random();
        let base = if starts.is_empty() {
            starts.start
        } else {
            rng.random_range(starts.clone())
        };
        // Latency varies per trace: a factor between 0.25 and 4.
        let scale = 0.25 + rng.random::<f64>() * 3.75;
        let model = MODELS[rng.random_range(0..MODELS.len())];
        let session = (rng.random_range(0..4) == 0).then(|| {
            format!(
                "session-{:0width$}",
                rng.random_range(sessions.clone()),
                width = crate::bench_template::SESSION_DIGITS
            )
        });
        for (i, (name, ty, start_ms, end_ms)) in layout.iter().enumerate() {
            let attributes = span_attributes(rng, ty, payload, session.as_deref(), model);
            let failed = *ty == "TOOL" && rng.random_range(0..20) == 0;
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: ids[i].to_vec(),
                parent_span_id: if i == 0 { Vec::new() } else { ids[0].to_vec() },
                name: (*name).into(),
                kind: 1,
                start_time_unix_nano: base + (*start_ms as f64 * scale) as u64 * 1_000_000,
                end_time_unix_nano: base + (*end_ms as f64 * scale) as u64 * 1_000_000,
                attributes,
                // The root's status is left unset, as most instrumentations leave it, so a
                // failed tool call makes the whole trace an error.
                status: Some(Status {
                    code: if failed {
                        2
                    } else if i == 0 {
                        0
                    } else {
                        1
                    },
                    message: if failed {
                        "TimeoutError: order service".into()
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    sv("service.name", "support-agent".into()),
                    sv("telemetry.sdk.name", "loupe-bench".into()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// The attributes of a bench span of type `ty`: inputs and outputs of `payload` bytes, the
/// session, and for a chat model its model and token usage.
fn span_attributes(
    rng: &mut impl Rng,
    ty: &str,
    payload: usize,
    session: Option<&str>,
    model: &str,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        sv("mlflow.spanType", ty.to_string()),
        sv(
            "mlflow.spanInputs",
            format!("{{\"question\": \"{}\"}}", text(rng, payload)),
        ),
        sv("mlflow.spanOutputs", {
            let mut out = text(rng, payload);
            // Now and then a reply in another language, for the full-text bench.
            if rng.random_range(0..1_000) == 0 {
                out.push_str(RARE_TEXTS[rng.random_range(0..RARE_TEXTS.len())]);
            }
            out
        }),
    ];
    if let Some(id) = session {
        attributes.push(sv("session.id", id.to_string()));
    }
    if ty == "CHAT_MODEL" {
        attributes.push(sv("gen_ai.request.model", model.into()));
        attributes.push(sv("gen_ai.system", "openai".into()));
        attributes.push(kv(
            "gen_ai.usage.input_tokens",
            any_value::Value::IntValue(rng.random_range(200..4000)),
        ));
        attributes.push(kv(
            "gen_ai.usage.output_tokens",
            any_value::Value::IntValue(rng.random_range(20..800)),
        ));
        attributes.push(kv(
            "gen_ai.request.temperature",
            any_value::Value::DoubleValue(0.2),
        ));
    }
    attributes
}

/// Bytes a process has caused to be written to storage, from /proc (0 where unreadable).
pub(crate) fn written_bytes(pid: &str) -> u64 {
    let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) else {
        return 0;
    };
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from /proc.
pub(crate) fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

pub(crate) fn rss_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) struct Child {
    pub(crate) child: tokio::process::Child,
    pub(crate) url: String,
    ready: Duration,
    _dir: TempDir,
}

impl Child {
    /// Its data directory (unused on PostgreSQL).
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self._dir.0
    }
}

/// A temporary directory removed on drop (no extra dependency for one directory).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `loupe serve` on a temporary data directory, or on `database_url`.
pub(crate) async fn start_server(database_url: Option<&str>, n: usize) -> anyhow::Result<Child> {
    let dir = std::env::temp_dir().join(format!("loupe-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]);
    match database_url {
        Some(url) => cmd.arg("--database-url").arg(url),
        None => cmd.arg("--data-dir").arg(&dir),
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `loupe serve`")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.trim().strip_prefix("HTTP:") {
            url = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let url = url.context("the server did not print its address")?;
    // Ready means answering HTTP, not just bound.
    let client = reqwest::Client::new();
    loop {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("the server did not answer within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = t0.elapsed();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        child,
        url,
        ready,
        _dir: TempDir(dir),
    })
}

/// Bytes of the files under `dir`, recursively (the database, its WAL and the body log).
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some(if m.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m.len()
                    })
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Requests built before `bench ingest` starts its clock, each sent again and again as fresh
/// copies. Their traces differ in texts, models, token counts, durations and errors; 32 of 100
/// traces give 3,200 combinations, drawn at random.
const TEMPLATES: usize = 32;

/// Length of the stretches `bench ingest` reports the speed of.
const STRETCH: Duration = Duration::from_secs(5);

/// A server `bench ingest` sends to, and whether it stopped answering.
struct Endpoint {
    url: String,
    down: AtomicBool,
}

/// What the workers of `bench ingest` share: where and what they send, and what they count.
pub(crate) struct Load {
    pub(crate) client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    next: AtomicU64,
    pub(crate) templates: Vec<bench_template::Template>,
    spans_per_request: u64,
    pub(crate) stop: AtomicBool,
    pub(crate) acked: AtomicU64,
    refused: AtomicU64,
    /// Requests lost with their connection (a killed replica); sent again to another.
    lost: AtomicU64,
    /// The trace ids of acknowledged requests, when they are to be looked up afterwards.
    acked_ids: Option<std::sync::Mutex<Vec<[u8; 16]>>>,
}

impl Load {
    /// Sends one OTLP/HTTP protobuf export of traces to `url`.
    pub(crate) async fn export(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{url}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
    }

    /// A load on `urls` (in turn) of copies of `templates`, with up to `connections` idle
    /// connections kept.
    pub(crate) fn new(
        urls: &[String],
        templates: Vec<bench_template::Template>,
        spans_per_request: u64,
        connections: usize,
    ) -> anyhow::Result<Load> {
        Ok(Load {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .build()?,
            endpoints: urls
                .iter()
                .map(|url| Endpoint {
                    url: url.clone(),
                    down: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicU64::new(0),
            templates,
            spans_per_request,
            stop: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            acked_ids: None,
        })
    }

    /// The next server in turn that has not stopped answering.
    fn endpoint(&self) -> anyhow::Result<&Endpoint> {
        for _ in 0..self.endpoints.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.endpoints.len();
            if !self.endpoints[i].down.load(Ordering::Relaxed) {
                return Ok(&self.endpoints[i]);
            }
        }
        bail!("no server answers")
    }

    /// Sends fresh copies of random templates until told to stop, retrying those the server
    /// refuses with 503 or 429 (and those a server lost with its connection, on another);
    /// returns each acknowledged request's latency.
    pub(crate) async fn send_until_stopped(&self) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::new();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
        let mut ids = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let template = &self.templates[rng.random_range(0..self.templates.len())];
            loop {
                ids.clear();
                let body = template.fresh(&mut rng, now_ns(), 60_000_000_000, &mut ids);
                let endpoint = self.endpoint()?;
                let start = Instant::now();
                let sent = self.export(&endpoint.url, body).await;
                let status = match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(_) => Some(status),
                            Err(_) => None,
                        }
                    }
                    Err(e) if self.endpoints.len() > 1 => {
                        tracing::debug!(error = %e, url = %endpoint.url, "a server stopped answering");
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some(status) = status else {
                    endpoint.down.store(true, Ordering::Relaxed);
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if status.is_success() {
                    latencies.push(start.elapsed());
                    self.acked
                        .fetch_add(self.spans_per_request, Ordering::Relaxed);
                    if let Some(acked) = &self.acked_ids {
                        acked
                            .lock()
                            .map_err(|_| anyhow::anyhow!("a worker panicked"))?
                            .extend_from_slice(&ids);
                    }
                    break;
                }
                if status.as_u16() == 503 || status.as_u16() == 429 {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                anyhow::bail!("server answered {status}");
            }
        }
        Ok(latencies)
    }
}

/// The requests `bench ingest` sends copies of, built before its clock starts (see
/// `bench_template`).
pub(crate) fn templates(
    traces_per_request: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<bench_template::Template>> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    (0..TEMPLATES)
        .map(|_| {
            bench_template::Template::new(&build_request(
                &mut rng,
                traces_per_request,
                payload_bytes,
                Shape::recent(0),
            ))
        })
        .collect()
}

async fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    if args.replicas > 1 && args.database_url.is_none() {
        bail!("--replicas needs --database-url: replicas share one PostgreSQL database");
    }
    let mut children = Vec::new();
    if args.server.is_none() {
        // One after the other: the first runs the migrations.
        for n in 0..args.replicas.max(1) {
            children.push(start_server(args.database_url.as_deref(), n).await?);
        }
    }
    let urls: Vec<String> = match &args.server {
        Some(s) => vec![s.trim_end_matches('/').to_string()],
        None => children.iter().map(|c| c.url.clone()).collect(),
    };
    let pids: Vec<u32> = children.iter().filter_map(|c| c.child.id()).collect();
    let idle_kb = if let Some(&pid) = pids.first() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_kb(pid, "VmRSS:")
    } else {
        None
    };
    let mut load = Load::new(
        &urls,
        templates(args.traces_per_request, args.payload_bytes)?,
        (args.traces_per_request * 5) as u64,
        args.concurrency,
    )?;
    load.acked_ids = args
        .database_url
        .as_ref()
        .map(|_| std::sync::Mutex::new(Vec::new()));
    let load = Arc::new(load);
    let server_cpu = |pid: &u32| cpu_secs(&pid.to_string());
    let t0 = Instant::now();
    let cpu0: (f64, Vec<f64>) = (cpu_secs("self"), pids.iter().map(server_cpu).collect());
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move { load.send_until_stopped().await })
        })
        .collect();
    let mut peak_kb = 0;
    // Speed over each stretch of the run, to see whether it holds.
    let mut stretches = Vec::new();
    let (mut mark_t, mut mark_n) = (t0, 0);
    let mut killed: Option<u32> = None;
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(&pid) = pids.first() {
            peak_kb = peak_kb.max(rss_kb(pid, "VmRSS:").unwrap_or(0));
        }
        if let Some(after) = args.kill_replica_after
            && killed.is_none()
            && t0.elapsed() >= Duration::from_secs(after)
            && let Some(last) = children.last_mut()
        {
            // tokio's kill is SIGKILL: the replica gets no chance to finish anything.
            last.child.start_kill()?;
            killed = last.child.id();
            println!(
                "killed replica {} (SIGKILL) at {:.1} s",
                children.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        if mark_t.elapsed() >= STRETCH {
            let n = load.acked.load(Ordering::Relaxed);
            stretches.push((n - mark_n) as f64 / mark_t.elapsed().as_secs_f64());
            (mark_t, mark_n) = (Instant::now(), n);
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // A killed replica's CPU is gone with it: the servers' figure counts the others only.
    let servers: f64 = pids
        .iter()
        .zip(&cpu0.1)
        .filter(|(p, _)| Some(**p) != killed)
        .map(|(p, before)| server_cpu(p) - before)
        .sum();
    let cpu = (cpu_secs("self") - cpu0.0, servers);
    latencies.sort();
    let spans = load.acked.load(Ordering::Relaxed);
    println!(
        "ingest: {spans} spans acknowledged in {elapsed:.1} s = {:.0} spans/s ({} requests of {} spans, {} concurrent, {} server(s); {} refused with 503 and retried, {} lost with a connection and sent again)",
        spans as f64 / elapsed,
        latencies.len(),
        args.traces_per_request * 5,
        args.concurrency,
        urls.len(),
        load.refused.load(Ordering::Relaxed),
        load.lost.load(Ordering::Relaxed),
    );
    print_ingest_profile(&stretches, &latencies, cpu, spans, elapsed);
    if let (Some(c), Some(&pid), None) = (children.first(), pids.first(), &args.database_url) {
        let hwm = rss_kb(pid, "VmHWM:").unwrap_or(peak_kb);
        let db_bytes = dir_bytes(&c._dir.0);
        println!(
            "server: ready in {:.1} ms, idle RSS {:.1} MB, peak RSS {:.1} MB, data {:.0} MB ({:.0} bytes/span)",
            c.ready.as_secs_f64() * 1e3,
            idle_kb.unwrap_or(0) as f64 / 1024.0,
            hwm.max(peak_kb) as f64 / 1024.0,
            db_bytes as f64 / 1e6,
            db_bytes as f64 / spans.max(1) as f64,
        );
    }
    for c in &mut children {
        let _ = c.child.start_kill();
    }
    if let (Some(url), Some(acked)) = (&args.database_url, &load.acked_ids) {
        let ids = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let store = loupe_store_postgres::PostgresStore::connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !all_stored(&store, &ids).await? {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Looks every acknowledged trace up in the store: each must be there with its 5 spans.
pub(crate) async fn all_stored(
    store: &dyn loupe_store::TraceStore,
    ids: &[[u8; 16]],
) -> anyhow::Result<bool> {
    let (mut missing, mut short) = (0usize, 0usize);
    for chunk in ids.chunks(1000) {
        let asked: Vec<loupe_model::TraceId> =
            chunk.iter().map(|id| loupe_model::TraceId(*id)).collect();
        let found = store
            .trace_summaries(asked)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        missing += chunk.len() - found.len();
        short += found.iter().filter(|t| t.span_count < 5).count();
    }
    println!(
        "acknowledged traces looked up: {} of {} present, {} with fewer than their 5 spans",
        ids.len() - missing,
        ids.len(),
        short
    );
    Ok(missing == 0 && short == 0)
}

/// Prints how a `bench ingest` run went: speed per stretch, request latency, CPU per span
/// (`cpu` is the client's and the server's CPU seconds).
fn print_ingest_profile(
    stretches: &[f64],
    latencies: &[Duration],
    cpu: (f64, f64),
    spans: u64,
    elapsed: f64,
) {
    println!(
        "spans/s per {} s: {}",
        STRETCH.as_secs(),
        stretches
            .iter()
            .map(|r| format!("{:.0}k", r / 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "latency per request: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "cpu per span: server {:.1} µs, client {:.1} µs (server used {:.2} cores)",
        cpu.1 * 1e6 / spans.max(1) as f64,
        cpu.0 * 1e6 / spans.max(1) as f64,
        cpu.1 / elapsed,
    );
}

async fn write(args: WriteArgs) -> anyhow::Result<ExitCode> {
    use loupe_store::TraceStore;
    let dir =
        TempDir(std::env::temp_dir().join(format!("loupe-bench-write-{}", std::process::id())));
    let store =
        loupe_store_sqlite::SqliteStore::open(&dir.0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let prices = loupe_model::pricing::PriceBook::builtin();
    let traces = args.batch.div_ceil(5);
    let mut batches = Vec::new();
    let mut reqs = Vec::new();
    while reqs.len() * traces * 5 < args.spans {
        reqs.push(build_request(
            &mut rng,
            traces,
            args.payload_bytes,
            Shape::recent(60_000_000_000),
        ));
    }
    let t_enc = Instant::now();
    for req in reqs {
        let p = loupe_ingest::convert_request(req, None, &prices)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        batches.push(p.spans);
    }
    let n: usize = batches.iter().map(Vec::len).sum();
    let mut groups = std::collections::HashSet::new();
    let body: usize = batches
        .iter()
        .flatten()
        .filter(|s| groups.insert(s.body.group_key()))
        .map(|s| s.body.group.len())
        .sum();
    println!(
        "average compressed body: {} bytes per span ({} spans in {} trace groups)",
        body / n.max(1),
        n,
        groups.len()
    );
    let enc = t_enc.elapsed();
    let t0 = Instant::now();
    for b in batches {
        store
            .write_spans(b)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let took = t0.elapsed();
    println!(
        "write: {n} spans in {:.2} s = {:.0} spans/s on the writer ({:.1} µs/span); decode+normalize+encode {:.1} µs/span",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        enc.as_secs_f64() * 1e6 / n as f64,
    );
    Ok(ExitCode::SUCCESS)
}
