//! Anthropic's Messages API traced with no code change: the same middleware client as for
//! OpenAI. The model asks for a tool, the example runs it and streams the answer to the tool's
//! result. `ANTHROPIC_BASE_URL` (default the local mock at http://127.0.0.1:8000),
//! `LOUPE_ENDPOINT` (default http://127.0.0.1:4318). Prints the answer and the trace id.
//!
//!     cargo run -p loupe-sdk --example anthropic -- "What is the weather in Paris?"

use loupe_sdk::trace;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

const MODEL: &str = "claude-sonnet-4-5";

#[trace(span_type = "TOOL")]
fn get_weather(city: &str) -> Result<String, Error> {
    Ok(format!("Sunny and 21°C in {city}"))
}

/// One Messages API request; a streamed reply is returned as its server-sent events' text.
async fn messages(http: &ClientWithMiddleware, body: Value) -> Result<reqwest::Response, Error> {
    let base =
        std::env::var("ANTHROPIC_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    Ok(http
        .post(format!("{}/v1/messages", base.trim_end_matches('/')))
        .header("x-api-key", "sk-ant-mock")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await?
        .error_for_status()?)
}

/// The text of a streamed reply: its `text_delta` pieces in order.
fn streamed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter(|e| e["delta"]["type"] == "text_delta")
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

#[trace(span_type = "AGENT", skip(http))]
async fn run_agent(http: &ClientWithMiddleware, question: String) -> Result<String, Error> {
    let tools = json!([{
        "name": "get_weather",
        "description": "The current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]);
    let system = "You answer weather questions with the get_weather tool.";
    let mut conversation = vec![json!({"role": "user", "content": question})];
    let reply: Value = messages(
        http,
        json!({"model": MODEL, "max_tokens": 256, "system": system, "messages": conversation, "tools": tools}),
    )
    .await?
    .json()
    .await?;
    let mut results = Vec::new();
    for block in reply["content"].as_array().into_iter().flatten() {
        if block["type"] == "tool_use" {
            let city = block["input"]["city"].as_str().unwrap_or("Paris");
            results.push(json!({"type": "tool_result", "tool_use_id": block["id"], "content": get_weather(city)?}));
        }
    }
    conversation.push(json!({"role": "assistant", "content": reply["content"]}));
    conversation.push(json!({"role": "user", "content": results}));
    let sse = messages(
        http,
        json!({"model": MODEL, "max_tokens": 256, "system": system, "messages": conversation, "tools": tools, "stream": true}),
    )
    .await?
    .text()
    .await?;
    Ok(streamed_text(&sse))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let guard = loupe_sdk::init();
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is the weather in Paris?".into());
    let http = loupe_sdk::openai::client();
    let root = loupe_sdk::span("anthropic-example")
        .span_type("CHAIN")
        .start();
    let trace_id = root.context().trace_id_hex();
    let answer = root.in_scope(run_agent(&http, question)).await?;
    drop(root);
    println!("{answer}");
    println!("trace_id={trace_id}");
    drop(guard);
    Ok(())
}
