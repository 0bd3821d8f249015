//! Vercel AI SDK telemetry (`ai.*`): `ai.generateText`, `ai.streamText`, their `.doGenerate` /
//! `.doStream` provider calls, `ai.toolCall`, `ai.embed`.
//!
//! The outer `ai.generateText` span repeats the usage of its provider calls; only the provider
//! calls (and embeddings) report tokens, so trace totals do not count them twice.

use serde_json::{Map, Value};

use super::view::{LlmView, Message, ToolCall, content_text, json_value, to_text};
use super::{Derived, as_str, as_u64, span_type};

/// Operation id, e.g. `ai.generateText.doGenerate`.
pub const OPERATION_ID: &str = "ai.operationId";
/// Model id.
pub const MODEL_ID: &str = "ai.model.id";
/// Provider, e.g. `openai.chat`.
pub const MODEL_PROVIDER: &str = "ai.model.provider";
/// Telemetry metadata set by the caller: `ai.telemetry.metadata.<key>`.
pub const METADATA: &str = "ai.telemetry.metadata.";

/// Whether this convention applies.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.contains_key(OPERATION_ID) || a.keys().any(|k| k.starts_with("ai."))
}

fn operation(a: &Map<String, Value>) -> String {
    as_str(a.get(OPERATION_ID)).unwrap_or_default()
}

/// Whether the span is a call to the provider (the one that really used the tokens).
fn is_provider_call(op: &str) -> bool {
    op.ends_with(".doGenerate") || op.ends_with(".doStream") || op.ends_with(".doEmbed")
}

/// Fills the derived fields.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    let op = operation(a);
    if d.span_type.is_empty() {
        d.span_type = if op == "ai.toolCall" {
            span_type::TOOL
        } else if op.starts_with("ai.embed") {
            span_type::EMBEDDING
        } else if is_provider_call(&op) {
            span_type::CHAT_MODEL
        } else if op.starts_with("ai.") {
            span_type::CHAIN
        } else {
            ""
        }
        .to_string();
    }
    if d.request_model.is_none() {
        d.request_model = as_str(a.get(MODEL_ID));
    }
    if d.provider.is_none() {
        // `openai.chat` → `openai`
        d.provider =
            as_str(a.get(MODEL_PROVIDER)).map(|p| p.split('.').next().unwrap_or(&p).to_string());
    }
    if is_provider_call(&op) {
        let get = |k: &str| a.get(k).and_then(as_u64);
        d.input_tokens = d
            .input_tokens
            .or_else(|| get("ai.usage.inputTokens"))
            .or_else(|| get("ai.usage.promptTokens"))
            .or_else(|| get("ai.usage.tokens"));
        d.output_tokens = d
            .output_tokens
            .or_else(|| get("ai.usage.outputTokens"))
            .or_else(|| get("ai.usage.completionTokens"));
        d.total_tokens = d.total_tokens.or_else(|| get("ai.usage.totalTokens"));
        d.reasoning_tokens = d
            .reasoning_tokens
            .or_else(|| get("ai.usage.reasoningTokens"));
        d.cache_read_tokens = d
            .cache_read_tokens
            .or_else(|| get("ai.usage.cachedInputTokens"));
    } else {
        // The outer call repeats its children's usage: never count it (gen_ai keys included).
        d.suppress_usage = true;
    }
    for (keys, slot) in [
        (
            &["sessionId", "session_id", "session.id"][..],
            &mut d.session_id,
        ),
        (&["userId", "user_id", "user.id"][..], &mut d.user_id),
    ] {
        if slot.is_none() {
            *slot = keys
                .iter()
                .find_map(|k| as_str(a.get(&format!("{METADATA}{k}"))));
        }
    }
}

