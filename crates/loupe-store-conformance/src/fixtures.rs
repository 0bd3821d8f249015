//! Spans and traces the cases write.

use loupe_model::normalize;
use loupe_model::{
    Assessment, AssessmentKind, AssessmentSource, AssessmentValue, SourceType, Span, SpanId,
    SpanStatus, TraceId,
};
use loupe_store::{EncodedSpan, SpanColumns, TraceStore, encode_span, encode_spans};
use serde_json::{Map, Value, json};

/// One millisecond in ns.
pub const MS: u64 = 1_000_000;

/// A span with GenAI token attributes when `tokens` is set (model `gpt-4o`).
pub fn span(
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

/// A trace: root 1 (1000..1100 ms), child 2 with tokens, child 3 failed, grandchild 4 with
/// tokens (starting before the root and ending after it).
pub fn trace_spans(t: u8) -> Vec<EncodedSpan> {
    vec![
        span(t, 1, None, 1_000 * MS, 1_100 * MS, SpanStatus::Unset, None),
        span(
            t,
            2,
            Some(1),
            1_010 * MS,
            1_050 * MS,
            SpanStatus::Ok,
            Some((10, 5)),
        ),
        span(
            t,
            3,
            Some(1),
            1_020 * MS,
            1_090 * MS,
            SpanStatus::Error,
            None,
        ),
        span(
            t,
            4,
            Some(3),
            995 * MS,
            1_120 * MS,
            SpanStatus::Unset,
            Some((7, 3)),
        ),
    ]
}

/// Checks the roll-up of a trace written with [`trace_spans`], however it arrived.
pub async fn check_rollup(store: &dyn TraceStore, t: u8) {
    let d = store
        .get_trace(TraceId([t; 16]))
        .await
        .expect("get_trace")
        .expect("the trace exists");
    let s = &d.summary;
    assert_eq!(s.name, "span-1", "trace {t}");
    assert!(s.has_root);
    assert_eq!(s.span_count, 4, "trace {t}");
    assert_eq!(s.error_count, 1, "trace {t}");
    assert_eq!(
        s.status,
        SpanStatus::Error,
        "an errored child with an unset root"
    );
    assert_eq!(
        (s.input_tokens, s.output_tokens, s.total_tokens),
        (17, 8, 25),
        "trace {t}"
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

/// A span of the query data set, described field by field.
#[derive(Clone)]
pub struct Spec {
    /// Trace number (the trace id is 16 times this byte).
    pub trace: u8,
    /// Span number.
    pub id: u8,
    /// Parent span number.
    pub parent: Option<u8>,
    /// Name.
    pub name: &'static str,
    /// Canonical span type.
    pub span_type: &'static str,
    /// Start, ms since the trace's start.
    pub from_ms: u64,
    /// End, ms since the trace's start.
    pub to_ms: u64,
    /// Status.
    pub status: SpanStatus,
    /// Model.
    pub model: Option<&'static str>,
    /// Input and output tokens.
    pub tokens: Option<(u64, u64)>,
    /// Cost.
    pub cost: Option<f64>,
    /// Text of the span's inputs.
    pub input: Option<&'static str>,
    /// Extra attributes.
    pub attributes: Vec<(&'static str, Value)>,
}

/// A spec with defaults: an OK CHAIN span of 0..10 ms.
pub fn spec(trace: u8, id: u8, name: &'static str) -> Spec {
    Spec {
        trace,
        id,
        parent: (id > 1).then_some(1),
        name,
        span_type: "CHAIN",
        from_ms: 0,
        to_ms: 10,
        status: SpanStatus::Ok,
        model: None,
        tokens: None,
        cost: None,
        input: None,
        attributes: Vec::new(),
    }
}

/// Start of the query data set, ms since the epoch (2023-11-14T22:13:20Z).
pub const T0_MS: u64 = 1_700_000_000_000;

/// Start of trace `k` of the query data set, ms: one every 20 minutes.
pub fn trace_start_ms(k: u8) -> u64 {
    T0_MS + u64::from(k) * 20 * 60_000
}

/// The 32-hex id of trace `k`.
pub fn trace_hex(k: u8) -> String {
    TraceId([k; 16]).to_string()
}

/// Encodes the spans of one trace of the query data set.
pub fn build(
    project: &str,
    session: Option<&str>,
    user: Option<&str>,
    specs: &[Spec],
) -> Vec<EncodedSpan> {
    let metadata: Map<String, Value> = match project {
        "alpha" => Map::from_iter([("service.name".to_string(), json!("svc-a"))]),
        "beta" => Map::from_iter([("service.name".to_string(), json!("svc-b"))]),
        _ => Map::new(),
    };
    let raw: Vec<Span> = specs
        .iter()
        .map(|s| {
            let mut attributes = Map::new();
            if let Some(text) = s.input {
                attributes.insert("mlflow.spanInputs".into(), json!({ "question": text }));
            }
            for (k, v) in &s.attributes {
                attributes.insert((*k).to_string(), v.clone());
            }
            let start = trace_start_ms(s.trace) * MS;
            Span {
                trace_id: TraceId([s.trace; 16]),
                span_id: SpanId([s.id; 8]),
                parent_id: s.parent.map(|p| SpanId([p; 8])),
                name: s.name.to_string(),
                kind: 0,
                start_ns: start + s.from_ms * MS,
                end_ns: start + s.to_ms * MS,
                status: s.status,
                status_message: String::new(),
                derived: normalize::derive(&attributes),
                attributes,
                events: vec![],
                links: vec![],
                resource: Map::new(),
                scope: None,
                project: project.to_string(),
            }
        })
        .collect();
    let mut out = encode_spans(raw);
    for (e, s) in out.iter_mut().zip(specs) {
        e.columns = SpanColumns {
            span_type: s.span_type.to_string(),
            model: s.model.map(str::to_string),
            input_tokens: s.tokens.map(|(i, _)| i),
            output_tokens: s.tokens.map(|(_, o)| o),
            total_tokens: s.tokens.map(|(i, o)| i + o),
            cost_usd: s.cost,
            ..SpanColumns::default()
        };
        e.session_id = session.map(str::to_string);
        e.user_id = user.map(str::to_string);
        e.trace_metadata = metadata.clone();
    }
    out
}

/// Writes the query data set: six traces, 20 minutes apart, in three projects.
///
/// | trace | project | name | status | duration | spans |
/// | --- | --- | --- | --- | --- | --- |
/// | 1 | alpha | chat | OK | 100 ms | CHAIN, LLM gpt-4o (10/5, $0.01, "Un café …") |
/// | 2 | alpha | chat | ERROR (root) | 2000 ms | CHAIN, LLM gpt-4o-mini (100/50, $0.002, Chinese), TOOL search ERROR |
/// | 3 | beta | Refund Flow | UNSET | 500 ms | CHAIN, LLM claude-3 (20/10, $0.03, "refunds", app.flag=yes), RETRIEVER |
/// | 4 | beta | summarize | OK | 50 ms | CHAIN ("weather forecast") |
/// | 5 | alpha | chat | ERROR (a child) | 300 ms | CHAIN UNSET, LLM gpt-4o ERROR (5/5, $0.005, Arabic), TOOL search OK |
/// | 6 | default | agent | OK | 1000 ms | AGENT, LLM gpt-4o (1000/500, $0.5), LLM claude-3 (10/10, $0.01) |
///
/// Sessions: 1 and 2 in `s1`, 3 in `s2`, 6 in `s3`. Users: `u1` on 1 and 5, `u2` on 2. Tags:
/// `env` = prod on 1, 3, 5 and dev on 2; `team` = x on 3. Metadata `service.name`: svc-a on
/// alpha, svc-b on beta. Feedback: `quality` 0.2 on 1 and 0.9 on 3, `correct` true on 2.
pub async fn seed_query_data(store: &dyn TraceStore) {
    use SpanStatus::{Error, Ok as Fine, Unset};
    let llm = |t: u8, id: u8, name: &'static str, model: &'static str| Spec {
        span_type: "LLM",
        model: Some(model),
        ..spec(t, id, name)
    };
    let traces: Vec<Vec<EncodedSpan>> = vec![
        build(
            "alpha",
            Some("s1"),
            Some("u1"),
            &[
                Spec {
                    to_ms: 100,
                    ..spec(1, 1, "chat")
                },
                Spec {
                    from_ms: 10,
                    to_ms: 60,
                    tokens: Some((10, 5)),
                    cost: Some(0.01),
                    input: Some("Un café, s'il vous plaît"),
                    ..llm(1, 2, "call-llm", "gpt-4o")
                },
            ],
        ),
        build(
            "alpha",
            Some("s1"),
            Some("u2"),
            &[
                Spec {
                    to_ms: 2_000,
                    status: Error,
                    ..spec(2, 1, "chat")
                },
                Spec {
                    from_ms: 10,
                    to_ms: 1_500,
                    tokens: Some((100, 50)),
                    cost: Some(0.002),
                    input: Some("我想申请退款，因为商品坏了"),
                    ..llm(2, 2, "call-llm", "gpt-4o-mini")
                },
                Spec {
                    span_type: "TOOL",
                    from_ms: 1_500,
                    to_ms: 1_900,
                    status: Error,
                    ..spec(2, 3, "search")
                },
            ],
        ),
        build(
            "beta",
            Some("s2"),
            None,
            &[
                Spec {
                    to_ms: 500,
                    status: Unset,
                    ..spec(3, 1, "Refund Flow")
                },
                Spec {
                    from_ms: 100,
                    to_ms: 400,
                    tokens: Some((20, 10)),
                    cost: Some(0.03),
                    input: Some("Where are my refunds? I was charged twice"),
                    attributes: vec![("app.flag", json!("yes"))],
                    ..llm(3, 2, "call-llm", "claude-3")
                },
                Spec {
                    span_type: "RETRIEVER",
                    from_ms: 10,
                    to_ms: 90,
                    ..spec(3, 3, "retrieve")
                },
            ],
        ),
        build(
            "beta",
            None,
            None,
            &[Spec {
                to_ms: 50,
                input: Some("weather forecast for tomorrow"),
                ..spec(4, 1, "summarize")
            }],
        ),
        build(
            "alpha",
            None,
            Some("u1"),
            &[
                Spec {
                    to_ms: 300,
                    status: Unset,
                    ..spec(5, 1, "chat")
                },
                Spec {
                    from_ms: 10,
                    to_ms: 200,
                    status: Error,
                    tokens: Some((5, 5)),
                    cost: Some(0.005),
                    input: Some("أريد استرداد أموالي"),
                    ..llm(5, 2, "call-llm", "gpt-4o")
                },
                Spec {
                    span_type: "TOOL",
                    from_ms: 200,
                    to_ms: 290,
                    status: Fine,
                    ..spec(5, 3, "search")
                },
            ],
        ),
        build(
            "default",
            Some("s3"),
            None,
            &[
                Spec {
                    span_type: "AGENT",
                    to_ms: 1_000,
                    ..spec(6, 1, "agent")
                },
                Spec {
                    from_ms: 10,
                    to_ms: 700,
                    tokens: Some((1_000, 500)),
                    cost: Some(0.5),
                    ..llm(6, 2, "plan", "gpt-4o")
                },
                Spec {
                    from_ms: 700,
                    to_ms: 990,
                    tokens: Some((10, 10)),
                    cost: Some(0.01),
                    ..llm(6, 3, "answer", "claude-3")
                },
            ],
        ),
    ];
    for t in traces {
        store.write_spans(t).await.expect("write_spans");
    }
    for (t, k, v) in [
        (1u8, "env", "prod"),
        (2, "env", "dev"),
        (3, "env", "prod"),
        (3, "team", "x"),
        (5, "env", "prod"),
    ] {
        assert!(
            store
                .set_trace_tag(TraceId([t; 16]), k.into(), Some(json!(v)))
                .await
                .expect("set_trace_tag")
        );
    }
    for (t, id, name, value) in [
        (1u8, "a-1", "quality", json!(0.2)),
        (3, "a-3", "quality", json!(0.9)),
        (2, "a-2", "correct", json!(true)),
    ] {
        let a = feedback(id, TraceId([t; 16]), name, value, 1);
        store
            .put_assessments(vec![a])
            .await
            .expect("put_assessments");
    }
}

/// The ids of the first 10 traces matching query `q`, newest first.
pub async fn traces_matching(store: &dyn TraceStore, q: &str) -> Vec<TraceId> {
    let page = store
        .list_traces(loupe_store::TraceQuery {
            filter: Some(loupe_query::parse(q, 0).expect("parses")),
            limit: 10,
            ..loupe_store::TraceQuery::default()
        })
        .await
        .expect("list");
    page.traces.iter().map(|t| t.trace_id).collect()
}

/// A human feedback assessment with this value, created (and last updated) at `created_ms`.
pub fn feedback(
    id: &str,
    trace_id: TraceId,
    name: &str,
    value: Value,
    created_ms: i64,
) -> Assessment {
    let mut a = Assessment::new(
        id.into(),
        trace_id,
        name.into(),
        AssessmentKind::Feedback,
        AssessmentValue::from_json(value),
        AssessmentSource {
            source_type: SourceType::Human,
            source_id: "tester".into(),
        },
    );
    a.create_time_ms = created_ms;
    a.last_update_time_ms = created_ms;
    a
}

/// Spans 1–3 of traces 7 and 8, interleaved in one list (each trace's spans share one body group
/// when encoded together); span 1 is the root, inputs name the trace and span.
pub fn interleaved_spans() -> Vec<Span> {
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
    raw
}
