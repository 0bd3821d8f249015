//! LLM conventions end to end: cost, sessions, reprice and reindex, log records as span
//! events, the query language over the API and the CLI, stats and span search, ordering.

use crate::helpers::*;

/// Three traces of LLM calls in two sessions: `a` and `b` (two calls) in `s-1`, `c` in `s-2`.
async fn seed_llm_traces(server: &ChildServer) -> ([u8; 16], [u8; 16], [u8; 16]) {
    let (a, b, c) = ([0xa1u8; 16], [0xb2u8; 16], [0xc3u8; 16]);
    let req = request(vec![
        llm_span(a, 1, None, "s-1", 0),
        llm_span(b, 1, None, "s-1", 1_000),
        llm_span(b, 2, Some(1), "s-1", 1_010),
        llm_span(c, 1, None, "s-2", 500),
    ]);
    assert_eq!(post_pb(&server.url, &req).await.status(), 200);
    (a, b, c)
}

/// `GET /api/v1/traces/{id}`.
async fn get_trace(server: &ChildServer, id: [u8; 16]) -> Value {
    let url = format!("{}/api/v1/traces/{}", server.url, hex(&id));
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The cost of one seeded call at the built-in gpt-4o-mini price.
const ONE_CALL: f64 = 1000.0 * 0.15e-6 + 500.0 * 0.6e-6;

#[tokio::test]
async fn cost_is_priced_per_span_and_summed_per_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (_, b, _) = seed_llm_traces(&server).await;
    let one = ONE_CALL;
    let t = get_trace(&server, b).await;
    assert!(
        close(t["trace"]["cost_usd"].as_f64().unwrap(), 2.0 * one),
        "{}",
        t["trace"]
    );
    assert_eq!(t["trace"]["session_id"], "s-1");
    assert!(close(t["spans"][0]["cost_usd"].as_f64().unwrap(), one));
    assert_eq!(t["spans"][0]["provider"], Value::Null);
    assert_eq!(t["spans"][0]["span_type"], "CHAT_MODEL");
}

