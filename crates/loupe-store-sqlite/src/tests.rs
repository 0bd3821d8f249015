//! Store tests: roll-ups under reordering, splitting and duplication; pagination; reopening.

use loupe_model::normalize;
use loupe_model::{Span, SpanId, SpanStatus, TraceId};
use loupe_store::{EncodedSpan, TraceQuery, TraceStore, encode_span};
use serde_json::{Map, Value, json};

use super::SqliteStore;

fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    start: u64,
    end: u64,
    status: SpanStatus,
    tokens: Option<(u64, u64)>,
) -> EncodedSpan {
    let mut attributes = Map::new();
    if let Some((i, o)) = tokens {
        attributes.insert("gen_ai.request.model".into(), json!("gpt-4o"));
        attributes.insert("gen_ai.usage.input_tokens".into(), json!(i));
        attributes.insert("gen_ai.usage.output_tokens".into(), json!(o));
    }
    let derived = normalize::derive(&attributes);
    encode_span(Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_id: parent.map(|p| SpanId([p; 8])),
        name: format!("span-{id}"),
        kind: 0,
        start_ns: start,
        end_ns: end,
        status,
        status_message: String::new(),
        attributes,
        events: vec![],
        links: vec![],
        resource: Map::from_iter([("service.name".to_string(), Value::from("svc"))]),
        scope: None,
        project: "default".into(),
        derived,
    })
}

/// A trace: root 1 (0..100ms), child 2 with tokens, child 3 failed, grandchild 4 with tokens.
fn trace_spans(t: u8) -> Vec<EncodedSpan> {
    let ms = 1_000_000;
    vec![
        span(t, 1, None, 1_000 * ms, 1_100 * ms, SpanStatus::Unset, None),
        span(
            t,
            2,
            Some(1),
            1_010 * ms,
            1_050 * ms,
            SpanStatus::Ok,
            Some((10, 5)),
        ),
        span(
            t,
            3,
            Some(1),
            1_020 * ms,
            1_090 * ms,
            SpanStatus::Error,
            None,
        ),
        span(
            t,
            4,
            Some(3),
            995 * ms,
            1_120 * ms,
            SpanStatus::Unset,
            Some((7, 3)),
        ),
    ]
}

async fn check_rollup(store: &SqliteStore, t: u8) {
    let d = store.get_trace(TraceId([t; 16])).await.unwrap().unwrap();
    let s = &d.summary;
    assert_eq!(s.name, "span-1");
    assert!(s.has_root);
    assert_eq!(s.span_count, 4);
    assert_eq!(s.error_count, 1);
    assert_eq!(
        s.status,
        SpanStatus::Error,
        "an errored child with an unset root"
    );
    assert_eq!(
        (s.input_tokens, s.output_tokens, s.total_tokens),
        (17, 8, 25)
    );
    assert_eq!(s.start_ns, 995_000_000);
    assert_eq!(s.duration_ns(), 125_000_000);
    assert_eq!(d.spans.len(), 4);
    assert_eq!(
        d.spans[0].span_id,
        SpanId([4; 8]),
        "spans come in start order"
    );
    assert_eq!(s.metadata.get("service.name"), Some(&json!("svc")));
}

#[tokio::test]
async fn rollups_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let out = store.write_spans(trace_spans(1)).await.unwrap();
    assert_eq!(out.inserted, 4);
    check_rollup(&store, 1).await;
}

#[tokio::test]
async fn rollups_out_of_order_split_and_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut spans = trace_spans(2);
    spans.reverse();
    // Children first, one per batch, the root last, then everything again.
    for s in &spans {
        store.write_spans(vec![s.clone()]).await.unwrap();
        let d = store.get_trace(TraceId([2; 16])).await.unwrap().unwrap();
        assert!(
            !d.summary.name.is_empty(),
            "a provisional name before the root arrives"
        );
    }
    let out = store.write_spans(trace_spans(2)).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (0, 4));
    let mut twice = trace_spans(2);
    twice.extend(trace_spans(2));
    let out = store.write_spans(twice).await.unwrap();
    assert_eq!(out.duplicates, 8);
    check_rollup(&store, 2).await;
}

#[tokio::test]
async fn root_status_wins_and_provisional_name_is_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let later = span(3, 2, Some(1), 2_000, 3_000, SpanStatus::Error, None);
    let earlier = span(3, 3, Some(1), 1_500, 1_600, SpanStatus::Unset, None);
    store.write_spans(vec![later]).await.unwrap();
    store.write_spans(vec![earlier]).await.unwrap();
    let s = store
        .get_trace(TraceId([3; 16]))
        .await
        .unwrap()
        .unwrap()
        .summary;
    assert_eq!(
        (s.name.as_str(), s.status, s.has_root),
        ("span-3", SpanStatus::Error, false)
    );
    store
        .write_spans(vec![span(3, 1, None, 1_000, 4_000, SpanStatus::Ok, None)])
        .await
        .unwrap();
    let s = store
        .get_trace(TraceId([3; 16]))
        .await
        .unwrap()
        .unwrap()
        .summary;
    assert_eq!((s.name.as_str(), s.status), ("span-1", SpanStatus::Ok));
}

