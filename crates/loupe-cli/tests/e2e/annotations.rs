//! The JSON API's writes, as an application sends end-user feedback without the MLflow client:
//! assessments (one or a batch, patched, deleted) and trace tags; and what a client sees when
//! the store fails inside.

use std::sync::Mutex;

use crate::helpers::*;

/// A server holding one trace; its id in hex.
async fn server_with_a_trace(t: [u8; 16]) -> (TestServer, String) {
    let server = TestServer::start().await;
    let resp = post_pb(&server.url, &request(vec![pspan(t, 1, None, 0, 10)])).await;
    assert_eq!(resp.status(), 200);
    (server, hex(&t))
}

async fn ids_matching(server: &TestServer, q: &str) -> Vec<String> {
    let (s, body) = server
        .get(&format!("/api/v1/traces?q={}", urlencode(q)))
        .await;
    assert_eq!(s, 200, "{body}");
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn end_user_feedback_is_stored_read_back_and_filtered() {
    let (server, id) = server_with_a_trace([0x51; 16]).await;
    let (s, body) = post_json(
        &server,
        &format!("/api/v1/traces/{id}/assessments"),
        json!({"name": "thumbs", "value": true, "rationale": "<b>nice</b>",
               "source": {"source_type": "HUMAN", "source_id": "user-7"},
               "metadata": {"page": "checkout"}}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let a = &body["assessments"][0];
    assert!(
        a["assessment_id"].as_str().unwrap().starts_with("a-"),
        "{a}"
    );
    assert_eq!(
        (
            &a["kind"],
            &a["value"],
            &a["source"]["source_id"],
            &a["valid"]
        ),
        (
            &json!("feedback"),
            &json!(true),
            &json!("user-7"),
            &json!(true)
        )
    );
    let detail = server.trace(&id).await;
    assert_eq!(detail["assessments"][0], *a);
    assert_eq!(
        ids_matching(&server, "feedback.thumbs = true").await,
        vec![id.clone()]
    );
    assert!(
        ids_matching(&server, "feedback.thumbs = false")
            .await
            .is_empty()
    );
    // The MLflow client reads the same assessment.
    let (s, info) = server.get(&format!("/api/3.0/mlflow/traces/tr-{id}")).await;
    assert_eq!(s, 200);
    let m = &info["trace"]["trace_info"]["assessments"][0];
    assert_eq!(
        (
            &m["assessment_name"],
            &m["feedback"]["value"],
            &m["source"]["source_type"]
        ),
        (&json!("thumbs"), &json!(true), &json!("HUMAN"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_is_stored_together_or_not_at_all() {
    let (server, id) = server_with_a_trace([0x52; 16]).await;
    let path = format!("/api/v1/traces/{id}/assessments");
    let (s, body) = post_json(
        &server,
        &path,
        json!({"assessments": [
            {"name": "score", "value": 0.9, "source": {"source_type": "LLM_JUDGE", "source_id": "j"}},
            {"name": "answer", "kind": "expectation", "value": {"text": "42"}},
            {"name": "tone", "error": {"code": "TIMEOUT", "message": "no answer"}},
        ]}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["assessments"].as_array().unwrap().len(), 3);
    assert_eq!(body["assessments"][2]["value"], Value::Null);
    assert_eq!(body["assessments"][2]["error"]["code"], json!("TIMEOUT"));
    let (s, body) = post_json(
        &server,
        &path,
        json!([{"name": "fine", "value": 1}, {"name": "typo", "valeu": 1}]),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("[1]") && message.contains("valeu"),
        "{message}"
    );
    let stored = server.trace(&id).await["assessments"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(stored, 3, "nothing of the refused batch is stored");
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("n{i}"), "value": i}))
        .collect();
    let (s, body) = post_json(&server, &path, Value::Array(many)).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1001"),
        "{body}"
    );
    // A retry with the same id replaces instead of adding.
    for v in [1, 2] {
        let (s, _) = post_json(
            &server,
            &path,
            json!({"assessment_id": "client-1", "name": "r", "value": v}),
        )
        .await;
        assert_eq!(s, 201);
    }
    let all = server.trace(&id).await["assessments"].clone();
    let retried: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "r")
        .collect();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0]["value"], json!(2));
    server.stop().await;
}

#[tokio::test]
async fn bad_assessments_get_400s_that_name_the_field() {
    let (server, id) = server_with_a_trace([0x53; 16]).await;
    let path = format!("/api/v1/traces/{id}/assessments");
    for (body, field) in [
        (json!({"value": 1}), "name"),
        (json!({"name": " ", "value": 1}), "name"),
        (json!({"name": "x"}), "value"),
        (json!({"name": "x", "value": 1, "kind": "verdict"}), "kind"),
        (
            json!({"name": "x", "value": 1, "source": {"source_type": "ROBOT"}}),
            "source.source_type",
        ),
        (
            json!({"name": "x", "value": 1, "span_id": "xyz"}),
            "span_id",
        ),
        (
            json!({"name": "x", "value": 1, "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"assessments": [{"name": "x", "value": 1, "rationale": 5}]}),
            "assessments[0].rationale",
        ),
        (json!("just text"), "expected an assessment"),
    ] {
        let (s, resp) = post_json(&server, &path, body.clone()).await;
        assert_eq!(s, 400, "{body} → {resp}");
        assert_eq!(resp["error"]["code"], json!("INVALID_ARGUMENT"));
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message:?} should name {field}"
        );
    }
    let raw = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let (s, resp) = post_json(
        &server,
        "/api/v1/traces/nothex/assessments",
        json!({"name": "x", "value": 1}),
    )
    .await;
    assert_eq!(
        (s, &resp["error"]["code"]),
        (400, &json!("INVALID_ARGUMENT"))
    );
    let (s, resp) = post_json(
        &server,
        &format!("/api/v1/traces/{}/assessments", "0".repeat(31) + "9"),
        json!({"name": "x", "value": 1}),
    )
    .await;
    assert_eq!(
        (s, &resp["error"]["code"]),
        (404, &json!("NOT_FOUND")),
        "{resp}"
    );
    assert!(
        server.trace(&id).await["assessments"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn assessments_are_patched_and_deleted_by_id() {
    let (server, id) = server_with_a_trace([0x54; 16]).await;
    let (_, body) = post_json(
        &server,
        &format!("/api/v1/traces/{id}/assessments"),
        json!({"name": "quality", "value": 0.2, "rationale": "meh"}),
    )
    .await;
    let aid = body["assessments"][0]["assessment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/v1/assessments/{aid}", server.url);
    let (s, patched) = send(
        reqwest::Method::PATCH,
        url.clone(),
        Some(json!({"value": 0.8, "rationale": "better on a second look"})),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(
        (&patched["value"], &patched["rationale"]),
        (&json!(0.8), &json!("better on a second look"))
    );
    assert!(patched["last_update_time_ms"].as_i64() >= patched["create_time_ms"].as_i64());
    assert_eq!(
        ids_matching(&server, "feedback.quality > 0.5").await,
        vec![id.clone()]
    );
    let (s, resp) = send(
        reqwest::Method::PATCH,
        url.clone(),
        Some(json!({"valid": "no"})),
    )
    .await;
    assert_eq!(s, 400, "{resp}");
    assert!(
        resp["error"]["message"].as_str().unwrap().contains("valid"),
        "{resp}"
    );
    let (s, resp) = send(
        reqwest::Method::PATCH,
        url.clone(),
        Some(json!({"colour": 1})),
    )
    .await;
    assert_eq!(s, 400, "{resp}");
    let (s, got) = send(reqwest::Method::GET, url.clone(), None).await;
    assert_eq!((s, &got["value"]), (200, &json!(0.8)));
    let (s, _) = send(reqwest::Method::DELETE, url.clone(), None).await;
    assert_eq!(s, 204);
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let (s, resp) = send(method.clone(), url.clone(), Some(json!({"value": 1}))).await;
        assert_eq!(
            (s, &resp["error"]["code"]),
            (404, &json!("NOT_FOUND")),
            "{method}"
        );
    }
    assert!(
        ids_matching(&server, "feedback.quality > 0.5")
            .await
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn trace_tags_are_set_and_removed() {
    let (server, id) = server_with_a_trace([0x55; 16]).await;
    let url = |key: &str| format!("{}/api/v1/traces/{id}/tags/{key}", server.url);
    let (s, body) = send(
        reqwest::Method::PUT,
        url("env"),
        Some(json!({"value": "prod"})),
    )
    .await;
    assert_eq!((s, &body), (200, &json!({"key": "env", "value": "prod"})));
    assert_eq!(
        server.trace(&id).await["trace"]["tags"]["env"],
        json!("prod")
    );
    assert_eq!(
        ids_matching(&server, "tags.env = 'prod'").await,
        vec![id.clone()]
    );
    for (key, body) in [
        ("k".repeat(251), json!({"value": "v"})),
        ("env".to_string(), json!({"value": 3})),
        ("env".to_string(), json!({"value": "x".repeat(8_001)})),
        ("env".to_string(), json!({})),
    ] {
        let (s, resp) = send(reqwest::Method::PUT, url(&key), Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {resp}");
    }
    let missing = format!(
        "{}/api/v1/traces/{}/tags/env",
        server.url,
        "0".repeat(31) + "9"
    );
    let (s, _) = send(reqwest::Method::PUT, missing, Some(json!({"value": "v"}))).await;
    assert_eq!(s, 404);
    let (s, _) = send(reqwest::Method::DELETE, url("env"), None).await;
    assert_eq!(s, 204);
    let (s, resp) = send(reqwest::Method::DELETE, url("env"), None).await;
    assert_eq!((s, &resp["error"]["code"]), (404, &json!("NOT_FOUND")));
    assert_eq!(server.trace(&id).await["trace"]["tags"].get("env"), None);
    server.stop().await;
}

/// A `tracing` writer into a buffer the test reads.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs on the test's one thread, so the server's log lines reach the captured writer.
#[tokio::test]
async fn internal_errors_reach_the_client_as_an_id_the_log_also_prints() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::with(Options {
        wrap: Some(Box::new(|inner| {
            Arc::new(HookedStore::new(
                inner,
                Arc::new(|| {
                    Box::pin(async {
                        Err(StoreError::internal(
                            "sqlite: disk I/O error in /srv/secret/loupe.db",
                        ))
                    })
                }),
            ))
        })),
        ..Options::default()
    })
    .await;
    let req = request(vec![pspan([0x56; 16], 1, None, 0, 10)]);
    let pb = post_pb(&server.url, &req).await;
    assert_eq!(pb.status(), 500);
    let status = rpc_status(&pb.bytes().await.unwrap());
    let json_resp = post(
        &server.url,
        "application/json",
        None,
        serde_json::to_vec(&json!({"resourceSpans": []})).unwrap(),
    )
    .await;
    assert_eq!(json_resp.status(), 200, "an empty request writes nothing");
    let body = serde_json::to_vec(&json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "56565656565656565656565656565656", "spanId": "5656565656565656",
        "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}))
    .unwrap();
    let json_resp = post(&server.url, "application/json", None, body).await;
    assert_eq!(json_resp.status(), 500);
    let json_body: Value = json_resp.json().await.unwrap();
    for message in [
        status.message.as_str(),
        json_body["message"].as_str().unwrap(),
    ] {
        assert!(
            !message.contains("sqlite") && !message.contains("/srv"),
            "{message}"
        );
        let id = message
            .strip_prefix("internal error ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no error id in {message:?}"));
        assert_eq!(id.len(), 16, "{message}");
        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let line = logged
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not in the log:\n{logged}"));
        assert!(line.contains("disk I/O error"), "{line}");
    }
    assert_eq!(json_body["error"]["code"], json!("INTERNAL"));
    server.stop().await;
}
