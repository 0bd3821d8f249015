//! OpenTelemetry GenAI semantic conventions (`gen_ai.*`): the span attributes, the newest
//! `gen_ai.input.messages` / `gen_ai.output.messages` (JSON with typed parts), and the older
//! event forms (`gen_ai.user.message`, `gen_ai.choice`, `gen_ai.content.prompt` …).

use serde_json::{Map, Value};

use super::view::{
    LlmView, Message, PARAM_KEYS, ToolCall, content_text, json_value, openai_message,
    openai_tool_call, to_text,
};
use super::{Derived, as_str, as_u64, span_type};
use crate::SpanEvent;

/// Operation: `chat`, `text_completion`, `embeddings`, `execute_tool`, `invoke_agent` …
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// Provider (older spelling).
pub const SYSTEM: &str = "gen_ai.system";
/// Provider (current spelling).
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// Model asked for.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// Model that answered.
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Input tokens.
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output tokens.
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Input tokens, the spelling before semantic conventions 1.27.
pub const USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
/// Output tokens, the spelling before semantic conventions 1.27.
pub const USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
/// Cached input tokens.
pub const USAGE_CACHE_READ: &str = "gen_ai.usage.cache_read.input_tokens";
/// Input tokens written to the cache.
pub const USAGE_CACHE_WRITE: &str = "gen_ai.usage.cache_creation.input_tokens";
/// Input messages (JSON), semantic conventions 1.37 and later.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// Output messages (JSON), semantic conventions 1.37 and later.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// System instructions (JSON parts), semantic conventions 1.37 and later.
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// The conversation (session) id.
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// The tool a tool span executed.
pub const TOOL_NAME: &str = "gen_ai.tool.name";

/// Whether any GenAI key is present.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.keys().any(|k| k.starts_with("gen_ai."))
}

/// Fills what the GenAI keys say, leaving fields already set alone.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    let op = as_str(a.get(OPERATION_NAME));
    // An agent's or workflow's usage adds up its model calls, which are spans of their own
    // (rig, for one, records both): counting it too would count every token twice.
    if matches!(
        op.as_deref(),
        Some("invoke_agent" | "create_agent" | "invoke_workflow")
    ) {
        d.suppress_usage = true;
    }
    if d.span_type.is_empty()
        && let Some(op) = op
    {
        d.span_type = match op.as_str() {
            "chat" => span_type::CHAT_MODEL,
            "text_completion" | "generate_content" => span_type::LLM,
            "embeddings" => span_type::EMBEDDING,
            "execute_tool" => span_type::TOOL,
            "invoke_agent" | "create_agent" => span_type::AGENT,
            "invoke_workflow" => span_type::CHAIN,
            _ => "",
        }
        .to_string();
    }
    if d.request_model.is_none() {
        d.request_model = as_str(a.get(REQUEST_MODEL));
    }
    if d.response_model.is_none() {
        d.response_model = as_str(a.get(RESPONSE_MODEL));
    }
    if d.provider.is_none() {
        d.provider = as_str(a.get(PROVIDER_NAME)).or_else(|| as_str(a.get(SYSTEM)));
    }
    let get = |k: &str| a.get(k).and_then(as_u64);
    d.input_tokens = d
        .input_tokens
        .or_else(|| get(USAGE_INPUT_TOKENS))
        .or_else(|| get(USAGE_PROMPT_TOKENS));
    d.output_tokens = d
        .output_tokens
        .or_else(|| get(USAGE_OUTPUT_TOKENS))
        .or_else(|| get(USAGE_COMPLETION_TOKENS));
    d.cache_read_tokens = d.cache_read_tokens.or_else(|| get(USAGE_CACHE_READ));
    d.cache_write_tokens = d.cache_write_tokens.or_else(|| get(USAGE_CACHE_WRITE));
    if d.session_id.is_none() {
        d.session_id = as_str(a.get(CONVERSATION_ID));
    }
}

