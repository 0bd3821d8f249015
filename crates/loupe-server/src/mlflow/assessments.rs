//! Assessments as MLflow sends and reads them (`mlflow.log_feedback`, `log_expectation`,
//! `get/update/delete_assessment`, and `trace_info.assessments`), converted to and from
//! Loupe's [`Assessment`]. This file is the only place that knows MLflow's assessment JSON.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use loupe_model::{
    Assessment, AssessmentError, AssessmentKind, AssessmentSource, AssessmentValue, SourceType,
    SpanId, TraceId,
};
use serde_json::{Map, Value, json};

use super::convert::{self, mlflow_id};
use super::{MlflowError, Reply, json_body, ok, str_field, trace_id_of};
use crate::AppState;
use crate::util::{new_assessment_id, now_ms};

/// The metadata key under which MLflow's evaluation names the run that produced an assessment.
const SOURCE_RUN_ID: &str = "mlflow.assessment.sourceRunId";

/// An assessment as MLflow's JSON (proto `mlflow.assessments.Assessment`).
pub(crate) fn to_mlflow(a: &Assessment) -> Value {
    let mut o = Map::new();
    o.insert("assessment_id".into(), json!(a.id));
    o.insert("assessment_name".into(), json!(a.name));
    o.insert("trace_id".into(), json!(mlflow_id(&a.trace_id)));
    if let Some(s) = a.span_id {
        o.insert("span_id".into(), json!(s.to_hex()));
    }
    o.insert(
        "source".into(),
        json!({"source_type": a.source.source_type.as_str(), "source_id": a.source.source_id}),
    );
    o.insert(
        "create_time".into(),
        json!(convert::rfc3339_ms(a.create_time_ms)),
    );
    o.insert(
        "last_update_time".into(),
        json!(convert::rfc3339_ms(a.last_update_time_ms)),
    );
    let value = a.value.as_ref().map(AssessmentValue::to_json);
    match a.kind {
        AssessmentKind::Feedback => {
            let mut f = Map::new();
            if let Some(v) = value {
                f.insert("value".into(), v);
            }
            if let Some(e) = &a.error {
                let mut err = Map::new();
                err.insert("error_code".into(), json!(e.code));
                err.insert("error_message".into(), json!(e.message));
                if let Some(t) = &e.stack_trace {
                    err.insert("stack_trace".into(), json!(t));
                }
                f.insert("error".into(), Value::Object(err));
            }
            o.insert("feedback".into(), Value::Object(f));
        }
        // Structured expectations travel as JSON text, as the client sends them.
        AssessmentKind::Expectation => {
            let e = match value {
                Some(v @ (Value::Object(_) | Value::Array(_))) => json!({"serialized_value": {
                    "serialization_format": "JSON_FORMAT", "value": v.to_string()}}),
                Some(v) => json!({ "value": v }),
                None => json!({}),
            };
            o.insert("expectation".into(), e);
        }
        AssessmentKind::Issue => {
            o.insert("issue".into(), value.unwrap_or_else(|| json!({})));
        }
    }
    if let Some(r) = &a.rationale {
        o.insert("rationale".into(), json!(r));
    }
    if !a.metadata.is_empty() {
        o.insert("metadata".into(), Value::Object(a.metadata.clone()));
    }
    o.insert("valid".into(), json!(a.valid));
    if let Some(x) = &a.overrides {
        o.insert("overrides".into(), json!(x));
    }
    Value::Object(o)
}

/// An RFC 3339 time of the assessment JSON, in ms.
fn time_ms(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, MlflowError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => convert::parse_rfc3339_ns(t)
            .map(|ns| Some(i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)))
            .ok_or_else(|| MlflowError::invalid(format!("invalid {key} {t:?}: expected RFC 3339"))),
        Some(_) => Err(MlflowError::invalid(format!("{key} must be a string"))),
    }
}

fn opt_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, MlflowError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MlflowError::invalid(format!("{key} must be a string"))),
    }
}

