//! A tool-calling agent, traced: the model asks for a tool, the agent runs it and sends the
//! result back, the model answers. `OPENAI_BASE_URL` (default the local mock at
//! http://127.0.0.1:8000/v1), `LOUPE_ENDPOINT` (default http://127.0.0.1:4318). Prints the
//! answer and the trace id.
//!
//!     cargo run -p loupe-sdk --example agent -- "What is the weather in Paris?"

use loupe_sdk::trace;
use reqwest_middleware::ClientWithMiddleware;
use serde::Deserialize;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Deserialize, serde::Serialize)]
struct WeatherArgs {
    city: String,
}

#[trace(span_type = "TOOL")]
fn get_weather(args: &WeatherArgs) -> Result<String, Error> {
    Ok(format!("Sunny and 21°C in {}", args.city))
}

#[trace(span_type = "AGENT", skip(http))]
async fn run_agent(http: &ClientWithMiddleware, question: String) -> Result<String, Error> {
    let url = format!(
        "{}/chat/completions",
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000/v1".into())
    );
    let tools = json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }]);
    let mut messages = vec![json!({"role": "user", "content": question})];
    for _ in 0..4 {
        let reply: Value = http
            .post(&url)
            .bearer_auth("sk-mock")
            .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let message = reply["choices"][0]["message"].clone();
        let calls = message["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if calls.is_empty() {
            return Ok(message["content"].as_str().unwrap_or_default().to_string());
        }
        messages.push(message);
        for call in calls {
            let args: WeatherArgs =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))?;
            let result = get_weather(&args)?;
            messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": result}));
        }
    }
    Err("the model kept calling tools".into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let guard = loupe_sdk::init();
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is the weather in Paris?".into());
    let http = loupe_sdk::openai::client();
    let root = loupe_sdk::span("agent-example").span_type("CHAIN").start();
    let trace_id = root.context().trace_id_hex();
    let answer = root.in_scope(run_agent(&http, question)).await?;
    drop(root);
    println!("{answer}");
    println!("trace_id={trace_id}");
    drop(guard);
    Ok(())
}
