//! A small RAG pipeline, traced: embed the question, retrieve the closest documents, answer
//! with a chat completion grounded in them. Any OpenAI-compatible server works
//! (`OPENAI_BASE_URL`, default the local mock at http://127.0.0.1:8000/v1); spans go to Loupe
//! (`LOUPE_ENDPOINT`, default http://127.0.0.1:4318). Prints the answer and the trace id.
//!
//!     cargo run -p loupe-sdk --example rag -- "How long do refunds take?"

use loupe_sdk::trace;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};

const DOCS: &[&str] = &[
    "Refunds are paid back to the original card within 5 business days.",
    "Orders ship from Lyon every weekday before noon.",
    "Gift cards never expire and cannot be refunded.",
];

type Error = Box<dyn std::error::Error + Send + Sync>;

fn base() -> String {
    std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8000/v1".into())
}

async fn post(http: &ClientWithMiddleware, path: &str, body: Value) -> Result<Value, Error> {
    Ok(http
        .post(format!("{}/{path}", base()))
        .bearer_auth(std::env::var("OPENAI_API_KEY").unwrap_or_else(|_| "sk-mock".into()))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn embed(http: &ClientWithMiddleware, texts: &[&str]) -> Result<Vec<Vec<f64>>, Error> {
    let v = post(
        http,
        "embeddings",
        json!({"model": "text-embedding-3-small", "input": texts}),
    )
    .await?;
    Ok(v["data"]
        .as_array()
        .ok_or("no embeddings in the response")?
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        })
        .collect())
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    dot / (norm(a) * norm(b))
}

#[trace(span_type = "RETRIEVER", skip(http))]
async fn retrieve(
    http: &ClientWithMiddleware,
    question: &str,
    k: usize,
) -> Result<Vec<String>, Error> {
    let mut vectors = embed(http, DOCS).await?;
    let q = embed(http, &[question])
        .await?
        .pop()
        .ok_or("no query embedding")?;
    let mut scored: Vec<(f64, &str)> = vectors
        .drain(..)
        .zip(DOCS)
        .map(|(v, d)| (cosine(&q, &v), *d))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(scored
        .into_iter()
        .take(k)
        .map(|(_, d)| d.to_string())
        .collect())
}

#[trace(span_type = "CHAIN", skip(http))]
async fn rag(http: &ClientWithMiddleware, question: String) -> Result<String, Error> {
    let context = retrieve(http, &question, 2).await?;
    let reply = post(http, "chat/completions", json!({
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": format!("Answer from these notes:\n{}", context.join("\n"))},
            {"role": "user", "content": question},
        ],
    }))
    .await?;
    Ok(reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let guard = loupe_sdk::init();
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "How long do refunds take?".into());
    let http = loupe_sdk::openai::client();
    let root = loupe_sdk::span("rag-example")
        .span_type("AGENT")
        .inputs(&question)
        .start();
    let trace_id = root.context().trace_id_hex();
    let answer = root.in_scope(rag(&http, question)).await?;
    drop(root);
    println!("{answer}");
    println!("trace_id={trace_id}");
    drop(guard);
    Ok(())
}
