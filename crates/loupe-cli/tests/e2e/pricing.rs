//! Prices end to end: names as clients send them are priced, and a model the book does not
//! price is named as such on the span, in the stats and by `loupe prices check`.

use crate::helpers::*;

/// An LLM span of `model` with 1,000 input and 500 output tokens.
fn call(trace: [u8; 16], id: u8, model: &str) -> Span {
    let mut s = llm_span(trace, id, None, "s", u64::from(id) * 10);
    for a in &mut s.attributes {
        if a.key == "gen_ai.request.model" {
            *a = skv("gen_ai.request.model", model);
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpriced_models_are_named_on_spans_in_stats_and_by_prices_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (priced, unknown) = ([0x51u8; 16], [0x52u8; 16]);
    let req = request(vec![
        call(priced, 1, "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        call(priced, 2, "openai/gpt-5.2"),
        call(unknown, 1, "acme-llm-7"),
    ]);
    assert_eq!(post_pb(&server.url, &req).await.status(), 200);

    let (status, t) = send(
        reqwest::Method::GET,
        format!("{}/api/v1/traces/{}", server.url, hex(&priced)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for s in t["spans"].as_array().unwrap() {
        assert!(s["cost_usd"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s.get("cost_missing").is_none(), "{s}");
    }
    let (_, t) = send(
        reqwest::Method::GET,
        format!("{}/api/v1/traces/{}", server.url, hex(&unknown)),
        None,
    )
    .await;
    assert_eq!(t["spans"][0]["cost_usd"], Value::Null);
    assert_eq!(t["spans"][0]["cost_missing"], "no price for acme-llm-7");

    let page = reqwest::get(format!("{}/traces/{}", server.url, hex(&unknown)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("no price for acme-llm-7"), "the UI says so");

    for group_by in ["", "&group_by=model", "&group_by=project"] {
        let (status, stats) = send(
            reqwest::Method::GET,
            format!("{}/api/v1/stats?q=start%20%3E%200{group_by}", server.url),
            None,
        )
        .await;
        assert_eq!(status, 200, "{stats}");
        let unpriced = stats["unpriced_models"].as_array().unwrap();
        assert_eq!(unpriced.len(), 1, "{group_by}: {stats}");
        assert_eq!(unpriced[0]["model"], "acme-llm-7");
        assert_eq!(unpriced[0]["spans"], 1);
        assert_eq!(unpriced[0]["input_tokens"], 1000);
        assert_eq!(unpriced[0]["output_tokens"], 500);
        assert_eq!(unpriced[0]["reason"], "no price for acme-llm-7");
    }

    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "prices",
            "check",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unpriced models fail the check: {text}"
    );
    assert!(text.contains("3 models seen; 1 without a cost"), "{text}");
    assert!(
        text.contains(
            "acme-llm-7: 1 spans, 1000 input and 500 output tokens: no price for acme-llm-7"
        ),
        "{text}"
    );

    // Priced by a user book, the model passes once its stored spans are repriced.
    let prices = dir.path().join("prices.json");
    std::fs::write(&prices, r#"{"version": "mine", "models": [{"model": "acme-llm-7", "prices": [{"effective": "2020-01-01", "input": 1.0, "output": 1.0}]}]}"#).unwrap();
    let (data, book) = (dir.path().to_str().unwrap(), prices.to_str().unwrap());
    let stale = tokio::process::Command::new(loupe_bin())
        .args(["prices", "check", "--data-dir", data, "--prices", book])
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&stale.stdout).contains("`loupe reprice` fills in its cost"),
        "{}",
        String::from_utf8_lossy(&stale.stdout)
    );
    loupe(&["reprice", "--data-dir", data, "--prices", book]).await;
    let out = loupe(&["prices", "check", "--data-dir", data, "--prices", book]).await;
    assert!(out.contains("3 models seen; 0 without a cost"), "{out}");
}
