//! Automatic tracing of LLM HTTP APIs: a `reqwest-middleware` middleware that records each
//! OpenAI-compatible chat completion (streaming included), legacy completion and embedding call,
//! and each Anthropic Messages API call (streaming included), as a span under the caller's
//! current span, with the GenAI conventions Loupe (and any OTel backend) reads: model, request
//! parameters, messages, tool calls and token usage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let http = loupe_sdk::openai::client(); // a reqwest client with the middleware
//! let reply: serde_json::Value = http
//!     .post("http://127.0.0.1:8000/v1/chat/completions")
//!     .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Streaming responses are read whole by the middleware (to record the reply and the usage of
//! the last chunk) and handed on unchanged; the caller still parses the same server-sent events.

use bytes::Bytes;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next, Result};
use serde_json::{Map, Value, json};

use crate::anthropic;
use crate::span::{ActiveSpan, span};

/// The middleware.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiTracing;

/// A reqwest client that traces OpenAI-compatible calls.
pub fn client() -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OpenAiTracing)
        .build()
}

/// Which API a request calls, from its path.
fn operation(path: &str) -> Option<(&'static str, &'static str)> {
    let path = path.trim_end_matches('/');
    if path.ends_with("/chat/completions") {
        Some(("chat", "CHAT_MODEL"))
    } else if path.ends_with("/embeddings") {
        Some(("embeddings", "EMBEDDING"))
    } else if path.ends_with("/completions") {
        Some(("text_completion", "LLM"))
    } else {
        None
    }
}

/// Request parameters recorded as `gen_ai.request.*`.
const PARAMS: &[(&str, &str)] = &[
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("stop", "gen_ai.request.stop_sequences"),
];

pub(crate) fn start_span(
    op: &str,
    span_type: &'static str,
    body: &Map<String, Value>,
) -> ActiveSpan {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let name = if model.is_empty() {
        op.to_string()
    } else {
        format!("{op} {model}")
    };
    let mut s = span(name).span_type(span_type).start();
    if !s.is_recording() {
        return s;
    }
    s.set_attribute("gen_ai.operation.name", op);
    s.set_attribute("gen_ai.system", "openai");
    if !model.is_empty() {
        s.set_attribute("gen_ai.request.model", model);
    }
    for (key, attr) in PARAMS {
        if let Some(v) = body.get(*key).filter(|v| !v.is_null()) {
            s.set_attribute(*attr, v.clone());
        }
    }
    if span_type != "EMBEDDING" {
        s.set_attribute("mlflow.message.format", "openai");
    }
    if let Some(tools) = body.get("tools") {
        s.set_attribute("mlflow.chat.tools", tools.clone());
    }
    s.set_inputs(&Value::Object(body.clone()));
    s
}

/// Records a whole (non-streaming) response body.
pub(crate) fn record_response(s: &mut ActiveSpan, body: &Value) {
    if let Some(m) = body.get("model").and_then(Value::as_str) {
        s.set_attribute("gen_ai.response.model", m);
    }
    if let Some(id) = body.get("id").and_then(Value::as_str) {
        s.set_attribute("gen_ai.response.id", id);
    }
    record_usage(s, body.get("usage"));
    let reasons: Vec<Value> = body
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("finish_reason").cloned())
        .filter(|r| !r.is_null())
        .collect();
    if !reasons.is_empty() {
        s.set_attribute("gen_ai.response.finish_reasons", reasons);
    }
    s.set_outputs(body);
}

fn record_usage(s: &mut ActiveSpan, usage: Option<&Value>) {
    let Some(u) = usage.filter(|u| u.is_object()) else {
        return;
    };
    if let Some(i) = u.get("prompt_tokens").and_then(Value::as_u64) {
        s.set_attribute("gen_ai.usage.input_tokens", i);
    }
    if let Some(o) = u.get("completion_tokens").and_then(Value::as_u64) {
        s.set_attribute("gen_ai.usage.output_tokens", o);
    }
    if let Some(c) = u
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
    {
        s.set_attribute("gen_ai.usage.cache_read.input_tokens", c);
    }
}

/// Folds a server-sent-event stream of chat chunks into one completion-shaped value.
pub(crate) fn fold_stream(text: &str) -> Value {
    fold_chunks(
        text.lines()
            .filter_map(|line| line.strip_prefix("data:").map(str::trim))
            .take_while(|data| *data != "[DONE]")
            .filter_map(|data| serde_json::from_str::<Value>(data).ok()),
    )
}

/// Tool calls assembled from one stream at most.
const MAX_TOOL_CALLS: u64 = 128;