/// A Vercel AI SDK prompt message: content is a string or a list of parts
/// (`text`, `tool-call`, `tool-result` …).
fn message(v: &Value) -> Option<Message> {
    let o = v.as_object()?;
    let role = o.get("role").and_then(Value::as_str)?.to_string();
    let content = o.get("content").cloned().unwrap_or(Value::Null);
    let mut m = Message {
        role,
        content: content_text(&content),
        ..Message::default()
    };
    if let Value::Array(parts) = &content {
        for p in parts {
            match p.get("type").and_then(Value::as_str) {
                Some("tool-call") => m.tool_calls.push(ToolCall {
                    id: p
                        .get("toolCallId")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    name: p
                        .get("toolName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: p
                        .get("input")
                        .or_else(|| p.get("args"))
                        .map(to_text)
                        .unwrap_or_default(),
                }),
                Some("tool-result") => {
                    m.tool_call_id = p
                        .get("toolCallId")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let out = p.get("output").or_else(|| p.get("result"));
                    if let Some(out) = out {
                        // v5 wraps results as {"type": "json"|"text", "value": ...}
                        let inner = out.get("value").unwrap_or(out);
                        m.content = Some(to_text(inner));
                    }
                }
                _ => {}
            }
        }
    }
    Some(m)
}

fn tool_calls(v: &Value) -> Vec<ToolCall> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(ToolCall {
                        id: t
                            .get("toolCallId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        name: t.get("toolName").and_then(Value::as_str)?.to_string(),
                        arguments: t
                            .get("input")
                            .or_else(|| t.get("args"))
                            .map(to_text)
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The SDK's camelCase setting names in the snake_case the other conventions use.
fn param_name(setting: &str) -> String {
    match setting {
        "maxOutputTokens" | "maxTokens" => "max_tokens".to_string(),
        "stopSequences" => "stop".to_string(),
        other => super::snake_case(other),
    }
}

/// Fills the read-time view.
pub fn view(a: &Map<String, Value>, v: &mut LlmView) {
    if v.input_messages.is_empty() {
        if let Some(Value::Array(msgs)) = a.get("ai.prompt.messages").map(json_value) {
            v.input_messages = msgs.iter().filter_map(message).collect();
        } else if let Some(Value::Object(p)) = a.get("ai.prompt").map(json_value) {
            if let Some(sys) = p.get("system").and_then(Value::as_str) {
                v.input_messages.push(Message {
                    role: "system".into(),
                    content: Some(sys.into()),
                    ..Message::default()
                });
            }
            if let Some(Value::Array(msgs)) = p.get("messages") {
                v.input_messages.extend(msgs.iter().filter_map(message));
            } else if let Some(prompt) = p.get("prompt").and_then(content_text) {
                v.input_messages.push(Message {
                    role: "user".into(),
                    content: Some(prompt),
                    ..Message::default()
                });
            }
        }
    }
    let calls = a
        .get("ai.response.toolCalls")
        .map(json_value)
        .map(|v| tool_calls(&v))
        .unwrap_or_default();
    if v.output_messages.is_empty() {
        let text = as_str(a.get("ai.response.text"));
        if text.is_some() || !calls.is_empty() {
            v.output_messages.push(Message {
                role: "assistant".into(),
                content: text,
                tool_calls: calls.clone(),
                tool_call_id: None,
            });
        }
    }
    if v.tool_calls.is_empty() {
        v.tool_calls = calls;
    }
    if v.request_params.is_empty() {
        for (k, val) in a {
            if let Some(p) = k.strip_prefix("ai.settings.") {
                v.request_params.insert(param_name(p), val.clone());
            }
        }
    }
    if operation(a) == "ai.toolCall" {
        if v.inputs.is_none() {
            v.inputs = a
                .get("ai.toolCall.input")
                .or_else(|| a.get("ai.toolCall.args"))
                .map(json_value);
        }
        if v.outputs.is_none() {
            v.outputs = a
                .get("ai.toolCall.output")
                .or_else(|| a.get("ai.toolCall.result"))
                .map(json_value);
        }
    }
    if v.inputs.is_none() {
        v.inputs = a
            .get("ai.prompt")
            .or_else(|| a.get("ai.value"))
            .or_else(|| a.get("ai.values"))
            .map(json_value);
    }
    if v.outputs.is_none() {
        v.outputs = a
            .get("ai.response.text")
            .or_else(|| a.get("ai.response.object"))
            .map(json_value);
    }
}
