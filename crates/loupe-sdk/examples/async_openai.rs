//! The `async-openai` client, traced: a chat completion, a streamed one (with usage) and an
//! embedding, under one root span. `OPENAI_BASE_URL` (default the local mock at
//! http://127.0.0.1:8000/v1), `LOUPE_ENDPOINT` (default http://127.0.0.1:4318). Prints the
//! replies and the trace id.
//!
//!     cargo run -p loupe-sdk --example async_openai

use async_openai::config::OpenAIConfig;
use futures_core::Stream;
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The next item of a stream (without pulling in a stream-combinator crate).
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let guard = loupe_sdk::init();
    let base =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000/v1".into());
    let client = loupe_sdk::async_openai::Traced::new(async_openai::Client::with_config(
        OpenAIConfig::new()
            .with_api_base(base)
            .with_api_key("sk-mock"),
    ));
    let root = loupe_sdk::span("async-openai-example")
        .span_type("CHAIN")
        .start();
    let trace_id = root.context().trace_id_hex();
    root.in_scope(async {
        let reply = client
            .chat(serde_json::from_value(json!({
                "model": "gpt-4o-mini",
                "temperature": 0.5,
                "messages": [{"role": "user", "content": "Say hello to Loupe"}],
            }))?)
            .await?;
        println!(
            "chat: {}",
            reply.choices[0].message.content.clone().unwrap_or_default()
        );
        let mut stream = client
            .chat_stream(serde_json::from_value(json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Stream a short reply"}],
                "stream_options": {"include_usage": true},
            }))?)
            .await?;
        let mut text = String::new();
        while let Some(chunk) = next(&mut stream).await {
            for c in chunk?.choices {
                text.push_str(&c.delta.content.unwrap_or_default());
            }
        }
        drop(stream);
        println!("stream: {text}");
        let e = client
            .embeddings(serde_json::from_value(json!({
                "model": "text-embedding-3-small",
                "input": "Loupe traces every LLM call.",
            }))?)
            .await?;
        println!("embedding: {} dimensions", e.data[0].embedding.len());
        Ok::<_, Error>(())
    })
    .await?;
    drop(root);
    println!("trace_id={trace_id}");
    drop(guard);
    Ok(())
}
