//! OpenLLMetry (Traceloop) attributes: `traceloop.*`, `llm.request.type`, and the indexed
//! `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*` message keys.

use serde_json::{Map, Value};

use super::flat::{indexed, s, sub_indexed};
use super::view::{LlmView, Message, PARAM_KEYS, ToolCall, json_value};
use super::{Derived, as_str, as_u64, span_type};

/// `workflow`, `task`, `agent`, `tool`.
pub const SPAN_KIND: &str = "traceloop.span.kind";
/// `chat`, `completion`, `embedding`, `rerank`.
pub const REQUEST_TYPE: &str = "llm.request.type";
/// Entity input (JSON text).
pub const ENTITY_INPUT: &str = "traceloop.entity.input";
/// Entity output (JSON text).
pub const ENTITY_OUTPUT: &str = "traceloop.entity.output";
/// Association properties (session, user …) are `traceloop.association.properties.<name>`.
pub const ASSOCIATION: &str = "traceloop.association.properties.";
/// Total tokens.
pub const TOTAL_TOKENS: &str = "llm.usage.total_tokens";
/// Cached prompt tokens.
pub const CACHE_READ: &str = "gen_ai.usage.cache_read_input_tokens";
/// Prompt tokens written to the cache.
pub const CACHE_WRITE: &str = "gen_ai.usage.cache_creation_input_tokens";
/// Reasoning tokens.
pub const REASONING: &str = "gen_ai.usage.reasoning_tokens";

/// Whether this convention applies.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.contains_key(SPAN_KIND)
        || a.contains_key(REQUEST_TYPE)
        || a.keys().any(|k| {
            k.starts_with("gen_ai.prompt.")
                || k.starts_with("gen_ai.completion.")
                || k.starts_with("traceloop.")
        })
}

/// Fills the derived fields.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    if d.span_type.is_empty() {
        let t = match as_str(a.get(REQUEST_TYPE)).as_deref() {
            Some("chat") => span_type::CHAT_MODEL,
            Some("completion") => span_type::LLM,
            Some("embedding") => span_type::EMBEDDING,
            Some("rerank") => span_type::RERANKER,
            _ => match as_str(a.get(SPAN_KIND)).as_deref() {
                Some("workflow") | Some("task") => span_type::CHAIN,
                Some("agent") => span_type::AGENT,
                Some("tool") => span_type::TOOL,
                _ => "",
            },
        };
        d.span_type = t.to_string();
    }
    let get = |k: &str| a.get(k).and_then(as_u64);
    d.total_tokens = d.total_tokens.or_else(|| get(TOTAL_TOKENS));
    d.cache_read_tokens = d.cache_read_tokens.or_else(|| get(CACHE_READ));
    d.cache_write_tokens = d.cache_write_tokens.or_else(|| get(CACHE_WRITE));
    d.reasoning_tokens = d.reasoning_tokens.or_else(|| get(REASONING));
    for (key, slot) in [
        ("session_id", &mut d.session_id),
        ("user_id", &mut d.user_id),
    ] {
        if slot.is_none() {
            *slot = as_str(a.get(&format!("{ASSOCIATION}{key}")));
        }
    }
}

fn messages(a: &Map<String, Value>, prefix: &str) -> Vec<Message> {
    indexed(a, prefix)
        .into_values()
        .map(|m| Message {
            role: s(&m, "role").unwrap_or_default(),
            content: s(&m, "content"),
            tool_calls: sub_indexed(&m, "tool_calls.")
                .into_values()
                .map(|t| ToolCall {
                    id: s(&t, "id"),
                    name: s(&t, "name").unwrap_or_default(),
                    arguments: s(&t, "arguments").unwrap_or_default(),
                })
                .collect(),
            tool_call_id: s(&m, "tool_call_id"),
        })
        .collect()
}

/// Fills the read-time view.
pub fn view(a: &Map<String, Value>, v: &mut LlmView) {
    if v.input_messages.is_empty() {
        v.input_messages = messages(a, "gen_ai.prompt.");
    }
    if v.output_messages.is_empty() {
        v.output_messages = messages(a, "gen_ai.completion.");
    }
    if v.request_params.is_empty() {
        for key in PARAM_KEYS {
            if let Some(val) = a
                .get(&format!("gen_ai.request.{key}"))
                .or_else(|| a.get(&format!("llm.request.{key}")))
            {
                v.request_params.insert((*key).to_string(), val.clone());
            }
        }
    }
    if v.inputs.is_none() {
        v.inputs = a.get(ENTITY_INPUT).map(json_value);
    }
    if v.outputs.is_none() {
        v.outputs = a.get(ENTITY_OUTPUT).map(json_value);
    }
}
