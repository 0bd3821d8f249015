//! What the end-to-end tests share: spans and requests built by hand, the crates every test
//! uses, and small checks.

#![allow(unused_imports)]

pub(crate) use std::collections::{HashMap, HashSet};
pub(crate) use std::io::Write;
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
pub(crate) use std::time::Duration;

pub(crate) use crate::common::{ChildServer, Options, TestServer, all_traces, loupe_bin, signal};
pub(crate) use loupe_model::TraceId;
pub(crate) use loupe_store::{
    EncodedSpan, Recompute, RecomputeStats, SessionPage, SessionQuery, SessionSummary, StoreError,
    TraceDetail, TracePage, TraceQuery, TraceStore, WriteOutcome,
};
pub(crate) use loupe_store_conformance::hooked::HookedStore;
pub(crate) use opentelemetry::KeyValue as OtelKv;
pub(crate) use opentelemetry::trace::{
    Span as _, Status as OtelStatus, TraceContextExt, Tracer, TracerProvider as _,
};
pub(crate) use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
pub(crate) use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub(crate) use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub(crate) use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
pub(crate) use prost::Message;
pub(crate) use serde_json::{Value, json};

pub(crate) fn pspan(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    start_ms: u64,
    end_ms: u64,
) -> Span {
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
pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub(crate) fn skv(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

pub(crate) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
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

pub(crate) async fn post(
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

pub(crate) async fn post_pb(url: &str, req: &ExportTraceServiceRequest) -> reqwest::Response {
    post(url, "application/x-protobuf", None, req.encode_to_vec()).await
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn rpc_status(bytes: &[u8]) -> loupe_server::error::RpcStatus {
    loupe_server::error::RpcStatus::decode(bytes).unwrap()
}

pub(crate) fn resource(service: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build()
}

/// Records an agent trace with the real OpenTelemetry SDK: a root, an LLM child with GenAI
/// attributes, a failed tool child. Returns the trace id.
pub(crate) fn record_agent_trace(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> String {
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

pub(crate) async fn check_agent_trace(server: &TestServer, trace_id: &str, service: &str) {
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

pub(crate) fn llm_span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    session: &str,
    start_ms: u64,
) -> Span {
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

pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

pub(crate) async fn loupe(args: &[&str]) -> String {
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

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Sends a request with an optional JSON body: the status, and the body as JSON (a string
/// when it is not JSON, null when empty).
pub(crate) async fn send(
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// `POST` JSON to a path of the server.
pub(crate) async fn post_json(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    send(
        reqwest::Method::POST,
        format!("{}{path}", server.url),
        Some(body),
    )
    .await
}
