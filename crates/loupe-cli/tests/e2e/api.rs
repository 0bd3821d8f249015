//! The JSON API: lists, filters, paging, its errors and its documents.

use crate::helpers::*;

/// A server holding 30 one-span traces: trace `100 + i` starts at `i` s, lasts `10 i` ms, is
/// named `even` or `odd`, and failed when `i` is a multiple of 3.
async fn thirty_traces() -> TestServer {
    let server = TestServer::start().await;
    let mut spans = Vec::new();
    for i in 0..30u8 {
        let mut s = pspan(
            [100 + i; 16],
            1,
            None,
            u64::from(i) * 1000,
            u64::from(i) * 1000 + u64::from(i) * 10,
        );
        s.name = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        if i % 3 == 0 {
            s.status = Some(Status {
                code: 2,
                message: "x".into(),
            });
        }
        spans.push(s);
    }
    assert_eq!(post_pb(&server.url, &request(spans)).await.status(), 200);
    server
}

#[tokio::test]
async fn trace_list_is_newest_first_and_cursor_pages_neither_skip_nor_repeat() {
    let server = thirty_traces().await;
    let (status, page) = server.get("/api/v1/traces?limit=10").await;
    assert_eq!(status, 200);
    let traces = page["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 10);
    assert_eq!(traces[0]["trace_id"], hex(&[129; 16]), "newest first");
    for key in [
        "trace_id",
        "name",
        "status",
        "start_time_ms",
        "duration_ms",
        "span_count",
        "error_count",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "project",
        "tags",
    ] {
        assert!(traces[0].get(key).is_some(), "{key} missing");
    }
    let all = all_traces(&server.url).await;
    assert_eq!(all.len(), 30);
    let mut ids = HashSet::new();
    let mut cursor = page["next_cursor"].as_str().unwrap().to_string();
    ids.extend(
        traces
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_string()),
    );
    loop {
        let (_, p) = server
            .get(&format!("/api/v1/traces?limit=10&cursor={cursor}"))
            .await;
        ids.extend(
            p["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_string()),
        );
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(ids.len(), 30, "pages neither skip nor repeat");
    server.stop().await;
}

#[tokio::test]
async fn trace_list_filters_by_status_name_duration_and_start() {
    let server = thirty_traces().await;
    let (_, p) = server
        .get("/api/v1/traces?status=ERROR&name=even&min_duration_ms=100")
        .await;
    let got: Vec<u64> = p["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![240, 180, 120]);
    let from = 1_700_000_000_000u64 + 10_000;
    let (_, p) = server
        .get(&format!(
            "/api/v1/traces?start_time_from_ms={from}&start_time_to_ms={}",
            from + 5_000
        ))
        .await;
    assert_eq!(p["traces"].as_array().unwrap().len(), 5);
    server.stop().await;
}

#[tokio::test]
async fn api_errors_are_json_with_a_code_and_a_message() {
    let server = thirty_traces().await;
    for (path, status, code) in [
        ("/api/v1/traces/not-hex", 400, "INVALID_ARGUMENT"),
        (
            "/api/v1/traces/00112233445566778899aabbccddeeff",
            404,
            "NOT_FOUND",
        ),
        (
            "/api/v1/traces?cursor=%27%3B%20drop%20table%20traces",
            400,
            "INVALID_ARGUMENT",
        ),
        ("/api/v1/traces?limit=0", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?status=BROKEN", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?min_duration_ms=-5", 400, "INVALID_ARGUMENT"),
        ("/api/v1/traces?colour=red", 400, "INVALID_ARGUMENT"),
        ("/api/v1/nothing", 404, "NOT_FOUND"),
    ] {
        let (s, body) = server.get(path).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn openapi_health_and_the_home_page_answer() {
    let server = TestServer::start().await;
    let (s, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/v1/traces",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/healthz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    let (s, health) = server.get("/healthz").await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    let home = reqwest::get(format!("{}/", server.url)).await.unwrap();
    assert!(
        home.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    for path in [
        "/api/v1/traces/{trace_id}/assessments",
        "/api/v1/assessments/{assessment_id}",
        "/api/v1/traces/{trace_id}/tags/{key}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    server.stop().await;
}

/// The fields `value` has that its schema in `doc` does not name, and the required ones it
/// lacks, as `path: field` (nested objects and arrays of objects with schemas too).
fn schema_mismatches(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        // A nullable reference: `null`, or the schema.
        if let Some(s) = one
            .iter()
            .find(|s| s.get("type") != Some(&Value::from("null")))
            && !value.is_null()
        {
            schema_mismatches(doc, s, value, at, out);
        }
        return;
    }
    match value {
        Value::Object(o) if schema.get("properties").is_some() => {
            let props = schema["properties"].as_object().unwrap();
            for k in o.keys().filter(|k| !props.contains_key(*k)) {
                out.push(format!("{at}: {k} undocumented"));
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                if !o.contains_key(r.as_str().unwrap()) {
                    out.push(format!("{at}: required {r} missing"));
                }
            }
            for (k, v) in o {
                if let Some(p) = props.get(k) {
                    schema_mismatches(doc, p, v, &format!("{at}.{k}"), out);
                }
            }
        }
        Value::Array(items) if schema.get("items").is_some() => {
            for (i, v) in items.iter().enumerate() {
                schema_mismatches(doc, &schema["items"], v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every answer of the JSON API has the shape its generated document gives it.
#[tokio::test]
async fn answers_match_the_schemas_of_the_generated_document() {
    let server = thirty_traces().await;
    let (_, doc) = server.get("/api/v1/openapi.json").await;
    let id = hex(&[101u8; 16]);
    let (s, _) = post_json(
        &server,
        &format!("/api/v1/traces/{id}/assessments"),
        serde_json::json!({"name": "thumbs", "value": true, "rationale": "fine"}),
    )
    .await;
    assert_eq!(s, 201);
    let schema_of = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
            .clone()
    };
    let mut bad = Vec::new();
    for (url, path) in [
        ("/api/v1/traces?limit=3".to_string(), "/api/v1/traces"),
        (format!("/api/v1/traces/{id}"), "/api/v1/traces/{trace_id}"),
        ("/api/v1/spans?limit=3".to_string(), "/api/v1/spans"),
        (
            "/api/v1/stats?group_by=project".to_string(),
            "/api/v1/stats",
        ),
        ("/api/v1/sessions".to_string(), "/api/v1/sessions"),
        ("/healthz".to_string(), "/healthz"),
    ] {
        let (s, body) = server.get(&url).await;
        assert_eq!(s, 200, "{url}: {body}");
        let schema = schema_of(path, "get", "200");
        assert!(!schema.is_null(), "{path}: no 200 schema");
        schema_mismatches(&doc, &schema, &body, &url, &mut bad);
    }
    let (s, body) = server.get("/api/v1/traces?colour=red").await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known: q, order_by, limit"),
        "the known parameters are the documented ones: {body}"
    );
    schema_mismatches(
        &doc,
        &schema_of("/api/v1/traces", "get", "400"),
        &body,
        "400",
        &mut bad,
    );
    assert!(bad.is_empty(), "{bad:#?}");
    server.stop().await;
}
