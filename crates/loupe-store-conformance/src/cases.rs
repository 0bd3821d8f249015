//! The store's behaviour: idempotent writes and roll-ups, trace info from clients, tags,
//! assessments, deletes, events, experiments, sessions, recompute.

use loupe_model::{
    AssessmentError, AssessmentKind, AssessmentSource, AssessmentValue, SourceType, SpanEvent,
    SpanId, SpanStatus, TraceId,
};
use loupe_store::{
    ErrorKind, ExperimentKey, Recompute, SessionQuery, SpanBodies, TraceQuery, TraceSelection,
    TraceStore,
};
use serde_json::{Map, Value, json};

use crate::fixtures::{
    MS, check_rollup, feedback, seed_query_data, span, trace_spans, traces_matching,
};

/// A trace written in one batch rolls up.
pub async fn rollups_in_order(store: &dyn TraceStore) {
    let out = store.write_spans(trace_spans(1)).await.expect("write");
    assert_eq!(out.inserted, 4);
    check_rollup(store, 1).await;
}

/// Children first, one per batch, then everything again, then everything twice in one batch.
pub async fn rollups_out_of_order_split_and_duplicated(store: &dyn TraceStore) {
    let mut spans = trace_spans(2);
    spans.reverse();
    for s in &spans {
        store.write_spans(vec![s.clone()]).await.expect("write");
        let d = store
            .get_trace(TraceId([2; 16]))
            .await
            .expect("get")
            .expect("exists");
        assert!(
            !d.summary.name.is_empty(),
            "a provisional name before the root arrives"
        );
    }
    let out = store.write_spans(trace_spans(2)).await.expect("write");
    assert_eq!((out.inserted, out.duplicates), (0, 4));
    let mut twice = trace_spans(2);
    twice.extend(trace_spans(2));
    let out = store.write_spans(twice).await.expect("write");
    assert_eq!(out.duplicates, 8);
    // A new trace whose spans repeat within its first batch counts each once.
    let mut twice = trace_spans(3);
    twice.extend(trace_spans(3));
    let out = store.write_spans(twice).await.expect("write");
    assert_eq!((out.inserted, out.duplicates), (4, 4));
    check_rollup(store, 2).await;
    check_rollup(store, 3).await;
}

/// Batches of the same traces written at the same time (several writers) lose nothing.
pub async fn concurrent_batches_keep_rollups(store: &dyn TraceStore) {
    let traces: Vec<u8> = (10..18).collect();
    let part = |pick: &dyn Fn(usize) -> bool| -> Vec<loupe_store::EncodedSpan> {
        traces
            .iter()
            .flat_map(|t| {
                trace_spans(*t)
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| pick(*i))
                    .map(|(_, s)| s)
            })
            .collect()
    };
    let a = part(&|i| i == 0);
    let b = part(&|i| i == 1 || i == 2);
    let mut c = part(&|i| i == 3);
    c.reverse();
    let d = part(&|i| i % 2 == 1);
    let (ra, rb, rc, rd) = tokio::join!(
        store.write_spans(a),
        store.write_spans(b),
        store.write_spans(c),
        store.write_spans(d)
    );
    let inserted: u64 = [ra, rb, rc, rd]
        .into_iter()
        .map(|r| r.expect("write").inserted)
        .sum();
    assert_eq!(inserted, 4 * traces.len() as u64, "each span stored once");
    for t in traces {
        check_rollup(store, t).await;
    }
}

/// The root's status wins once it arrives; before, the earliest span names the trace.
pub async fn root_status_wins_and_provisional_name_is_earliest(store: &dyn TraceStore) {
    let later = span(3, 2, Some(1), 2_000, 3_000, SpanStatus::Error, None);
    let earlier = span(3, 3, Some(1), 1_500, 1_600, SpanStatus::Unset, None);
    store.write_spans(vec![later]).await.expect("write");
    store.write_spans(vec![earlier]).await.expect("write");
    let s = store
        .get_trace(TraceId([3; 16]))
        .await
        .expect("get")
        .expect("exists")
        .summary;
    assert_eq!(
        (s.name.as_str(), s.status, s.has_root),
        ("span-3", SpanStatus::Error, false)
    );
    store
        .write_spans(vec![span(3, 1, None, 1_000, 4_000, SpanStatus::Ok, None)])
        .await
        .expect("write");
    let s = store
        .get_trace(TraceId([3; 16]))
        .await
        .expect("get")
        .expect("exists")
        .summary;
    assert_eq!((s.name.as_str(), s.status), ("span-1", SpanStatus::Ok));
    assert_eq!(s.duration_ns(), 3_000);
}