#[tokio::test]
async fn sessions_roll_up_their_traces_most_recent_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (a, b, _) = seed_llm_traces(&server).await;
    let one = ONE_CALL;
    let sessions: Value = reqwest::get(format!("{}/api/v1/sessions", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["session_id"], "s-1", "most recently active first");
    assert_eq!(list[0]["trace_count"], 2);
    assert!(close(list[0]["cost_usd"].as_f64().unwrap(), 3.0 * one));
    assert_eq!(list[0]["total_tokens"], 4500);
    let s1: Value = reqwest::get(format!("{}/api/v1/sessions/s-1", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = s1["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![hex(&a), hex(&b)], "a conversation in order");
    let missing = reqwest::get(format!("{}/api/v1/sessions/nope", server.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let page: Value = reqwest::get(format!("{}/api/v1/sessions?limit=1", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page2: Value = reqwest::get(format!(
        "{}/api/v1/sessions?limit=1&cursor={cursor}",
        server.url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(page2["sessions"][0]["session_id"], "s-2");
    assert!(page2["next_cursor"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprice_applies_new_prices_to_stored_spans_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (_, b, _) = seed_llm_traces(&server).await;
    let prices = dir.path().join("prices.json");
    std::fs::write(&prices, r#"{"version": "test", "models": [{"model": "gpt-4o-mini", "prices": [{"effective": "2000-01-01", "input": 1.0, "output": 2.0}]}]}"#).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = loupe(&[
        "reprice",
        "--data-dir",
        data,
        "--prices",
        prices.to_str().unwrap(),
    ])
    .await;
    assert!(
        out.starts_with("reprice: 4 spans read, 4 changed, 3 traces"),
        "{out}"
    );
    let new_one = 1000.0 * 1e-6 + 500.0 * 2e-6;
    assert!(close(
        get_trace(&server, b).await["trace"]["cost_usd"]
            .as_f64()
            .unwrap(),
        2.0 * new_one
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_derives_columns_again_from_the_stored_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let (_, _, c) = seed_llm_traces(&server).await;
    let one = ONE_CALL;
    let data = dir.path().to_str().unwrap();
    // A stale mapping: wipe the derived columns, then reindex from the raw attributes.
    {
        let db = rusqlite::Connection::open(dir.path().join("loupe.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.execute_batch(
            "UPDATE spans SET span_type = 'UNKNOWN', model = NULL, input_tokens = NULL, output_tokens = NULL, \
             total_tokens = NULL, cost_usd = NULL; UPDATE traces SET input_tokens = 0, total_tokens = 0, cost_usd = 0, session_id = NULL;",
        )
        .unwrap();
    }
    assert_eq!(get_trace(&server, c).await["trace"]["total_tokens"], 0);
    let out = loupe(&["reindex", "--data-dir", data]).await;
    assert!(
        out.starts_with("reindex: 4 spans read, 4 changed, 3 traces"),
        "{out}"
    );
    let t = get_trace(&server, c).await;
    assert_eq!(t["trace"]["total_tokens"], 1500);
    assert_eq!(t["trace"]["session_id"], "s-2");
    assert!(
        close(t["trace"]["cost_usd"].as_f64().unwrap(), one),
        "built-in prices again"
    );
    assert_eq!(t["spans"][0]["span_type"], "CHAT_MODEL");
    assert_eq!(t["spans"][0]["model"], "gpt-4o-mini");
    let out = loupe(&["reindex", "--data-dir", data]).await;
    assert!(
        out.starts_with("reindex: 4 spans read, 0 changed"),
        "idempotent: {out}"
    );
}

/// GenAI message events sent as OTLP log records join their span, whichever arrives first.
#[tokio::test]
async fn log_records_become_span_events_and_messages() {
    let server = TestServer::start().await;
    let trace = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d";
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000001000000", "eventName": "gen_ai.user.message", "traceId": trace, "spanId": "0101010101010101",
         "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "Weather in Paris?"}}]}},
         "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}}]},
        {"timeUnixNano": "1700000000002000000", "traceId": trace, "spanId": "0101010101010101",
         "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}],
         "body": {"kvlistValue": {"values": [{"key": "index", "value": {"intValue": "0"}},
            {"key": "message", "value": {"kvlistValue": {"values": [{"key": "role", "value": {"stringValue": "assistant"}}, {"key": "content", "value": {"stringValue": "Sunny."}}]}}}]}}},
        {"timeUnixNano": "1700000000003000000", "body": {"stringValue": "no span context"}}
    ]}]}]});
    // logs first, then the span
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .body(logs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("logRecords[2]")
    );
    let mut s = pspan([0x0d; 16], 1, None, 0, 10);
    s.attributes = vec![KeyValue {
        key: "gen_ai.operation.name".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("chat".into())),
        }),
        ..Default::default()
    }];
    assert_eq!(post_pb(&server.url, &request(vec![s])).await.status(), 200);
    let body = server.trace(trace).await;
    let span = &body["spans"][0];
    assert_eq!(span["events"].as_array().unwrap().len(), 2);
    assert_eq!(span["events"][0]["name"], "gen_ai.user.message");
    assert_eq!(
        span["input_messages"],
        json!([{"role": "user", "content": "Weather in Paris?"}])
    );
    assert_eq!(
        span["output_messages"],
        json!([{"role": "assistant", "content": "Sunny."}])
    );
    // malformed ids in a log record: 400
    let bad = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "abc", "spanId": "0101010101010101"}]}]}]});
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    server.stop().await;
}

/// The query language through the API and `loupe traces search`.
/// Three traces for the query language: 0x31, a fast OK trace with a gpt-4o-mini chat span;
/// 0x32, a slow ERROR trace with a tool span; 0x33, an OK trace with a claude span in session
/// s-q.
async fn seed_query_traces(server: &TestServer) {
    let mut spans = Vec::new();
    let mut root = pspan([0x31; 16], 1, None, 0, 100);
    root.name = "agent".into();
    let mut llm = llm_span([0x31; 16], 2, Some(1), "s-other", 10);
    llm.attributes.push(skv("mlflow.spanType", "CHAT_MODEL"));
    spans.extend([root, llm]);
    let mut slow = pspan([0x32; 16], 1, None, 0, 9_000);
    slow.name = "batch job".into();
    slow.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let mut tool = pspan([0x32; 16], 2, Some(1), 10, 20);
    tool.attributes = vec![skv("mlflow.spanType", "TOOL")];
    spans.extend([slow, tool]);
    let mut other = pspan([0x33; 16], 1, None, 0, 50);
    other.name = "退款 agent".into();
    other.attributes = vec![
        skv("gen_ai.request.model", "claude-3-5-sonnet-20241022"),
        skv("session.id", "s-q"),
    ];
    spans.push(other);
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
}