/// The kind and value of MLflow's oneof (`feedback`, `expectation`, `issue`), with a
/// feedback's error.
fn kind_and_value(
    o: &Map<String, Value>,
) -> Result<
    (
        AssessmentKind,
        Option<AssessmentValue>,
        Option<AssessmentError>,
    ),
    MlflowError,
> {
    let present = |k: &str| o.get(k).filter(|v| !v.is_null());
    if let Some(f) = present("feedback") {
        let value = f.get("value").cloned().and_then(AssessmentValue::from_json);
        let error = f
            .get("error")
            .or_else(|| o.get("error"))
            .filter(|e| e.is_object())
            .map(|e| AssessmentError {
                code: str_field(e, "error_code").unwrap_or_default().to_string(),
                message: str_field(e, "error_message")
                    .unwrap_or_default()
                    .to_string(),
                stack_trace: str_field(e, "stack_trace").map(str::to_string),
            });
        return Ok((AssessmentKind::Feedback, value, error));
    }
    if let Some(e) = present("expectation") {
        let value = match e.pointer("/serialized_value/value") {
            Some(Value::String(text)) => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            _ => e.get("value").cloned().unwrap_or(Value::Null),
        };
        return Ok((
            AssessmentKind::Expectation,
            AssessmentValue::from_json(value),
            None,
        ));
    }
    if let Some(i) = present("issue") {
        return Ok((
            AssessmentKind::Issue,
            AssessmentValue::from_json(i.clone()),
            None,
        ));
    }
    Err(MlflowError::invalid(
        "an assessment needs one of feedback, expectation or issue",
    ))
}

fn source_of(o: &Map<String, Value>) -> Result<AssessmentSource, MlflowError> {
    let Some(s) = o.get("source").filter(|s| !s.is_null()) else {
        // MLflow's own default.
        return Ok(AssessmentSource {
            source_type: SourceType::Code,
            source_id: "default".into(),
        });
    };
    let source_type = match str_field(s, "source_type") {
        None | Some("SOURCE_TYPE_UNSPECIFIED") => SourceType::Code,
        Some(t) => SourceType::parse(t).ok_or_else(|| {
            MlflowError::invalid(format!(
                "invalid source.source_type {t:?}: expected HUMAN, LLM_JUDGE or CODE"
            ))
        })?,
    };
    Ok(AssessmentSource {
        source_type,
        source_id: str_field(s, "source_id").unwrap_or("default").to_string(),
    })
}

/// Loupe's assessment of an MLflow one sent for `trace_id`; `id` is used when it names none.
pub(crate) fn from_mlflow(
    v: &Value,
    trace_id: TraceId,
    id: String,
) -> Result<Assessment, MlflowError> {
    let o = v
        .as_object()
        .ok_or_else(|| MlflowError::invalid("an assessment must be a JSON object"))?;
    let (kind, value, error) = kind_and_value(o)?;
    let span_id = match opt_string(o, "span_id")?.filter(|s| !s.is_empty()) {
        Some(s) => Some(
            SpanId::from_hex(&s)
                .map_err(|e| MlflowError::invalid(format!("invalid span_id {s:?}: {e}")))?,
        ),
        None => None,
    };
    let metadata = match o.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(MlflowError::invalid("metadata must be an object")),
    };
    let now = now_ms();
    let created = time_ms(o, "create_time")?.unwrap_or(now);
    Ok(Assessment {
        id: opt_string(o, "assessment_id")?
            .filter(|s| !s.is_empty())
            .unwrap_or(id),
        trace_id,
        span_id,
        name: opt_string(o, "assessment_name")?.unwrap_or_default(),
        kind,
        value,
        error,
        rationale: opt_string(o, "rationale")?,
        source: source_of(o)?,
        run_id: metadata
            .get(SOURCE_RUN_ID)
            .and_then(Value::as_str)
            .map(str::to_string),
        metadata,
        valid: o.get("valid").and_then(Value::as_bool).unwrap_or(true),
        overrides: opt_string(o, "overrides")?.filter(|s| !s.is_empty()),
        overridden_by: None,
        create_time_ms: created,
        last_update_time_ms: time_ms(o, "last_update_time")?.unwrap_or(created),
    })
}