/// Keyset pages in start order, and the simple filters of [`TraceQuery`].
pub async fn pagination_and_filters(store: &dyn TraceStore) {
    let mut all = Vec::new();
    for t in 10..35u8 {
        let base = u64::from(t) * 1_000_000_000;
        all.push(span(
            t,
            1,
            None,
            base,
            base + u64::from(t) * MS,
            if t % 5 == 0 {
                SpanStatus::Error
            } else {
                SpanStatus::Ok
            },
            None,
        ));
    }
    store.write_spans(all).await.expect("write");
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
            .expect("list");
        assert!(page.traces.len() <= 7);
        seen.extend(page.traces.iter().map(|t| t.trace_id.0[0]));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, (10..35u8).rev().collect::<Vec<_>>());
    let ids = |p: loupe_store::TracePage| -> Vec<u8> {
        p.traces.iter().map(|t| t.trace_id.0[0]).collect()
    };
    let errors = store
        .list_traces(TraceQuery::newest(100).status(SpanStatus::Error))
        .await
        .expect("list");
    assert_eq!(ids(errors), vec![30, 25, 20, 15, 10]);
    let long = store
        .list_traces(TraceQuery::newest(100).min_duration_ms(30))
        .await
        .expect("list");
    assert_eq!(long.traces.len(), 5);
    let window = store
        .list_traces(TraceQuery::newest(100).started(Some(12_000), Some(14_000)))
        .await
        .expect("list");
    assert_eq!(ids(window), vec![13, 12]);
    let named = store
        .list_traces(TraceQuery::newest(100).name("span-1").project("other"))
        .await
        .expect("list");
    assert!(named.traces.is_empty());
    let projects = store
        .list_traces(TraceQuery::newest(3).projects(&["nope".into(), "default".into()]))
        .await
        .expect("list");
    assert_eq!(ids(projects), vec![34, 33, 32]);
    assert!(
        store
            .get_trace(TraceId([99; 16]))
            .await
            .expect("get")
            .is_none()
    );
}

/// Spans of several traces compressed in shared groups each read back their own body; a
/// repeated batch stores nothing.
pub async fn grouped_bodies_read_back(store: &dyn TraceStore) {
    let raw = crate::fixtures::interleaved_spans();
    let batch = loupe_store::encode_spans(raw);
    let out = store.write_spans(batch.clone()).await.expect("write");
    assert_eq!(out.inserted, 6);
    let again = store.write_spans(batch).await.expect("write");
    assert_eq!((again.inserted, again.duplicates), (0, 6));
    for t in [7u8, 8] {
        let detail = store
            .get_trace(TraceId([t; 16]))
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(detail.spans.len(), 3);
        for s in &detail.spans {
            let id = s.span_id.0[0];
            assert_eq!(s.body.kind, 1);
            assert_eq!(
                s.body.attributes["mlflow.spanInputs"],
                json!({ "t": t, "id": id }),
                "trace {t} span {id} reads its own body"
            );
        }
    }
}

/// Only the bodies asked for are read.
pub async fn bodies_read_only_when_asked(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let id = TraceId([3; 16]);
    let has_body = |d: &loupe_store::TraceDetail| -> Vec<u8> {
        d.spans
            .iter()
            .filter(|s| !s.body.attributes.is_empty())
            .map(|s| s.span_id.0[0])
            .collect()
    };
    let none = store
        .get_trace_with(id, SpanBodies::None)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(none.spans.len(), 3);
    assert!(has_body(&none).is_empty());
    let only = store
        .get_trace_with(id, SpanBodies::Only(SpanId([2; 8])))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(has_body(&only), vec![2]);
    assert_eq!(only.spans[2].body.attributes["app.flag"], json!("yes"));
    let all = store.get_trace(id).await.expect("get").expect("exists");
    assert_eq!(
        all.spans.iter().map(|s| s.span_id.0[0]).collect::<Vec<_>>(),
        vec![1, 3, 2]
    );
    let s = &all.spans[2];
    assert_eq!(
        (
            s.columns.model.as_deref(),
            s.columns.span_type.as_str(),
            s.columns.input_tokens,
            s.columns.output_tokens,
            s.columns.total_tokens,
            s.columns.cost_usd
        ),
        (
            Some("claude-3"),
            "LLM",
            Some(20),
            Some(10),
            Some(30),
            Some(0.03)
        )
    );
    assert_eq!(s.parent_id, Some(SpanId([1; 8])));
    // The root has no attributes in the data set; Roots reads it without error.
    let roots = store
        .get_trace_with(id, SpanBodies::Roots)
        .await
        .expect("get")
        .expect("exists");
    assert!(has_body(&roots).is_empty());
}