/// `GET /api/v1/traces?q=…`: the status and the body.
async fn query_traces(server: &TestServer, query: &str) -> (u16, Value) {
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/v1/traces", server.url), &[("q", query)])
            .unwrap();
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_filters_traces_over_the_api() {
    let server = TestServer::start().await;
    seed_query_traces(&server).await;
    let ids = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap()[..2].to_string())
            .collect()
    };
    for (query, want) in [
        ("status = 'ERROR'", vec!["32"]),
        ("duration_ms > 5s", vec!["32"]),
        (
            "duration_ms < 1s AND NOT status = 'ERROR'",
            vec!["33", "31"],
        ),
        ("span.type = 'TOOL'", vec!["32"]),
        ("span.model LIKE 'gpt-4o%'", vec!["31"]),
        ("span.model LIKE 'GPT%'", vec![]),
        ("span.model ILIKE 'GPT%'", vec!["31"]),
        (
            "span.type = 'CHAT_MODEL' AND span.model LIKE 'claude%'",
            vec![],
        ),
        (
            "span.type = 'CHAT_MODEL' OR span.model LIKE 'claude%'",
            vec!["33", "31"],
        ),
        ("session_id = 's-q'", vec!["33"]),
        ("session_id IS NULL", vec!["32"]),
        ("total_tokens > 1000 AND cost_usd > 0", vec!["31"]),
        ("name IN ('agent', 'batch job')", vec!["32", "31"]),
        ("name = '退款 agent'", vec!["33"]),
        (
            "start > '2023-01-01' AND start < now",
            vec!["33", "32", "31"],
        ),
        (
            "trace_id = 'tr-32323232323232323232323232323232'",
            vec!["32"],
        ),
        ("tags.env = 'prod'", vec![]),
        ("name = 'x'' OR 1=1 --'", vec![]),
    ] {
        let (status, body) = query_traces(&server, query).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut got = ids(&body);
        got.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(got, want, "{query}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_bad_query_is_a_400_that_names_the_position() {
    let server = TestServer::start().await;
    let (status, body) = query_traces(&server, "status = 'OK' AND").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_QUERY");
    assert_eq!(
        body["error"]["message"],
        "invalid query: expected a field name, found the end of the query at position 18"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_search_in_the_cli_takes_the_query_language() {
    let server = TestServer::start().await;
    seed_query_traces(&server).await;
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "search",
            "span.type = 'TOOL'",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("batch job") && !text.contains("agent"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "search",
            "colour = 'red'",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    server.stop().await;
}

/// Ten traces a minute apart, each a root and one chat span: even traces call gpt-4o-mini
/// quickly, odd ones call claude ten times slower, and the last odd one fails.
async fn seed_stats_traces(server: &TestServer) {
    let s = |v: &str| any_value::Value::StringValue(v.into());
    let mut spans = Vec::new();
    for i in 0..10u8 {
        let t = [0x50 + i; 16];
        let base = u64::from(i) * 60_000;
        spans.push(pspan(t, 1, None, base, base + 2_000));
        let (model, dur) = if i % 2 == 0 {
            ("gpt-4o-mini", 100)
        } else {
            ("claude-3-5-haiku", 1_000)
        };
        let mut llm = pspan(t, 2, Some(1), base + 10, base + 10 + dur);
        llm.attributes = vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.request.model", s(model)),
            kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(100)),
            kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(10)),
        ];
        if i == 9 {
            llm.status = Some(Status {
                code: 2,
                message: "overloaded".into(),
            });
        }
        spans.push(llm);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
}

/// `GET` a URL: the status and the JSON body.
async fn get_json(url: String) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

/// Aggregations per model, per model and time bucket, and over traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_aggregate_by_model_time_and_trace() {
    let server = TestServer::start().await;
    seed_stats_traces(&server).await;
    let get = get_json;
    let (st, by_model) = get(format!("{}/api/v1/stats?group_by=model", server.url)).await;
    assert_eq!(st, 200, "{by_model}");
    let groups = by_model["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let claude = &groups[0];
    assert_eq!(claude["key"]["model"], "claude-3-5-haiku");
    assert_eq!(
        (claude["count"].as_u64(), claude["error_count"].as_u64()),
        (Some(5), Some(1))
    );
    assert!(close(claude["error_rate"].as_f64().unwrap(), 0.2));
    assert_eq!(claude["p95_ms"], 1000.0);
    assert_eq!(claude["total_tokens"], 550);
    assert!(close(
        claude["cost_usd"].as_f64().unwrap(),
        5.0 * (100.0 * 0.8e-6 + 10.0 * 4.0e-6)
    ));
    assert_eq!(groups[1]["key"]["model"], "gpt-4o-mini");
    assert_eq!(groups[1]["p50_ms"], 100.0);
    // per model per 2-minute bucket, with a filter
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/stats", server.url),
        &[
            ("group_by", "model,time"),
            ("bucket", "2m"),
            ("q", "span.model LIKE 'gpt%'"),
        ],
    )
    .unwrap();
    let (_, by_time) = get(url.to_string()).await;
    let g = by_time["groups"].as_array().unwrap();
    assert_eq!(g.len(), 5, "{by_time}");
    assert_eq!(
        g[0]["key"]["time"],
        1_700_000_000_000u64 - 1_700_000_000_000u64 % 120_000
    );
    assert!(
        g.iter()
            .all(|x| x["key"]["model"] == "gpt-4o-mini" && x["count"] == 1)
    );
    // trace-level, no grouping
    let (_, all) = get(format!("{}/api/v1/stats", server.url)).await;
    assert_eq!(all["groups"][0]["count"], 10);
    assert_eq!(all["groups"][0]["error_count"], 1);
    assert_eq!(all["groups"][0]["p50_ms"], 2000.0);
    let (st, bad) = get(format!("{}/api/v1/stats?group_by=colour", server.url)).await;
    assert_eq!(
        (st, bad["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    server.stop().await;
}

/// Span search: span fields are about the span itself, paged by cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_search_matches_and_pages_spans() {
    let server = TestServer::start().await;
    seed_stats_traces(&server).await;
    let get = get_json;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[("q", "span.status = 'ERROR'"), ("limit", "5")],
    )
    .unwrap();
    let (st, found) = get(url.to_string()).await;
    assert_eq!(st, 200, "{found}");
    let list = found["spans"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["model"], "claude-3-5-haiku");
    assert_eq!(list[0]["trace_id"], hex(&[0x59; 16]));
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[("q", "span.type = 'CHAT_MODEL'"), ("limit", "4")],
    )
    .unwrap();
    let (_, page) = get(url.to_string()).await;
    assert_eq!(page["spans"].as_array().unwrap().len(), 4);
    let next = page["next_cursor"].as_str().unwrap().to_string();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/spans", server.url),
        &[
            ("q", "span.type = 'CHAT_MODEL'"),
            ("limit", "100"),
            ("cursor", next.as_str()),
        ],
    )
    .unwrap();
    let (_, rest) = get(url.to_string()).await;
    assert_eq!(rest["spans"].as_array().unwrap().len(), 6);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupe_stats_prints_a_table_by_model() {
    let server = TestServer::start().await;
    seed_stats_traces(&server).await;
    let out = tokio::process::Command::new(loupe_bin())
        .args(["stats", "--group-by", "model", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("MODEL"), "{text}");
    assert!(
        text.contains("claude-3-5-haiku") && text.contains("20.0%"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn order_by_sorts_and_pages_by_position() {
    let server = TestServer::start().await;
    // Four traces: durations 30, 10, 40, 20 ms, started one second apart.
    let mut spans = Vec::new();
    for (i, dur) in [30u64, 10, 40, 20].into_iter().enumerate() {
        let t = [0x70 + i as u8; 16];
        let base = i as u64 * 1_000;
        let mut s = pspan(t, 1, None, base, base + dur);
        s.name = format!("t{i}");
        spans.push(s);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    let names = |v: &Value| -> Vec<String> {
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, page) = server
        .get("/api/v1/traces?order_by=duration_ms%20desc&limit=3")
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(names(&page), ["t2", "t0", "t3"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = server
        .get(&format!(
            "/api/v1/traces?order_by=duration_ms%20desc&limit=3&cursor={cursor}"
        ))
        .await;
    assert_eq!(names(&rest), ["t1"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, by_name) = server.get("/api/v1/traces?order_by=name").await;
    assert_eq!(names(&by_name), ["t0", "t1", "t2", "t3"]);
    for bad in ["colour", "name%20sideways", "name,name", "start%20desc%20x"] {
        let (s, e) = server.get(&format!("/api/v1/traces?order_by={bad}")).await;
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("order"),
            "{e}"
        );
    }
    let (s, _) = server
        .get("/api/v1/traces?order_by=name&cursor=garbage")
        .await;
    assert_eq!(s, 400);
    server.stop().await;
}