/// Stores an assessment a client sent without an id (the server assigns one); one that
/// `overrides` another leaves that one invalid.
async fn store_new(
    state: &AppState,
    trace_id: TraceId,
    v: &Value,
) -> Result<Assessment, MlflowError> {
    let a = from_mlflow(v, trace_id, new_assessment_id())?;
    store_assessments(state, vec![a.clone()]).await?;
    Ok(a)
}

/// Stores assessments of one trace; a trace that does not exist is MLflow's 404.
pub(crate) async fn store_assessments(
    state: &AppState,
    assessments: Vec<Assessment>,
) -> Result<(), MlflowError> {
    let Some(trace_id) = assessments.first().map(|a| a.trace_id) else {
        return Ok(());
    };
    state
        .store
        .put_assessments(assessments)
        .await
        .map_err(|e| match e.kind {
            loupe_store::ErrorKind::NotFound => {
                MlflowError::missing(format!("Trace with ID {} not found.", mlflow_id(&trace_id)))
            }
            _ => e.into(),
        })
}

/// Assessments logged while the trace was still open travel inside its info (StartTraceV3).
pub(crate) fn assessments_of_trace_info(
    info: &Value,
    trace_id: TraceId,
) -> Result<Vec<Assessment>, MlflowError> {
    info.get("assessments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| from_mlflow(a, trace_id, new_assessment_id()))
        .collect()
}

/// The assessment `aid` of a trace, or MLflow's 404.
async fn find(state: &AppState, trace_id: TraceId, aid: &str) -> Result<Assessment, MlflowError> {
    state
        .store
        .assessment(aid.to_string())
        .await?
        .filter(|a| a.trace_id == trace_id)
        .ok_or_else(|| MlflowError::missing(format!("Assessment with ID '{aid}' not found")))
}

pub(super) async fn create_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let trace_id = trace_id_of(&id)?;
    let mut a = v
        .get("assessment")
        .cloned()
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'assessment'"))?;
    if let Some(o) = a.as_object_mut() {
        // The server assigns ids.
        o.remove("assessment_id");
    }
    let stored = store_new(&state, trace_id, &a).await?;
    ok(json!({"assessment": to_mlflow(&stored)}))
}

pub(super) async fn get_assessment(
    State(state): State<AppState>,
    Path((id, aid)): Path<(String, String)>,
) -> Reply {
    let a = find(&state, trace_id_of(&id)?, &aid).await?;
    ok(json!({"assessment": to_mlflow(&a)}))
}

