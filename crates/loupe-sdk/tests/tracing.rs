//! `tracing` spans become Loupe spans through `loupe_sdk::tracing_layer()`, nested with
//! `#[loupe_sdk::trace]` spans both ways, read back from a real Loupe.

#![allow(clippy::unwrap_used)]

mod loupe;

use std::time::Duration;

use serde_json::{Value, json};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

/// A model call described with GenAI fields, as libraries such as `rig` record them.
#[tracing::instrument(skip_all, fields(
    gen_ai.operation.name = "chat",
    gen_ai.provider.name = "openai",
    gen_ai.request.model = "gpt-4o-mini",
    gen_ai.usage.input_tokens = tracing::field::Empty,
    gen_ai.usage.output_tokens = tracing::field::Empty,
))]
async fn chat(prompt: &str) -> String {
    tracing::info!(attempt = 1, "calling the model");
    let span = tracing::Span::current();
    span.record("gen_ai.usage.input_tokens", 1_000_u64);
    span.record("gen_ai.usage.output_tokens", 200_u64);
    format!("answer to {prompt}")
}

/// A `tracing` span inside a `#[trace]` call, and a `tracing` event in the call itself.
#[loupe_sdk::trace(span_type = "TOOL")]
async fn lookup(order: u64) -> u64 {
    tracing::warn!(order, "slow lookup");
    checked(order);
    // A library's explicit root: it has no `tracing` parent, so it joins the `#[trace]` call.
    tracing::info_span!(parent: None, "library root").in_scope(|| ());
    order * 2
}

#[tracing::instrument]
fn checked(order: u64) {
    tracing::info!("checked");
}

#[tracing::instrument(err)]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

#[tracing::instrument(ret)]
fn double(x: u32) -> u32 {
    x * 2
}

/// Below the layer's level: left out, its child attaches to the nearest recorded span.
#[tracing::instrument(level = "debug")]
fn hidden() -> u32 {
    visible()
}

#[loupe_sdk::trace]
fn visible() -> u32 {
    tracing::error!(error = "disk full", "write failed");
    1
}

#[tracing::instrument(fields(otel.name = "pipeline run"))]
async fn pipeline(question: String) -> String {
    let order = lookup(7).await;
    let _ = parse("nope");
    double(21);
    hidden();
    let worker = tokio::spawn(
        async move {
            tokio::task::yield_now().await;
            lookup(order).await
        }
        .instrument(tracing::info_span!("worker")),
    );
    worker.await.unwrap();
    // Inside a `tracing` span an explicit root really is a new trace.
    tracing::info_span!(parent: None, "detached").in_scope(|| ());
    chat(&question).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_join_loupe_traces() {
    let (url, _dir) = loupe::start().await;
    let guard = loupe_sdk::Config::default()
        .endpoint(url.clone())
        .project("tracing")
        .init();
    tracing_subscriber::registry()
        .with(loupe_sdk::tracing_layer())
        .init();
    let answer = pipeline("where is my order?".into()).await;
    assert_eq!(answer, "answer to where is my order?");
    assert!(loupe_sdk::flush(Duration::from_secs(10)), "flush timed out");
    drop(guard);

    let list = loupe::get(&format!("{url}/api/v1/traces?project=tracing")).await;
    let traces = list["traces"].as_array().unwrap();
    let roots: Vec<&str> = traces.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(roots.len(), 2, "{roots:?}");
    assert!(roots.contains(&"detached"), "{roots:?}");
    let id = traces.iter().find(|t| t["name"] == "pipeline run").unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = loupe::get(&format!("{url}/api/v1/traces/{id}")).await;
    let spans = detail["spans"].as_array().unwrap();
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let one = |name: &str| -> &Value {
        let found = named(name);
        assert_eq!(found.len(), 1, "spans named {name}: {found:?}");
        found[0]
    };
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(spans.len(), 12, "{names:?}");
    assert!(named("hidden").is_empty(), "a debug span is left out");

    let root = one("pipeline run");
    assert_eq!(root["parent_id"], Value::Null);
    assert_eq!(root["inputs"], json!({"question": "where is my order?"}));
    let root_id = &root["span_id"];

    // tracing → #[trace] → tracing, and a tracing event in the #[trace] call.
    let lookups = named("lookup");
    let direct = lookups.iter().find(|s| &s["parent_id"] == root_id).unwrap();
    assert_eq!(direct["span_type"], "TOOL");
    assert_eq!(direct["outputs"], json!(14));
    let warned = &direct["events"][0];
    assert_eq!(warned["name"], "slow lookup", "{direct}");
    assert_eq!(warned["attributes"]["level"], "WARN");
    assert_eq!(warned["attributes"]["order"], 7);
    let checks = named("checked");
    assert!(
        checks.iter().any(|c| c["parent_id"] == direct["span_id"]),
        "a tracing span inside a #[trace] call is its child"
    );
    let library_roots = named("library root");
    assert_eq!(library_roots.len(), 2, "one per lookup call");
    assert!(
        library_roots
            .iter()
            .any(|r| r["parent_id"] == direct["span_id"])
    );

    // A spawned, instrumented task: the worker is the root's child, its #[trace] call the worker's.
    let worker = one("worker");
    assert_eq!(&worker["parent_id"], root_id);
    assert!(
        lookups
            .iter()
            .any(|s| s["parent_id"] == worker["span_id"] && s["outputs"] == json!(28))
    );

    // #[instrument(err)] fails the span with the error's message; #[instrument(ret)] is the output.
    let parse = one("parse");
    assert_eq!(parse["status"], "ERROR", "{parse}");
    assert_eq!(
        parse["exceptions"][0]["message"],
        "invalid digit found in string"
    );
    assert_eq!(one("double")["outputs"], json!("42"));
    assert_eq!(one("double")["status"], "OK");

    // Under a left-out span, the #[trace] call attaches to the root; an ERROR event fails it.
    let visible = one("visible");
    assert_eq!(&visible["parent_id"], root_id);
    assert_eq!(visible["status"], "ERROR");
    assert_eq!(visible["exceptions"][0]["message"], "disk full");

    // GenAI fields are read as the OpenTelemetry conventions: type, model, tokens, cost.
    let chat = one("chat");
    assert_eq!(chat["span_type"], "CHAT_MODEL", "{chat}");
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(chat["input_tokens"], 1_000);
    assert_eq!(chat["output_tokens"], 200);
    assert!(chat["cost_usd"].as_f64().unwrap() > 0.0, "{chat}");
    assert_eq!(chat["events"][0]["name"], "calling the model");
    assert_eq!(root["status"], "OK");
}
