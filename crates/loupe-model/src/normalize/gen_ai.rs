//! OpenTelemetry GenAI semantic conventions (`gen_ai.*`).

use serde_json::{Map, Value};

use super::{Derived, as_str, as_u64, span_type};

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
/// Input messages (JSON), semantic conventions 1.37 and later.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// Output messages (JSON), semantic conventions 1.37 and later.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";

/// Whether any GenAI key is present.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.keys().any(|k| k.starts_with("gen_ai."))
}

/// Fills what the GenAI keys say, leaving fields already set alone.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    if d.span_type.is_empty()
        && let Some(op) = as_str(a.get(OPERATION_NAME))
    {
        d.span_type = match op.as_str() {
            "chat" => span_type::CHAT_MODEL,
            "text_completion" | "generate_content" => span_type::LLM,
            "embeddings" => span_type::EMBEDDING,
            "execute_tool" => span_type::TOOL,
            "invoke_agent" | "create_agent" => span_type::AGENT,
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
    if d.input_tokens.is_none() {
        d.input_tokens = a
            .get(USAGE_INPUT_TOKENS)
            .or_else(|| a.get(USAGE_PROMPT_TOKENS))
            .and_then(as_u64);
    }
    if d.output_tokens.is_none() {
        d.output_tokens = a
            .get(USAGE_OUTPUT_TOKENS)
            .or_else(|| a.get(USAGE_COMPLETION_TOKENS))
            .and_then(as_u64);
    }
}

fn json_attr(a: &Map<String, Value>, key: &str) -> Option<Value> {
    match a.get(key)? {
        Value::String(s) => {
            Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())))
        }
        v => Some(v.clone()),
    }
}

/// Input messages, when the span carries them.
pub fn inputs(a: &Map<String, Value>) -> Option<Value> {
    json_attr(a, INPUT_MESSAGES)
}

/// Output messages, when the span carries them.
pub fn outputs(a: &Map<String, Value>) -> Option<Value> {
    json_attr(a, OUTPUT_MESSAGES)
}