fn info_update(t: u8, status: SpanStatus) -> loupe_store::TraceInfoUpdate {
    loupe_store::TraceInfoUpdate {
        trace_id: TraceId([t; 16]),
        project: "default".into(),
        start_ns: Some(990 * MS),
        duration_ns: Some(500 * MS),
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

/// What a client reports (MLflow's StartTraceV3) and the spans merge in either order.
pub async fn client_info_and_spans_merge_in_either_order(store: &dyn TraceStore) {
    for (t, info_first) in [(4u8, true), (5u8, false)] {
        if info_first {
            let s = store
                .upsert_trace_info(info_update(t, SpanStatus::Ok))
                .await
                .expect("upsert");
            assert_eq!((s.span_count, s.name.as_str()), (0, "from-client"));
            assert_eq!(s.duration_ns(), 500 * MS);
            assert_eq!(s.status, SpanStatus::Ok);
        }
        store.write_spans(trace_spans(t)).await.expect("write");
        if !info_first {
            store
                .upsert_trace_info(info_update(t, SpanStatus::Ok))
                .await
                .expect("upsert");
        }
        let s = store
            .trace_summaries(vec![TraceId([t; 16])])
            .await
            .expect("summaries")
            .remove(0);
        assert_eq!(s.span_count, 4, "info first: {info_first}");
        // Spans decide times and the root's name; the client decides status, tags, info.
        assert_eq!(
            (s.start_ns, s.end_ns),
            (995 * MS, 1_120 * MS),
            "info first: {info_first}"
        );
        assert_eq!(s.name, "span-1");
        assert_eq!(
            s.status,
            SpanStatus::Ok,
            "the client's state wins over a failed child (info first: {info_first})"
        );
        assert_eq!(s.tags["env"], json!("prod"));
        assert_eq!(s.info["client_request_id"], json!("req-1"));
        assert_eq!(s.metadata["mlflow.trace_schema.version"], json!("3"));
        assert_eq!(s.session_id.as_deref(), Some("s-1"));
        assert_eq!((s.input_tokens, s.output_tokens), (17, 8));
    }
    // A second report merges its tags with the first's.
    let mut more = info_update(4, SpanStatus::Ok);
    more.tags = Map::from_iter([("team".to_string(), json!("x"))]);
    let s = store.upsert_trace_info(more).await.expect("upsert");
    assert_eq!(s.tags.len(), 2);
    // Summaries come in the order asked, unknown ids left out.
    let got = store
        .trace_summaries(vec![TraceId([5; 16]), TraceId([77; 16]), TraceId([4; 16])])
        .await
        .expect("summaries");
    assert_eq!(
        got.iter().map(|s| s.trace_id.0[0]).collect::<Vec<_>>(),
        vec![5, 4]
    );
}

/// Tags, assessments (and the feedback filter), deletes by id and by age.
pub async fn tags_assessments_and_deletes(store: &dyn TraceStore) {
    store.write_spans(trace_spans(1)).await.expect("write");
    store.write_spans(trace_spans(2)).await.expect("write");
    let one = TraceId([1; 16]);
    assert!(
        store
            .set_trace_tag(one, "k".into(), Some(json!("v")))
            .await
            .expect("tag")
    );
    assert!(
        !store
            .set_trace_tag(one, "missing".into(), None)
            .await
            .expect("tag")
    );
    assert!(
        !store
            .set_trace_tag(TraceId([9; 16]), "k".into(), Some(json!("v")))
            .await
            .expect("tag")
    );
    assert!(
        store
            .set_trace_tag(one, "gone".into(), Some(json!(1)))
            .await
            .expect("tag")
    );
    assert!(
        store
            .set_trace_tag(one, "gone".into(), None)
            .await
            .expect("tag")
    );
    let s = store
        .trace_summaries(vec![one])
        .await
        .expect("summaries")
        .remove(0);
    assert_eq!(s.tags, Map::from_iter([("k".to_string(), json!("v"))]));
    let a = feedback("a-1", one, "quality", json!(0.9), 5);
    store.put_assessments(vec![a.clone()]).await.expect("put");
    let mut elsewhere = a;
    elsewhere.trace_id = TraceId([9; 16]);
    let err = store
        .put_assessments(vec![elsewhere])
        .await
        .expect_err("no such trace");
    assert_eq!(err.kind, ErrorKind::NotFound);
    let q = loupe_query::parse("feedback.quality > 0.5", 0).expect("parses");
    let page = store
        .list_traces(TraceQuery {
            filter: Some(q),
            limit: 10,
            ..TraceQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.traces.iter().map(|t| t.trace_id).collect::<Vec<_>>(),
        vec![one]
    );
    let n = store
        .delete_traces(TraceSelection::Ids(vec![one, TraceId([9; 16])]))
        .await
        .expect("delete");
    assert_eq!(n, 1);
    assert!(store.get_trace(one).await.expect("get").is_none());
    assert!(store.assessments(vec![one]).await.expect("list").is_empty());
    let n = store
        .delete_traces(TraceSelection::StartedBy {
            project: "default".into(),
            max_start_ms: 0,
            limit: None,
        })
        .await
        .expect("delete");
    assert_eq!(n, 0, "trace 2 starts later");
    let n = store
        .delete_traces(TraceSelection::StartedBy {
            project: "default".into(),
            max_start_ms: 10_000,
            limit: Some(5),
        })
        .await
        .expect("delete");
    assert_eq!(n, 1);
    // A deleted trace can be written again from scratch.
    store.write_spans(trace_spans(1)).await.expect("write");
    check_rollup(store, 1).await;
    let page = store
        .list_traces(TraceQuery {
            limit: 10,
            ..TraceQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.traces.len(), 1);
}

/// Assessments are replaced by id, listed oldest first, and deleted.
pub async fn assessments_replace_list_and_delete(store: &dyn TraceStore) {
    store.write_spans(trace_spans(1)).await.expect("write");
    let one = TraceId([1; 16]);
    let mk = |id: &str, t: i64, v: f64| feedback(id, one, "q", json!(v), t);
    for a in [mk("a-2", 20, 0.1), mk("a-1", 10, 0.2), mk("a-2", 20, 0.7)] {
        store.put_assessments(vec![a]).await.expect("put");
    }
    let got = store.assessments(vec![one]).await.expect("list");
    assert_eq!(
        got.iter()
            .map(|a| (
                a.id.as_str(),
                a.value.as_ref().map(AssessmentValue::to_json)
            ))
            .collect::<Vec<_>>(),
        vec![("a-1", Some(json!(0.2))), ("a-2", Some(json!(0.7)))]
    );
    assert!(
        store
            .delete_assessment(one, "a-1".into())
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_assessment(one, "a-1".into())
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_assessment(TraceId([2; 16]), "a-2".into())
            .await
            .expect("delete")
    );
    assert_eq!(store.assessments(vec![one]).await.expect("list").len(), 1);
}

/// Every field of an assessment reads back as written; one that overrides another leaves that
/// one invalid (and out of filters); a batch with an unknown trace stores nothing.
pub async fn assessments_keep_every_field_and_overrides_invalidate(store: &dyn TraceStore) {
    store.write_spans(trace_spans(1)).await.expect("write");
    let one = TraceId([1; 16]);
    let mut full = feedback(
        "a-full",
        one,
        "verdict",
        json!({"label": "ok", "n": [1, 2]}),
        7,
    );
    full.kind = AssessmentKind::Expectation;
    full.span_id = Some(SpanId([3; 8]));
    full.rationale = Some("because".into());
    full.source = AssessmentSource {
        source_type: SourceType::LlmJudge,
        source_id: "judge-1".into(),
    };
    full.metadata.insert("k".into(), json!("v"));
    full.run_id = Some("run-1".into());
    full.last_update_time_ms = 9;
    let mut failed = feedback("a-failed", one, "tone", Value::Null, 8);
    failed.error = Some(AssessmentError {
        code: "TIMEOUT".into(),
        message: "the judge did not answer".into(),
        stack_trace: Some("at judge".into()),
    });
    store
        .put_assessments(vec![full.clone(), failed.clone()])
        .await
        .expect("put");
    assert_eq!(
        store.assessment("a-full".into()).await.expect("get"),
        Some(full.clone())
    );
    assert_eq!(
        store.assessments(vec![one]).await.expect("list"),
        vec![full, failed]
    );
    assert_eq!(store.assessment("a-none".into()).await.expect("get"), None);

    let ids = |q: &'static str| async move { traces_matching(store, q).await.len() };
    store
        .put_assessments(vec![feedback("a-old", one, "score", json!(0.2), 10)])
        .await
        .expect("put");
    assert_eq!(ids("feedback.score < 0.5").await, 1);
    let mut newer = feedback("a-new", one, "score", json!(0.9), 11);
    newer.overrides = Some("a-old".into());
    store.put_assessments(vec![newer]).await.expect("put");
    let old = store
        .assessment("a-old".into())
        .await
        .expect("get")
        .expect("kept");
    assert!(!old.valid);
    assert_eq!(old.overridden_by.as_deref(), Some("a-new"));
    assert_eq!(
        ids("feedback.score < 0.5").await,
        0,
        "an overridden value is not read"
    );
    assert_eq!(ids("feedback.score > 0.5").await, 1);
    assert_eq!(ids("expectation.verdict IS NOT NULL").await, 1);
    assert_eq!(
        ids("feedback.verdict IS NOT NULL").await,
        0,
        "kinds are apart"
    );

    let lost = feedback("a-lost", one, "score", json!(1), 12);
    let mut stray = feedback("a-stray", TraceId([9; 16]), "score", json!(1), 12);
    stray.overrides = Some("a-new".into());
    let err = store
        .put_assessments(vec![lost, stray])
        .await
        .expect_err("unknown trace");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(store.assessment("a-lost".into()).await.expect("get"), None);
}

/// Span events that arrive apart from their span join it, whichever comes first.
pub async fn events_join_their_spans(store: &dyn TraceStore) {
    let event = |name: &str, t: u64| loupe_store::EncodedEvent {
        trace_id: TraceId([6; 16]),
        span_id: SpanId([2; 8]),
        event: SpanEvent {
            name: name.into(),
            time_ns: t,
            attributes: Map::from_iter([("body".to_string(), json!({"content": name}))]),
        },
    };
    assert_eq!(
        store
            .write_events(vec![event("late", 1_030 * MS)])
            .await
            .expect("events"),
        1
    );
    store.write_spans(trace_spans(6)).await.expect("write");
    assert_eq!(
        store
            .write_events(vec![event("early", 1_020 * MS)])
            .await
            .expect("events"),
        1
    );
    let d = store
        .get_trace(TraceId([6; 16]))
        .await
        .expect("get")
        .expect("exists");
    let s = d
        .spans
        .iter()
        .find(|s| s.span_id == SpanId([2; 8]))
        .expect("span 2");
    assert_eq!(
        s.body
            .events
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        vec!["early", "late"]
    );
    assert_eq!(
        s.body.events[0].attributes["body"]["content"],
        json!("early")
    );
    assert!(
        d.spans
            .iter()
            .filter(|s| s.span_id != SpanId([2; 8]))
            .all(|s| s.body.events.is_empty())
    );
}

/// Experiment 0 ("Default") always exists; new ones get ids; names are unique.
pub async fn experiments(store: &dyn TraceStore) {
    let all = store.list_experiments().await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].id, all[0].name.as_str()), (0, "Default"));
    assert_eq!(all[0].project(), loupe_model::DEFAULT_PROJECT);
    let a = store
        .create_experiment("exp-a".into(), None, Map::new())
        .await
        .expect("create");
    assert!(a.id > 0);
    assert_eq!(a.artifact_location, format!("mlflow-artifacts:/{}", a.id));
    assert_eq!(a.lifecycle_stage, "active");
    assert_eq!(a.project(), "exp-a");
    let again = store
        .create_experiment("exp-a".into(), None, Map::new())
        .await
        .expect_err("a name is unique");
    assert_eq!(again.kind, ErrorKind::AlreadyExists);
    let empty = store
        .create_experiment("  ".into(), None, Map::new())
        .await
        .expect_err("a name is needed");
    assert_eq!(empty.kind, ErrorKind::InvalidInput);
    let b = store
        .create_experiment(
            "exp-b".into(),
            Some("s3://bucket/x".into()),
            Map::from_iter([("owner".to_string(), json!("me"))]),
        )
        .await
        .expect("create");
    assert!(b.id > a.id);
    assert_eq!(b.artifact_location, "s3://bucket/x");
    let found = store
        .experiment(ExperimentKey::Name("exp-b".into()))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(found.id, b.id);
    assert_eq!(found.tags["owner"], json!("me"));
    let by_id = store
        .experiment(ExperimentKey::Id(a.id))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(by_id.name, "exp-a");
    assert!(
        store
            .experiment(ExperimentKey::Name("nope".into()))
            .await
            .expect("get")
            .is_none()
    );
    let ids: Vec<i64> = store
        .list_experiments()
        .await
        .expect("list")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, vec![0, a.id, b.id]);
}

