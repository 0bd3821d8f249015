//! The normalizers against recorded output of the real instrumentors.
//!
//! Each `tests/fixtures/<convention>.json` holds the OTLP requests one instrumentor sent while
//! driving the real `openai` client (or the Vercel AI SDK) against the mock OpenAI server:
//! a chat completion, a streamed one, a tool call round trip and an embedding. Regenerate
//! them with `clients/record-fixtures`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use loupe_model::normalize::{self, LlmView};
use loupe_model::pricing::PriceBook;
use loupe_model::{SpanEvent, SpanId, TraceId};
use loupe_store::decode_body_at;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;

/// A span after ingest, with its read-time view.
struct Seen {
    name: String,
    span_type: String,
    model: Option<String>,
    provider: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost: Option<f64>,
    session: Option<String>,
    user: Option<String>,
    convention: Option<String>,
    view: LlmView,
}

fn load(convention: &str) -> Vec<Seen> {
    let path = format!(
        "{}/tests/fixtures/{convention}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    let prices = PriceBook::builtin();
    // Log records (GenAI events) join their spans, as the store does.
    let mut extra: HashMap<(TraceId, SpanId), Vec<SpanEvent>> = HashMap::new();
    for req in file["log_requests"].as_array().cloned().unwrap_or_default() {
        let req: ExportLogsServiceRequest =
            loupe_ingest::decode_json_as(req.to_string().as_bytes()).unwrap();
        for e in loupe_ingest::convert_logs(req).unwrap().events {
            extra
                .entry((e.trace_id, e.span_id))
                .or_default()
                .push(e.event);
        }
    }
    let mut out = Vec::new();
    for req in file["requests"].as_array().unwrap() {
        let req: ExportTraceServiceRequest =
            loupe_ingest::decode_json(req.to_string().as_bytes()).unwrap();
        let prepared = loupe_ingest::convert_request(req, None, &prices).unwrap();
        assert_eq!(
            prepared.rejected, 0,
            "{convention}: {:?}",
            prepared.reject_reason
        );
        for s in prepared.spans {
            let body = decode_body_at(&s.body.group, s.body.index as usize).unwrap();
            let mut events = body.events.clone();
            events.extend(
                extra
                    .get(&(s.trace_id, s.span_id))
                    .cloned()
                    .unwrap_or_default(),
            );
            let derived = normalize::derive(&body.attributes);
            out.push(Seen {
                name: s.name,
                span_type: s.columns.span_type,
                model: s.columns.model,
                provider: s.columns.provider,
                input_tokens: s.columns.input_tokens,
                output_tokens: s.columns.output_tokens,
                cost: s.columns.cost_usd,
                session: s.session_id,
                user: s.user_id,
                convention: derived.convention.map(str::to_string),
                view: normalize::view(&body.attributes, &events),
            });
        }
    }
    assert!(!out.is_empty(), "{convention}: no spans recorded");
    out
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// What every recorded chat scenario must yield, whatever the convention.
fn check_common(convention: &str, spans: &[Seen], ids: Option<(&str, &str)>) {
    let names: Vec<String> = spans
        .iter()
        .map(|s| format!("{} [{}]", s.name, s.span_type))
        .collect();
    assert!(
        spans
            .iter()
            .any(|s| s.convention.as_deref() == Some(convention)),
        "{convention} not detected on any span: {names:?}"
    );
    let chats: Vec<&Seen> = spans
        .iter()
        .filter(|s| s.span_type == "CHAT_MODEL")
        .collect();
    assert!(
        chats.len() >= 3,
        "{convention}: expected chat spans, got {names:?}"
    );
    // The plain chat call: a system and a user message, the mock's answer, its usage and cost.
    let plain = chats
        .iter()
        .find(|s| {
            s.view.input_messages.iter().any(|m| m.role == "system")
                && s.view.output_messages.iter().any(|m| {
                    m.content
                        .as_deref()
                        .is_some_and(|c| c.starts_with("Mock answer to: "))
                })
        })
        .unwrap_or_else(|| {
            panic!("{convention}: no chat span with system prompt and answer: {names:?}")
        });
    assert!(
        plain
            .model
            .as_deref()
            .is_some_and(|m| m.starts_with("gpt-4o-mini")),
        "{convention}: model {:?}",
        plain.model
    );
    assert_eq!(
        plain.provider.as_deref(),
        Some("openai"),
        "{convention}: provider"
    );
    let prompt_words: u64 = plain
        .view
        .input_messages
        .iter()
        .map(|m| words(m.content.as_deref().unwrap_or("")))
        .sum();
    assert_eq!(
        plain.input_tokens,
        Some(prompt_words + 10),
        "{convention}: the mock's prompt_tokens rule"
    );
    let answer = plain.view.output_messages[0].content.clone().unwrap();
    assert_eq!(
        plain.output_tokens,
        Some(words(&answer)),
        "{convention}: completion tokens"
    );
    let expected_cost = (prompt_words + 10) as f64 * 0.15e-6 + words(&answer) as f64 * 0.6e-6;
    assert!(
        (plain.cost.unwrap() - expected_cost).abs() < 1e-12,
        "{convention}: cost {:?}",
        plain.cost
    );
    // The tool call round trip.
    let call = chats
        .iter()
        .flat_map(|s| s.view.tool_calls.iter())
        .find(|t| t.name == "get_weather")
        .unwrap_or_else(|| panic!("{convention}: no get_weather tool call"));
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(args["city"], "Paris", "{convention}");
    assert!(
        chats
            .iter()
            .any(|s| s.view.input_messages.iter().any(|m| m.role == "tool")),
        "{convention}: the tool result sent back"
    );
    // The embedding.
    let emb = spans
        .iter()
        .find(|s| s.span_type == "EMBEDDING" && s.input_tokens.is_some())
        .unwrap_or_else(|| panic!("{convention}: no embedding span with usage: {names:?}"));
    assert!(
        emb.model
            .as_deref()
            .is_some_and(|m| m.starts_with("text-embedding-3-small"))
    );
    // Usage is counted once: only the model calls report tokens, never their parents (the
    // Vercel AI SDK's outer generateText repeats its children's usage, for one).
    for s in spans {
        if s.input_tokens.is_some() {
            assert!(
                matches!(s.span_type.as_str(), "CHAT_MODEL" | "LLM" | "EMBEDDING"),
                "{convention}: {} [{}] reports tokens",
                s.name,
                s.span_type
            );
        }
    }
    if let Some((session, user)) = ids {
        assert!(
            spans.iter().any(|s| s.session.as_deref() == Some(session)),
            "{convention}: session id {session} not found"
        );
        assert!(
            spans.iter().any(|s| s.user.as_deref() == Some(user)),
            "{convention}: user id {user}"
        );
    }
}

#[test]
fn openinference_openai() {
    check_common(
        "openinference",
        &load("openinference"),
        Some(("sess-openinference", "user-openinference")),
    );
}

#[test]
fn openllmetry_openai() {
    check_common(
        "openllmetry",
        &load("openllmetry"),
        Some(("sess-openllmetry", "user-openllmetry")),
    );
}

#[test]
fn gen_ai_openai_v2() {
    check_common(
        "gen_ai",
        &load("gen_ai"),
        Some(("sess-gen_ai", "user-gen_ai")),
    );
}

#[test]
fn mlflow_openai_autolog() {
    check_common(
        "mlflow",
        &load("mlflow"),
        Some(("sess-mlflow", "user-mlflow")),
    );
}

#[test]
fn vercel_ai_sdk() {
    check_common(
        "vercel_ai",
        &load("vercel_ai"),
        Some(("sess-vercel", "user-vercel")),
    );
}
