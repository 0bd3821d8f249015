//! One test per convention, with attribute sets shaped as each instrumentor writes them.

use serde_json::{Map, Value, json};

use super::{SpanEvent, derive, view};

fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

#[test]
fn openinference_chat_with_tool_call() {
    let a = attrs(json!({
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.provider": "openai",
        "llm.invocation_parameters": "{\"temperature\": 0.2, \"max_tokens\": 50}",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Weather in Paris?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{\"city\": \"Paris\"}",
        "llm.token_count.prompt": 20,
        "llm.token_count.completion": 5,
        "llm.token_count.total": 25,
        "llm.token_count.prompt_details.cache_read": 4,
        "session.id": "s-1",
        "user.id": "u-1",
        "input.value": "{\"messages\": []}",
        "input.mime_type": "application/json"
    }));
    let d = derive(&a);
    assert_eq!(d.convention, Some("openinference"));
    assert_eq!(d.span_type, "CHAT_MODEL");
    assert_eq!(d.model(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(d.provider.as_deref(), Some("openai"));
    assert_eq!(
        (
            d.input_tokens,
            d.output_tokens,
            d.total_tokens,
            d.cache_read_tokens
        ),
        (Some(20), Some(5), Some(25), Some(4))
    );
    assert_eq!(
        (d.session_id.as_deref(), d.user_id.as_deref()),
        (Some("s-1"), Some("u-1"))
    );
    let v = view(&a, &[]);
    assert_eq!(v.input_messages.len(), 2);
    assert_eq!(
        v.input_messages[1].content.as_deref(),
        Some("Weather in Paris?")
    );
    assert_eq!(v.tool_calls.len(), 1);
    assert_eq!(v.tool_calls[0].name, "get_weather");
    assert_eq!(v.tool_calls[0].id.as_deref(), Some("call_1"));
    assert_eq!(v.request_params.get("temperature"), Some(&json!(0.2)));
    assert_eq!(v.inputs, Some(json!({"messages": []})));
}

#[test]
fn openinference_retriever_documents() {
    let a = attrs(json!({
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "d1",
        "retrieval.documents.0.document.content": "Refunds take 5 days.",
        "retrieval.documents.0.document.score": 0.91,
        "retrieval.documents.1.document.content": "Shipping is free."
    }));
    assert_eq!(derive(&a).span_type, "RETRIEVER");
    let v = view(&a, &[]);
    assert_eq!(v.documents.len(), 2);
    assert_eq!(v.documents[0].score, Some(0.91));
    assert_eq!(v.documents[1].content.as_deref(), Some("Shipping is free."));
}

#[test]
fn openllmetry_chat() {
    let a = attrs(json!({
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Hi",
        "gen_ai.prompt.1.role": "tool",
        "gen_ai.prompt.1.content": "sunny",
        "gen_ai.prompt.1.tool_call_id": "call_1",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Hello!",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.usage.prompt_tokens": 9,
        "gen_ai.usage.completion_tokens": 3,
        "llm.usage.total_tokens": 12,
        "traceloop.association.properties.session_id": "s-2",
        "traceloop.association.properties.user_id": "u-2"
    }));
    let d = derive(&a);
    assert_eq!(d.convention, Some("openllmetry"));
    assert_eq!(d.span_type, "CHAT_MODEL");
    assert_eq!(d.model(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(
        (d.input_tokens, d.output_tokens, d.total_tokens),
        (Some(9), Some(3), Some(12))
    );
    assert_eq!(d.session_id.as_deref(), Some("s-2"));
    let v = view(&a, &[]);
    assert_eq!(v.input_messages[1].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(v.output_messages[0].content.as_deref(), Some("Hello!"));
    assert_eq!(v.request_params.get("max_tokens"), Some(&json!(50)));
}

#[test]
fn gen_ai_latest_messages_and_events() {
    let a = attrs(json!({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.usage.cache_read.input_tokens": 10,
        "gen_ai.conversation.id": "conv-9",
        "gen_ai.system_instructions": "[{\"type\": \"text\", \"content\": \"Be brief.\"}]",
        "gen_ai.input.messages": "[{\"role\": \"user\", \"parts\": [{\"type\": \"text\", \"content\": \"Weather?\"}]}, {\"role\": \"tool\", \"parts\": [{\"type\": \"tool_call_response\", \"id\": \"c1\", \"response\": \"sunny\"}]}]",
        "gen_ai.output.messages": "[{\"role\": \"assistant\", \"parts\": [{\"type\": \"tool_call\", \"id\": \"c2\", \"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}], \"finish_reason\": \"tool_call\"}]"
    }));
    let d = derive(&a);
    assert_eq!(
        (
            d.span_type.as_str(),
            d.cache_read_tokens,
            d.session_id.as_deref()
        ),
        ("CHAT_MODEL", Some(10), Some("conv-9"))
    );
    let v = view(&a, &[]);
    assert_eq!(v.input_messages.len(), 3);
    assert_eq!(v.input_messages[0].role, "system");
    assert_eq!(v.input_messages[2].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(v.input_messages[2].content.as_deref(), Some("sunny"));
    assert_eq!(v.tool_calls[0].name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&v.tool_calls[0].arguments).unwrap(),
        json!({"city": "Paris"})
    );

    // The event form (one event per message).
    let plain = attrs(json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}));
    let events = vec![
        SpanEvent {
            name: "gen_ai.user.message".into(),
            time_ns: 1,
            attributes: attrs(json!({"gen_ai.system": "openai", "content": "Hi"})),
        },
        SpanEvent {
            name: "gen_ai.choice".into(),
            time_ns: 2,
            attributes: attrs(
                json!({"body": "{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": \"Hello\"}}"}),
            ),
        },
    ];
    let mut events = events;
    events.push(SpanEvent {
        name: "exception".into(),
        time_ns: 3,
        attributes: attrs(
            json!({"exception.type": "RateLimitError", "exception.message": "slow down"}),
        ),
    });
    let v = view(&plain, &events);
    assert_eq!(v.exceptions.len(), 1);
    assert_eq!(v.exceptions[0].kind.as_deref(), Some("RateLimitError"));
    assert_eq!(v.exceptions[0].message.as_deref(), Some("slow down"));
    assert_eq!(v.input_messages[0].content.as_deref(), Some("Hi"));
    assert_eq!(v.output_messages[0].content.as_deref(), Some("Hello"));
}

#[test]
fn vercel_ai_counts_usage_once() {
    let outer = attrs(json!({
        "ai.operationId": "ai.generateText",
        "ai.model.id": "gpt-4o-mini",
        "ai.model.provider": "openai.chat",
        "ai.usage.promptTokens": 40,
        "ai.usage.completionTokens": 10,
        "ai.telemetry.metadata.sessionId": "s-3",
        "ai.telemetry.metadata.userId": "u-3"
    }));
    let d = derive(&outer);
    assert_eq!(d.convention, Some("vercel_ai"));
    assert_eq!(d.span_type, "CHAIN");
    assert_eq!(
        d.input_tokens, None,
        "the outer call repeats its children's usage"
    );
    assert_eq!(
        (d.session_id.as_deref(), d.provider.as_deref()),
        (Some("s-3"), Some("openai"))
    );
    let inner = attrs(json!({
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.id": "gpt-4o-mini",
        "ai.model.provider": "openai.chat",
        "ai.prompt.messages": "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Weather?\"}]}, {\"role\": \"assistant\", \"content\": [{\"type\": \"tool-call\", \"toolCallId\": \"c1\", \"toolName\": \"get_weather\", \"input\": {\"city\": \"Paris\"}}]}, {\"role\": \"tool\", \"content\": [{\"type\": \"tool-result\", \"toolCallId\": \"c1\", \"toolName\": \"get_weather\", \"output\": {\"type\": \"json\", \"value\": {\"temp\": 21}}}]}]",
        "ai.response.text": "It is 21 degrees.",
        "ai.usage.inputTokens": 40,
        "ai.usage.outputTokens": 10,
        "ai.settings.temperature": 0.2,
        "ai.settings.maxOutputTokens": 50,
        "ai.settings.topP": 0.9,
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18"
    }));
    let d = derive(&inner);
    assert_eq!(
        (d.span_type.as_str(), d.input_tokens, d.output_tokens),
        ("CHAT_MODEL", Some(40), Some(10))
    );
    assert_eq!(d.model(), Some("gpt-4o-mini-2024-07-18"));
    let v = view(&inner, &[]);
    assert_eq!(v.input_messages.len(), 4);
    assert_eq!(v.input_messages[2].tool_calls[0].name, "get_weather");
    assert_eq!(v.input_messages[3].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(
        v.input_messages[3].content.as_deref(),
        Some("{\"temp\":21}")
    );
    assert_eq!(
        v.output_messages[0].content.as_deref(),
        Some("It is 21 degrees.")
    );
    assert_eq!(v.request_params.get("temperature"), Some(&json!(0.2)));
    assert_eq!(v.request_params.get("max_tokens"), Some(&json!(50)));
    assert_eq!(v.request_params.get("top_p"), Some(&json!(0.9)));
    let tool = attrs(
        json!({"ai.operationId": "ai.toolCall", "ai.toolCall.name": "get_weather", "ai.toolCall.args": "{\"city\":\"Paris\"}", "ai.toolCall.result": "{\"temp\":21}"}),
    );
    assert_eq!(derive(&tool).span_type, "TOOL");
    assert_eq!(view(&tool, &[]).outputs, Some(json!({"temp": 21})));
}

#[test]
fn mlflow_openai_autolog() {
    let a = attrs(json!({
        "mlflow.spanType": "CHAT_MODEL",
        "mlflow.message.format": "openai",
        "mlflow.spanInputs": {"messages": [{"role": "user", "content": "Hi"}], "model": "gpt-4o-mini", "temperature": 0.2},
        "mlflow.spanOutputs": {"model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}]},
        "mlflow.chat.tokenUsage": {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16},
        "model": "gpt-4o-mini",
        "temperature": 0.2
    }));
    let d = derive(&a);
    assert_eq!(
        (d.span_type.as_str(), d.model(), d.provider.as_deref()),
        ("CHAT_MODEL", Some("gpt-4o-mini-2024-07-18"), Some("openai"))
    );
    assert_eq!(d.total_tokens, Some(16));
    let v = view(&a, &[]);
    assert_eq!(v.input_messages[0].content.as_deref(), Some("Hi"));
    assert_eq!(v.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
    assert_eq!(v.request_params.get("temperature"), Some(&json!(0.2)));
}

#[test]
fn anthropic_messages_read_as_a_conversation() {
    let a = attrs(json!({
        "mlflow.spanType": "CHAT_MODEL",
        "mlflow.message.format": "anthropic",
        "mlflow.spanInputs": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "stop_sequences": ["END"],
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "use the tool"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21 C"}]}
                ]}
            ]
        },
        "mlflow.spanOutputs": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "It is 21 C."}], "stop_reason": "end_turn"}
    }));
    let d = derive(&a);
    assert_eq!(
        (d.model(), d.provider.as_deref()),
        (Some("claude-sonnet-4-5-20250929"), Some("anthropic"))
    );
    let v = view(&a, &[]);
    let shown: Vec<(&str, Option<&str>)> = v
        .input_messages
        .iter()
        .map(|m| (m.role.as_str(), m.content.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("system", Some("Be brief.")),
            ("user", Some("Weather in Paris?")),
            ("assistant", None),
            ("tool", Some("21 C")),
        ]
    );
    assert_eq!(v.input_messages[2].tool_calls[0].name, "get_weather");
    assert_eq!(
        v.input_messages[2].tool_calls[0].arguments,
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(v.input_messages[3].tool_call_id.as_deref(), Some("toolu_1"));
    assert_eq!(v.output_messages[0].content.as_deref(), Some("It is 21 C."));
    assert_eq!(
        v.request_params.get("stop_sequences"),
        Some(&json!(["END"]))
    );
}

#[test]
fn gen_ai_agent_spans_do_not_count_their_calls_twice() {
    let agent = attrs(json!({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "weather_agent",
        "gen_ai.usage.input_tokens": 63,
        "gen_ai.usage.output_tokens": 16,
    }));
    let d = derive(&agent);
    assert_eq!(d.span_type, "AGENT");
    assert_eq!(
        (d.input_tokens, d.output_tokens, d.total_tokens),
        (None, None, None)
    );
    let chat = attrs(json!({
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 28,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.system_instructions": "[{\"type\":\"text\",\"content\":\"Be brief.\"}]",
        "gen_ai.input.messages": "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be brief.\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Hi\"}]}]",
    }));
    assert_eq!(derive(&chat).total_tokens, Some(35));
    let roles: Vec<String> = view(&chat, &[])
        .input_messages
        .into_iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(
        roles,
        ["system", "user"],
        "instructions repeated as a message are shown once"
    );
}
