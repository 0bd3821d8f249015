//! The exporter: finished spans go into a bounded queue (never blocking the caller: when it is
//! full the span is dropped, counted, and a warning printed once); a background thread batches
//! them into OTLP/HTTP protobuf requests to Loupe or any OTLP endpoint, retrying with backoff on
//! 429/502/503/504 and connection errors.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{RwLock, mpsc};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message as _;
use serde_json::Value;

use crate::Config;
use crate::span::SpanData;

enum Msg {
    Span(Box<SpanData>),
    Flush(SyncSender<()>),
}

struct Pipeline {
    tx: SyncSender<Msg>,
}

static PIPELINE: RwLock<Option<Pipeline>> = RwLock::new(None);
/// Traces are recorded when a random u64 is at most this (0: off, u64::MAX: all).
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static EXPORT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this is the exporter's own thread, whose HTTP client's `tracing` output must not
/// become spans (each export would trace itself).
pub(crate) fn on_export_thread() -> bool {
    EXPORT_THREAD.with(std::cell::Cell::get)
}

pub(crate) fn sample(r: u64) -> bool {
    let below = SAMPLE_BELOW.load(Ordering::Relaxed);
    below != 0 && r <= below
}

/// Spans dropped so far (queue full, or the endpoint refused them after retries).
pub fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans the endpoint acknowledged so far.
pub fn exported_spans() -> u64 {
    EXPORTED.load(Ordering::Relaxed)
}

fn drop_spans(n: u64, why: &str) {
    DROPPED.fetch_add(n, Ordering::Relaxed);
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "loupe-sdk: dropping spans ({why}); further drops are counted silently (loupe_sdk::dropped_spans())"
        );
    }
}

pub(crate) fn submit(span: SpanData) {
    let Ok(guard) = PIPELINE.read() else {
        return;
    };
    let Some(p) = guard.as_ref() else {
        return;
    };
    match p.tx.try_send(Msg::Span(Box::new(span))) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => drop_spans(1, "the export queue is full"),
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Waits until every span finished so far has been sent (or `timeout` passes).
pub fn flush(timeout: Duration) -> bool {
    let (tx, rx) = mpsc::sync_channel(1);
    let sent = PIPELINE
        .read()
        .ok()
        .and_then(|g| g.as_ref().map(|p| p.tx.send(Msg::Flush(tx)).is_ok()))
        .unwrap_or(false);
    sent && rx.recv_timeout(timeout).is_ok()
}

/// Flushes and stops the exporter when dropped (returned by [`crate::init`]).
#[must_use = "spans are exported while this guard lives; keep it until the program ends"]
pub struct ExportGuard {
    thread: Option<std::thread::JoinHandle<()>>,
    flush_timeout: Duration,
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        flush(self.flush_timeout);
        SAMPLE_BELOW.store(0, Ordering::Relaxed);
        if let Ok(mut g) = PIPELINE.write() {
            g.take();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn start(config: Config) -> ExportGuard {
    let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
    let flush_timeout = config.flush_timeout;
    let rate = config.sample_rate.clamp(0.0, 1.0);
    let below = if rate >= 1.0 {
        u64::MAX
    } else {
        ((rate * u64::MAX as f64) as u64).max(u64::from(rate > 0.0))
    };
    let thread = std::thread::Builder::new()
        .name("loupe-export".into())
        .spawn(move || run(config, rx))
        .ok();
    if thread.is_some() {
        if let Ok(mut g) = PIPELINE.write() {
            *g = Some(Pipeline { tx });
        }
        SAMPLE_BELOW.store(below, Ordering::Relaxed);
    }
    ExportGuard {
        thread,
        flush_timeout,
    }
}

fn run(config: Config, rx: Receiver<Msg>) {
    EXPORT_THREAD.with(|t| t.set(true));
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("loupe-sdk: cannot start the export runtime; spans will not be exported");
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
        .unwrap_or_default();
    let url = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
    let resource = Resource {
        attributes: vec![
            kv("service.name", Value::String(config.service_name.clone())),
            kv("telemetry.sdk.name", Value::String("loupe-sdk".into())),
            kv("telemetry.sdk.language", Value::String("rust".into())),
            kv(
                "telemetry.sdk.version",
                Value::String(env!("CARGO_PKG_VERSION").into()),
            ),
        ],
        ..Default::default()
    };
    let mut batch: Vec<SpanData> = Vec::with_capacity(config.batch_size);
    let mut deadline = Instant::now() + config.batch_interval;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let mut waiting_flush = None;
        match rx.recv_timeout(wait) {
            Ok(Msg::Span(s)) => {
                batch.push(*s);
                if batch.len() < config.batch_size {
                    continue;
                }
            }
            Ok(Msg::Flush(done)) => {
                // Everything queued before the flush request is already in `batch`.
                waiting_flush = Some(done);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                rt.block_on(send(&client, &url, &config, &resource, &mut batch));
                return;
            }
        }
        rt.block_on(send(&client, &url, &config, &resource, &mut batch));
        deadline = Instant::now() + config.batch_interval;
        if let Some(done) = waiting_flush {
            let _ = done.send(());
        }
    }
}

/// Sends a batch, retrying retryable failures with exponential backoff.
async fn send(
    client: &reqwest::Client,
    url: &str,
    config: &Config,
    resource: &Resource,
    batch: &mut Vec<SpanData>,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let body = encode(resource, batch.drain(..)).encode_to_vec();
    let mut backoff = Duration::from_millis(100);
    for attempt in 0..=config.max_retries {
        let mut req = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(p) = &config.project {
            req = req.header("x-loupe-project", p);
        }
        let retry_after = match req.send().await {
            Ok(r) if r.status().is_success() => {
                EXPORTED.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Ok(r) if matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            Ok(r) => {
                drop_spans(n, &format!("the endpoint answered {}", r.status()));
                return;
            }
            Err(_) => None,
        };
        if attempt == config.max_retries {
            break;
        }
        tokio::time::sleep(retry_after.unwrap_or(backoff).min(Duration::from_secs(30))).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    drop_spans(n, "the endpoint could not be reached");
}

fn any(v: Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(any_value::Value::StringValue(s)),
        Value::Array(a) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: a.into_iter().map(any).collect(),
        })),
        Value::Object(o) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: o.into_iter().map(|(k, v)| kv(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

fn kv(key: impl Into<String>, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(any(v)),
        ..Default::default()
    }
}

pub(crate) fn encode(
    resource: &Resource,
    spans: impl Iterator<Item = SpanData>,
) -> ExportTraceServiceRequest {
    let spans = spans
        .map(|s| Span {
            trace_id: s.ctx.trace_id.to_vec(),
            span_id: s.ctx.span_id.to_vec(),
            parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: s.name.into_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: s.start_ns,
            end_time_unix_nano: s.end_ns.max(s.start_ns),
            attributes: s
                .attributes
                .into_iter()
                .map(|(k, v)| kv(k.into_owned(), v))
                .collect(),
            events: s
                .events
                .into_iter()
                .map(|(name, t, attrs)| span::Event {
                    time_unix_nano: t,
                    name: name.into_owned(),
                    attributes: attrs
                        .into_iter()
                        .map(|(k, v)| kv(k.into_owned(), v))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            status: Some(Status {
                code: if s.ok { 1 } else { 2 },
                message: s.error.unwrap_or_default(),
            }),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "loupe-sdk".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}
