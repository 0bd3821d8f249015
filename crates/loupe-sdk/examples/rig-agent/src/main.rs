//! An agent built with [rig](https://rig.rs), traced with no change to rig: rig describes its
//! runs with `tracing` spans and GenAI fields (an `invoke_agent` span, a `chat` span per model
//! call, an `execute_tool` span per tool call), and `loupe_sdk::tracing_layer()` turns them into
//! Loupe spans under the `#[trace]` function that runs the agent. `OPENAI_BASE_URL` (default the
//! local mock at http://127.0.0.1:8000/v1), `LOUPE_ENDPOINT` (default http://127.0.0.1:4318).
//! Prints the answer and the trace id.
//!
//!     cargo run --manifest-path crates/loupe-sdk/examples/rig-agent/Cargo.toml -- "What is the weather in Paris?"

use std::convert::Infallible;

use rig_agent::AgentBuilder;
use rig_agent::tool::{Tool, ToolContext};
use rig_core::providers::openai::OpenAIConfig;
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The agent's one tool.
struct GetWeather;

#[derive(Deserialize)]
struct GetWeatherArgs {
    city: String,
}

impl Tool for GetWeather {
    const NAME: &'static str = "get_weather";
    type Args = GetWeatherArgs;
    // A String result becomes a text tool result (not a JSON-quoted string).
    type Output = String;
    type Error = Infallible;

    fn description(&self) -> String {
        "Get the current weather for a city.".to_string()
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "city": { "type": "string", "description": "Name of the city" }
            },
            "required": ["city"]
        })
    }

    async fn call(
        &self,
        _context: &mut ToolContext,
        args: Self::Args,
    ) -> Result<Self::Output, Self::Error> {
        Ok(format!("It is sunny and 22°C in {}.", args.city))
    }
}

pub const PREAMBLE: &str =
    "You are a helpful assistant. Use the get_weather tool for weather questions.";

#[loupe_sdk::trace(span_type = "AGENT")]
async fn run(question: String) -> Result<String, String> {
    let base_url =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000/v1".into());
    // `.chat(model)` speaks the Chat Completions API (`.completion(model)` would pick OpenAI's
    // Responses API, which the mock does not serve).
    let model = OpenAIConfig::new("sk-mock")
        .with_base_url(base_url)
        .client()
        .chat("gpt-4o-mini");
    let agent = AgentBuilder::new(model)
        .name("weather_agent")
        .preamble(PREAMBLE)
        .tool(GetWeather)
        // Messages, tool arguments and results are recorded only when asked for.
        .record_content_telemetry(true)
        .build();
    // A turn is one model call: the tool call, then the answer.
    let response = agent
        .prompt(question)
        .max_turns(4)
        .run()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.output())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let guard = loupe_sdk::init();
    tracing_subscriber::registry()
        .with(loupe_sdk::tracing_layer())
        .init();
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is the weather in Paris?".into());
    let root = loupe_sdk::span("rig-agent-example")
        .span_type("CHAIN")
        .start();
    let trace_id = root.context().trace_id_hex();
    let answer = root.in_scope(run(question)).await?;
    drop(root);
    println!("{answer}");
    println!("trace_id={trace_id}");
    drop(guard);
    Ok(())
}
