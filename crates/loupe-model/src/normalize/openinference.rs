//! OpenInference (Arize Phoenix) attributes: `openinference.span.kind`, `llm.*`, `input.value`.

use serde_json::{Map, Value};

use super::flat::{indexed, s, sub_indexed};
use super::view::{Document, LlmView, Message, ToolCall, json_value};
use super::{Derived, as_str, as_u64, span_type};

/// The span kind: LLM, CHAIN, TOOL, RETRIEVER, EMBEDDING, AGENT, RERANKER, GUARDRAIL, EVALUATOR.
pub const SPAN_KIND: &str = "openinference.span.kind";
/// Model name.
pub const MODEL_NAME: &str = "llm.model_name";
/// Provider (`openai`, `anthropic` …).
pub const PROVIDER: &str = "llm.provider";
/// AI system (older spelling of the provider).
pub const SYSTEM: &str = "llm.system";
/// Request parameters as JSON text.
pub const INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
/// Prompt tokens.
pub const TOKENS_PROMPT: &str = "llm.token_count.prompt";
/// Completion tokens.
pub const TOKENS_COMPLETION: &str = "llm.token_count.completion";
/// Total tokens.
pub const TOKENS_TOTAL: &str = "llm.token_count.total";
/// Prompt tokens read from the cache.
pub const TOKENS_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
/// Prompt tokens written to the cache.
pub const TOKENS_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
/// Reasoning tokens.
pub const TOKENS_REASONING: &str = "llm.token_count.completion_details.reasoning";
/// Embedding model name.
pub const EMBEDDING_MODEL: &str = "embedding.model_name";
/// Input value (text or JSON).
pub const INPUT_VALUE: &str = "input.value";
/// Output value (text or JSON).
pub const OUTPUT_VALUE: &str = "output.value";

/// Whether this convention applies.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.contains_key(SPAN_KIND)
        || a.contains_key(MODEL_NAME)
        || a.keys()
            .any(|k| k.starts_with("llm.input_messages.") || k.starts_with("llm.token_count."))
}

/// Fills the derived fields.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    if d.span_type.is_empty()
        && let Some(kind) = as_str(a.get(SPAN_KIND))
    {
        d.span_type = match kind.to_ascii_uppercase().as_str() {
            // OpenInference's LLM kind covers chat models; tell them apart by messages.
            "LLM" if a.keys().any(|k| k.starts_with("llm.input_messages.")) => {
                span_type::CHAT_MODEL
            }
            "LLM" => span_type::LLM,
            "EMBEDDING" => span_type::EMBEDDING,
            "RETRIEVER" => span_type::RETRIEVER,
            "RERANKER" => span_type::RERANKER,
            "TOOL" => span_type::TOOL,
            "AGENT" => span_type::AGENT,
            "CHAIN" => span_type::CHAIN,
            "GUARDRAIL" => "GUARDRAIL",
            "EVALUATOR" => "EVALUATOR",
            _ => span_type::UNKNOWN,
        }
        .to_string();
    }
    if d.request_model.is_none() {
        d.request_model = as_str(a.get(MODEL_NAME)).or_else(|| as_str(a.get(EMBEDDING_MODEL)));
    }
    if d.provider.is_none() {
        d.provider = as_str(a.get(PROVIDER)).or_else(|| as_str(a.get(SYSTEM)));
    }
    let get = |k: &str| a.get(k).and_then(as_u64);
    d.input_tokens = d.input_tokens.or_else(|| get(TOKENS_PROMPT));
    d.output_tokens = d.output_tokens.or_else(|| get(TOKENS_COMPLETION));
    d.total_tokens = d.total_tokens.or_else(|| get(TOKENS_TOTAL));
    d.cache_read_tokens = d.cache_read_tokens.or_else(|| get(TOKENS_CACHE_READ));
    d.cache_write_tokens = d.cache_write_tokens.or_else(|| get(TOKENS_CACHE_WRITE));
    d.reasoning_tokens = d.reasoning_tokens.or_else(|| get(TOKENS_REASONING));
    if d.session_id.is_none() {
        d.session_id = as_str(a.get("session.id"));
    }
    if d.user_id.is_none() {
        d.user_id = as_str(a.get("user.id"));
    }
}

fn messages(a: &Map<String, Value>, prefix: &str) -> Vec<Message> {
    indexed(a, prefix)
        .into_values()
        .map(|m| {
            let mut content = s(&m, "message.content");
            if content.is_none() {
                let parts: Vec<String> = sub_indexed(&m, "message.contents.")
                    .into_values()
                    .filter_map(|p| {
                        s(&p, "message_content.text")
                            .or_else(|| s(&p, "message_content.type").map(|t| format!("[{t}]")))
                    })
                    .collect();
                if !parts.is_empty() {
                    content = Some(parts.join("\n"));
                }
            }
            Message {
                role: s(&m, "message.role").unwrap_or_default(),
                content,
                tool_calls: sub_indexed(&m, "message.tool_calls.")
                    .into_values()
                    .map(|t| ToolCall {
                        id: s(&t, "tool_call.id"),
                        name: s(&t, "tool_call.function.name").unwrap_or_default(),
                        arguments: s(&t, "tool_call.function.arguments").unwrap_or_default(),
                    })
                    .collect(),
                tool_call_id: s(&m, "message.tool_call_id"),
            }
        })
        .collect()
}

/// Fills the read-time view.
pub fn view(a: &Map<String, Value>, v: &mut LlmView) {
    if v.input_messages.is_empty() {
        v.input_messages = messages(a, "llm.input_messages.");
    }
    if v.output_messages.is_empty() {
        v.output_messages = messages(a, "llm.output_messages.");
    }
    if v.request_params.is_empty()
        && let Some(Value::Object(p)) = a.get(INVOCATION_PARAMETERS).map(json_value)
    {
        v.request_params = p;
    }
    if v.documents.is_empty() {
        v.documents = indexed(a, "retrieval.documents.")
            .into_values()
            .map(|d| Document {
                id: s(&d, "document.id"),
                content: s(&d, "document.content"),
                score: d.get("document.score").and_then(|v| v.as_f64()),
                metadata: d.get("document.metadata").map(|m| json_value(m)),
            })
            .collect();
    }
    if v.inputs.is_none() {
        v.inputs = a.get(INPUT_VALUE).map(json_value);
    }
    if v.outputs.is_none() {
        v.outputs = a.get(OUTPUT_VALUE).map(json_value);
    }
}
