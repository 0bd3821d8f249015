//! The query layer on a store: the filter language over traces and spans, ordering and
//! paging, aggregations, full text. Every case writes the data set of
//! [`seed_query_data`](crate::fixtures::seed_query_data) and checks exact answers.

use loupe_model::TraceId;
use loupe_store::{GroupKey, OrderKey, StatsGroup, StatsQuery, TraceQuery, TraceStore};
use serde_json::{Value, json};

use crate::fixtures::{seed_query_data, trace_hex, trace_start_ms};

/// The time `now` stands for: 10 minutes after the last trace started.
fn now_ms() -> i64 {
    i64::try_from(trace_start_ms(6)).unwrap_or(0) + 10 * 60_000
}

/// The traces (by number, ascending) a filter finds.
async fn find(store: &dyn TraceStore, q: &str) -> Vec<u8> {
    let filter = loupe_query::parse(q, now_ms()).unwrap_or_else(|e| panic!("{q}: {e}"));
    let page = store
        .list_traces(TraceQuery {
            filter: Some(filter),
            limit: 100,
            ..TraceQuery::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    let mut ids: Vec<u8> = page.traces.iter().map(|t| t.trace_id.0[0]).collect();
    ids.sort_unstable();
    ids
}

async fn expect(store: &dyn TraceStore, cases: &[(&str, &[u8])]) {
    let mut wrong = Vec::new();
    for (q, want) in cases {
        let got = find(store, q).await;
        if got != *want {
            wrong.push(format!("{q}: expected {want:?}, found {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
}

/// AND, OR, NOT and parentheses.
pub async fn query_boolean_logic(store: &dyn TraceStore) {
    seed_query_data(store).await;
    expect(
        store,
        &[
            ("status = 'ERROR' OR duration_ms < 60", &[2, 4, 5]),
            ("project = 'alpha' AND NOT status = 'ERROR'", &[1]),
            (
                "(project = 'beta' OR project = 'default') AND total_tokens > 20",
                &[3, 6],
            ),
            ("NOT (project = 'alpha' OR project = 'beta')", &[6]),
            (
                "project = 'alpha' AND (status = 'OK' OR duration_ms >= 2000)",
                &[1, 2],
            ),
            (
                "project = 'alpha' AND status = 'OK' OR project = 'default'",
                &[1, 6],
            ),
        ],
    )
    .await;
}

/// Each comparison operator, IN, LIKE, ILIKE, IS NULL.
pub async fn query_operators(store: &dyn TraceStore) {
    seed_query_data(store).await;
    expect(
        store,
        &[
            ("duration_ms = 500", &[3]),
            ("duration_ms != 500", &[1, 2, 4, 5, 6]),
            ("duration_ms < 300", &[1, 4]),
            ("duration_ms <= 300", &[1, 4, 5]),
            ("duration_ms > 1000", &[2]),
            ("duration_ms >= 1000", &[2, 6]),
            ("duration_ms > 0.5s", &[2, 6]),
            ("name IN ('chat', 'agent')", &[1, 2, 5, 6]),
            ("name NOT IN ('chat', 'agent')", &[3, 4]),
            ("name LIKE 'Refund%'", &[3]),
            ("name LIKE 'refund%'", &[]),
            ("name ILIKE 'refund%'", &[3]),
            ("name NOT LIKE 'c%'", &[3, 4, 6]),
            ("name NOT ILIKE '%FLOW'", &[1, 2, 4, 5, 6]),
            ("name LIKE '_hat'", &[1, 2, 5]),
            ("session_id IS NULL", &[4, 5]),
            ("session_id IS NOT NULL", &[1, 2, 3, 6]),
        ],
    )
    .await;
}

/// The trace fields.
pub async fn query_trace_fields(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let start3 = trace_start_ms(3);
    let id3 = trace_hex(3);
    expect(
        store,
        &[
            ("status = 'UNSET'", &[3]),
            ("status = 'OK'", &[1, 4, 6]),
            ("status != 'OK'", &[2, 3, 5]),
            ("name = 'summarize'", &[4]),
            ("total_tokens >= 150", &[2, 6]),
            ("tokens.total = 0", &[4]),
            ("input_tokens > 100", &[6]),
            ("cost_usd > 0.02", &[3, 6]),
            ("cost_usd < 0.003", &[2, 4]),
            ("project = 'beta'", &[3, 4]),
            ("session_id = 's1'", &[1, 2]),
            ("user_id = 'u1'", &[1, 5]),
            ("span_count = 3", &[2, 3, 5, 6]),
            ("error_count > 0", &[2, 5]),
            (&format!("trace_id = '{id3}'"), &[3]),
            (&format!("trace_id = 'tr-{}'", id3.to_uppercase()), &[3]),
            (&format!("start >= {start3}"), &[3, 4, 5, 6]),
            (&format!("start = {start3}"), &[3]),
            (&format!("start < {start3}"), &[1, 2]),
            (&format!("timestamp_ms <= {start3}"), &[1, 2, 3]),
            (&format!("end > {}", start3 + 500), &[4, 5, 6]),
            // Relative time: `now` is 10 minutes after trace 6 started, traces are 20 apart.
            ("start > now - 30m", &[6]),
            ("start > now - 1h", &[4, 5, 6]),
            ("start >= now - 90m AND start < now - 30m", &[2, 3, 4]),
            ("start > now", &[]),
        ],
    )
    .await;
}

/// Tags, metadata and feedback.
pub async fn query_tags_metadata_feedback(store: &dyn TraceStore) {
    seed_query_data(store).await;
    expect(
        store,
        &[
            ("tags.env = 'prod'", &[1, 3, 5]),
            ("tags.env != 'prod'", &[2]),
            ("tags.env IN ('dev', 'x')", &[2]),
            ("tags.team IS NULL", &[1, 2, 4, 5, 6]),
            ("tags.team IS NOT NULL", &[3]),
            ("tags.env = 'prod' AND tags.team = 'x'", &[3]),
            ("tags.`env` LIKE 'pr%'", &[1, 3, 5]),
            ("metadata.service.name = 'svc-b'", &[3, 4]),
            ("metadata.`service.name` = 'svc-a'", &[1, 2, 5]),
            ("metadata.service.name IS NULL", &[6]),
            ("feedback.quality > 0.5", &[3]),
            ("feedback.quality < 0.5", &[1]),
            ("feedback.quality >= 0.2", &[1, 3]),
            ("feedback.correct = true", &[2]),
            ("feedback.quality IS NULL", &[2, 4, 5, 6]),
            ("feedback.quality IS NOT NULL AND project = 'beta'", &[3]),
        ],
    )
    .await;
}

/// Span fields mean "some span"; span conditions joined by one AND hold on the same span.
pub async fn query_span_fields(store: &dyn TraceStore) {
    seed_query_data(store).await;
    expect(
        store,
        &[
            ("span.type = 'TOOL'", &[2, 5]),
            ("span.type = 'TOOL' AND span.status = 'ERROR'", &[2]),
            ("span.type = 'TOOL' AND status = 'ERROR'", &[2, 5]),
            ("span.type = 'LLM' AND span.model = 'claude-3'", &[3, 6]),
            ("span.model LIKE 'gpt-4o%'", &[1, 2, 5, 6]),
            ("span.model = 'gpt-4o'", &[1, 5, 6]),
            ("span.model ILIKE 'CLAUDE%'", &[3, 6]),
            ("span.model IN ('gpt-4o-mini', 'claude-3')", &[2, 3, 6]),
            ("span.type = 'RETRIEVER' OR span.name = 'plan'", &[3, 6]),
            ("span.name = 'search' AND span.status = 'OK'", &[5]),
            ("span.name = 'search' AND span.status = 'ERROR'", &[2]),
            ("span.duration_ms > 1000", &[2]),
            ("span.total_tokens > 100", &[2, 6]),
            ("span.cost_usd >= 0.03", &[3, 6]),
            (
                "span.type = 'LLM' AND project = 'alpha' AND span.model = 'gpt-4o'",
                &[1, 5],
            ),
            ("span.model IS NOT NULL AND span.status = 'ERROR'", &[5]),
        ],
    )
    .await;
}

/// `span.attributes.<key>` conditions, checked on the candidates' spans after SQL, with paging.
pub async fn query_span_attributes(store: &dyn TraceStore) {
    seed_query_data(store).await;
    expect(
        store,
        &[
            ("span.attributes.app.flag = 'yes'", &[3]),
            (
                "span.attributes.app.flag = 'yes' AND project = 'alpha'",
                &[],
            ),
            ("span.attributes.app.flag = 'no'", &[]),
            (
                "project = 'beta' AND span.attributes.app.flag IS NULL",
                &[4],
            ),
        ],
    )
    .await;
    // A page of one over a post-filtered query: traces 6, 5 and 4 are examined, 3 matches.
    let filter = loupe_query::parse("span.attributes.app.flag = 'yes'", 0).expect("parses");
    let page = store
        .list_traces(TraceQuery {
            filter: Some(filter),
            limit: 1,
            ..TraceQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.traces
            .iter()
            .map(|t| t.trace_id.0[0])
            .collect::<Vec<_>>(),
        vec![3]
    );
}

fn order(store_query: &str) -> Vec<(OrderKey, loupe_store::Direction)> {
    OrderKey::parse_clauses([store_query]).expect("order clause")
}

/// `order_by` with offset paging, and the default order with cursor paging.
pub async fn query_order_and_paging(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let ids = |p: &loupe_store::TracePage| -> Vec<u8> {
        p.traces.iter().map(|t| t.trace_id.0[0]).collect()
    };
    // Newest first, by cursor.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_traces(TraceQuery {
                limit: 4,
                cursor,
                ..TraceQuery::default()
            })
            .await
            .expect("list");
        pages.push(ids(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, vec![vec![6, 5, 4, 3], vec![2, 1]]);
    // A filter and a cursor together.
    let filter = loupe_query::parse("project = 'alpha'", 0).expect("parses");
    let first = store
        .list_traces(TraceQuery {
            filter: Some(filter.clone()),
            limit: 2,
            ..TraceQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(&first), vec![5, 2]);
    let second = store
        .list_traces(TraceQuery {
            filter: Some(filter),
            limit: 2,
            cursor: first.next_cursor,
            ..TraceQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(&second), vec![1]);
    assert!(second.next_cursor.is_none());
    // Custom orders page by offset.
    for (clause, want) in [
        ("duration_ms DESC", vec![2, 6, 3, 5, 1, 4]),
        ("duration_ms", vec![4, 1, 5, 3, 6, 2]),
        ("start ASC", vec![1, 2, 3, 4, 5, 6]),
        ("end DESC", vec![6, 5, 4, 3, 2, 1]),
        // Byte order (the test databases use the C collation), ties newest first.
        ("name", vec![3, 6, 5, 2, 1, 4]),
        ("status DESC", vec![5, 2, 6, 4, 1, 3]),
        ("trace_id DESC", vec![6, 5, 4, 3, 2, 1]),
    ] {
        let mut got = Vec::new();
        let mut offset = 0;
        for _ in 0..10 {
            let page = store
                .list_traces(TraceQuery {
                    limit: 4,
                    order: order(clause),
                    offset,
                    ..TraceQuery::default()
                })
                .await
                .expect("list");
            got.extend(ids(&page));
            offset += page.consumed;
            if page.traces.len() < 4 {
                break;
            }
        }
        assert_eq!(got, want, "order by {clause}");
    }
}

/// Spans matching a filter, newest first, with paging.
pub async fn query_list_spans(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let spans = |q: &str| loupe_query::parse(q, now_ms()).expect("parses");
    let key = |p: &loupe_store::SpanPage| -> Vec<(u8, u8)> {
        p.0.iter().map(|(t, s)| (t.0[0], s.span_id.0[0])).collect()
    };
    let first = store
        .list_spans(Some(spans("span.type = 'LLM'")), 3, None)
        .await
        .expect("spans");
    assert_eq!(key(&first), vec![(6, 3), (6, 2), (5, 2)]);
    assert!(first.1.is_some());
    let (t, s) = &first.0[0];
    assert_eq!(*t, TraceId([6; 16]));
    assert_eq!(
        (s.name.as_str(), s.columns.model.as_deref()),
        ("answer", Some("claude-3"))
    );
    assert_eq!(s.columns.total_tokens, Some(20));
    let second = store
        .list_spans(Some(spans("span.type = 'LLM'")), 3, first.1)
        .await
        .expect("spans");
    assert_eq!(key(&second), vec![(3, 2), (2, 2), (1, 2)]);
    assert!(second.1.is_none());
    assert_eq!(second.0[0].1.body.attributes["app.flag"], json!("yes"));
    // Trace fields are about the span's trace.
    let beta = store
        .list_spans(Some(spans("project = 'beta'")), 10, None)
        .await
        .expect("spans");
    assert_eq!(key(&beta), vec![(4, 1), (3, 3), (3, 2), (3, 1)]);
    let tools = store
        .list_spans(
            Some(spans("span.type = 'TOOL' AND status = 'ERROR'")),
            10,
            None,
        )
        .await
        .expect("spans");
    assert_eq!(key(&tools), vec![(5, 3), (2, 3)]);
    let failed = store
        .list_spans(
            Some(spans("span.status = 'ERROR' AND NOT span.type = 'TOOL'")),
            10,
            None,
        )
        .await
        .expect("spans");
    assert_eq!(key(&failed), vec![(5, 2), (2, 1)]);
    let all = store.list_spans(None, 100, None).await.expect("spans");
    assert_eq!(all.0.len(), 15);
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn check(
    g: &StatsGroup,
    count: u64,
    errors: u64,
    p: (f64, f64, f64),
    tokens: (u64, u64, u64),
    cost: f64,
) {
    assert_eq!((g.count, g.error_count), (count, errors), "{g:?}");
    assert!(
        approx(g.p50_ms, p.0) && approx(g.p95_ms, p.1) && approx(g.p99_ms, p.2),
        "percentiles {g:?}, expected {p:?}"
    );
    assert_eq!(
        (g.input_tokens, g.output_tokens, g.total_tokens),
        tokens,
        "{g:?}"
    );
    assert!(approx(g.cost_usd, cost), "cost {g:?}, expected {cost}");
}

async fn stats(
    store: &dyn TraceStore,
    group_by: Vec<GroupKey>,
    filter: Option<&str>,
) -> Vec<StatsGroup> {
    store
        .stats(StatsQuery {
            filter: filter.map(|f| loupe_query::parse(f, now_ms()).expect("parses")),
            group_by,
            bucket_ms: 3_600_000,
            start_from_ms: None,
            start_to_ms: None,
        })
        .await
        .expect("stats")
}

fn keys(groups: &[StatsGroup]) -> Vec<Value> {
    groups.iter().map(|g| g.key[0].clone()).collect()
}

/// Statistics per project, model, span type, tag and hour: counts, errors, percentiles,
/// tokens and cost.
pub async fn query_stats(store: &dyn TraceStore) {
    seed_query_data(store).await;
    let all = stats(store, vec![], None).await;
    assert_eq!(all.len(), 1);
    check(
        &all[0],
        6,
        2,
        (300.0, 2000.0, 2000.0),
        (1145, 580, 1725),
        0.557,
    );

    let by_project = stats(store, vec![GroupKey::Project], None).await;
    assert_eq!(
        keys(&by_project),
        vec![json!("alpha"), json!("beta"), json!("default")]
    );
    check(
        &by_project[0],
        3,
        2,
        (300.0, 2000.0, 2000.0),
        (115, 60, 175),
        0.017,
    );
    check(
        &by_project[1],
        2,
        0,
        (50.0, 500.0, 500.0),
        (20, 10, 30),
        0.03,
    );
    check(
        &by_project[2],
        1,
        0,
        (1000.0, 1000.0, 1000.0),
        (1010, 510, 1520),
        0.51,
    );

    let by_model = stats(store, vec![GroupKey::Model], None).await;
    assert_eq!(
        keys(&by_model),
        vec![json!("claude-3"), json!("gpt-4o"), json!("gpt-4o-mini")]
    );
    check(
        &by_model[0],
        2,
        0,
        (290.0, 300.0, 300.0),
        (30, 20, 50),
        0.04,
    );
    check(
        &by_model[1],
        3,
        1,
        (190.0, 690.0, 690.0),
        (1015, 510, 1525),
        0.515,
    );
    check(
        &by_model[2],
        1,
        0,
        (1490.0, 1490.0, 1490.0),
        (100, 50, 150),
        0.002,
    );

    let by_type = stats(store, vec![GroupKey::SpanType], None).await;
    assert_eq!(
        keys(&by_type),
        vec![
            json!("AGENT"),
            json!("CHAIN"),
            json!("LLM"),
            json!("RETRIEVER"),
            json!("TOOL")
        ]
    );
    check(&by_type[1], 5, 1, (300.0, 2000.0, 2000.0), (0, 0, 0), 0.0);
    check(
        &by_type[2],
        6,
        1,
        (290.0, 1490.0, 1490.0),
        (1145, 580, 1725),
        0.557,
    );
    check(&by_type[4], 2, 1, (90.0, 400.0, 400.0), (0, 0, 0), 0.0);

    let by_env = stats(store, vec![GroupKey::Tag("env".into())], None).await;
    assert_eq!(
        keys(&by_env),
        vec![Value::Null, json!("dev"), json!("prod")]
    );
    check(
        &by_env[0],
        2,
        0,
        (50.0, 1000.0, 1000.0),
        (1010, 510, 1520),
        0.51,
    );
    check(&by_env[2], 3, 1, (300.0, 500.0, 500.0), (35, 20, 55), 0.045);

    let by_service = stats(store, vec![GroupKey::Metadata("service.name".into())], None).await;
    assert_eq!(
        keys(&by_service),
        vec![Value::Null, json!("svc-a"), json!("svc-b")]
    );

    let hour = |k: u8| -> Value {
        let ms = i64::try_from(trace_start_ms(k)).unwrap_or(0);
        json!((ms / 3_600_000) * 3_600_000)
    };
    let by_hour = stats(store, vec![GroupKey::Time], None).await;
    assert_eq!(keys(&by_hour), vec![hour(1), hour(3), hour(6)]);
    assert_eq!(hour(1), hour(2));
    assert_eq!(hour(3), hour(5));
    check(
        &by_hour[0],
        2,
        1,
        (100.0, 2000.0, 2000.0),
        (110, 55, 165),
        0.012,
    );
    check(
        &by_hour[1],
        3,
        1,
        (300.0, 500.0, 500.0),
        (25, 15, 40),
        0.035,
    );

    // Two keys, a filter, a time window.
    let filtered = stats(
        store,
        vec![GroupKey::Project, GroupKey::Model],
        Some("project = 'alpha'"),
    )
    .await;
    assert_eq!(
        filtered.iter().map(|g| g.key.clone()).collect::<Vec<_>>(),
        vec![
            vec![json!("alpha"), json!("gpt-4o")],
            vec![json!("alpha"), json!("gpt-4o-mini")]
        ]
    );
    assert_eq!((filtered[0].count, filtered[0].error_count), (2, 1));
    let window = store
        .stats(StatsQuery {
            filter: None,
            group_by: vec![GroupKey::Project],
            bucket_ms: 3_600_000,
            start_from_ms: Some(i64::try_from(trace_start_ms(3)).unwrap_or(0)),
            start_to_ms: Some(i64::try_from(trace_start_ms(5)).unwrap_or(0)),
        })
        .await
        .expect("stats");
    assert_eq!(keys(&window), vec![json!("beta")]);
    assert_eq!(window[0].count, 2);
    let none = stats(store, vec![GroupKey::Model], Some("project = 'nope'")).await;
    assert!(none.is_empty());
}

/// Full text over inputs and outputs: English prefixes, accents, Chinese, Arabic; deleted
/// traces leave the index.
pub async fn query_full_text(store: &dyn TraceStore) {
    seed_query_data(store).await;
    store.flush_text_index().await.expect("flush");
    expect(
        store,
        &[
            ("text ~ 'refund'", &[3]),
            ("text ~ 'REFUNDS'", &[3]),
            ("text ~ 'refunded'", &[]),
            ("text ~ 'charged twice'", &[3]),
            ("text ~ 'twice charged'", &[3]),
            ("text ~ 'charged elephant'", &[]),
            ("text ~ 'cafe'", &[1]),
            ("text ~ 'CAFÉ'", &[1]),
            ("text ~ '退款'", &[2]),
            ("text ~ '申请退款'", &[2]),
            ("text ~ 'استرداد'", &[5]),
            ("text ~ 'forecast'", &[4]),
            ("text ~ 'elephant'", &[]),
            ("text ~ 'refund' OR text ~ 'forecast'", &[3, 4]),
            ("text ~ 'forecast' AND project = 'alpha'", &[]),
            ("NOT text ~ 'refund' AND project = 'beta'", &[4]),
        ],
    )
    .await;
    let n = store
        .delete_traces(loupe_store::TraceSelection::Ids(vec![TraceId([4; 16])]))
        .await
        .expect("delete");
    assert_eq!(n, 1);
    store.flush_text_index().await.expect("flush");
    expect(store, &[("text ~ 'forecast'", &[])]).await;
}
