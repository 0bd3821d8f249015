//! MLflow span attributes (`mlflow.*`), as the MLflow client sets them.

use serde_json::{Map, Value};

use super::view::{
    LlmView, Message, PARAM_KEYS, anthropic_messages, content_text, json_value, openai_message,
};
use super::{Derived, as_str, as_u64, json_field, json_str_field, maybe_json_object};

/// The span type MLflow assigned.
pub const SPAN_TYPE: &str = "mlflow.spanType";
/// The span's inputs, any JSON.
pub const SPAN_INPUTS: &str = "mlflow.spanInputs";
/// The span's outputs, any JSON.
pub const SPAN_OUTPUTS: &str = "mlflow.spanOutputs";
/// `{"input_tokens","output_tokens","total_tokens", cache_read_input_tokens …}`.
pub const TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
/// The model, when an integration sets it.
pub const LLM_MODEL: &str = "mlflow.llm.model";
/// The provider, when an integration sets it.
pub const LLM_PROVIDER: &str = "mlflow.llm.provider";
/// How to read messages in inputs and outputs: `openai`, `anthropic` …
pub const MESSAGE_FORMAT: &str = "mlflow.message.format";

/// Whether the span's attribute values are JSON text, as MLflow's own OTLP exporter writes them
/// (`mlflow.spanType` = `"\"LLM\""`); the tracking-server path sends typed values instead.
pub fn json_encoded(a: &Map<String, Value>) -> bool {
    matches!(a.get(SPAN_TYPE), Some(Value::String(s)) if s.starts_with('"'))
}

/// The attributes with every JSON-text value decoded (see [`json_encoded`]).
pub fn decoded(a: &Map<String, Value>) -> Map<String, Value> {
    a.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Whether any MLflow key is present.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.keys().any(|k| k.starts_with("mlflow."))
}

/// Fills what MLflow's keys say.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    if let Some(t) = as_str(a.get(SPAN_TYPE)) {
        // The Python client sometimes JSON-encodes the string a second time.
        d.span_type = t.trim_matches('"').to_string();
    }
    if let Some(usage) = a.get(TOKEN_USAGE).and_then(maybe_json_object) {
        d.input_tokens = usage.get("input_tokens").and_then(as_u64);
        d.output_tokens = usage.get("output_tokens").and_then(as_u64);
        d.total_tokens = usage.get("total_tokens").and_then(as_u64);
        d.cache_read_tokens = usage.get("cache_read_input_tokens").and_then(as_u64);
        d.cache_write_tokens = usage.get("cache_creation_input_tokens").and_then(as_u64);
    }
    // Only model calls carry a provider response; a chain may return one inside its own output.
    let model_call = matches!(d.span_type.as_str(), "CHAT_MODEL" | "LLM" | "EMBEDDING");
    if model_call
        && d.input_tokens.is_none()
        && d.output_tokens.is_none()
        && let Some(usage) = a
            .get(SPAN_OUTPUTS)
            .and_then(|o| json_field(o, "usage"))
            .and_then(|u| match u {
                Value::Object(u) => Some(u),
                _ => None,
            })
    {
        // No tokenUsage attribute (embeddings, say): the provider response's own usage.
        let get = |k: &str| usage.get(k).and_then(as_u64);
        d.input_tokens = get("prompt_tokens").or_else(|| get("input_tokens"));
        d.output_tokens = get("completion_tokens").or_else(|| get("output_tokens"));
        d.total_tokens = get("total_tokens");
    }
    if d.request_model.is_none() {
        d.request_model = as_str(a.get(LLM_MODEL)).or_else(|| {
            model_call
                .then(|| {
                    as_str(a.get("model"))
                        .or_else(|| a.get(SPAN_INPUTS).and_then(|i| json_str_field(i, "model")))
                })
                .flatten()
        });
    }
    if model_call && d.response_model.is_none() {
        d.response_model = a.get(SPAN_OUTPUTS).and_then(|o| json_str_field(o, "model"));
    }
    if d.provider.is_none() {
        d.provider = as_str(a.get(LLM_PROVIDER)).or_else(|| {
            // The OpenAI and Anthropic autologs mark their spans with their message format.
            as_str(a.get(MESSAGE_FORMAT))
                .filter(|f| matches!(f.as_str(), "openai" | "anthropic"))
                .filter(|_| d.request_model.is_some())
        });
    }
    if d.session_id.is_none() {
        d.session_id =
            as_str(a.get("session.id")).or_else(|| as_str(a.get("mlflow.trace.session")));
    }
    if d.user_id.is_none() {
        d.user_id = as_str(a.get("user.id")).or_else(|| as_str(a.get("mlflow.trace.user")));
    }
}

/// The logged inputs.
pub fn inputs(a: &Map<String, Value>) -> Option<Value> {
    a.get(SPAN_INPUTS).cloned()
}

/// The logged outputs.
pub fn outputs(a: &Map<String, Value>) -> Option<Value> {
    a.get(SPAN_OUTPUTS).cloned()
}

/// Messages of an Anthropic Messages API call: the request's `system` and `messages`, and the
/// response, which is itself a message.
fn anthropic_view(inputs: Option<&Value>, outputs: Option<&Value>, v: &mut LlmView) {
    if v.input_messages.is_empty()
        && let Some(i) = inputs
    {
        if let Some(system) = i.get("system").and_then(content_text) {
            v.input_messages.push(Message {
                role: "system".into(),
                content: Some(system),
                ..Message::default()
            });
        }
        if let Some(Value::Array(msgs)) = i.get("messages") {
            v.input_messages
                .extend(msgs.iter().flat_map(anthropic_messages));
        }
    }
    if v.output_messages.is_empty()
        && let Some(out) = outputs
    {
        v.output_messages = anthropic_messages(out);
    }
}

/// Fills the read-time view: OpenAI-format messages inside inputs and outputs.
pub fn view(a: &Map<String, Value>, v: &mut LlmView) {
    if v.inputs.is_none() {
        v.inputs = inputs(a);
    }
    if v.outputs.is_none() {
        v.outputs = outputs(a);
    }
    let inputs = a.get(SPAN_INPUTS).map(json_value);
    let outputs = a.get(SPAN_OUTPUTS).map(json_value);
    if as_str(a.get(MESSAGE_FORMAT)).as_deref() == Some("anthropic") {
        anthropic_view(inputs.as_ref(), outputs.as_ref(), v);
    }
    if v.input_messages.is_empty()
        && let Some(Value::Array(msgs)) = inputs.as_ref().and_then(|i| i.get("messages"))
    {
        v.input_messages = msgs.iter().filter_map(openai_message).collect();
    }
    if v.output_messages.is_empty()
        && let Some(out) = &outputs
    {
        // chat.completions: {"choices": [{"message": {...}}]}; a bare message also works.
        if let Some(Value::Array(choices)) = out.get("choices") {
            v.output_messages = choices
                .iter()
                .filter_map(|c| c.get("message").and_then(openai_message))
                .collect();
        } else if let Some(m) = openai_message(out) {
            v.output_messages = vec![m];
        }
    }
    if v.request_params.is_empty() {
        let source = inputs.as_ref().and_then(Value::as_object);
        for key in PARAM_KEYS {
            if let Some(val) = source.and_then(|i| i.get(*key)).or_else(|| a.get(*key)) {
                v.request_params.insert((*key).to_string(), val.clone());
            }
        }
    }
}
