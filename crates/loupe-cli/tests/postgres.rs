//! `loupe serve --database-url`: two replicas share one PostgreSQL database (a throwaway server
//! started from the machine's binaries); spans of one trace sent to either are read from both.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Replica {
    _child: tokio::process::Child,
    url: String,
}

async fn replica(database_url: &str, data_dir: &std::path::Path) -> Replica {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("LOUPE_DATABASE_URL", database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut data_line = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("data:") {
                data_line = rest.trim().to_string();
            }
            if let Some(rest) = line.trim().strip_prefix("HTTP:") {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the server exited before printing its address");
    })
    .await
    .expect("server start");
    assert!(
        data_line.starts_with("postgresql://"),
        "the replica says where its data is: {data_line}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Replica { _child: child, url }
}

fn otlp_span(trace: &str, id: &str, parent: &str, name: &str, start_ms: u64, end_ms: u64) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": trace,
                "spanId": id,
                "parentSpanId": parent,
                "name": name,
                "kind": 1,
                "startTimeUnixNano": (start_ms * 1_000_000).to_string(),
                "endTimeUnixNano": (end_ms * 1_000_000).to_string(),
                "attributes": [{"key": "mlflow.spanInputs", "value": {"stringValue": "{\"q\": \"where is my refund\"}"}}],
                "status": {"code": 0}
            }]}]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_database() {
    let db = loupe_store_conformance::pg::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = replica(&db.url, dir.path()).await;
    let b = replica(&db.url, dir.path()).await;
    let trace = "5b8efff798038103d269b633813fc60c";
    let client = reqwest::Client::new();
    let root_ms = 1_700_000_000_000;
    for (url, body) in [
        (
            &a.url,
            otlp_span(
                trace,
                "eee19b7ec3c1b174",
                "",
                "agent",
                root_ms,
                root_ms + 100,
            ),
        ),
        (
            &b.url,
            otlp_span(
                trace,
                "eee19b7ec3c1b175",
                "eee19b7ec3c1b174",
                "tool",
                root_ms + 10,
                root_ms + 150,
            ),
        ),
    ] {
        let resp = client
            .post(format!("{url}/v1/traces"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap()
        );
    }
    for url in [&a.url, &b.url] {
        let body: Value = reqwest::get(format!("{url}/api/v1/traces/{trace}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["trace"]["span_count"], 2, "{body}");
        assert_eq!(body["trace"]["name"], "agent", "{body}");
        let found: Value = client
            .get(format!("{url}/api/v1/traces"))
            .query(&[("q", "text ~ 'refund' AND span.name = 'tool'")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let traces = found["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 1, "{found}");
    }
    assert!(
        std::fs::read_dir(dir.path()).map_or(true, |mut d| d.next().is_none()),
        "nothing is written to the data directory"
    );
}