/// A message in the typed-parts form of semantic conventions 1.37+.
fn parts_message(v: &Value) -> Option<Message> {
    let o = v.as_object()?;
    let Some(Value::Array(parts)) = o.get("parts") else {
        // Not the parts form: maybe OpenAI-shaped.
        return openai_message(v);
    };
    let mut m = Message {
        role: o
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ..Message::default()
    };
    let mut text = Vec::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("text") => text.extend(p.get("content").and_then(content_text)),
            Some("tool_call") => m.tool_calls.push(ToolCall {
                id: p.get("id").and_then(Value::as_str).map(str::to_string),
                name: p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: p.get("arguments").map(to_text).unwrap_or_default(),
            }),
            Some("tool_call_response") => {
                m.tool_call_id = p.get("id").and_then(Value::as_str).map(str::to_string);
                text.extend(p.get("response").map(to_text));
            }
            Some(other) => text.push(format!("[{other}]")),
            None => {}
        }
    }
    if !text.is_empty() {
        m.content = Some(text.join("\n"));
    }
    Some(m)
}

fn message_list(v: Option<Value>) -> Vec<Message> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(parts_message).collect(),
        _ => Vec::new(),
    }
}

/// A message from an event (`gen_ai.user.message` …; the body may sit in attributes).
fn event_message(e: &SpanEvent) -> Option<(bool, Message)> {
    let role = match e.name.as_str() {
        "gen_ai.system.message" => "system",
        "gen_ai.user.message" => "user",
        "gen_ai.assistant.message" => "assistant",
        "gen_ai.tool.message" => "tool",
        "gen_ai.choice" => "assistant",
        _ => return None,
    };
    let body = e
        .attributes
        .get("body")
        .or_else(|| e.attributes.get("gen_ai.event.content"))
        .map(json_value)
        .unwrap_or_else(|| Value::Object(e.attributes.clone()));
    let src = body.get("message").unwrap_or(&body);
    let mut m = Message {
        role: src
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or(role)
            .to_string(),
        content: src.get("content").and_then(content_text),
        tool_calls: src
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(openai_tool_call).collect())
            .unwrap_or_default(),
        tool_call_id: src
            .get("id")
            .or_else(|| src.get("tool_call_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if role != "tool" {
        m.tool_call_id = None;
    }
    Some((e.name == "gen_ai.choice", m))
}

/// Fills the read-time view.
pub fn view(a: &Map<String, Value>, events: &[SpanEvent], v: &mut LlmView) {
    if v.input_messages.is_empty() {
        let mut msgs = Vec::new();
        if let Some(Value::Array(parts)) = a.get(SYSTEM_INSTRUCTIONS).map(json_value) {
            let text: Vec<String> = parts
                .iter()
                .filter_map(|p| p.get("content").and_then(content_text))
                .collect();
            if !text.is_empty() {
                msgs.push(Message {
                    role: "system".into(),
                    content: Some(text.join("\n")),
                    ..Message::default()
                });
            }
        }
        let input = message_list(a.get(INPUT_MESSAGES).map(json_value));
        // Some senders repeat the instructions as the first input message.
        if input.first().is_some_and(|m| m.role == "system") {
            msgs.clear();
        }
        msgs.extend(input);
        v.input_messages = msgs;
    }
    if v.output_messages.is_empty() {
        v.output_messages = message_list(a.get(OUTPUT_MESSAGES).map(json_value));
    }
    // Older forms: one event per message, or one prompt/completion event with JSON.
    if v.input_messages.is_empty() && v.output_messages.is_empty() {
        for e in events {
            if let Some((is_output, m)) = event_message(e) {
                if is_output {
                    v.output_messages.push(m)
                } else {
                    v.input_messages.push(m)
                }
            } else if e.name == "gen_ai.content.prompt" {
                if let Some(Value::Array(msgs)) = e.attributes.get("gen_ai.prompt").map(json_value)
                {
                    v.input_messages
                        .extend(msgs.iter().filter_map(openai_message));
                }
            } else if e.name == "gen_ai.content.completion"
                && let Some(Value::Array(msgs)) =
                    e.attributes.get("gen_ai.completion").map(json_value)
            {
                v.output_messages
                    .extend(msgs.iter().filter_map(openai_message));
            }
        }
    }
    if v.request_params.is_empty() {
        for key in PARAM_KEYS {
            if let Some(val) = a.get(&format!("gen_ai.request.{key}")) {
                v.request_params.insert((*key).to_string(), val.clone());
            }
        }
    }
    if v.inputs.is_none() {
        v.inputs = a
            .get(INPUT_MESSAGES)
            .map(json_value)
            .or_else(|| a.get("gen_ai.tool.call.arguments").map(json_value));
    }
    if v.outputs.is_none() {
        v.outputs = a
            .get(OUTPUT_MESSAGES)
            .map(json_value)
            .or_else(|| a.get("gen_ai.tool.call.result").map(json_value));
    }
}