#[tokio::test]
async fn pagination_filters_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for t in 10..35u8 {
            let base = u64::from(t) * 1_000_000_000;
            all.push(span(
                t,
                1,
                None,
                base,
                base + u64::from(t) * 1_000_000,
                if t % 5 == 0 {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                },
                None,
            ));
        }
        store.write_spans(all).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_traces(TraceQuery {
                limit: 7,
                cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.traces.iter().map(|t| t.trace_id.0[0]));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, (10..35u8).rev().collect::<Vec<_>>());
    let errors = store
        .list_traces(TraceQuery {
            status: Some(SpanStatus::Error),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        errors
            .traces
            .iter()
            .map(|t| t.trace_id.0[0])
            .collect::<Vec<_>>(),
        vec![30, 25, 20, 15, 10]
    );
    let long = store
        .list_traces(TraceQuery {
            min_duration_ms: Some(30),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(long.traces.len(), 5);
    let window = store
        .list_traces(TraceQuery {
            start_from_ms: Some(12_000),
            start_to_ms: Some(14_000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(window.traces.len(), 2);
    let named = store
        .list_traces(TraceQuery {
            name: Some("span-1".into()),
            project: Some("other".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(named.traces.is_empty());
    assert!(store.get_trace(TraceId([99; 16])).await.unwrap().is_none());
}

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join(crate::bodylog::BODIES_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn grouped_bodies_read_back_and_duplicates_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // Two traces in one batch, their spans interleaved: one group each.
    let mut raw = Vec::new();
    for id in 1..=3u8 {
        for t in [7u8, 8] {
            let mut attributes = Map::new();
            attributes.insert("mlflow.spanInputs".into(), json!({ "t": t, "id": id }));
            raw.push(Span {
                trace_id: TraceId([t; 16]),
                span_id: SpanId([id; 8]),
                parent_id: (id > 1).then_some(SpanId([1; 8])),
                name: format!("s{id}"),
                kind: 1,
                start_ns: u64::from(id),
                end_ns: 10,
                status: SpanStatus::Ok,
                status_message: String::new(),
                derived: normalize::derive(&attributes),
                attributes,
                events: vec![],
                links: vec![],
                resource: Map::new(),
                scope: None,
                project: "default".into(),
            });
        }
    }
    let batch = loupe_store::encode_spans(raw);
    let out = store.write_spans(batch.clone()).await.unwrap();
    assert_eq!(out.inserted, 6);
    let written = log_bytes(dir.path());
    let groups: std::collections::HashSet<usize> =
        batch.iter().map(|s| s.body.group_key()).collect();
    let expected: u64 = batch
        .iter()
        .filter(|s| s.body.index == 0)
        .map(|s| s.body.group.len() as u64)
        .sum();
    assert_eq!(groups.len(), 2);
    assert_eq!(written, expected, "each group written once");
    // The same batch again: every span a duplicate, nothing appended.
    let again = store.write_spans(batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 6));
    assert_eq!(log_bytes(dir.path()), written);
    for t in [7u8, 8] {
        let detail = store.get_trace(TraceId([t; 16])).await.unwrap().unwrap();
        assert_eq!(detail.spans.len(), 3);
        for s in &detail.spans {
            let id = s.span_id.0[0];
            assert_eq!(
                s.body.attributes["mlflow.spanInputs"],
                json!({ "t": t, "id": id }),
                "trace {t} span {id} reads its own body"
            );
        }
    }
}

#[tokio::test]
async fn rows_written_before_the_body_log_still_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A version-1 database, as the previous release wrote it: the body inline.
        let mut conn = rusqlite::Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute(
            "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, span_count) \
             VALUES (?1, 'default', 'old', 1, 2, 1)",
            [&[9u8; 16][..]],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO spans (trace_seq, span_id, name, span_type, start_ns, end_ns, status) \
             VALUES (1, 5, 'old', 'UNKNOWN', 1, 2, 0)",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO span_bodies (id, body) VALUES (1, ?1)",
            [br#"{"kind":2,"attributes":{"legacy":true}}"#.as_slice()],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let detail = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 1);
    assert_eq!(detail.spans[0].body.kind, 2);
    assert_eq!(detail.spans[0].body.attributes["legacy"], json!(true));
    // New spans of the same trace go to the log; both read back.
    let mut more = span(9, 6, Some(0), 1, 3, SpanStatus::Ok, None);
    more.parent_id = None;
    store.write_spans(vec![more]).await.unwrap();
    let detail = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 2);
    assert!(
        detail
            .spans
            .iter()
            .any(|s| s.body.attributes.get("legacy").is_some())
    );
    assert!(detail.spans.iter().any(|s| s.name == "span-6"));
}

#[tokio::test]
async fn an_unreadable_body_does_not_hide_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.write_spans(trace_spans(3)).await.unwrap();
    // Damage the log as a power cut could (never for an acknowledged batch).
    let seg = dir
        .path()
        .join(crate::bodylog::BODIES_DIR)
        .join("00000001.log");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    let detail = store.get_trace(TraceId([3; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 4);
    assert!(
        detail.spans[0].body.attributes["loupe.body_error"]
            .as_str()
            .unwrap()
            .contains("span body")
    );
}

fn info_update(t: u8, status: SpanStatus) -> loupe_store::TraceInfoUpdate {
    loupe_store::TraceInfoUpdate {
        trace_id: TraceId([t; 16]),
        project: "default".into(),
        start_ns: Some(990 * 1_000_000),
        duration_ns: Some(500 * 1_000_000),
        status: Some(status),
        name: Some("from-client".into()),
        session_id: Some("s-1".into()),
        user_id: None,
        tags: Map::from_iter([("env".to_string(), json!("prod"))]),
        metadata: Map::from_iter([("mlflow.trace_schema.version".to_string(), json!("3"))]),
        // The state a client reports is kept in `info` too; it then outlasts the root span's.
        info: Map::from_iter([
            ("client_request_id".to_string(), json!("req-1")),
            ("state".to_string(), json!(status.as_str())),
        ]),
    }
}

#[tokio::test]
async fn client_info_and_spans_merge_in_either_order() {
    let ms = 1_000_000;
    for info_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        if info_first {
            let t = store
                .upsert_trace_info(info_update(4, SpanStatus::Ok))
                .await
                .unwrap();
            assert_eq!((t.span_count, t.name.as_str()), (0, "from-client"));
            assert_eq!(t.duration_ns(), 500 * ms);
        }
        store.write_spans(trace_spans(4)).await.unwrap();
        if !info_first {
            store
                .upsert_trace_info(info_update(4, SpanStatus::Ok))
                .await
                .unwrap();
        }
        let t = store
            .trace_summaries(vec![TraceId([4; 16])])
            .await
            .unwrap()
            .remove(0);
        assert_eq!(t.span_count, 4, "info first: {info_first}");
        // Spans decide times and the root's name; the client decides status, tags, info.
        assert_eq!(
            (t.start_ns, t.end_ns),
            (995 * ms, 1_120 * ms),
            "info first: {info_first}"
        );
        assert_eq!(t.name, "span-1");
        assert_eq!(
            t.status,
            SpanStatus::Ok,
            "the client's state wins over a failed child"
        );
        assert_eq!(t.tags["env"], json!("prod"));
        assert_eq!(t.info["client_request_id"], json!("req-1"));
        assert_eq!(t.session_id.as_deref(), Some("s-1"));
        assert_eq!((t.input_tokens, t.output_tokens), (17, 8));
    }
}

#[tokio::test]
async fn tags_assessments_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.write_spans(trace_spans(1)).await.unwrap();
    store.write_spans(trace_spans(2)).await.unwrap();
    let one = TraceId([1; 16]);
    assert!(
        store
            .set_trace_tag(one, "k".into(), Some(json!("v")))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_trace_tag(one, "missing".into(), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_trace_tag(TraceId([9; 16]), "k".into(), Some(json!("v")))
            .await
            .unwrap()
    );
    let a = loupe_store::Assessment {
        assessment_id: "a-1".into(),
        trace_id: one,
        create_time_ms: 5,
        body: json!({"assessment_name": "quality", "feedback": {"value": 0.9}}),
    };
    assert!(store.put_assessment(one, a.clone()).await.unwrap());
    assert!(!store.put_assessment(TraceId([9; 16]), a).await.unwrap());
    let q = loupe_query::parse("feedback.quality > 0.5", 0).unwrap();
    let page = store
        .list_traces(TraceQuery {
            filter: Some(q),
            limit: 10,
            ..TraceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.traces.iter().map(|t| t.trace_id).collect::<Vec<_>>(),
        vec![one]
    );
    let n = store
        .delete_traces(loupe_store::TraceSelection::Ids(vec![
            one,
            TraceId([9; 16]),
        ]))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(store.get_trace(one).await.unwrap().is_none());
    assert!(store.assessments(vec![one]).await.unwrap().is_empty());
    let n = store
        .delete_traces(loupe_store::TraceSelection::StartedBy {
            project: "default".into(),
            max_start_ms: 0,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 0, "trace 2 starts later");
    let n = store
        .delete_traces(loupe_store::TraceSelection::StartedBy {
            project: "default".into(),
            max_start_ms: 10_000,
            limit: Some(5),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}
