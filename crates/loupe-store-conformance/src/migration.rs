//! Stores opened on data written by an older binary read it as this one writes it.

use loupe_model::{AssessmentKind, AssessmentValue, SourceType, SpanId, TraceId};
use loupe_store::TraceStore;
use serde_json::json;

use crate::fixtures::traces_matching;

/// The assessments the binary at 622455c stored as MLflow JSON, written by its `loupe serve`
/// through the MLflow API as the real client sends them (two traces over OTLP/JSON; a feedback
/// with rationale and metadata, one on a span, a structured and a scalar expectation without a
/// source, a text label, a failed judge, an override, an issue), read back typed, and filtered.
pub async fn assessments_written_as_mlflow_json_read_back_typed(store: &dyn TraceStore) {
    let (one, two) = (TraceId([0x11; 16]), TraceId([0x22; 16]));

    let got = store.assessments(vec![one, two]).await.expect("read");
    assert_eq!(got.len(), 8, "{got:#?}");
    let by_name = |name: &str, valid: bool| {
        got.iter()
            .find(|a| a.name == name && a.valid == valid)
            .unwrap_or_else(|| panic!("{name} (valid {valid}) in {got:#?}"))
    };

    let old = by_name("quality", false);
    let new = by_name("quality", true);
    assert_eq!(old.value, AssessmentValue::from_json(json!(0.9)));
    assert_eq!(old.rationale.as_deref(), Some("good"));
    assert_eq!(old.metadata.get("k"), Some(&json!("v")));
    assert_eq!(
        (old.source.source_type, old.source.source_id.as_str()),
        (SourceType::Human, "alice")
    );
    assert_eq!(
        (old.create_time_ms, old.last_update_time_ms),
        (1_795_468_828_475, 1_795_468_829_000)
    );
    assert_eq!(old.overridden_by.as_deref(), Some(new.id.as_str()));
    assert_eq!(new.overrides.as_deref(), Some(old.id.as_str()));
    assert_eq!(new.value, AssessmentValue::from_json(json!(0.4)));

    let tool = by_name("tool_ok", true);
    assert_eq!(tool.value, Some(AssessmentValue::Bool(true)));
    assert_eq!(tool.span_id, Some(SpanId([0xaa; 8])));
    assert_eq!(tool.source.source_type, SourceType::LlmJudge);

    let answer = by_name("expected_answer", true);
    assert_eq!(answer.kind, AssessmentKind::Expectation);
    assert_eq!(
        answer.value,
        Some(AssessmentValue::Json(
            json!({"answer": "a", "facts": ["x", "y"]})
        ))
    );
    let len = by_name("expected_len", true);
    assert_eq!(len.value, AssessmentValue::from_json(json!(3)));
    assert_eq!(
        (len.source.source_type, len.source.source_id.as_str()),
        (SourceType::Code, "default"),
        "no source was sent: MLflow's default"
    );

    let label = by_name("label", true);
    assert_eq!(label.value, Some(AssessmentValue::String("good".into())));
    let tone = by_name("tone", true);
    assert_eq!(tone.value, None);
    let error = tone.error.as_ref().expect("the judge's error");
    assert_eq!(
        (
            error.code.as_str(),
            error.message.as_str(),
            error.stack_trace.as_deref()
        ),
        ("TIMEOUT", "slow", Some("at x"))
    );
    let issue = by_name("known_issue", true);
    assert_eq!(issue.kind, AssessmentKind::Issue);
    assert_eq!(
        issue.value,
        Some(AssessmentValue::Json(
            json!({"issue_name": "hallucination"})
        ))
    );

    assert_eq!(
        traces_matching(store, "feedback.quality < 0.5").await,
        vec![one]
    );
    assert!(
        traces_matching(store, "feedback.quality > 0.5")
            .await
            .is_empty()
    );
    assert_eq!(
        traces_matching(store, "feedback.label = 'good'").await,
        vec![two]
    );
    assert_eq!(
        traces_matching(store, "feedback.tool_ok = true").await,
        vec![one]
    );
    assert_eq!(
        traces_matching(store, "expectation.expected_len = 3").await,
        vec![one]
    );
    assert_eq!(
        store
            .trace_summaries(vec![one, two])
            .await
            .expect("traces")
            .len(),
        2
    );
}