/// Sessions roll up their traces, most recently active first, with paging.
pub async fn sessions(store: &dyn TraceStore) {
    use crate::fixtures::trace_start_ms;
    seed_query_data(store).await;
    let page = store
        .list_sessions(SessionQuery {
            limit: 2,
            ..SessionQuery::default()
        })
        .await
        .expect("sessions");
    assert_eq!(
        page.sessions
            .iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>(),
        vec!["s3", "s2"]
    );
    let next = store
        .list_sessions(SessionQuery {
            limit: 2,
            cursor: page.next_cursor.clone(),
            ..SessionQuery::default()
        })
        .await
        .expect("sessions");
    assert_eq!(next.sessions.len(), 1);
    assert!(next.next_cursor.is_none());
    let s1 = &next.sessions[0];
    assert_eq!(s1.session_id, "s1");
    assert_eq!((s1.trace_count, s1.error_count), (2, 1));
    assert_eq!(s1.first_start_ns, trace_start_ms(1) * MS);
    assert_eq!(s1.last_start_ns, trace_start_ms(2) * MS);
    assert_eq!(
        (s1.input_tokens, s1.output_tokens, s1.total_tokens),
        (110, 55, 165)
    );
    assert!((s1.cost_usd - 0.012).abs() < 1e-9, "{}", s1.cost_usd);
    assert_eq!(s1.user_id.as_deref(), Some("u2"));
    assert_eq!(s1.project, "alpha");
    let beta = store
        .list_sessions(SessionQuery {
            project: Some("beta".into()),
            limit: 10,
            ..SessionQuery::default()
        })
        .await
        .expect("sessions");
    assert_eq!(beta.sessions.len(), 1);
    assert_eq!(beta.sessions[0].session_id, "s2");
    let (summary, traces) = store
        .get_session("s1".into(), 10)
        .await
        .expect("session")
        .expect("exists");
    assert_eq!(summary, *s1);
    assert_eq!(
        traces.iter().map(|t| t.trace_id.0[0]).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let (_, first) = store
        .get_session("s1".into(), 1)
        .await
        .expect("session")
        .expect("exists");
    assert_eq!(first.len(), 1);
    assert!(
        store
            .get_session("nope".into(), 10)
            .await
            .expect("session")
            .is_none()
    );
}

/// The models each trace used.
pub async fn trace_models(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let m = store
        .trace_models(vec![
            TraceId([6; 16]),
            TraceId([4; 16]),
            TraceId([99; 16]),
            TraceId([1; 16]),
        ])
        .await
        .expect("models");
    assert_eq!(m.len(), 2);
    assert_eq!(m[&TraceId([6; 16])], vec!["claude-3", "gpt-4o"]);
    assert_eq!(m[&TraceId([1; 16])], vec!["gpt-4o"]);
}

/// Repricing changes costs and the traces' roll-ups; re-deriving from the stored bodies puts
/// the original columns back.
pub async fn recompute_reprices_and_reindexes(store: &dyn TraceStore) {
    store.write_spans(trace_spans(1)).await.expect("write");
    store.write_spans(trace_spans(2)).await.expect("write");
    let reprice: std::sync::Arc<loupe_store::RepriceFn> =
        std::sync::Arc::new(|d, _| d.total_tokens.map(|t| t as f64 * 0.001));
    let stats = store
        .recompute(Recompute::Reprice(reprice))
        .await
        .expect("recompute");
    assert_eq!((stats.spans, stats.changed, stats.traces), (8, 4, 2));
    let s = store
        .trace_summaries(vec![TraceId([1; 16])])
        .await
        .expect("summaries")
        .remove(0);
    assert!((s.cost_usd - 0.025).abs() < 1e-9, "{}", s.cost_usd);
    assert_eq!(s.total_tokens, 25);
    let reindex: std::sync::Arc<loupe_store::ReindexFn> =
        std::sync::Arc::new(|body, _| loupe_model::normalize::derive(&body.attributes));
    let stats = store
        .recompute(Recompute::Reindex(reindex))
        .await
        .expect("recompute");
    assert_eq!((stats.spans, stats.changed), (8, 4));
    let d = store
        .get_trace(TraceId([2; 16]))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(d.summary.cost_usd, 0.0);
    assert_eq!(d.summary.total_tokens, 25);
    let llm: Vec<_> = d
        .spans
        .iter()
        .filter(|s| s.columns.model.is_some())
        .collect();
    assert_eq!(llm.len(), 2);
    assert!(
        llm.iter()
            .all(|s| s.columns.model.as_deref() == Some("gpt-4o"))
    );
    check_rollup(store, 2).await;
}

/// Runs: create, change (concurrent loggers lose nothing), metric history, list by experiment,
/// delete and restore.
pub async fn runs(store: &dyn TraceStore) {
    use loupe_store::runs::{ACTIVE, Metric, Run, RunChange};
    let run = |id: &str, exp: &str, start: i64| Run {
        run_id: id.into(),
        experiment_id: exp.into(),
        run_name: format!("name-{id}"),
        status: "RUNNING".into(),
        start_time: start,
        lifecycle_stage: ACTIVE.into(),
        ..Run::default()
    };
    store.create_run(run("a", "1", 10)).await.expect("answered");
    store.create_run(run("b", "1", 20)).await.expect("answered");
    store.create_run(run("c", "2", 30)).await.expect("answered");
    let again = store
        .create_run(run("a", "1", 10))
        .await
        .expect_err("refused");
    assert_eq!(again.kind, loupe_store::ErrorKind::AlreadyExists);
    let metric = |key: &str, value: f64, step: i64| Metric {
        key: key.into(),
        value,
        timestamp: 100 + step,
        step,
    };
    // Concurrent loggers on one run: every write survives.
    let log = |i: i32| {
        store.change_run(
            "a".into(),
            RunChange::Log {
                metrics: vec![metric("loss", 1.0 / f64::from(i + 1), i64::from(i))],
                params: vec![(format!("p{i}"), i.to_string())],
                tags: vec![(format!("t{i}"), "x".into())],
            },
        )
    };
    for round in 0..4 {
        let i = round * 4;
        let (w, x, y, z) = tokio::join!(log(i), log(i + 1), log(i + 2), log(i + 3));
        for r in [w, x, y, z] {
            r.expect("answered");
        }
    }
    let a = store
        .run("a".into())
        .await
        .expect("answered")
        .expect("answered");
    assert_eq!((a.params.len(), a.tags.len()), (16, 16));
    assert_eq!(a.metrics["loss"].step, 15, "the latest step");
    let history = store
        .metric_history("a".into(), "loss".into())
        .await
        .expect("answered");
    assert_eq!(history.len(), 16);
    assert!(history.windows(2).all(|w| w[0].step < w[1].step));
    // A refused change changes nothing, a missing run is NotFound.
    let clash = RunChange::Log {
        metrics: vec![metric("loss", 9.0, 99)],
        params: vec![("p1".into(), "other".into())],
        tags: Vec::new(),
    };
    assert!(store.change_run("a".into(), clash).await.is_err());
    let a2 = store
        .run("a".into())
        .await
        .expect("answered")
        .expect("answered");
    assert_eq!(a2, a);
    assert_eq!(
        store
            .metric_history("a".into(), "loss".into())
            .await
            .expect("answered")
            .len(),
        16,
        "no history row from a refused change"
    );
    let missing = store
        .change_run("nope".into(), RunChange::Delete)
        .await
        .expect_err("refused");
    assert_eq!(missing.kind, loupe_store::ErrorKind::NotFound);
    // NaN survives the round trip.
    store
        .change_run(
            "b".into(),
            RunChange::Log {
                metrics: vec![metric("score", f64::NAN, 0)],
                params: Vec::new(),
                tags: Vec::new(),
            },
        )
        .await
        .expect("answered");
    assert!(
        store
            .run("b".into())
            .await
            .expect("answered")
            .expect("answered")
            .metrics["score"]
            .value
            .is_nan()
    );
    let h = store
        .metric_history("b".into(), "score".into())
        .await
        .expect("answered");
    assert!(h[0].value.is_nan());
    // Listing: newest first, by experiment; deleted runs are listed with their stage.
    store
        .change_run("b".into(), RunChange::Delete)
        .await
        .expect("answered");
    let ids = |rs: Vec<Run>| {
        rs.into_iter()
            .map(|r| (r.run_id, r.lifecycle_stage))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.runs(vec!["1".into()]).await.expect("answered")),
        [
            ("b".to_string(), "deleted".to_string()),
            ("a".into(), "active".into())
        ]
    );
    assert_eq!(
        store
            .runs(vec!["1".into(), "2".into()])
            .await
            .expect("answered")
            .len(),
        3
    );
    store
        .change_run("b".into(), RunChange::Restore)
        .await
        .expect("answered");
    assert_eq!(
        store
            .run("b".into())
            .await
            .expect("answered")
            .expect("answered")
            .lifecycle_stage,
        "active"
    );
}

