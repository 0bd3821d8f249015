//! End-to-end tests of `loupe serve`: real OpenTelemetry exporters, raw OTLP bodies, the JSON
//! API, the CLI, limits, overload, and durability across SIGTERM and SIGKILL.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ChildServer, Options, TestServer, all_traces, loupe_bin, signal};
use loupe_model::TraceId;
use loupe_store::{
    EncodedSpan, Recompute, RecomputeStats, SessionPage, SessionQuery, SessionSummary, StoreError,
    TraceDetail, TracePage, TraceQuery, TraceStore, WriteOutcome,
};
use opentelemetry::KeyValue as OtelKv;
use opentelemetry::trace::{
    Span as _, Status as OtelStatus, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// helpers

fn pspan(trace: [u8; 16], id: u8, parent: Option<u8>, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("span-{id}"),
        start_time_unix_nano: 1_700_000_000_000_000_000 + start_ms * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + end_ms * 1_000_000,
        attributes: vec![KeyValue {
            key: "gen_ai.usage.input_tokens".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(i64::from(id) * 10)),
            }),
            ..Default::default()
        }],
        status: Some(Status {
            code: 0,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// An OTLP attribute.
fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
fn skv(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.unwrap()
}

async fn post_pb(url: &str, req: &ExportTraceServiceRequest) -> reqwest::Response {
    post(url, "application/x-protobuf", None, req.encode_to_vec()).await
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn rpc_status(bytes: &[u8]) -> loupe_server::error::RpcStatus {
    loupe_server::error::RpcStatus::decode(bytes).unwrap()
}

fn resource(service: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build()
}

/// Records an agent trace with the real OpenTelemetry SDK: a root, an LLM child with GenAI
/// attributes, a failed tool child. Returns the trace id.
fn record_agent_trace(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> String {
    let tracer = provider.tracer("loupe-e2e");
    tracer.in_span("agent", |cx| {
        cx.span()
            .set_attribute(OtelKv::new("mlflow.spanType", "AGENT"));
        let mut llm = tracer.start("chat gpt-4o");
        llm.set_attribute(OtelKv::new("gen_ai.operation.name", "chat"));
        llm.set_attribute(OtelKv::new("gen_ai.request.model", "gpt-4o"));
        llm.set_attribute(OtelKv::new("gen_ai.usage.input_tokens", 120i64));
        llm.set_attribute(OtelKv::new("gen_ai.usage.output_tokens", 30i64));
        llm.set_attribute(OtelKv::new(
            "prompt",
            "<script>alert(1)</script> — ¿qué? 退款",
        ));
        llm.end();
        let mut tool = tracer.start("lookup_order");
        tool.set_attribute(OtelKv::new("mlflow.spanType", "TOOL"));
        tool.add_event(
            "exception",
            vec![OtelKv::new("exception.type", "TimeoutError")],
        );
        tool.set_status(OtelStatus::error("order service timed out"));
        tool.end();
        cx.span().set_status(OtelStatus::Ok);
        cx.span().span_context().trace_id().to_string()
    })
}

async fn check_agent_trace(server: &TestServer, trace_id: &str, service: &str) {
    let body = server.trace(trace_id).await;
    let t = &body["trace"];
    assert_eq!(t["name"], "agent");
    assert_eq!(t["status"], "OK");
    assert_eq!(t["span_count"], 3);
    assert_eq!(t["error_count"], 1);
    assert_eq!(
        (
            t["input_tokens"].as_u64(),
            t["output_tokens"].as_u64(),
            t["total_tokens"].as_u64()
        ),
        (Some(120), Some(30), Some(150))
    );
    assert_eq!(t["metadata"]["service.name"], service);
    let spans = body["spans"].as_array().unwrap();
    let by_name: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s))
        .collect();
    let root = by_name["agent"];
    assert!(root["parent_id"].is_null());
    assert_eq!(root["span_type"], "AGENT");
    let llm = by_name["chat gpt-4o"];
    assert_eq!(llm["parent_id"], root["span_id"]);
    assert_eq!(llm["span_type"], "CHAT_MODEL");
    assert_eq!(llm["model"], "gpt-4o");
    assert_eq!(llm["total_tokens"], 150);
    assert_eq!(
        llm["attributes"]["prompt"],
        "<script>alert(1)</script> — ¿qué? 退款"
    );
    let tool = by_name["lookup_order"];
    assert_eq!(tool["status"], "ERROR");
    assert_eq!(tool["status_message"], "order service timed out");
    assert_eq!(tool["events"][0]["name"], "exception");
    assert_eq!(
        tool["events"][0]["attributes"]["exception.type"],
        "TimeoutError"
    );
    for s in spans {
        assert_eq!(s["span_id"].as_str().unwrap().len(), 16);
        assert!(s["end_time_ns"].as_u64() >= s["start_time_ns"].as_u64());
    }
}

// ---------------------------------------------------------------------------------------------
// real exporters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_over_http_protobuf_json_and_gzip() {
    let server = TestServer::start().await;
    for (protocol, gzip) in [
        (opentelemetry_otlp::Protocol::HttpBinary, false),
        (opentelemetry_otlp::Protocol::HttpBinary, true),
        (opentelemetry_otlp::Protocol::HttpJson, false),
    ] {
        let endpoint = format!("{}/v1/traces", server.url);
        let service = format!("svc-{protocol:?}-{gzip}");
        let svc = service.clone();
        // The blocking HTTP client must be built and driven outside the async runtime.
        let trace_id = tokio::task::spawn_blocking(move || {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(endpoint);
            if gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let exporter = builder.build().unwrap();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource(&svc))
                .build();
            let id = record_agent_trace(&provider);
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
            id
        })
        .await
        .unwrap();
        check_agent_trace(&server, &trace_id, &service).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_over_grpc_with_gzip_and_project_header() {
    let server = TestServer::start().await;
    for gzip in [false, true] {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("x-loupe-project", "grpc-project".parse().unwrap());
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.grpc))
            .with_metadata(metadata);
        if gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let exporter = builder.build().unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource("grpc-svc"))
            .build();
        let id = record_agent_trace(&provider);
        tokio::task::spawn_blocking(move || {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        })
        .await
        .unwrap();
        check_agent_trace(&server, &id, "grpc-svc").await;
        assert_eq!(server.trace(&id).await["trace"]["project"], "grpc-project");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// raw OTLP/HTTP

#[tokio::test]
async fn canonical_otlp_json_sample() {
    let server = TestServer::start().await;
    let sample = include_bytes!("../../loupe-ingest/tests/data/otlp-canonical.json");
    let resp = post(
        &server.url,
        "application/json; charset=utf-8",
        None,
        sample.to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    let body = server.trace("5B8EFFF798038103D269B633813FC60C").await;
    let t = &body["trace"];
    assert_eq!(t["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(t["start_time_ms"], 1_544_712_660_000u64);
    let root = body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["parent_id"].is_null())
        .unwrap();
    assert_eq!(root["resource"]["process.pid"], 4242);
    assert_eq!(root["resource"]["blob"], "aGVsbG8=");
    assert_eq!(root["resource"]["nested"]["inner"], "x");
    assert_eq!(root["kind"], 3);
    // the same request as protobuf is answered in protobuf
    let req = loupe_ingest::decode_json(sample).unwrap();
    let resp = post_pb(&server.url, &req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let decoded = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert!(decoded.partial_success.is_none());
    assert_eq!(
        server.trace("5b8efff798038103d269b633813fc60c").await["trace"]["span_count"],
        2,
        "the resend changed nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_precise_400s() {
    let server = TestServer::start().await;
    // garbage protobuf: protobuf Status body
    let resp = post(
        &server.url,
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff, 0x0f, 0x01],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(st.code, 3);
    assert!(
        st.message.starts_with("invalid OTLP protobuf"),
        "{}",
        st.message
    );
    // wrong id length in protobuf
    let mut bad = pspan([7; 16], 1, None, 0, 1);
    bad.trace_id.truncate(12);
    let resp = post_pb(
        &server.url,
        &request(vec![pspan([7; 16], 2, None, 0, 1), bad]),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(
        st.message,
        "resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes (32 hex characters), got 12 bytes"
    );
    let (status, _) = server
        .get("/api/v1/traces/07070707070707070707070707070707")
        .await;
    assert_eq!(
        status, 404,
        "a refused request stores nothing, not even its valid spans"
    );
    // JSON: bad syntax, invalid UTF-8, bad hex
    for (body, want) in [
        (b"{\"resourceSpans\": [".to_vec(), "invalid JSON"),
        (b"\xff\xfe\xfd".to_vec(), "invalid JSON"),
        (json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}]}).to_string().into_bytes(),
         "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 32 hex characters, got 2"),
        (json!({"resource_spans": []}).to_string().into_bytes(), "lowerCamelCase"),
    ] {
        let resp = post(&server.url, "application/json", None, body).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], 3);
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{v}");
    }
    // unsupported media type and encoding
    let resp = post(&server.url, "text/plain", None, b"hi".to_vec()).await;
    assert_eq!(resp.status(), 415);
    let resp = post(&server.url, "application/json", Some("br"), b"{}".to_vec()).await;
    assert_eq!(resp.status(), 415);
    // a body that says gzip but is not
    let resp = post(
        &server.url,
        "application/json",
        Some("gzip"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn size_limits_apply_to_wire_and_decompressed_bytes() {
    let limit = 64 * 1024;
    let server = TestServer::with(Options {
        max_request_bytes: limit,
        ..Options::default()
    })
    .await;
    // too large as sent
    let resp = post(
        &server.url,
        "application/x-protobuf",
        None,
        vec![0u8; limit + 1],
    )
    .await;
    assert_eq!(resp.status(), 413);
    // chunked, no Content-Length, too large
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // a gzip bomb: 50 MB of zeros in ~50 KB
    let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
    assert!(bomb.len() < limit);
    let resp = post(&server.url, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(resp.status(), 413);
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert!(st.message.contains("after decompression"), "{}", st.message);
    // a small gzip body, chunked, passes
    let ok = gzip(&request(vec![pspan([9; 16], 1, None, 0, 5)]).encode_to_vec());
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(futures_stream(vec![
            Ok(ok[..10].to_vec()),
            Ok(ok[10..].to_vec()),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.trace("09090909090909090909090909090909").await["trace"]["span_count"],
        1
    );
    server.stop().await;
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::iter(items)
}

#[tokio::test]
async fn partial_success_for_invalid_spans() {
    let server = TestServer::start().await;
    let mut zero = pspan([0; 16], 3, None, 0, 1);
    zero.trace_id = vec![0; 16];
    let req = request(vec![pspan([4; 16], 1, None, 0, 10), zero.clone()]);
    let resp = post_pb(&server.url, &req).await;
    assert_eq!(resp.status(), 200);
    let r = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    let ps = r.partial_success.unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("spans[1]"),
        "{}",
        ps.error_message
    );
    assert_eq!(
        server.trace("04040404040404040404040404040404").await["trace"]["span_count"],
        1
    );
    let json_req = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00000000000000000000000000000000", "spanId": "0101010101010101", "name": "z"}]}]}]});
    let resp = post(
        &server.url,
        "application/json",
        None,
        json_req.to_string().into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    server.stop().await;
}

#[tokio::test]
async fn out_of_order_split_and_duplicate_spans_roll_up_right() {
    let server = TestServer::start().await;
    let t = [5u8; 16];
    let mut err = pspan(t, 4, Some(2), 30, 40);
    err.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    // grandchild, then child, then root; then all of it again in one request
    let batches = vec![
        vec![err.clone()],
        vec![pspan(t, 3, Some(2), 5, 250)],
        vec![pspan(t, 2, Some(1), 20, 90)],
        vec![pspan(t, 1, None, 10, 200)],
        vec![
            pspan(t, 1, None, 10, 200),
            pspan(t, 2, Some(1), 20, 90),
            pspan(t, 3, Some(2), 5, 250),
            err,
        ],
    ];
    for (i, b) in batches.into_iter().enumerate() {
        let resp = post_pb(&server.url, &request(b)).await;
        assert_eq!(resp.status(), 200);
        let tr = &server.trace("05050505050505050505050505050505").await["trace"];
        if i == 0 {
            assert_eq!(
                tr["name"], "span-4",
                "provisional name before the root arrives"
            );
        }
    }
    let tr = &server.trace("05050505050505050505050505050505").await["trace"];
    assert_eq!(tr["name"], "span-1");
    assert_eq!(tr["span_count"], 4);
    assert_eq!(tr["error_count"], 1);
    assert_eq!(tr["status"], "ERROR");
    assert_eq!(tr["input_tokens"], 100);
    assert_eq!(tr["start_time_ms"], 1_700_000_000_005u64);
    assert_eq!(tr["duration_ms"], 245);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// overload

/// A store whose writes wait until the test opens a gate: a way to fill the queue on purpose.
struct GatedStore {
    inner: Arc<dyn TraceStore>,
    open: Arc<AtomicBool>,
    /// Set once a write is waiting at the gate (its request then holds its queue budget).
    entered: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl TraceStore for GatedStore {
    async fn write_spans(&self, spans: Vec<EncodedSpan>) -> Result<WriteOutcome, StoreError> {
        self.entered.store(true, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.inner.write_spans(spans).await
    }
    async fn list_traces(&self, q: TraceQuery) -> Result<TracePage, StoreError> {
        self.inner.list_traces(q).await
    }
    async fn get_trace_with(
        &self,
        id: TraceId,
        bodies: loupe_store::SpanBodies,
    ) -> Result<Option<TraceDetail>, StoreError> {
        self.inner.get_trace_with(id, bodies).await
    }
    async fn list_sessions(&self, q: SessionQuery) -> Result<SessionPage, StoreError> {
        self.inner.list_sessions(q).await
    }
    async fn get_session(
        &self,
        id: String,
        limit: usize,
    ) -> Result<Option<(SessionSummary, Vec<loupe_model::TraceSummary>)>, StoreError> {
        self.inner.get_session(id, limit).await
    }
    async fn recompute(&self, how: Recompute) -> Result<RecomputeStats, StoreError> {
        self.inner.recompute(how).await
    }
    async fn write_events(
        &self,
        events: Vec<loupe_store::EncodedEvent>,
    ) -> Result<u64, StoreError> {
        self.inner.write_events(events).await
    }
    async fn stats(
        &self,
        q: loupe_store::StatsQuery,
    ) -> Result<Vec<loupe_store::StatsGroup>, StoreError> {
        self.inner.stats(q).await
    }
    async fn list_spans(
        &self,
        filter: Option<loupe_query::Expr>,
        limit: usize,
        before: Option<(i64, i64)>,
    ) -> Result<loupe_store::SpanPage, StoreError> {
        self.inner.list_spans(filter, limit, before).await
    }
    async fn create_experiment(
        &self,
        name: String,
        location: Option<String>,
        tags: serde_json::Map<String, serde_json::Value>,
    ) -> Result<loupe_store::Experiment, StoreError> {
        self.inner.create_experiment(name, location, tags).await
    }
    async fn experiment(
        &self,
        key: loupe_store::ExperimentKey,
    ) -> Result<Option<loupe_store::Experiment>, StoreError> {
        self.inner.experiment(key).await
    }
    async fn list_experiments(&self) -> Result<Vec<loupe_store::Experiment>, StoreError> {
        self.inner.list_experiments().await
    }
    async fn upsert_trace_info(
        &self,
        update: loupe_store::TraceInfoUpdate,
    ) -> Result<loupe_model::TraceSummary, StoreError> {
        self.inner.upsert_trace_info(update).await
    }
    async fn trace_summaries(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<Vec<loupe_model::TraceSummary>, StoreError> {
        self.inner.trace_summaries(ids).await
    }
    async fn set_trace_tag(
        &self,
        id: TraceId,
        key: String,
        value: Option<serde_json::Value>,
    ) -> Result<bool, StoreError> {
        self.inner.set_trace_tag(id, key, value).await
    }
    async fn delete_traces(&self, which: loupe_store::TraceSelection) -> Result<u64, StoreError> {
        self.inner.delete_traces(which).await
    }
    async fn put_assessment(
        &self,
        id: TraceId,
        a: loupe_store::Assessment,
    ) -> Result<bool, StoreError> {
        self.inner.put_assessment(id, a).await
    }
    async fn assessments(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<Vec<loupe_store::Assessment>, StoreError> {
        self.inner.assessments(ids).await
    }
    async fn trace_models(
        &self,
        ids: Vec<TraceId>,
    ) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError> {
        self.inner.trace_models(ids).await
    }
    async fn delete_assessment(&self, id: TraceId, aid: String) -> Result<bool, StoreError> {
        self.inner.delete_assessment(id, aid).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503_and_unavailable_never_buffers() {
    let open = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (gate, seen) = (open.clone(), entered.clone());
    let server = TestServer::with(Options {
        max_queued_spans: 4,
        wrap: Some(Box::new(move |inner| {
            Arc::new(GatedStore {
                inner,
                open: gate,
                entered: seen,
            })
        })),
        ..Options::default()
    })
    .await;
    let t = [6u8; 16];
    let first = {
        let url = server.url.clone();
        let req = request(
            (1..=4)
                .map(|i| pspan(t, i, if i == 1 { None } else { Some(1) }, 0, 10))
                .collect(),
        );
        tokio::spawn(async move { post_pb(&url, &req).await.status() })
    };
    // wait until the first request holds the whole budget (its write is at the gate)
    for _ in 0..1000 {
        if entered.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        entered.load(Ordering::SeqCst),
        "the first write never reached the store"
    );
    let resp = post_pb(&server.url, &request(vec![pspan([7; 16], 1, None, 0, 1)])).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(st.code, 14);
    let resp = post(&server.url, "application/json", None, json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "08080808080808080808080808080808", "spanId": "0101010101010101", "name": "x"}]}]}]}).to_string().into_bytes()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "UNAVAILABLE"
    );
    // gRPC says UNAVAILABLE
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    let err = client
        .export(request(vec![pspan([7; 16], 1, None, 0, 1)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    // open the gate: the first request is committed and acknowledged; the refused ones are not stored
    open.store(true, Ordering::SeqCst);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        server.trace("06060606060606060606060606060606").await["trace"]["span_count"],
        4
    );
    assert_eq!(
        server
            .get("/api/v1/traces/07070707070707070707070707070707")
            .await
            .0,
        404
    );
    // and the queue takes work again
    assert_eq!(
        post_pb(&server.url, &request(vec![pspan([7; 16], 1, None, 0, 1)]))
            .await
            .status(),
        200
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// JSON API

#[tokio::test]
async fn json_api_lists_filters_paginates_and_errors_in_json() {
    let server = TestServer::start().await;
    let mut spans = Vec::new();
    for i in 0..30u8 {
        let mut s = pspan(
            [100 + i; 16],
            1,
            None,
            u64::from(i) * 1000,
            u64::from(i) * 1000 + u64::from(i) * 10,
        );
        s.name = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        if i % 3 == 0 {
            s.status = Some(Status {
                code: 2,
                message: "x".into(),
            });
        }
        spans.push(s);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    let (status, page) = server.get("/api/v1/traces?limit=10").await;
    assert_eq!(status, 200);
    let traces = page["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 10);
    assert_eq!(traces[0]["trace_id"], hex(&[129; 16]), "newest first");
    for key in [
        "trace_id",
        "name",
        "status",
        "start_time_ms",
        "duration_ms",
        "span_count",
        "error_count",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "project",
        "tags",
    ] {
        assert!(traces[0].get(key).is_some(), "{key} missing");
    }
    let all = all_traces(&server.url).await;
    assert_eq!(all.len(), 30);
    let mut ids = HashSet::new();
    let mut cursor = page["next_cursor"].as_str().unwrap().to_string();
    ids.extend(
        traces
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_string()),
    );
    loop {
        let (_, p) = server
            .get(&format!("/api/v1/traces?limit=10&cursor={cursor}"))
            .await;
        ids.extend(
            p["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_string()),
        );
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(ids.len(), 30, "pages neither skip nor repeat");
    let (_, p) = server
        .get("/api/v1/traces?status=ERROR&name=even&min_duration_ms=100")
        .await;
    let got: Vec<u64> = p["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![240, 180, 120]);
    let from = 1_700_000_000_000u64 + 10_000;
    let (_, p) = server
        .get(&format!(
            "/api/v1/traces?start_time_from_ms={from}&start_time_to_ms={}",
            from + 5_000
        ))
        .await;
    assert_eq!(p["traces"].as_array().unwrap().len(), 5);
    // errors
    for (path, status, code) in [
        ("/api/v1/traces/not-hex", 400, "INVALID_ARGUMENT"),
        (
            "/api/v1/traces/00112233445566778899aabbccddeeff",
            404,
            "NOT_FOUND",
        ),
        (
            "/api/v1/traces?cursor=%27%3B%20drop%20table%20traces",
            400,
            "INVALID_ARGUMENT",
        ),
        ("/api/v1/traces?limit=0", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?status=BROKEN", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?min_duration_ms=-5", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?colour=red", 400, "INVALID_ARGUMENT"),
        ("/api/v1/nothing", 404, "NOT_FOUND"),
    ] {
        let (s, body) = server.get(path).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (s, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/v1/traces",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/healthz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    let (s, health) = server.get("/healthz").await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    let home = reqwest::get(format!("{}/", server.url)).await.unwrap();
    assert!(
        home.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    server.stop().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// the binary: CLI, signals, durability

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_draws_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let t = [0x42u8; 16];
    let mut err = pspan(t, 3, Some(2), 30, 40);
    err.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let mut root = pspan(t, 1, None, 0, 100);
    root.name = "agent".into();
    let req = request(vec![root, pspan(t, 2, Some(1), 10, 90), err]);
    assert_eq!(post_pb(&server.url, &req).await.status(), 200);
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "list", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        text.contains(&hex(&t)) && text.contains("agent") && text.contains("ERROR"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "get", &hex(&t), "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("└─ agent  [UNKNOWN]  100.0 ms"), "{text}");
    assert!(
        text.contains("   └─ span-2  [UNKNOWN]  80.0 ms  tokens 20"),
        "{text}"
    );
    assert!(
        text.contains("      └─ span-3  [UNKNOWN]  10.0 ms  tokens 30  ✗ ERROR boom"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "get", &hex(&t), "--json", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spans"].as_array().unwrap().len(), 3);
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "get",
            "00000000000000000000000000000001",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_acknowledged_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(dir.path()).await;
    let t = [0x55u8; 16];
    assert_eq!(
        post_pb(&server.url, &request(vec![pspan(t, 1, None, 0, 5)]))
            .await
            .status(),
        200
    );
    signal(server.pid(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let server = ChildServer::start(dir.path()).await;
    let body: Value = reqwest::get(format!("{}/api/v1/traces/{}", server.url, hex(&t)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["trace"]["span_count"], 1);
}

/// Clients ingest at full speed; the server is killed with SIGKILL; every span whose request was
/// acknowledged must be there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let acked: Arc<std::sync::Mutex<Vec<[u8; 16]>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let (url, acked, stop) = (server.url.clone(), acked.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                // 20 traces of 5 spans per request, ids unique per client and request
                let mut ids = Vec::new();
                let mut spans = Vec::new();
                for k in 0..20u32 {
                    let mut t = [0u8; 16];
                    t[..4].copy_from_slice(&c.to_be_bytes());
                    t[4..8].copy_from_slice(&n.to_be_bytes());
                    t[8..12].copy_from_slice(&k.to_be_bytes());
                    t[15] = 1;
                    ids.push(t);
                    for s in 1..=5u8 {
                        spans.push(pspan(t, s, (s > 1).then_some(1), u64::from(s), 100));
                    }
                }
                n += 1;
                let sent = http
                    .post(format!("{url}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .body(request(spans).encode_to_vec())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    Ok(_) => {}
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(server.pid(), "KILL");
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the clients got {} traces acknowledged before the kill",
        acked.len()
    );
    drop(server);
    let server = ChildServer::start(dir.path()).await;
    let stored: HashMap<String, u64> = all_traces(&server.url)
        .await
        .into_iter()
        .map(|t| {
            (
                t["trace_id"].as_str().unwrap().to_string(),
                t["span_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut missing = 0;
    for t in &acked {
        match stored.get(&hex(t)) {
            Some(5) => {}
            _ => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged traces lost or incomplete",
        acked.len()
    );
    eprintln!(
        "sigkill: {} acknowledged traces all present ({} stored)",
        acked.len(),
        stored.len()
    );
}

// ---------------------------------------------------------------------------------------------
// conventions: cost, sessions, reprice, reindex

fn llm_span(trace: [u8; 16], id: u8, parent: Option<u8>, session: &str, start_ms: u64) -> Span {
    let mut s = pspan(trace, id, parent, start_ms, start_ms + 100);
    s.attributes = vec![
        kv(
            "gen_ai.operation.name",
            any_value::Value::StringValue("chat".into()),
        ),
        kv(
            "gen_ai.request.model",
            any_value::Value::StringValue("gpt-4o-mini".into()),
        ),
        kv(
            "gen_ai.usage.input_tokens",
            any_value::Value::IntValue(1000),
        ),
        kv(
            "gen_ai.usage.output_tokens",
            any_value::Value::IntValue(500),
        ),
        kv(
            "gen_ai.conversation.id",
            any_value::Value::StringValue(session.into()),
        ),
    ];
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

async fn loupe(args: &[&str]) -> String {
    let out = tokio::process::Command::new(loupe_bin())
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_sessions_reprice_and_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (a, b, c) = ([0xa1u8; 16], [0xb2u8; 16], [0xc3u8; 16]);
    let req = request(vec![
        llm_span(a, 1, None, "s-1", 0),
        llm_span(b, 1, None, "s-1", 1_000),
        llm_span(b, 2, Some(1), "s-1", 1_010),
        llm_span(c, 1, None, "s-2", 500),
    ]);
    assert_eq!(post_pb(&server.url, &req).await.status(), 200);
    let get = |id: [u8; 16]| {
        let url = format!("{}/api/v1/traces/{}", server.url, hex(&id));
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let one = 1000.0 * 0.15e-6 + 500.0 * 0.6e-6;
    let t = get(b).await;
    assert!(
        close(t["trace"]["cost_usd"].as_f64().unwrap(), 2.0 * one),
        "{}",
        t["trace"]
    );
    assert_eq!(t["trace"]["session_id"], "s-1");
    assert!(close(t["spans"][0]["cost_usd"].as_f64().unwrap(), one));
    assert_eq!(t["spans"][0]["provider"], Value::Null);
    assert_eq!(t["spans"][0]["span_type"], "CHAT_MODEL");
    let sessions: Value = reqwest::get(format!("{}/api/v1/sessions", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["session_id"], "s-1", "most recently active first");
    assert_eq!(list[0]["trace_count"], 2);
    assert!(close(list[0]["cost_usd"].as_f64().unwrap(), 3.0 * one));
    assert_eq!(list[0]["total_tokens"], 4500);
    let s1: Value = reqwest::get(format!("{}/api/v1/sessions/s-1", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = s1["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![hex(&a), hex(&b)], "a conversation in order");
    let missing = reqwest::get(format!("{}/api/v1/sessions/nope", server.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let page: Value = reqwest::get(format!("{}/api/v1/sessions?limit=1", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page2: Value = reqwest::get(format!(
        "{}/api/v1/sessions?limit=1&cursor={cursor}",
        server.url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(page2["sessions"][0]["session_id"], "s-2");
    assert!(page2["next_cursor"].is_null());

    // New prices: reprice while the server runs.
    let prices = dir.path().join("prices.json");
    std::fs::write(&prices, r#"{"version": "test", "models": [{"model": "gpt-4o-mini", "prices": [{"effective": "2000-01-01", "input": 1.0, "output": 2.0}]}]}"#).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = loupe(&[
        "reprice",
        "--data-dir",
        data,
        "--prices",
        prices.to_str().unwrap(),
    ])
    .await;
    assert!(
        out.starts_with("reprice: 4 spans read, 4 changed, 3 traces"),
        "{out}"
    );
    let new_one = 1000.0 * 1e-6 + 500.0 * 2e-6;
    assert!(close(
        get(b).await["trace"]["cost_usd"].as_f64().unwrap(),
        2.0 * new_one
    ));

    // A stale mapping: wipe the derived columns, then reindex from the raw attributes.
    {
        let db = rusqlite::Connection::open(dir.path().join("loupe.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.execute_batch(
            "UPDATE spans SET span_type = 'UNKNOWN', model = NULL, input_tokens = NULL, output_tokens = NULL, \
             total_tokens = NULL, cost_usd = NULL; UPDATE traces SET input_tokens = 0, total_tokens = 0, cost_usd = 0, session_id = NULL;",
        )
        .unwrap();
    }
    assert_eq!(get(c).await["trace"]["total_tokens"], 0);
    let out = loupe(&["reindex", "--data-dir", data]).await;
    assert!(
        out.starts_with("reindex: 4 spans read, 4 changed, 3 traces"),
        "{out}"
    );
    let t = get(c).await;
    assert_eq!(t["trace"]["total_tokens"], 1500);
    assert_eq!(t["trace"]["session_id"], "s-2");
    assert!(
        close(t["trace"]["cost_usd"].as_f64().unwrap(), one),
        "built-in prices again"
    );
    assert_eq!(t["spans"][0]["span_type"], "CHAT_MODEL");
    assert_eq!(t["spans"][0]["model"], "gpt-4o-mini");
    let out = loupe(&["reindex", "--data-dir", data]).await;
    assert!(
        out.starts_with("reindex: 4 spans read, 0 changed"),
        "idempotent: {out}"
    );
}

/// GenAI message events sent as OTLP log records join their span, whichever arrives first.
#[tokio::test]
async fn log_records_become_span_events_and_messages() {
    let server = TestServer::start().await;
    let trace = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d";
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000001000000", "eventName": "gen_ai.user.message", "traceId": trace, "spanId": "0101010101010101",
         "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "Weather in Paris?"}}]}},
         "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}]},
        {"timeUnixNano": "1700000000002000000", "traceId": trace, "spanId": "0101010101010101",
         "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}],
         "body": {"kvlistValue": {"values": [{"key": "index", "value": {"intValue": "0"}},
            {"key": "message", "value": {"kvlistValue": {"values": [{"key": "role", "value": {"stringValue": "assistant"}}, {"key": "content", "value": {"stringValue": "Sunny."}}]}}}]}}},
        {"timeUnixNano": "1700000000003000000", "body": {"stringValue": "no span context"}}
    ]}]}]});
    // logs first, then the span
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .body(logs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("logRecords[2]")
    );
    let mut s = pspan([0x0d; 16], 1, None, 0, 10);
    s.attributes = vec![KeyValue {
        key: "gen_ai.operation.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("chat".into())),
        }),
        ..Default::default()
    }];
    assert_eq!(post_pb(&server.url, &request(vec![s])).await.status(), 200);
    let body = server.trace(trace).await;
    let span = &body["spans"][0];
    assert_eq!(span["events"].as_array().unwrap().len(), 2);
    assert_eq!(span["events"][0]["name"], "gen_ai.user.message");
    assert_eq!(
        span["input_messages"],
        json!([{"role": "user", "content": "Weather in Paris?"}])
    );
    assert_eq!(
        span["output_messages"],
        json!([{"role": "assistant", "content": "Sunny."}])
    );
    // malformed ids in a log record: 400
    let bad = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "abc", "spanId": "0101010101010101"}]}]}]});
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    server.stop().await;
}

/// The query language through the API and `loupe traces search`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_over_api_and_cli() {
    let server = TestServer::start().await;
    let mut spans = Vec::new();
    // 0x31: fast OK trace with a gpt-4o-mini chat span; 0x32: slow ERROR trace with a tool span;
    // 0x33: OK trace with a claude span in session s-q.
    let mut root = pspan([0x31; 16], 1, None, 0, 100);
    root.name = "agent".into();
    let mut llm = llm_span([0x31; 16], 2, Some(1), "s-other", 10);
    llm.attributes.push(skv("mlflow.spanType", "CHAT_MODEL"));
    spans.extend([root, llm]);
    let mut slow = pspan([0x32; 16], 1, None, 0, 9_000);
    slow.name = "batch job".into();
    slow.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let mut tool = pspan([0x32; 16], 2, Some(1), 10, 20);
    tool.attributes = vec![skv("mlflow.spanType", "TOOL")];
    spans.extend([slow, tool]);
    let mut other = pspan([0x33; 16], 1, None, 0, 50);
    other.name = "退款 agent".into();
    other.attributes = vec![
        skv("gen_ai.request.model", "claude-3-5-sonnet-20241022"),
        skv("session.id", "s-q"),
    ];
    spans.push(other);
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    let ids = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap()[..2].to_string())
            .collect()
    };
    let q = |query: &str| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/traces", server.url),
            &[("q", query)],
        )
        .unwrap();
        async move {
            let resp = reqwest::get(url).await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    for (query, want) in [
        ("status = 'ERROR'", vec!["32"]),
        ("duration_ms > 5s", vec!["32"]),
        (
            "duration_ms < 1s AND NOT status = 'ERROR'",
            vec!["33", "31"],
        ),
        ("span.type = 'TOOL'", vec!["32"]),
        ("span.model LIKE 'gpt-4o%'", vec!["31"]),
        ("span.model LIKE 'GPT%'", vec![]),
        ("span.model ILIKE 'GPT%'", vec!["31"]),
        (
            "span.type = 'CHAT_MODEL' AND span.model LIKE 'claude%'",
            vec![],
        ),
        (
            "span.type = 'CHAT_MODEL' OR span.model LIKE 'claude%'",
            vec!["33", "31"],
        ),
        ("session_id = 's-q'", vec!["33"]),
        ("session_id IS NULL", vec!["32"]),
        ("total_tokens > 1000 AND cost_usd > 0", vec!["31"]),
        ("name IN ('agent', 'batch job')", vec!["32", "31"]),
        ("name = '退款 agent'", vec!["33"]),
        (
            "start > '2023-01-01' AND start < now",
            vec!["33", "32", "31"],
        ),
        (
            "trace_id = 'tr-32323232323232323232323232323232'",
            vec!["32"],
        ),
        ("tags.env = 'prod'", vec![]),
        ("name = 'x'' OR 1=1 --'", vec![]),
    ] {
        let (status, body) = q(query).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut got = ids(&body);
        got.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(got, want, "{query}");
    }
    let (status, body) = q("status = 'OK' AND").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_QUERY");
    assert_eq!(
        body["error"]["message"],
        "invalid query: expected a field name, found the end of the query at position 18"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "search",
            "span.type = 'TOOL'",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("batch job") && !text.contains("agent"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "search",
            "colour = 'red'",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    server.stop().await;
}

/// Aggregations per model, span type and time, span search, and `loupe stats`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_span_search() {
    let server = TestServer::start().await;
    let s = |v: &str| any_value::Value::StringValue(v.into());
    let mut spans = Vec::new();
    // Ten traces one minute apart; each a root and one chat span: even traces gpt-4o-mini with
    // 100 ms calls, odd ones claude with 1000 ms calls and an error on the 9th.
    for i in 0..10u8 {
        let t = [0x50 + i; 16];
        let base = u64::from(i) * 60_000;
        spans.push(pspan(t, 1, None, base, base + 2_000));
        let (model, dur) = if i % 2 == 0 {
            ("gpt-4o-mini", 100)
        } else {
            ("claude-3-5-haiku", 1_000)
        };
        let mut llm = pspan(t, 2, Some(1), base + 10, base + 10 + dur);
        llm.attributes = vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.request.model", s(model)),
            kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(100)),
            kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(10)),
        ];
        if i == 9 {
            llm.status = Some(Status {
                code: 2,
                message: "overloaded".into(),
            });
        }
        spans.push(llm);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    let get = |path: String| async move {
        let r = reqwest::get(path).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (st, by_model) = get(format!("{}/api/v1/stats?group_by=model", server.url)).await;
    assert_eq!(st, 200, "{by_model}");
    let groups = by_model["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let claude = &groups[0];
    assert_eq!(claude["key"]["model"], "claude-3-5-haiku");
    assert_eq!(
        (claude["count"].as_u64(), claude["error_count"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(close(claude["error_rate"].as_f64().unwrap(), 0.2));
    assert_eq!(claude["p95_ms"], 1000.0);
    assert_eq!(claude["total_tokens"], 550);
    assert!(close(
        claude["cost_usd"].as_f64().unwrap(),
        5.0 * (100.0 * 0.8e-6 + 10.0 * 4.0e-6)
    ));
    assert_eq!(groups[1]["key"]["model"], "gpt-4o-mini");
    assert_eq!(groups[1]["p50_ms"], 100.0);
    // per model per 2-minute bucket, with a filter
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/stats", server.url),
        &[
            ("group_by", "model,time"),
            ("bucket", "2m"),
            ("q", "span.model LIKE 'gpt%'"),
        ],
    )
    .unwrap();
    let (_, by_time) = get(url.to_string()).await;
    let g = by_time["groups"].as_array().unwrap();
    assert_eq!(g.len(), 5, "{by_time}");
    assert_eq!(
        g[0]["key"]["time"],
        1_700_000_000_000u64 - 1_700_000_000_000u64 % 120_000
    );
    assert!(
        g.iter()
            .all(|x| x["key"]["model"] == "gpt-4o-mini" && x["count"] == 1)
    );
    // trace-level, no grouping
    let (_, all) = get(format!("{}/api/v1/stats", server.url)).await;
    assert_eq!(all["groups"][0]["count"], 10);
    assert_eq!(all["groups"][0]["error_count"], 1);
    assert_eq!(all["groups"][0]["p50_ms"], 2000.0);
    let (st, bad) = get(format!("{}/api/v1/stats?group_by=colour", server.url)).await;
    assert_eq!(
        (st, bad["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    // span search: span fields are about the span itself
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[("q", "span.status = 'ERROR'"), ("limit", "5")],
    )
    .unwrap();
    let (st, found) = get(url.to_string()).await;
    assert_eq!(st, 200, "{found}");
    let list = found["spans"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["model"], "claude-3-5-haiku");
    assert_eq!(list[0]["trace_id"], hex(&[0x59; 16]));
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[("q", "span.type = 'CHAT_MODEL'"), ("limit", "4")],
    )
    .unwrap();
    let (_, page) = get(url.to_string()).await;
    assert_eq!(page["spans"].as_array().unwrap().len(), 4);
    let next = page["next_cursor"].as_str().unwrap().to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[
            ("q", "span.type = 'CHAT_MODEL'"),
            ("limit", "100"),
            ("cursor", next.as_str()),
        ],
    )
    .unwrap();
    let (_, rest) = get(url.to_string()).await;
    assert_eq!(rest["spans"].as_array().unwrap().len(), 6);
    // the CLI
    let out = tokio::process::Command::new(loupe_bin())
        .args(["stats", "--group-by", "model", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("MODEL"), "{text}");
    assert!(
        text.contains("claude-3-5-haiku") && text.contains("20.0%"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn order_by_sorts_and_pages_by_position() {
    let server = TestServer::start().await;
    // Four traces: durations 30, 10, 40, 20 ms, started one second apart.
    let mut spans = Vec::new();
    for (i, dur) in [30u64, 10, 40, 20].into_iter().enumerate() {
        let t = [0x70 + i as u8; 16];
        let base = i as u64 * 1_000;
        let mut s = pspan(t, 1, None, base, base + dur);
        s.name = format!("t{i}");
        spans.push(s);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    let names = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, page) = server
        .get("/api/v1/traces?order_by=duration_ms%20desc&limit=3")
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(names(&page), ["t2", "t0", "t3"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = server
        .get(&format!(
            "/api/v1/traces?order_by=duration_ms%20desc&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(names(&rest), ["t1"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, by_name) = server.get("/api/v1/traces?order_by=name").await;
    assert_eq!(names(&by_name), ["t0", "t1", "t2", "t3"]);
    for bad in ["colour", "name%20sideways", "name,name", "start%20desc%20x"] {
        let (s, e) = server.get(&format!("/api/v1/traces?order_by={bad}")).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("order"),
            "{e}"
        );
    }
    let (s, _) = server
        .get("/api/v1/traces?order_by=name&cursor=garbage")
        .await;
    assert_eq!(s, 400);
    server.stop().await;
}
