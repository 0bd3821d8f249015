//! Nothing acknowledged is lost: a full queue answers 503 and buffers nothing, SIGTERM
//! finishes what it holds, SIGKILL loses nothing acknowledged.

use crate::helpers::*;

/// A store whose writes wait until the test opens a gate: a way to fill the queue on purpose.
/// `entered` is set once a write waits at the gate (its request then holds its queue budget).
fn gated_store(
    inner: Arc<dyn TraceStore>,
    open: Arc<AtomicBool>,
    entered: Arc<AtomicBool>,
) -> Arc<dyn TraceStore> {
    Arc::new(HookedStore::new(
        inner,
        Arc::new(move || {
            let (open, entered) = (open.clone(), entered.clone());
            Box::pin(async move {
                entered.store(true, Ordering::SeqCst);
                while !open.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            })
        }),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503_and_unavailable_never_buffers() {
    let open = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (gate, seen) = (open.clone(), entered.clone());
    let server = TestServer::with(Options {
        max_queued_spans: 4,
        wrap: Some(Box::new(move |inner| gated_store(inner, gate, seen))),
        ..Options::default()
    })
    .await;
    let t = [6u8; 16];
    let first = {
        let url = server.url.clone();
        let req = request(
            (1..=4)
                .map(|i| pspan(t, i, if i == 1 { None } else { Some(1) }, 0, 10))
                .collect(),
        );
        tokio::spawn(async move { post_pb(&url, &req).await.status() })
    };
    // wait until the first request holds the whole budget (its write is at the gate)
    for _ in 0..1000 {
        if entered.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        entered.load(Ordering::SeqCst),
        "the first write never reached the store"
    );
    let resp = post_pb(&server.url, &request(vec![pspan([7; 16], 1, None, 0, 1)])).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(st.code, 14);
    let resp = post(&server.url, "application/json", None, json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "08080808080808080808080808080808", "spanId": "0101010101010101", "name": "x"}]}]}]}).to_string().into_bytes()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "UNAVAILABLE"
    );
    // gRPC says UNAVAILABLE
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    let err = client
        .export(request(vec![pspan([7; 16], 1, None, 0, 1)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(err.message(), "the write queue is full; retry later");
    // log records take from the same budget: refused too, over HTTP and gRPC
    let log = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000001000000", "eventName": "gen_ai.user.message",
         "traceId": "06060606060606060606060606060606", "spanId": "0101010101010101"}]}]}]});
    let post_log = || {
        reqwest::Client::new()
            .post(format!("{}/v1/logs", server.url))
            .header("content-type", "application/json")
            .body(log.to_string())
            .send()
    };
    let resp = post_log().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let mut logs = opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
    let record = opentelemetry_proto::tonic::logs::v1::LogRecord {
        time_unix_nano: 1_700_000_000_001_000_000,
        trace_id: vec![6; 16],
        span_id: vec![1; 8],
        ..Default::default()
    };
    let err = logs
        .export(
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
                resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
                    scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                        log_records: vec![record],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    // open the gate: the first request is committed and acknowledged; the refused ones are not stored
    open.store(true, Ordering::SeqCst);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        server.trace("06060606060606060606060606060606").await["trace"]["span_count"],
        4
    );
    assert_eq!(
        server
            .get("/api/v1/traces/07070707070707070707070707070707")
            .await
            .0,
        404
    );
    let events_of_span_1 = || async {
        let trace = server.trace("06060606060606060606060606060606").await;
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        let span = spans
            .iter()
            .find(|s| s["span_id"] == "0101010101010101")
            .cloned()
            .expect("span 1");
        span["events"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(
        events_of_span_1().await,
        0,
        "the refused log records are not stored"
    );
    // and the queue takes work again, logs too
    assert_eq!(post_log().await.unwrap().status(), 200);
    assert_eq!(events_of_span_1().await, 1);
    assert_eq!(
        post_pb(&server.url, &request(vec![pspan([7; 16], 1, None, 0, 1)]))
            .await
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_acknowledged_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(dir.path()).await;
    let t = [0x55u8; 16];
    assert_eq!(
        post_pb(&server.url, &request(vec![pspan(t, 1, None, 0, 5)]))
            .await
            .status(),
        200
    );
    signal(server.pid(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let server = ChildServer::start(dir.path()).await;
    let body: Value = reqwest::get(format!("{}/api/v1/traces/{}", server.url, hex(&t)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["trace"]["span_count"], 1);
}

/// Clients ingest at full speed; the server is killed with SIGKILL; every span whose request was
/// acknowledged must be there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let acked: Arc<std::sync::Mutex<Vec<[u8; 16]>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let (url, acked, stop) = (server.url.clone(), acked.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                // 20 traces of 5 spans per request, ids unique per client and request
                let mut ids = Vec::new();
                let mut spans = Vec::new();
                for k in 0..20u32 {
                    let mut t = [0u8; 16];
                    t[..4].copy_from_slice(&c.to_be_bytes());
                    t[4..8].copy_from_slice(&n.to_be_bytes());
                    t[8..12].copy_from_slice(&k.to_be_bytes());
                    t[15] = 1;
                    ids.push(t);
                    for s in 1..=5u8 {
                        spans.push(pspan(t, s, (s > 1).then_some(1), u64::from(s), 100));
                    }
                }
                n += 1;
                let sent = http
                    .post(format!("{url}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .body(request(spans).encode_to_vec())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    Ok(_) => {}
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(server.pid(), "KILL");
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "the clients got {} traces acknowledged before the kill",
        acked.len()
    );
    drop(server);
    let server = ChildServer::start(dir.path()).await;
    let stored: HashMap<String, u64> = all_traces(&server.url)
        .await
        .into_iter()
        .map(|t| {
            (
                t["trace_id"].as_str().unwrap().to_string(),
                t["span_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut missing = 0;
    for t in &acked {
        match stored.get(&hex(t)) {
            Some(5) => {}
            _ => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged traces lost or incomplete",
        acked.len()
    );
    eprintln!(
        "sigkill: {} acknowledged traces all present ({} stored)",
        acked.len(),
        stored.len()
    );
}