/// Evaluation datasets: create (names unique), upsert merging by inputs, pages, header
/// changes, record deletes, and the dataset's delete.
pub async fn datasets(store: &dyn TraceStore) {
    use loupe_store::datasets::{DatasetChange, EvalDataset, RecordUpsert};
    use serde_json::json;
    let d = EvalDataset {
        dataset_id: "d-1".into(),
        name: "qa".into(),
        created_time: 1,
        last_update_time: 1,
        ..EvalDataset::default()
    };
    store.create_dataset(d.clone()).await.expect("created");
    let taken = EvalDataset {
        dataset_id: "d-2".into(),
        ..d.clone()
    };
    let err = store.create_dataset(taken).await.expect_err("name taken");
    assert_eq!(err.kind, loupe_store::ErrorKind::AlreadyExists);
    let upsert = |records: Vec<serde_json::Value>, now: i64| RecordUpsert {
        dataset_id: "d-1".into(),
        fresh_ids: (0..records.len())
            .map(|i| format!("dr-{now}-{i}"))
            .collect(),
        records,
        now,
    };
    let first = vec![
        json!({"inputs": {"q": "a"}, "expectations": {"answer": "A"}}),
        json!({"inputs": {"q": "b"}, "expectations": {"answer": "B"}}),
    ];
    assert_eq!(
        store
            .upsert_dataset_records(upsert(first, 10))
            .await
            .expect("upserted"),
        (2, 0)
    );
    let again = vec![
        json!({"inputs": {"q": "a"}, "expectations": {"facts": ["x"]}}),
        json!({"inputs": {"q": "c"}}),
    ];
    assert_eq!(
        store
            .upsert_dataset_records(upsert(again, 20))
            .await
            .expect("upserted"),
        (1, 1)
    );
    let bad = store
        .upsert_dataset_records(upsert(vec![json!({"inputs": 3})], 30))
        .await
        .expect_err("inputs must be an object");
    assert_eq!(bad.kind, loupe_store::ErrorKind::InvalidInput);
    let (page, total) = store
        .dataset_records("d-1".into(), 0, 2)
        .await
        .expect("read");
    assert_eq!(total, 3);
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["inputs"], json!({"q": "a"}));
    assert_eq!(
        page[0]["dataset_record_id"], "dr-10-0",
        "a merged record keeps its id"
    );
    assert_eq!(
        page[0]["expectations"],
        json!({"answer": "A", "facts": ["x"]})
    );
    let (rest, _) = store
        .dataset_records("d-1".into(), 2, 2)
        .await
        .expect("read");
    assert_eq!(rest.len(), 1);
    let header = store
        .dataset("d-1".into())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(header.profile, Some(json!({"num_records": 3})));
    assert_eq!(header.last_update_time, 20);
    let changed = store
        .change_dataset(
            "d-1".into(),
            DatasetChange::SetTags([("team".to_string(), Some("search".to_string()))].into()),
            40,
        )
        .await
        .expect("changed");
    assert_eq!(changed.tags.get("team").map(String::as_str), Some("search"));
    let id = page[1]["dataset_record_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        store
            .delete_dataset_records("d-1".into(), vec![id, "nope".into()], 50)
            .await
            .expect("deleted"),
        1
    );
    assert_eq!(
        store
            .dataset_records("d-1".into(), 0, 10)
            .await
            .expect("read")
            .1,
        2
    );
    assert_eq!(store.datasets().await.expect("listed").len(), 1);
    assert!(store.delete_dataset("d-1".into()).await.expect("deleted"));
    assert!(store.dataset("d-1".into()).await.expect("read").is_none());
    assert_eq!(
        store
            .dataset_records("d-1".into(), 0, 10)
            .await
            .expect("read")
            .1,
        0
    );
    let missing = store
        .upsert_dataset_records(upsert(vec![json!({"inputs": {}})], 60))
        .await
        .expect_err("no dataset");
    assert_eq!(missing.kind, loupe_store::ErrorKind::NotFound);
}

