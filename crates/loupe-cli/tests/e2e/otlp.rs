//! OTLP as exporters send it: real OpenTelemetry SDK exporters over HTTP and gRPC, and raw
//! OTLP/HTTP bodies (canonical JSON, malformed bodies, limits, partial success, roll-ups).

use crate::helpers::*;

// real exporters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_over_http_protobuf_json_and_gzip() {
    let server = TestServer::start().await;
    for (protocol, gzip) in [
        (opentelemetry_otlp::Protocol::HttpBinary, false),
        (opentelemetry_otlp::Protocol::HttpBinary, true),
        (opentelemetry_otlp::Protocol::HttpJson, false),
    ] {
        let endpoint = format!("{}/v1/traces", server.url);
        let service = format!("svc-{protocol:?}-{gzip}");
        let svc = service.clone();
        // The blocking HTTP client must be built and driven outside the async runtime.
        let trace_id = tokio::task::spawn_blocking(move || {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(endpoint);
            if gzip {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let exporter = builder.build().unwrap();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource(&svc))
                .build();
            let id = record_agent_trace(&provider);
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
            id
        })
        .await
        .unwrap();
        check_agent_trace(&server, &trace_id, &service).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_over_grpc_with_gzip_and_project_header() {
    let server = TestServer::start().await;
    for gzip in [false, true] {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("x-loupe-project", "grpc-project".parse().unwrap());
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{}", server.grpc))
            .with_metadata(metadata);
        if gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let exporter = builder.build().unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource("grpc-svc"))
            .build();
        let id = record_agent_trace(&provider);
        tokio::task::spawn_blocking(move || {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        })
        .await
        .unwrap();
        check_agent_trace(&server, &id, "grpc-svc").await;
        assert_eq!(server.trace(&id).await["trace"]["project"], "grpc-project");
    }
    server.stop().await;
}

// raw OTLP/HTTP

