//! The JSON API's writes: assessments (end-user feedback, labels, expected answers) and trace
//! tags, for applications that do not use the MLflow client.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loupe_model::{
    Assessment, AssessmentError, AssessmentKind, AssessmentSource, AssessmentValue, SourceType,
    SpanId, TraceId,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::util::{now_ms, random_hex};

/// Most assessments in one request.
pub(crate) const MAX_ASSESSMENTS_PER_REQUEST: usize = 1_000;
/// Longest client-chosen assessment id.
const MAX_ID_LEN: usize = 200;

fn kind_feedback() -> AssessmentKind {
    AssessmentKind::Feedback
}

/// One assessment as a client sends it: `POST /api/v1/traces/{trace_id}/assessments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAssessment {
    /// Id to use; a retried request with the same id replaces instead of adding.
    assessment_id: Option<String>,
    name: String,
    #[serde(default = "kind_feedback")]
    kind: AssessmentKind,
    value: Option<Value>,
    error: Option<AssessmentError>,
    rationale: Option<String>,
    source: Option<AssessmentSource>,
    span_id: Option<SpanId>,
    #[serde(default)]
    metadata: Map<String, Value>,
    run_id: Option<String>,
    overrides: Option<String>,
}

/// What `PATCH /api/v1/assessments/{id}` may change; absent fields stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssessmentPatch {
    name: Option<String>,
    value: Option<Value>,
    rationale: Option<String>,
    valid: Option<bool>,
    metadata: Option<Map<String, Value>>,
    source: Option<AssessmentSource>,
    error: Option<AssessmentError>,
}

/// A body of JSON, as `T`; a mistake names the field it is in, under `prefix`.
fn parse<T: DeserializeOwned>(v: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let at = match (prefix.is_empty(), path == ".") {
            (true, true) => String::new(),
            (true, false) => format!("{path}: "),
            (false, true) => format!("{prefix}: "),
            (false, false) => format!("{prefix}.{path}: "),
        };
        ApiError::bad_request(format!("{at}{}", e.into_inner()))
    })
}

async fn json_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let bytes = read_limited(headers, body, state.config.max_request_bytes)
        .await
        .map_err(|e| ApiError {
            status: e.status,
            code: if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                "PAYLOAD_TOO_LARGE"
            } else {
                "INVALID_ARGUMENT"
            },
            message: e.message,
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub(crate) fn trace_id_param(id: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(id.strip_prefix("tr-").unwrap_or(id))
        .map_err(|e| ApiError::bad_request(format!("invalid trace id {id:?}: {e}")))
}

impl NewAssessment {
    fn into_assessment(self, trace_id: TraceId, at: &str) -> Result<Assessment, ApiError> {
        let bad = |field: &str, why: &str| ApiError::bad_request(format!("{at}{field}: {why}"));
        if self.name.trim().is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        let id = match self.assessment_id {
            Some(id) if id.is_empty() || id.len() > MAX_ID_LEN => {
                return Err(bad("assessment_id", "must be 1 to 200 characters"));
            }
            Some(id) => id,
            None => format!("a-{}", random_hex()),
        };
        let value = self.value.and_then(AssessmentValue::from_json);
        if value.is_none() && self.error.is_none() {
            return Err(bad(
                "value",
                "required (or an error saying why there is none)",
            ));
        }
        if self.kind != AssessmentKind::Feedback && self.error.is_some() {
            return Err(bad("error", "only a feedback may carry an error"));
        }
        let mut a = Assessment::new(
            id,
            trace_id,
            self.name,
            self.kind,
            value,
            self.source.unwrap_or(AssessmentSource {
                source_type: SourceType::Human,
                source_id: String::new(),
            }),
        );
        a.error = self.error;
        a.rationale = self.rationale;
        a.span_id = self.span_id;
        a.metadata = self.metadata;
        a.run_id = self.run_id;
        a.overrides = self.overrides;
        Ok(a)
    }
}

/// `POST /api/v1/traces/{trace_id}/assessments`: one assessment (an object), or a batch (a
/// list, or `{"assessments": [...]}`), stored all together or not at all. 201 with what was
/// stored.
pub(crate) async fn post_assessments(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let trace_id = trace_id_param(&id)?;
    let items: Vec<(Value, String)> = match json_body(&state, &headers, body).await? {
        Value::Object(mut o) if o.contains_key("assessments") && o.len() == 1 => {
            match o.remove("assessments") {
                Some(Value::Array(list)) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (v, format!("assessments[{i}]")))
                    .collect(),
                _ => return Err(ApiError::bad_request("assessments: expected a list")),
            }
        }
        Value::Array(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, format!("[{i}]")))
            .collect(),
        one @ Value::Object(_) => vec![(one, String::new())],
        _ => {
            return Err(ApiError::bad_request(
                "expected an assessment object, a list of them, or {\"assessments\": [...]}",
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_ASSESSMENTS_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "send 1 to {MAX_ASSESSMENTS_PER_REQUEST} assessments per request, got {}",
            items.len()
        )));
    }
    let mut batch = Vec::with_capacity(items.len());
    for (v, prefix) in items {
        let new: NewAssessment = parse(v, &prefix)?;
        let at = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        batch.push(new.into_assessment(trace_id, &at)?);
    }
    state.store.put_assessments(batch.clone()).await?;
    Ok((StatusCode::CREATED, Json(json!({"assessments": batch}))).into_response())
}

