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
use prost::Message;
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// OTLP/HTTP protobuf ingest throughput, latency and server memory.
    Ingest(IngestArgs),
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
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Traces per request (5 spans each).
    #[arg(long, default_value_t = 100)]
    pub traces_per_request: usize,
    /// Bytes of text in each span's inputs and in its outputs.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Ingest(args) => ingest(args).await,
    }
}

const WORDS: &[&str] = &[
    "the", "refund", "order", "customer", "policy", "shipping", "agent", "invoice", "please",
    "account", "delivery", "status", "within", "days", "return", "product", "support", "issue",
    "payment", "card", "address", "update", "question", "answer", "model", "context", "document",
    "retrieved", "summary", "request", "response", "tool", "search", "weather", "booking", "flight",
];

fn text(rng: &mut impl Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        s.push(' ');
    }
    s
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

/// One request: `traces` traces of an agent calling a retriever, a chat model, a tool and the
/// chat model again; each span with inputs and outputs of `payload` bytes.
fn build_request(rng: &mut impl Rng, traces: usize, payload: usize) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
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
        let base = now - rng.random_range(0..60_000_000_000u64);
        for (i, (name, ty, start_ms, end_ms)) in layout.iter().enumerate() {
            let mut attributes = vec![
                sv("mlflow.spanType", (*ty).to_string()),
                sv("mlflow.spanInputs", format!("{{\"question\": \"{}\"}}", text(rng, payload))),
                sv("mlflow.spanOutputs", text(rng, payload)),
            ];
            if *ty == "CHAT_MODEL" {
                attributes.push(sv("gen_ai.request.model", "gpt-4o-mini".into()));
                attributes.push(sv("gen_ai.system", "openai".into()));
                attributes.push(kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(rng.random_range(200..4000))));
                attributes.push(kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(rng.random_range(20..800))));
                attributes.push(kv("gen_ai.request.temperature", any_value::Value::DoubleValue(0.2)));
            }
            let failed = *ty == "TOOL" && rng.random_range(0..20) == 0;
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: ids[i].to_vec(),
                parent_span_id: if i == 0 { Vec::new() } else { ids[0].to_vec() },
                name: (*name).into(),
                kind: 1,
                start_time_unix_nano: base + start_ms * 1_000_000,
                end_time_unix_nano: base + end_ms * 1_000_000,
                attributes,
                status: Some(Status {
                    code: if failed { 2 } else { 1 },
                    message: if failed { "TimeoutError: order service".into() } else { String::new() },
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

fn rss_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Child {
    child: tokio::process::Child,
    url: String,
    ready: Duration,
    _dir: TempDir,
}

/// A temporary directory removed on drop (no extra dependency for one directory).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_server() -> anyhow::Result<Child> {
    let dir = std::env::temp_dir().join(format!("loupe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut child = match &args.server {
        Some(_) => None,
        None => Some(start_server().await?),
    };
    let url = match (&args.server, &child) {
        (Some(s), _) => s.trim_end_matches('/').to_string(),
        (None, Some(c)) => c.url.clone(),
        (None, None) => unreachable!("a server is either given or started"),
    };
    let pid = child.as_ref().and_then(|c| c.child.id());
    let idle_kb = if let Some(pid) = pid {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_kb(pid, "VmRSS:")
    } else {
        None
    };
    let endpoint = format!("{url}/v1/traces");
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, endpoint, stop, acked, refused) =
            (client.clone(), endpoint.clone(), stop.clone(), acked.clone(), refused.clone());
        let (traces, payload) = (args.traces_per_request, args.payload_bytes);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
            while !stop.load(Ordering::Relaxed) {
                let body = build_request(&mut rng, traces, payload).encode_to_vec();
                loop {
                    let start = Instant::now();
                    let resp = client
                        .post(&endpoint)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = resp.status();
                    let _ = resp.bytes().await;
                    if status.is_success() {
                        latencies.push(start.elapsed());
                        acked.fetch_add((traces * 5) as u64, Ordering::Relaxed);
                        break;
                    }
                    if status.as_u16() == 503 || status.as_u16() == 429 {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    anyhow::bail!("server answered {status}");
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut peak_kb = 0;
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(pid) = pid {
            peak_kb = peak_kb.max(rss_kb(pid, "VmRSS:").unwrap_or(0));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort();
    let spans = acked.load(Ordering::Relaxed);
    println!(
        "ingest: {spans} spans acknowledged in {elapsed:.1} s = {:.0} spans/s ({} requests of {} spans, {} concurrent; {} refused with 503 and retried)",
        spans as f64 / elapsed,
        latencies.len(),
        args.traces_per_request * 5,
        args.concurrency,
        refused.load(Ordering::Relaxed),
    );
    println!(
        "latency per request: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    if let (Some(c), Some(pid)) = (&mut child, pid) {
        let hwm = rss_kb(pid, "VmHWM:").unwrap_or(peak_kb);
        let db_bytes: u64 = std::fs::read_dir(&c._dir.0)
            .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        println!(
            "server: ready in {:.1} ms, idle RSS {:.1} MB, peak RSS {:.1} MB, data {:.0} MB ({:.0} bytes/span)",
            c.ready.as_secs_f64() * 1e3,
            idle_kb.unwrap_or(0) as f64 / 1024.0,
            hwm.max(peak_kb) as f64 / 1024.0,
            db_bytes as f64 / 1e6,
            db_bytes as f64 / spans.max(1) as f64,
        );
        let _ = c.child.start_kill();
    }
    Ok(ExitCode::SUCCESS)
}