/// Folds chat completion chunks into one completion-shaped value.
pub(crate) fn fold_chunks(chunks: impl Iterator<Item = Value>) -> Value {
    let mut content = String::new();
    let mut role = "assistant".to_string();
    let mut tool_calls: Vec<Value> = Vec::new();
    let mut finish: Option<Value> = None;
    let (mut model, mut id, mut usage) = (None, None, None);
    for chunk in chunks {
        model = model.or_else(|| chunk.get("model").cloned());
        id = id.or_else(|| chunk.get("id").cloned());
        if chunk.get("usage").is_some_and(Value::is_object) {
            usage = chunk.get("usage").cloned();
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let delta = &choice["delta"];
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                role = r.to_string();
            }
            if let Some(c) = delta.get("content").and_then(Value::as_str) {
                content.push_str(c);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // An index from the server sizes a list: keep it sane.
                let i = tc
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(MAX_TOOL_CALLS) as usize;
                while tool_calls.len() <= i {
                    tool_calls.push(
                        json!({"type": "function", "function": {"name": "", "arguments": ""}}),
                    );
                }
                let slot = &mut tool_calls[i];
                if let Some(id) = tc.get("id") {
                    slot["id"] = id.clone();
                }
                if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                    let name = format!("{}{n}", slot["function"]["name"].as_str().unwrap_or(""));
                    slot["function"]["name"] = Value::String(name);
                }
                if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                    let args = format!(
                        "{}{a}",
                        slot["function"]["arguments"].as_str().unwrap_or("")
                    );
                    slot["function"]["arguments"] = Value::String(args);
                }
            }
            if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
                finish = Some(f.clone());
            }
        }
    }
    let mut message = json!({"role": role, "content": if content.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(content) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": id,
        "model": model,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    })
}

/// A response rebuilt from already-read parts.
fn rebuild(
    status: http::StatusCode,
    headers: http::HeaderMap,
    version: http::Version,
    body: Bytes,
) -> Response {
    let mut b = http::Response::builder().status(status).version(version);
    if let Some(h) = b.headers_mut() {
        *h = headers;
    }
    // The parts come from a valid response, so building cannot fail; fall back to the body alone.
    let resp = b
        .body(body.clone())
        .unwrap_or_else(|_| http::Response::new(body));
    Response::from(resp)
}

/// The APIs the middleware records.
#[derive(Clone, Copy)]
enum Api {
    /// OpenAI-compatible: the GenAI operation name and the span type.
    OpenAi(&'static str, &'static str),
    /// Anthropic's Messages API.
    AnthropicMessages,
}

/// Records a successful response body, whole or streamed.
fn record_body(s: &mut ActiveSpan, api: Api, streaming: bool, bytes: &[u8]) {
    match (api, streaming) {
        (Api::OpenAi(..), true) => {
            record_response(s, &fold_stream(&String::from_utf8_lossy(bytes)));
        }
        (Api::AnthropicMessages, true) => {
            match anthropic::fold_stream(&String::from_utf8_lossy(bytes)) {
                Ok(message) => anthropic::record_response(s, &message),
                Err(e) => s.fail("StreamError", e),
            }
        }
        (api, false) => {
            if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
                match api {
                    Api::OpenAi(..) => record_response(s, &v),
                    Api::AnthropicMessages => anthropic::record_response(s, &v),
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for OpenAiTracing {
    async fn handle(&self, req: Request, ext: &mut Extensions, next: Next<'_>) -> Result<Response> {
        let path = req.url().path();
        let api = if anthropic::is_messages(path) {
            Api::AnthropicMessages
        } else if let Some((op, span_type)) = operation(path) {
            Api::OpenAi(op, span_type)
        } else {
            return next.run(req, ext).await;
        };
        let body: Map<String, Value> = req
            .body()
            .and_then(|b| b.as_bytes())
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let mut s = match api {
            Api::OpenAi(op, span_type) => start_span(op, span_type, &body),
            Api::AnthropicMessages => anthropic::start_span(&body),
        };
        let ctx = s.context();
        let result = crate::span::Instrumented::new(next.run(req, ext), ctx).await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                s.record_error(&e);
                return Err(e);
            }
        };
        if !s.is_recording() {
            return Ok(resp);
        }
        let (status, headers, version) = (resp.status(), resp.headers().clone(), resp.version());
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                s.record_error(&e);
                return Err(e.into());
            }
        };
        if !status.is_success() {
            s.fail(
                "HTTPError",
                format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(500)
                        .collect::<String>()
                ),
            );
        } else {
            record_body(&mut s, api, streaming, &bytes);
        }
        drop(s);
        Ok(rebuild(status, headers, version, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_from_paths() {
        assert_eq!(
            operation("/v1/chat/completions"),
            Some(("chat", "CHAT_MODEL"))
        );
        assert_eq!(
            operation("/openai/deployments/x/chat/completions/"),
            Some(("chat", "CHAT_MODEL"))
        );
        assert_eq!(
            operation("/v1/completions"),
            Some(("text_completion", "LLM"))
        );
        assert_eq!(
            operation("/v1/embeddings"),
            Some(("embeddings", "EMBEDDING"))
        );
        assert_eq!(operation("/v1/models"), None);
    }

    #[test]
    fn streams_fold_into_one_reply() {
        let sse = concat!(
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
        );
        let v = fold_stream(sse);
        assert_eq!(v["choices"][0]["message"]["content"], "Hello");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        assert_eq!(v["model"], "m");
        let tools = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"ci\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\": 1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        );
        let v = fold_stream(tools);
        let tc = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(tc["id"], "call_1");
        assert_eq!(tc["function"]["name"], "get_weather");
        assert_eq!(tc["function"]["arguments"], "{\"city\": 1}");
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    }
}
