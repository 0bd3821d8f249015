//! The SDK against a real Loupe (in this process, port 0): traced sync and async functions,
//! nesting across `.await` and `spawn`, errors and panics, manual spans, tags; read back through
//! Loupe's JSON API.

#![allow(clippy::unwrap_used)]

mod loupe;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Serialize)]
struct Query {
    text: String,
    k: usize,
}

#[loupe_sdk::trace(span_type = "RETRIEVER")]
async fn retrieve(query: &Query) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    (0..query.k)
        .map(|i| format!("doc {i} about {}", query.text))
        .collect()
}

#[loupe_sdk::trace(name = "lookup_order", span_type = "TOOL")]
fn lookup(order: u64) -> Result<String, std::io::Error> {
    if order == 0 {
        return Err(std::io::Error::other("no such order"));
    }
    Ok(format!("order {order} shipped"))
}

struct Client;

#[loupe_sdk::trace(span_type = "CHAT_MODEL", skip(_client))]
async fn chat(_client: &Client, prompt: String) -> String {
    let mut s = loupe_sdk::span("tokenize")
        .span_type("PARSER")
        .inputs(&prompt)
        .start();
    s.set_outputs(&prompt.split_whitespace().count());
    s.set_attribute("gen_ai.request.model", "gpt-4o-mini");
    drop(s);
    format!("answer to {prompt}")
}

#[loupe_sdk::trace(span_type = "AGENT")]
async fn agent(question: String) -> String {
    let docs = retrieve(&Query {
        text: question.clone(),
        k: 2,
    })
    .await;
    let ok = lookup(42).unwrap();
    let failed = lookup(0).is_err();
    // A task spawned with the helper nests under this span.
    let spawned = loupe_sdk::spawn(async { lookup(7).unwrap() })
        .await
        .unwrap();
    let reply = chat(&Client, format!("{question} {}", docs.len())).await;
    format!("{reply}; {ok}; {spawned}; failed={failed}")
}

#[loupe_sdk::trace]
fn explode(n: u32) -> u32 {
    if n > 1 {
        panic!("boom {n}");
    }
    n
}

use loupe::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_loupe_as_one_tree() {
    let (url, _dir) = loupe::start().await;

    let guard = loupe_sdk::Config::default()
        .endpoint(url.clone())
        .project("sdk-test")
        .init();
    let reply = agent("where is my order".into()).await;
    assert!(reply.contains("failed=true"), "{reply}");
    let trace_id = {
        let mut root = loupe_sdk::span("manual-root").span_type("CHAIN").start();
        root.set_tag("env", "test");
        let id = root.context().trace_id_hex();
        let _e = root.enter();
        let caught = std::panic::catch_unwind(|| explode(3));
        assert!(caught.is_err());
        assert_eq!(explode(1), 1);
        id
    };
    assert!(loupe_sdk::flush(Duration::from_secs(10)), "flush timed out");
    drop(guard);
    assert_eq!(loupe_sdk::dropped_spans(), 0);

    let list = get(&format!("{url}/api/v1/traces?project=sdk-test")).await;
    let traces = list["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 2, "{list}");
    let agent_trace = traces.iter().find(|t| t["name"] == "agent").unwrap();
    assert_eq!(
        agent_trace["span_count"], 7,
        "agent, retrieve, 3 lookups, chat, tokenize"
    );
    let detail = get(&format!(
        "{url}/api/v1/traces/{}",
        agent_trace["trace_id"].as_str().unwrap()
    ))
    .await;
    let spans = detail["spans"].as_array().unwrap();
    let by_name = |n: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == n).collect() };
    let root = by_name("agent")[0];
    assert_eq!(root["parent_id"], Value::Null);
    assert_eq!(root["span_type"], "AGENT");
    assert_eq!(root["inputs"], json!({"question": "where is my order"}));
    assert!(
        root["outputs"]
            .as_str()
            .unwrap()
            .starts_with("answer to where is my order 2")
    );
    let retrieve = by_name("retrieve")[0];
    assert_eq!(
        retrieve["parent_id"], root["span_id"],
        "nested across .await"
    );
    assert_eq!(
        retrieve["inputs"],
        json!({"query": {"text": "where is my order", "k": 2}})
    );
    assert_eq!(retrieve["outputs"].as_array().unwrap().len(), 2);
    let lookups = by_name("lookup_order");
    assert_eq!(lookups.len(), 3);
    assert!(
        lookups.iter().all(|s| s["parent_id"] == root["span_id"]),
        "spawned task nests too"
    );
    let failed = lookups
        .iter()
        .find(|s| s["inputs"] == json!({"order": 0}))
        .unwrap();
    assert_eq!(failed["status"], "ERROR");
    assert_eq!(failed["exceptions"][0]["message"], "no such order");
    let chat = by_name("chat")[0];
    assert_eq!(chat["span_type"], "CHAT_MODEL");
    assert_eq!(
        chat["inputs"],
        json!({"prompt": "where is my order 2"}),
        "skipped argument left out"
    );
    let tokenize = by_name("tokenize")[0];
    assert_eq!(tokenize["parent_id"], chat["span_id"]);
    assert_eq!(tokenize["outputs"], json!(5));
    assert_eq!(tokenize["model"], "gpt-4o-mini");

    let manual = get(&format!("{url}/api/v1/traces/{trace_id}")).await;
    let spans = manual["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{manual}");
    let boom = spans
        .iter()
        .find(|s| s["inputs"] == json!({"n": 3}))
        .unwrap();
    assert_eq!(boom["status"], "ERROR", "a panic marks the span");
    assert_eq!(boom["exceptions"][0]["type"], "panic");
    let fine = spans
        .iter()
        .find(|s| s["inputs"] == json!({"n": 1}))
        .unwrap();
    assert_eq!(
        (fine["status"].as_str(), &fine["outputs"]),
        (Some("OK"), &json!(1))
    );
}

#[test]
fn misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