/// Registered scorers: versions count per name (the id stays), concurrent registrations get
/// distinct versions, deletes of one version or all, online configurations.
pub async fn scorers(store: &dyn TraceStore) {
    use loupe_store::scorers::OnlineConfig;
    let reg = |name: &str, id: &str| {
        store.register_scorer(
            "1".into(),
            name.into(),
            format!("{{\"name\":\"{name}\"}}"),
            id.into(),
            5,
        )
    };
    let first = reg("judge", "s-1").await.expect("registered");
    assert_eq!((first.version, first.scorer_id.as_str()), (1, "s-1"));
    let (a, b) = tokio::join!(reg("judge", "s-x"), reg("judge", "s-y"));
    let mut versions = vec![
        a.expect("registered").version,
        b.expect("registered").version,
    ];
    versions.sort_unstable();
    assert_eq!(
        versions,
        [2, 3],
        "concurrent registrations get distinct versions"
    );
    reg("other", "s-2").await.expect("registered");
    let all = store.scorers("1".into()).await.expect("listed");
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .filter(|s| s.name == "judge")
            .all(|s| s.scorer_id == "s-1")
    );
    assert!(store.scorers("2".into()).await.expect("listed").is_empty());
    let config = OnlineConfig {
        config_id: "c-1".into(),
        scorer_id: "s-1".into(),
        experiment_id: "1".into(),
        sample_rate: 0.25,
        filter_string: Some("trace.status = 'OK'".into()),
    };
    store.put_online_config(config.clone()).await.expect("set");
    let updated = OnlineConfig {
        sample_rate: 0.5,
        ..config.clone()
    };
    store.put_online_config(updated.clone()).await.expect("set");
    assert_eq!(
        store
            .online_configs(vec!["s-1".into(), "s-2".into()])
            .await
            .expect("read"),
        [updated]
    );
    assert_eq!(
        store
            .delete_scorer("1".into(), "judge".into(), Some(2))
            .await
            .expect("deleted"),
        1
    );
    assert_eq!(
        store
            .online_configs(vec!["s-1".into()])
            .await
            .expect("read")
            .len(),
        1,
        "versions remain"
    );
    assert_eq!(
        store
            .delete_scorer("1".into(), "judge".into(), None)
            .await
            .expect("deleted"),
        2
    );
    assert!(
        store
            .online_configs(vec!["s-1".into()])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(store.scorers("1".into()).await.expect("listed").len(), 1);
}