async fn existing(state: &AppState, id: &str) -> Result<Assessment, ApiError> {
    state
        .store
        .assessment(id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assessment {id:?} not found")))
}

/// `GET /api/v1/assessments/{assessment_id}`.
pub(crate) async fn get_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Assessment>, ApiError> {
    Ok(Json(existing(&state, &id).await?))
}

/// `PATCH /api/v1/assessments/{assessment_id}`: changes the fields sent, and the update time.
pub(crate) async fn patch_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Assessment>, ApiError> {
    let patch: AssessmentPatch = parse(json_body(&state, &headers, body).await?, "")?;
    let mut a = existing(&state, &id).await?;
    if let Some(name) = patch.name {
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("name: must not be empty"));
        }
        a.name = name;
    }
    if let Some(v) = patch.value {
        a.value = AssessmentValue::from_json(v);
        if a.value.is_some() {
            a.error = None;
        }
    }
    if let Some(e) = patch.error {
        a.error = Some(e);
    }
    if a.value.is_none() && a.error.is_none() {
        return Err(ApiError::bad_request("value: must not be null"));
    }
    if let Some(r) = patch.rationale {
        a.rationale = Some(r);
    }
    if let Some(v) = patch.valid {
        a.valid = v;
    }
    if let Some(m) = patch.metadata {
        a.metadata = m;
    }
    if let Some(s) = patch.source {
        a.source = s;
    }
    a.last_update_time_ms = now_ms();
    state.store.put_assessments(vec![a.clone()]).await?;
    Ok(Json(a))
}

/// `DELETE /api/v1/assessments/{assessment_id}`: 204, or 404 if there is no such assessment.
pub(crate) async fn delete_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let a = existing(&state, &id).await?;
    if !state.store.delete_assessment(a.trace_id, a.id).await? {
        return Err(ApiError::not_found(format!("assessment {id:?} not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `PUT /api/v1/traces/{trace_id}/tags/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagValue {
    value: String,
}

/// `PUT /api/v1/traces/{trace_id}/tags/{key}` with `{"value": "..."}`: sets the tag.
pub(crate) async fn put_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let trace_id = trace_id_param(&id)?;
    let TagValue { value } = parse(json_body(&state, &headers, body).await?, "")?;
    loupe_model::check_tag(&key, &value).map_err(ApiError::bad_request)?;
    if !state
        .store
        .set_trace_tag(trace_id, key.clone(), Some(Value::String(value.clone())))
        .await?
    {
        return Err(ApiError::not_found(format!("trace {trace_id} not found")));
    }
    Ok(Json(json!({"key": key, "value": value})))
}

/// `DELETE /api/v1/traces/{trace_id}/tags/{key}`: 204, or 404 if the trace has no such tag.
pub(crate) async fn delete_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let trace_id = trace_id_param(&id)?;
    if !state
        .store
        .set_trace_tag(trace_id, key.clone(), None)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "trace {trace_id} has no tag {key:?}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
