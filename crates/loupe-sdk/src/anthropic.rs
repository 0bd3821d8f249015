//! Anthropic's Messages API (`POST /v1/messages`) as the middleware in [`crate::openai`] records
//! it: a `CHAT_MODEL` span with the GenAI request attributes, MLflow's Anthropic message format
//! (so Loupe shows the conversation, tool uses and results), and the usage with cached input
//! counted in the input tokens, as the OpenAI API counts it.

use serde_json::{Map, Value, json};

use crate::span::{ActiveSpan, span};

/// Request parameters recorded as `gen_ai.request.*`.
const PARAMS: &[(&str, &str)] = &[
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("stop_sequences", "gen_ai.request.stop_sequences"),
];

/// Whether a request path is the Messages API.
pub(crate) fn is_messages(path: &str) -> bool {
    path.trim_end_matches('/').ends_with("/v1/messages")
}

pub(crate) fn start_span(body: &Map<String, Value>) -> ActiveSpan {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let name = if model.is_empty() {
        "chat".to_string()
    } else {
        format!("chat {model}")
    };
    let mut s = span(name).span_type("CHAT_MODEL").start();
    if !s.is_recording() {
        return s;
    }
    s.set_attribute("gen_ai.operation.name", "chat");
    s.set_attribute("gen_ai.system", "anthropic");
    if !model.is_empty() {
        s.set_attribute("gen_ai.request.model", model);
    }
    for (key, attr) in PARAMS {
        if let Some(v) = body.get(*key).filter(|v| !v.is_null()) {
            s.set_attribute(*attr, v.clone());
        }
    }
    s.set_attribute("mlflow.message.format", "anthropic");
    if let Some(Value::Array(tools)) = body.get("tools") {
        // Shown in the OpenAI shape Loupe's tool list reads.
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.get("name"), "description": t.get("description"),
                    "parameters": t.get("input_schema"),
                }})
            })
            .collect();
        s.set_attribute("mlflow.chat.tools", tools);
    }
    s.set_inputs(&Value::Object(body.clone()));
    s
}

/// Records a whole response (a message, or one folded from a stream).
pub(crate) fn record_response(s: &mut ActiveSpan, message: &Value) {
    if let Some(m) = message.get("model").and_then(Value::as_str) {
        s.set_attribute("gen_ai.response.model", m);
    }
    if let Some(id) = message.get("id").and_then(Value::as_str) {
        s.set_attribute("gen_ai.response.id", id);
    }
    if let Some(r) = message.get("stop_reason").filter(|r| !r.is_null()) {
        s.set_attribute("gen_ai.response.finish_reasons", vec![r.clone()]);
    }
    if let Some(u) = message.get("usage").filter(|u| u.is_object()) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (read, write) = (
            get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"),
        );
        // Anthropic's `input_tokens` leaves out the cached ones; Loupe counts all input.
        let input = get("input_tokens") + read + write;
        let output = get("output_tokens");
        s.set_attribute("gen_ai.usage.input_tokens", input);
        s.set_attribute("gen_ai.usage.output_tokens", output);
        s.set_attribute("gen_ai.usage.cache_read.input_tokens", read);
        s.set_attribute("gen_ai.usage.cache_creation.input_tokens", write);
        s.set_attribute(
            "mlflow.chat.tokenUsage",
            json!({
                "input_tokens": input, "output_tokens": output, "total_tokens": input + output,
                "cache_read_input_tokens": read, "cache_creation_input_tokens": write,
            }),
        );
    }
    s.set_outputs(message);
}

/// Content blocks assembled from one stream at most.
const MAX_BLOCKS: u64 = 128;

/// A streamed response folded into the message it spells, or the stream's `error` event.
pub(crate) fn fold_stream(text: &str) -> Result<Value, String> {
    let mut message = json!({"type": "message", "role": "assistant", "content": []});
    let mut partial_json: Vec<String> = Vec::new();
    let events = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:").map(str::trim))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok());
    for event in events {
        let index = event
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(MAX_BLOCKS) as usize;
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(m @ Value::Object(_)) = event.get("message") {
                    let content = message["content"].take();
                    message = m.clone();
                    message["content"] = content;
                }
            }
            Some("content_block_start") => {
                let Some(blocks) = content_blocks(&mut message) else {
                    continue;
                };
                while blocks.len() <= index {
                    blocks.push(Value::Null);
                }
                blocks[index] = event.get("content_block").cloned().unwrap_or(Value::Null);
                while partial_json.len() <= index {
                    partial_json.push(String::new());
                }
            }
            Some("content_block_delta") => {
                let delta = &event["delta"];
                let Some(block) = content_blocks(&mut message).and_then(|b| b.get_mut(index))
                else {
                    continue;
                };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("input_json_delta") => {
                        if let (Some(p), Some(s)) =
                            (partial_json.get_mut(index), delta["partial_json"].as_str())
                        {
                            p.push_str(s);
                        }
                    }
                    _ => {}
                }
            }
            Some("content_block_stop") => {
                let json = partial_json.get(index).filter(|p| !p.is_empty()).cloned();
                if let (Some(block), Some(json)) = (
                    content_blocks(&mut message).and_then(|b| b.get_mut(index)),
                    json,
                ) {
                    block["input"] = serde_json::from_str(&json).unwrap_or(Value::String(json));
                }
            }
            Some("message_delta") => {
                for key in ["stop_reason", "stop_sequence"] {
                    if let Some(v) = event["delta"].get(key) {
                        message[key] = v.clone();
                    }
                }
                // The delta's usage is cumulative: it replaces what message_start said.
                if let Some(Value::Object(u)) = event.get("usage") {
                    for (k, v) in u {
                        message["usage"][k] = v.clone();
                    }
                }
            }
            Some("error") => {
                let e = &event["error"];
                return Err(format!(
                    "{}: {}",
                    e["type"].as_str().unwrap_or("error"),
                    e["message"].as_str().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
    Ok(message)
}

fn content_blocks(message: &mut Value) -> Option<&mut Vec<Value>> {
    if !message["content"].is_array() {
        message["content"] = Value::Array(Vec::new());
    }
    message["content"].as_array_mut()
}

fn append(block: &mut Value, key: &str, piece: &Value) {
    if let Some(p) = piece.as_str() {
        let text = format!("{}{p}", block[key].as_str().unwrap_or(""));
        block[key] = Value::String(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_fold_into_one_message() {
        let sse = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" check.\"}}\n\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
            "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let m = fold_stream(sse).unwrap();
        assert_eq!(m["id"], "msg_1");
        assert_eq!(m["content"][0]["text"], "Let me check.");
        assert_eq!(m["content"][1]["name"], "get_weather");
        assert_eq!(m["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["usage"]["output_tokens"], 15);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 100);
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(
            fold_stream(err).unwrap_err(),
            "overloaded_error: Overloaded"
        );
    }

    #[test]
    fn messages_paths() {
        assert!(is_messages("/v1/messages"));
        assert!(is_messages("/anthropic/v1/messages/"));
        assert!(!is_messages("/v1/messages/batches"));
        assert!(!is_messages("/v1/chat/completions"));
    }
}