/// `PATCH`: only the fields the `update_mask` names (camelCase paths), or every field sent.
pub(super) async fn update_assessment(
    State(state): State<AppState>,
    Path((id, aid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let trace_id = trace_id_of(&id)?;
    let stored = find(&state, trace_id, &aid).await?;
    let patch = v
        .get("assessment")
        .and_then(Value::as_object)
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'assessment'"))?;
    let mask = str_field(&v, "update_mask").unwrap_or("");
    let fields: Vec<String> = if mask.trim().is_empty() {
        patch.keys().cloned().collect()
    } else {
        mask.split(',')
            .map(|p| loupe_model::normalize::snake_case(p.trim()))
            .collect()
    };
    // The patch is applied to the MLflow form, then read back, so each field keeps the
    // meaning it has on the wire.
    let mut wire = to_mlflow(&stored);
    let Value::Object(body) = &mut wire else {
        return Err(MlflowError::invalid("stored assessment is not an object"));
    };
    for f in fields {
        if matches!(f.as_str(), "assessment_id" | "trace_id" | "create_time") {
            continue;
        }
        if matches!(f.as_str(), "feedback" | "expectation") {
            // The value kind can change with an update: drop the other one.
            body.remove("feedback");
            body.remove("expectation");
        }
        match patch.get(&f) {
            Some(x) => {
                body.insert(f, x.clone());
            }
            None => {
                body.remove(&f);
            }
        }
    }
    body.remove("last_update_time");
    let mut updated = from_mlflow(&wire, trace_id, stored.id.clone())?;
    updated.overridden_by = stored.overridden_by;
    updated.run_id = updated.run_id.or(stored.run_id);
    updated.last_update_time_ms = now_ms();
    state.store.put_assessments(vec![updated.clone()]).await?;
    ok(json!({"assessment": to_mlflow(&updated)}))
}

pub(super) async fn delete_assessment(
    State(state): State<AppState>,
    Path((id, aid)): Path<(String, String)>,
) -> Reply {
    let trace_id = trace_id_of(&id)?;
    if !state.store.delete_assessment(trace_id, aid.clone()).await? {
        return Err(MlflowError::missing(format!(
            "Assessment with ID '{aid}' not found"
        )));
    }
    ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> TraceId {
        TraceId([7; 16])
    }

    #[test]
    fn feedback_round_trips_through_the_wire_form() {
        let sent = json!({"assessment_name": "quality", "trace_id": "tr-x",
            "source": {"source_type": "HUMAN", "source_id": "alice"},
            "create_time": "2026-11-23T21:20:28.475Z", "last_update_time": "2026-11-23T21:20:28.475Z",
            "feedback": {"value": 0.9}, "rationale": "good", "metadata": {"k": "v"}, "valid": true});
        let a = from_mlflow(&sent, trace(), "a-1".into()).expect("valid");
        assert_eq!(a.kind, AssessmentKind::Feedback);
        assert_eq!(a.value, AssessmentValue::from_json(json!(0.9)));
        assert_eq!(a.source.source_type, SourceType::Human);
        assert_eq!(a.create_time_ms, 1_795_468_828_475);
        let back = to_mlflow(&a);
        assert_eq!(back["feedback"], json!({"value": 0.9}));
        assert_eq!(back["create_time"], sent["create_time"]);
        assert_eq!(back["metadata"], json!({"k": "v"}));
        assert_eq!(back["trace_id"], json!(mlflow_id(&trace())));
    }

    #[test]
    fn structured_expectations_are_serialized_and_scalars_are_not() {
        let sent = json!({"assessment_name": "e", "expectation": {"serialized_value": {
            "serialization_format": "JSON_FORMAT", "value": "{\"answer\": \"a\"}"}}});
        let a = from_mlflow(&sent, trace(), "a-1".into()).expect("valid");
        assert_eq!(a.value, Some(AssessmentValue::Json(json!({"answer": "a"}))));
        assert_eq!(
            to_mlflow(&a)["expectation"]["serialized_value"]["value"],
            json!("{\"answer\":\"a\"}")
        );
        let scalar = from_mlflow(&json!({"expectation": {"value": 3}}), trace(), "a-2".into())
            .expect("valid");
        assert_eq!(to_mlflow(&scalar)["expectation"], json!({"value": 3}));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |v: Value| {
            from_mlflow(&v, trace(), "a".into())
                .expect_err("refused")
                .message
        };
        assert!(err(json!({"assessment_name": "x"})).contains("feedback, expectation or issue"));
        assert!(err(json!({"feedback": {"value": 1}, "span_id": "zz"})).contains("span_id"));
        assert!(
            err(json!({"feedback": {}, "source": {"source_type": "ROBOT"}}))
                .contains("source_type")
        );
        assert!(err(json!({"feedback": {}, "create_time": "yesterday"})).contains("create_time"));
        assert!(err(json!([1])).contains("JSON object"));
    }

    #[test]
    fn a_failed_feedback_keeps_its_error_and_the_run_is_read_from_metadata() {
        let a = from_mlflow(
            &json!({"feedback": {"error": {"error_code": "TIMEOUT", "error_message": "slow"}},
                    "metadata": {SOURCE_RUN_ID: "run-1"}}),
            trace(),
            "a".into(),
        )
        .expect("valid");
        assert_eq!(a.value, None);
        assert_eq!(a.error.as_ref().map(|e| e.code.as_str()), Some("TIMEOUT"));
        assert_eq!(a.run_id.as_deref(), Some("run-1"));
        assert_eq!(
            to_mlflow(&a)["feedback"]["error"]["error_message"],
            json!("slow")
        );
    }
}