#[tokio::test]
async fn canonical_otlp_json_sample() {
    let server = TestServer::start().await;
    let sample = include_bytes!("../../../loupe-ingest/tests/data/otlp-canonical.json");
    let resp = post(
        &server.url,
        "application/json; charset=utf-8",
        None,
        sample.to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    let body = server.trace("5B8EFFF798038103D269B633813FC60C").await;
    let t = &body["trace"];
    assert_eq!(t["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(t["start_time_ms"], 1_544_712_660_000u64);
    let root = body["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["parent_id"].is_null())
        .unwrap();
    assert_eq!(root["resource"]["process.pid"], 4242);
    assert_eq!(root["resource"]["blob"], "aGVsbG8=");
    assert_eq!(root["resource"]["nested"]["inner"], "x");
    assert_eq!(root["kind"], 3);
    // the same request as protobuf is answered in protobuf
    let req = loupe_ingest::decode_json(sample).unwrap();
    let resp = post_pb(&server.url, &req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let decoded = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert!(decoded.partial_success.is_none());
    assert_eq!(
        server.trace("5b8efff798038103d269b633813fc60c").await["trace"]["span_count"],
        2,
        "the resend changed nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_precise_400s() {
    let server = TestServer::start().await;
    // garbage protobuf: protobuf Status body
    let resp = post(
        &server.url,
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff, 0x0f, 0x01],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(st.code, 3);
    assert!(
        st.message.starts_with("invalid OTLP protobuf"),
        "{}",
        st.message
    );
    // wrong id length in protobuf
    let mut bad = pspan([7; 16], 1, None, 0, 1);
    bad.trace_id.truncate(12);
    let resp = post_pb(
        &server.url,
        &request(vec![pspan([7; 16], 2, None, 0, 1), bad]),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert_eq!(
        st.message,
        "resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes (32 hex characters), got 12 bytes"
    );
    let (status, _) = server
        .get("/api/v1/traces/07070707070707070707070707070707")
        .await;
    assert_eq!(
        status, 404,
        "a refused request stores nothing, not even its valid spans"
    );
    // JSON: bad syntax, invalid UTF-8, bad hex
    for (body, want) in [
        (b"{\"resourceSpans\": [".to_vec(), "invalid JSON"),
        (b"\xff\xfe\xfd".to_vec(), "invalid JSON"),
        (json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}]}).to_string().into_bytes(),
         "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 32 hex characters, got 2"),
        (json!({"resource_spans": []}).to_string().into_bytes(), "lowerCamelCase"),
    ] {
        let resp = post(&server.url, "application/json", None, body).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], 3);
        assert_eq!(v["error"]["code"], "INVALID_ARGUMENT");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{v}");
    }
    // unsupported media type and encoding
    let resp = post(&server.url, "text/plain", None, b"hi".to_vec()).await;
    assert_eq!(resp.status(), 415);
    let resp = post(&server.url, "application/json", Some("br"), b"{}".to_vec()).await;
    assert_eq!(resp.status(), 415);
    // a body that says gzip but is not
    let resp = post(
        &server.url,
        "application/json",
        Some("gzip"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn size_limits_apply_to_wire_and_decompressed_bytes() {
    let limit = 64 * 1024;
    let server = TestServer::with(Options {
        max_request_bytes: limit,
        ..Options::default()
    })
    .await;
    // too large as sent
    let resp = post(
        &server.url,
        "application/x-protobuf",
        None,
        vec![0u8; limit + 1],
    )
    .await;
    assert_eq!(resp.status(), 413);
    // chunked, no Content-Length, too large
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // a gzip bomb: 50 MB of zeros in ~50 KB
    let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
    assert!(bomb.len() < limit);
    let resp = post(&server.url, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(resp.status(), 413);
    let st = rpc_status(&resp.bytes().await.unwrap());
    assert!(st.message.contains("after decompression"), "{}", st.message);
    // a small gzip body, chunked, passes
    let ok = gzip(&request(vec![pspan([9; 16], 1, None, 0, 5)]).encode_to_vec());
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/traces", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(futures_stream(vec![
            Ok(ok[..10].to_vec()),
            Ok(ok[10..].to_vec()),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.trace("09090909090909090909090909090909").await["trace"]["span_count"],
        1
    );
    server.stop().await;
}

fn futures_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::iter(items)
}

#[tokio::test]
async fn partial_success_for_invalid_spans() {
    let server = TestServer::start().await;
    let mut zero = pspan([0; 16], 3, None, 0, 1);
    zero.trace_id = vec![0; 16];
    let req = request(vec![pspan([4; 16], 1, None, 0, 10), zero.clone()]);
    let resp = post_pb(&server.url, &req).await;
    assert_eq!(resp.status(), 200);
    let r = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    let ps = r.partial_success.unwrap();
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("spans[1]"),
        "{}",
        ps.error_message
    );
    assert_eq!(
        server.trace("04040404040404040404040404040404").await["trace"]["span_count"],
        1
    );
    let json_req = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00000000000000000000000000000000", "spanId": "0101010101010101", "name": "z"}]}]}]});
    let resp = post(
        &server.url,
        "application/json",
        None,
        json_req.to_string().into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    server.stop().await;
}

#[tokio::test]
async fn out_of_order_split_and_duplicate_spans_roll_up_right() {
    let server = TestServer::start().await;
    let t = [5u8; 16];
    let mut err = pspan(t, 4, Some(2), 30, 40);
    err.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    // grandchild, then child, then root; then all of it again in one request
    let batches = vec![
        vec![err.clone()],
        vec![pspan(t, 3, Some(2), 5, 250)],
        vec![pspan(t, 2, Some(1), 20, 90)],
        vec![pspan(t, 1, None, 10, 200)],
        vec![
            pspan(t, 1, None, 10, 200),
            pspan(t, 2, Some(1), 20, 90),
            pspan(t, 3, Some(2), 5, 250),
            err,
        ],
    ];
    for (i, b) in batches.into_iter().enumerate() {
        let resp = post_pb(&server.url, &request(b)).await;
        assert_eq!(resp.status(), 200);
        let tr = &server.trace("05050505050505050505050505050505").await["trace"];
        if i == 0 {
            assert_eq!(
                tr["name"], "span-4",
                "provisional name before the root arrives"
            );
        }
    }
    let tr = &server.trace("05050505050505050505050505050505").await["trace"];
    assert_eq!(tr["name"], "span-1");
    assert_eq!(tr["span_count"], 4);
    assert_eq!(tr["error_count"], 1);
    assert_eq!(tr["status"], "ERROR");
    assert_eq!(tr["input_tokens"], 100);
    assert_eq!(tr["start_time_ms"], 1_700_000_000_005u64);
    assert_eq!(tr["duration_ms"], 245);
    server.stop().await;
}
