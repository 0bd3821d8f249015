//! The read-time LLM view of a span: messages, tool calls, documents, request parameters.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A tool call the model asked for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Tool (function) name.
    pub name: String,
    /// Arguments, as the JSON text the model produced.
    pub arguments: String,
}

/// One chat message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool` …
    pub role: String,
    /// Text content; multi-part text is joined, other parts are described in brackets.
    pub content: Option<String>,
    /// Tool calls in an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A retrieved document.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Document {
    /// Document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Relevance score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
}

/// An exception recorded on a span (the OTel `exception` event).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exception {
    /// Exception type, e.g. `ValueError`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Stack trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<String>,
    /// When, ns since the epoch.
    pub time_ns: u64,
}

/// What a reader sees of an LLM span beyond its columns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmView {
    /// Messages sent to the model.
    pub input_messages: Vec<Message>,
    /// Messages the model produced.
    pub output_messages: Vec<Message>,
    /// Tool calls the model asked for (from the output messages, or the span's own).
    pub tool_calls: Vec<ToolCall>,
    /// Request parameters (temperature, max_tokens …).
    pub request_params: Map<String, Value>,
    /// Retrieved documents.
    pub documents: Vec<Document>,
    /// Exceptions recorded on the span.
    pub exceptions: Vec<Exception>,
    /// Inputs as logged (any JSON).
    pub inputs: Option<Value>,
    /// Outputs as logged (any JSON).
    pub outputs: Option<Value>,
}

impl LlmView {
    /// Fills `tool_calls` from the output messages when no convention set them.
    pub(crate) fn finish(&mut self) {
        if self.tool_calls.is_empty() {
            self.tool_calls = self
                .output_messages
                .iter()
                .flat_map(|m| m.tool_calls.iter().cloned())
                .collect();
        }
    }
}

/// Parses a value that may be JSON text.
pub(crate) fn json_value(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                serde_json::from_str(s).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            }
        }
        other => other.clone(),
    }
}

/// JSON text of a value (strings stay as they are).
pub(crate) fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Text of message content in any of the usual shapes: a string, a list of parts
/// (`{"type": "text", "text": ...}`, `{"type": "text", "content": ...}`), or null.
pub(crate) fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => {
                        let kind = o.get("type").and_then(Value::as_str).unwrap_or("text");
                        if let Some(t) = o
                            .get("text")
                            .or_else(|| o.get("content"))
                            .and_then(Value::as_str)
                        {
                            out.push(t.to_string());
                        } else if !matches!(
                            kind,
                            "tool_call" | "tool-call" | "tool_call_response" | "tool-result"
                        ) {
                            out.push(format!("[{kind}]"));
                        }
                    }
                    _ => {}
                }
            }
            (!out.is_empty()).then(|| out.join("\n"))
        }
        Value::Object(o) => o
            .get("text")
            .or_else(|| o.get("content"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| Some(v.to_string())),
        other => Some(other.to_string()),
    }
}

/// An OpenAI-style tool call: `{"id", "type": "function", "function": {"name", "arguments"}}`,
/// or the flat `{"id", "name", "arguments"}` form.
pub(crate) fn openai_tool_call(v: &Value) -> Option<ToolCall> {
    let o = v.as_object()?;
    let f = o.get("function").and_then(Value::as_object).unwrap_or(o);
    let name = f.get("name").and_then(Value::as_str)?.to_string();
    Some(ToolCall {
        id: o.get("id").and_then(Value::as_str).map(str::to_string),
        name,
        arguments: f.get("arguments").map(to_text).unwrap_or_default(),
    })
}

/// An OpenAI-format chat message (`{"role", "content", "tool_calls", "tool_call_id"}`).
pub(crate) fn openai_message(v: &Value) -> Option<Message> {
    let o = v.as_object()?;
    let role = o.get("role").and_then(Value::as_str)?.to_string();
    Some(Message {
        role,
        content: o.get("content").and_then(content_text),
        tool_calls: o
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(openai_tool_call).collect())
            .unwrap_or_default(),
        tool_call_id: o
            .get("tool_call_id")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Messages from one Anthropic Messages API message (`{"role", "content": text | blocks}`):
/// text blocks are its content and `tool_use` blocks its tool calls; each `tool_result` block is
/// a `tool` message of its own, as in the OpenAI format.
pub(crate) fn anthropic_messages(v: &Value) -> Vec<Message> {
    let Some(role) = v.get("role").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut message = Message {
        role: role.to_string(),
        ..Message::default()
    };
    let mut results = Vec::new();
    let blocks = match v.get("content") {
        Some(Value::Array(blocks)) => blocks.as_slice(),
        other => {
            message.content = other.and_then(content_text);
            return vec![message];
        }
    };
    let mut text = Vec::new();
    for b in blocks {
        let id = || b.get("id").and_then(Value::as_str).map(str::to_string);
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.extend(b.get("text").and_then(Value::as_str).map(str::to_string)),
            Some("tool_use") => message.tool_calls.push(ToolCall {
                id: id(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: b.get("input").map(to_text).unwrap_or_default(),
            }),
            Some("tool_result") => results.push(Message {
                role: "tool".into(),
                content: b.get("content").and_then(content_text),
                tool_call_id: b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Message::default()
            }),
            // Reasoning is not part of the conversation shown.
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => text.push(format!("[{other}]")),
            None => {}
        }
    }
    if !text.is_empty() {
        message.content = Some(text.join("\n"));
    }
    if message.content.is_some() || !message.tool_calls.is_empty() || results.is_empty() {
        results.insert(0, message);
    }
    results
}

/// Request parameters worth showing, from a request object or attribute set.
pub(crate) const PARAM_KEYS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "stop_sequences",
    "n",
    "stream",
    "response_format",
    "reasoning_effort",
    "tool_choice",
];
