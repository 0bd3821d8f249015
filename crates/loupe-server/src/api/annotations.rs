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
use serde_json::{Map, Value};

use utoipa::ToSchema;

use super::types::{AssessmentList, Tag};
use crate::AppState;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::util::{new_assessment_id, now_ms};

/// Most assessments in one request.
pub(crate) const MAX_ASSESSMENTS_PER_REQUEST: usize = 1_000;
/// Longest client-chosen assessment id.
const MAX_ID_LEN: usize = 200;

fn kind_feedback() -> AssessmentKind {
    AssessmentKind::Feedback
}

/// One assessment as a client sends it: `POST /api/v1/traces/{trace_id}/assessments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAssessment {
    /// Id to use; a retried request with the same id replaces instead of adding. The server
    /// assigns `a-` + 32 hex digits when none is sent.
    assessment_id: Option<String>,
    /// Name (`quality`, `thumbs`, `expected_answer` …): what `feedback.<name>` filters on.
    name: String,
    /// `feedback` (the default), `expectation` or `issue`.
    #[serde(default = "kind_feedback")]
    kind: AssessmentKind,
    /// A boolean, a number, a string or any JSON; none only with `error`.
    #[schema(value_type = Option<AssessmentValue>)]
    value: Option<Value>,
    /// Why there is no value (the judge or check failed).
    error: Option<AssessmentError>,
    /// Why the value is what it is.
    rationale: Option<String>,
    /// Who produced it; a person (`HUMAN`, id `anonymous`) by default.
    source: Option<AssessmentSource>,
    /// The span it is about (16 hex digits), when it is about one span.
    #[schema(value_type = Option<String>)]
    span_id: Option<SpanId>,
    /// Free-form key/value pairs.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    /// The evaluation run or evaluator that produced it.
    run_id: Option<String>,
    /// The id of an assessment this one replaces (which then stops counting in filters).
    overrides: Option<String>,
}

/// The body of `POST /api/v1/traces/{trace_id}/assessments`: one assessment, a list of them,
/// or `{"assessments": [...]}`; at most [`MAX_ASSESSMENTS_PER_REQUEST`].
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(untagged)]
pub(crate) enum NewAssessments {
    /// One.
    One(Box<NewAssessment>),
    /// A list.
    List(Vec<NewAssessment>),
    /// A list under `assessments`.
    Wrapped {
        /// The assessments.
        assessments: Vec<NewAssessment>,
    },
}

/// What `PATCH /api/v1/assessments/{id}` may change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssessmentPatch {
    /// A new name.
    name: Option<String>,
    /// A new value.
    #[schema(value_type = Option<AssessmentValue>)]
    value: Option<Value>,
    /// A new rationale.
    rationale: Option<String>,
    /// False to stop it counting in filters.
    valid: Option<bool>,
    /// New metadata (replaces the old).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// A new source.
    source: Option<AssessmentSource>,
    /// A new error.
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
            None => new_assessment_id(),
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

/// Add feedback, expectations or issues to a trace.
///
/// One assessment (an object), or a batch (a list, or `{"assessments": [...]}`), stored all
/// together or not at all. Answers 201 with what was stored.
#[utoipa::path(post, path = "/api/v1/traces/{trace_id}/assessments", tag = "assessments",
    params(("trace_id" = String, Path, description = "32 hex digits; MLflow's `tr-` prefix is accepted")), request_body = NewAssessments,
    responses((status = 201, description = "Stored", body = AssessmentList), (status = 400, description = "A bad field, named in the message", body = crate::error::ErrorBody), (status = 404, description = "No such trace or assessment", body = crate::error::ErrorBody),
        (status = 413, description = "The body is over the server's limit", body = crate::error::ErrorBody)))]
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
    Ok((
        StatusCode::CREATED,
        Json(AssessmentList { assessments: batch }),
    )
        .into_response())
}

async fn existing(state: &AppState, id: &str) -> Result<Assessment, ApiError> {
    state
        .store
        .assessment(id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assessment {id:?} not found")))
}

/// One assessment.
#[utoipa::path(get, path = "/api/v1/assessments/{assessment_id}", tag = "assessments",
    params(("assessment_id" = String, Path, description = "The assessment's id")),
    responses((status = 200, description = "The assessment", body = Assessment), (status = 404, description = "No such trace or assessment", body = crate::error::ErrorBody)))]
pub(crate) async fn get_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Assessment>, ApiError> {
    Ok(Json(existing(&state, &id).await?))
}

/// Change an assessment: the fields sent, and its update time.
#[utoipa::path(patch, path = "/api/v1/assessments/{assessment_id}", tag = "assessments",
    params(("assessment_id" = String, Path, description = "The assessment's id")), request_body = AssessmentPatch,
    responses((status = 200, description = "The assessment as changed", body = Assessment), (status = 400, description = "A bad field, named in the message", body = crate::error::ErrorBody), (status = 404, description = "No such trace or assessment", body = crate::error::ErrorBody)))]
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

/// Delete an assessment.
#[utoipa::path(delete, path = "/api/v1/assessments/{assessment_id}", tag = "assessments",
    params(("assessment_id" = String, Path, description = "The assessment's id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such trace or assessment", body = crate::error::ErrorBody)))]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagValue {
    /// The tag's value.
    value: String,
}

/// Set a tag on a trace.
#[utoipa::path(put, path = "/api/v1/traces/{trace_id}/tags/{key}", tag = "traces",
    params(("trace_id" = String, Path, description = "32 hex digits; MLflow's `tr-` prefix is accepted"), ("key" = String, Path, description = "The tag's key")),
    request_body = TagValue,
    responses((status = 200, description = "The tag as set", body = Tag), (status = 400, description = "A bad field, named in the message", body = crate::error::ErrorBody), (status = 404, description = "No such trace or assessment", body = crate::error::ErrorBody)))]
pub(crate) async fn put_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Tag>, ApiError> {
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
    Ok(Json(Tag { key, value }))
}

/// Delete a tag of a trace.
#[utoipa::path(delete, path = "/api/v1/traces/{trace_id}/tags/{key}", tag = "traces",
    params(("trace_id" = String, Path, description = "32 hex digits; MLflow's `tr-` prefix is accepted"), ("key" = String, Path, description = "The tag's key")),
    responses((status = 204, description = "Deleted"), (status = 400, description = "A bad field, named in the message", body = crate::error::ErrorBody), (status = 404, description = "The trace has no such tag", body = crate::error::ErrorBody)))]
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
