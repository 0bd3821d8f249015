//! The MLflow tracking-server REST API, for tracing: what the real `mlflow` client calls when
//! its tracking URI is Loupe (experiments, StartTraceV3, trace info and spans, search, tags,
//! deletes, assessments, the `traces.json` artifact path, `/version`).
//!
//! Everything lands in the same store as OTLP: an experiment is a project (experiment `0` is the
//! project `default`), an MLflow trace id is `tr-` + the OTLP trace id, and MLflow's own spans
//! arrive over OTLP (`POST /v1/traces` with `x-mlflow-experiment-id`). Errors are MLflow's
//! `{"error_code", "message"}`; an endpoint Loupe does not implement answers 404
//! `ENDPOINT_NOT_FOUND`, never a 5xx, which the client would retry for minutes.

mod convert;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use loupe_model::{SpanStatus, TraceId, TraceSummary};
use loupe_store::{
    Assessment, ErrorKind, Experiment, ExperimentKey, OrderKey, StoreError, TraceInfoUpdate,
    TraceQuery, TraceSelection,
};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::body::read_limited;
use convert::{mlflow_id, parse_trace_id};

/// The MLflow version Loupe answers `/version` with: the client sends spans over OTLP from 3.4.
const MLFLOW_VERSION: &str = "3.17.2";

/// Tags a client may not set or remove.
const IMMUTABLE_TAGS: &[&str] = &[
    "mlflow.user",
    convert::ARTIFACT_LOCATION,
    convert::SPANS_LOCATION,
    "mlflow.trace.archiveLocation",
];

/// Largest page of a search.
const MAX_SEARCH_RESULTS: usize = 500;
/// Most traces in one batchGet.
const MAX_BATCH: usize = 100;

/// The MLflow routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(|| async { "OK" }))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .route(
            "/api/2.0/mlflow/experiments/get-by-name",
            get(experiment_by_name),
        )
        .route("/api/2.0/mlflow/experiments/get", get(experiment_by_id))
        .route(
            "/api/2.0/mlflow/experiments/create",
            post(create_experiment),
        )
        .route(
            "/api/2.0/mlflow/experiments/search",
            get(search_experiments).post(search_experiments),
        )
        .route("/api/3.0/mlflow/traces", post(start_trace))
        .route("/api/3.0/mlflow/traces/search", post(search_traces))
        .route("/api/3.0/mlflow/traces/get", get(get_trace))
        .route("/api/3.0/mlflow/traces/batchGet", get(batch_get))
        .route(
            "/api/3.0/mlflow/traces/batchGetInfos",
            post(batch_get_infos),
        )
        .route("/api/3.0/mlflow/traces/{trace_id}", get(get_trace_info))
        .route(
            "/api/2.0/mlflow/traces/{trace_id}/tags",
            axum::routing::patch(set_tag).delete(delete_tag),
        )
        .route(
            "/api/3.0/mlflow/traces/{trace_id}/tags",
            axum::routing::patch(set_tag).delete(delete_tag),
        )
        .route("/api/2.0/mlflow/traces/delete-traces", post(delete_traces))
        .route("/api/3.0/mlflow/traces/delete-traces", post(delete_traces))
        .route(
            "/api/3.0/mlflow/traces/{trace_id}/assessments",
            post(create_assessment),
        )
        .route(
            "/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}",
            get(get_assessment)
                .patch(update_assessment)
                .delete(delete_assessment),
        )
        .route(
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            put(put_artifact).get(get_artifact),
        )
}

/// Whether a path belongs to the MLflow API (its unknown endpoints answer MLflow's 404).
pub(crate) fn is_mlflow_path(path: &str) -> bool {
    ["/api/2.0/", "/api/3.0/", "/ajax-api/"]
        .iter()
        .any(|p| path.starts_with(p))
}

// ---- errors --------------------------------------------------------------------------------

/// An MLflow error: `{"error_code", "message"}` with MLflow's status for the code.
#[derive(Debug)]
pub(crate) struct MlflowError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl MlflowError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    fn missing(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    /// 404 `ENDPOINT_NOT_FOUND`, what the client's fallbacks key on.
    pub(crate) fn no_endpoint(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!("Loupe does not implement {method} {path}"),
        }
    }
}

impl From<StoreError> for MlflowError {
    fn from(e: StoreError) -> Self {
        match e.kind {
            ErrorKind::InvalidInput => Self::invalid(e.message),
            ErrorKind::AlreadyExists => Self {
                status: StatusCode::BAD_REQUEST,
                code: "RESOURCE_ALREADY_EXISTS",
                message: e.message,
            },
            ErrorKind::Unavailable => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "TEMPORARILY_UNAVAILABLE",
                message: e.message,
            },
            _ => {
                tracing::error!(error = %e, "store error (MLflow API)");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL_ERROR",
                    message: "internal error; see the server log".into(),
                }
            }
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

type Reply = Result<Response, MlflowError>;

fn ok(v: Value) -> Reply {
    Ok(axum::Json(v).into_response())
}

// ---- request helpers -------------------------------------------------------------------

/// The query string as (key, value) pairs, repeated keys kept.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_one(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

async fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, MlflowError> {
    let bytes = read_limited(headers, body, state.config.max_request_bytes)
        .await
        .map_err(|e| MlflowError {
            status: e.status,
            code: if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                "RESOURCE_EXHAUSTED"
            } else {
                "INVALID_PARAMETER_VALUE"
            },
            message: e.message,
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| MlflowError::invalid(format!("invalid JSON body: {e}")))?;
    if !v.is_object() {
        return Err(MlflowError::invalid("the JSON body must be an object"));
    }
    Ok(v)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn required<'a>(v: &'a Value, key: &str) -> Result<&'a str, MlflowError> {
    str_field(v, key).filter(|s| !s.is_empty()).ok_or_else(|| {
        MlflowError::invalid(format!("missing value for required parameter '{key}'"))
    })
}

fn trace_id_of(s: &str) -> Result<TraceId, MlflowError> {
    parse_trace_id(s).map_err(MlflowError::invalid)
}

pub(crate) use convert::rfc3339_ms as rfc3339;

pub(crate) use loupe_model::now_ms;

/// 32 random hex digits (std's per-process random hash keys, mixed with a counter and the time).
pub(crate) fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for half in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(half);
        h.write_i64(now_ms());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

// ---- experiments -------------------------------------------------------------------------

fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time_ms,
        "last_update_time": e.last_update_time_ms,
        "tags": e.tags.iter().map(|(k, v)| json!({
            "key": k,
            "value": v.as_str().map_or_else(|| v.to_string(), str::to_string),
        })).collect::<Vec<_>>(),
    })
}

async fn experiment_by_id_str(state: &AppState, id: &str) -> Result<Experiment, MlflowError> {
    let n: i64 = id
        .trim()
        .parse()
        .map_err(|_| MlflowError::invalid(format!("invalid experiment id {id:?}")))?;
    state
        .store
        .experiment(ExperimentKey::Id(n))
        .await?
        .ok_or_else(|| MlflowError::missing(format!("No Experiment with id={id} exists")))
}

/// The experiment holding a project's traces (created for a project that has none yet, so a
/// project filled over plain OTLP is searchable through MLflow too).
async fn experiment_for_project(
    state: &AppState,
    project: &str,
) -> Result<Experiment, MlflowError> {
    let key = if project == loupe_model::DEFAULT_PROJECT {
        ExperimentKey::Id(0)
    } else {
        ExperimentKey::Name(project.to_string())
    };
    if let Some(e) = state.store.experiment(key).await? {
        return Ok(e);
    }
    match state
        .store
        .create_experiment(project.to_string(), None, Map::new())
        .await
    {
        Ok(e) => Ok(e),
        Err(e) if e.kind == ErrorKind::AlreadyExists => state
            .store
            .experiment(ExperimentKey::Name(project.to_string()))
            .await?
            .ok_or_else(|| MlflowError::missing(format!("no experiment for project {project}"))),
        Err(e) => Err(e.into()),
    }
}

/// The project an OTLP request with `x-mlflow-experiment-id` belongs to (the id itself when no
/// such experiment exists).
pub(crate) async fn project_for_experiment_id(state: &AppState, id: &str) -> String {
    match id.trim().parse::<i64>() {
        Ok(n) => match state.store.experiment(ExperimentKey::Id(n)).await {
            Ok(Some(e)) => e.project(),
            _ => id.to_string(),
        },
        Err(_) => id.to_string(),
    }
}

async fn experiment_by_name(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let name = query_one(&q, "experiment_name").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'experiment_name'")
    })?;
    let e = state
        .store
        .experiment(ExperimentKey::Name(name.clone()))
        .await?
        .ok_or_else(|| {
            MlflowError::missing(format!("Could not find experiment with name '{name}'"))
        })?;
    ok(json!({"experiment": experiment_json(&e)}))
}

async fn experiment_by_id(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let id = query_one(&q, "experiment_id").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'experiment_id'")
    })?;
    let e = experiment_by_id_str(&state, &id).await?;
    ok(json!({"experiment": experiment_json(&e)}))
}

async fn create_experiment(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let name = required(&v, "name")?.to_string();
    let tags: Map<String, Value> = v
        .get("tags")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| Some((str_field(t, "key")?.to_string(), t.get("value")?.clone())))
                .collect()
        })
        .unwrap_or_default();
    let location = str_field(&v, "artifact_location").map(str::to_string);
    let e = state.store.create_experiment(name, location, tags).await?;
    ok(json!({"experiment_id": e.id.to_string()}))
}

async fn search_experiments(State(state): State<AppState>) -> Reply {
    let all = state.store.list_experiments().await?;
    ok(
        json!({"experiments": all.iter().filter(|e| e.lifecycle_stage == "active").map(experiment_json).collect::<Vec<_>>()}),
    )
}

// ---- server info ---------------------------------------------------------------------------

async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        MLFLOW_VERSION,
    )
        .into_response()
}

async fn server_info() -> Reply {
    ok(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "features_enabled": {"gateway": false},
    }))
}

// ---- traces --------------------------------------------------------------------------------

/// TraceInfoV3 of many traces: their experiments and assessments looked up once.
async fn infos(state: &AppState, traces: &[TraceSummary]) -> Result<Vec<Value>, MlflowError> {
    let mut experiments: HashMap<String, Experiment> = HashMap::new();
    for t in traces {
        if !experiments.contains_key(&t.project) {
            let e = experiment_for_project(state, &t.project).await?;
            experiments.insert(t.project.clone(), e);
        }
    }
    let assessments = state
        .store
        .assessments(traces.iter().map(|t| t.trace_id).collect())
        .await?;
    Ok(traces
        .iter()
        .map(|t| {
            let e = &experiments[&t.project];
            let own: Vec<Assessment> = assessments
                .iter()
                .filter(|a| a.trace_id == t.trace_id)
                .cloned()
                .collect();
            convert::trace_info(t, (e.id, &e.artifact_location), &own)
        })
        .collect())
}

async fn summary(state: &AppState, id: TraceId) -> Result<TraceSummary, MlflowError> {
    state
        .store
        .trace_summaries(vec![id])
        .await?
        .pop()
        .ok_or_else(|| MlflowError::missing(format!("Trace with ID {} not found.", mlflow_id(&id))))
}

/// A string map from a JSON object of strings (other values as JSON text).
fn string_map(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), Value::String(s))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /api/3.0/mlflow/traces` (StartTraceV3): sent once per trace, after its root ended,
/// before or after its spans arrive over OTLP.
async fn start_trace(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let info = v.pointer("/trace/trace_info").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'trace.trace_info'")
    })?;
    let trace_id = trace_id_of(required(info, "trace_id")?)?;
    let exp_id = info
        .pointer("/trace_location/mlflow_experiment/experiment_id")
        .and_then(Value::as_str)
        .unwrap_or("0");
    let experiment = experiment_by_id_str(&state, exp_id).await?;
    if experiment.lifecycle_stage != "active" {
        return Err(MlflowError::invalid(format!(
            "experiment {exp_id} is deleted"
        )));
    }
    let tags = string_map(info.get("tags"));
    let metadata = string_map(info.get("trace_metadata"));
    let status = match str_field(info, "state") {
        Some("OK") => Some(SpanStatus::Ok),
        Some("ERROR") => Some(SpanStatus::Error),
        _ => None,
    };
    let start_ns = match str_field(info, "request_time") {
        Some(t) => Some(convert::parse_rfc3339_ns(t).ok_or_else(|| {
            MlflowError::invalid(format!("invalid request_time {t:?}: expected RFC 3339"))
        })?),
        None => None,
    };
    let duration_ns = match str_field(info, "execution_duration") {
        Some(d) => Some(convert::parse_duration_ns(d).ok_or_else(|| {
            MlflowError::invalid(format!(
                "invalid execution_duration {d:?}: expected \"<seconds>s\""
            ))
        })?),
        None => None,
    };
    let mut extra = Map::new();
    for key in [
        "state",
        "client_request_id",
        "request_preview",
        "response_preview",
    ] {
        if let Some(x) = info.get(key).filter(|x| !x.is_null()) {
            extra.insert(key.into(), x.clone());
        }
    }
    let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
    let update = TraceInfoUpdate {
        trace_id,
        project: experiment.project(),
        start_ns,
        duration_ns,
        status,
        name: tags
            .get("mlflow.traceName")
            .and_then(Value::as_str)
            .map(str::to_string),
        session_id: text("mlflow.trace.session"),
        user_id: text("mlflow.trace.user"),
        tags,
        metadata,
        info: extra,
    };
    let stored = state.store.upsert_trace_info(update).await?;
    // Assessments logged while the trace was still open travel inside its info.
    if let Some(list) = info.get("assessments").and_then(Value::as_array) {
        for a in list {
            store_new_assessment(&state, trace_id, a.clone()).await?;
        }
    }
    let info = infos(&state, std::slice::from_ref(&stored)).await?;
    ok(json!({"trace": {"trace_info": info[0]}}))
}

async fn get_trace_info(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    let t = summary(&state, trace_id_of(&id)?).await?;
    let info = infos(&state, std::slice::from_ref(&t)).await?;
    ok(json!({"trace": {"trace_info": info[0]}}))
}

/// Spans of one trace as OTel proto JSON, the root first, then by start.
async fn otel_spans(state: &AppState, id: TraceId) -> Result<Vec<Value>, MlflowError> {
    let Some(detail) = state.store.get_trace(id).await? else {
        return Ok(Vec::new());
    };
    let mut spans = detail.spans;
    spans.sort_by_key(|s| (s.parent_id.is_some(), s.start_ns));
    Ok(spans
        .iter()
        .map(|s| convert::otel_span(&id, s, &state.prices))
        .collect())
}

/// The span count a client announced in `mlflow.trace.sizeStats`.
fn announced_spans(t: &TraceSummary) -> Option<u64> {
    let stats = t.metadata.get("mlflow.trace.sizeStats")?.as_str()?;
    serde_json::from_str::<Value>(stats)
        .ok()?
        .get("num_spans")?
        .as_u64()
}

/// `GET /api/3.0/mlflow/traces/get?trace_id=&allow_partial=`: with `allow_partial=False`,
/// waits up to 3 s for spans the client announced but that have not arrived yet.
async fn get_trace(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let id = query_one(&q, "trace_id")
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'trace_id'"))?;
    let id = trace_id_of(&id)?;
    let partial_ok = query_one(&q, "allow_partial").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut t = summary(&state, id).await?;
    if !partial_ok {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while announced_spans(&t).is_some_and(|n| t.span_count < n)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            t = summary(&state, id).await?;
        }
    }
    let info = infos(&state, std::slice::from_ref(&t)).await?;
    let spans = otel_spans(&state, id).await?;
    ok(json!({"trace": {"trace_info": info[0], "spans": spans}}))
}

/// `GET /api/3.0/mlflow/traces/batchGet?trace_ids=a&trace_ids=b`: unknown ids are left out.
async fn batch_get(State(state): State<AppState>, uri: Uri) -> Reply {
    let ids = ids_of(
        query_pairs(&uri)
            .into_iter()
            .filter(|(k, _)| k == "trace_ids")
            .map(|(_, v)| v),
    )?;
    let summaries = state.store.trace_summaries(ids).await?;
    let infos = infos(&state, &summaries).await?;
    let mut traces = Vec::with_capacity(summaries.len());
    for (t, info) in summaries.iter().zip(infos) {
        traces.push(json!({"trace_info": info, "spans": otel_spans(&state, t.trace_id).await?}));
    }
    ok(json!({"traces": traces}))
}

fn ids_of(ids: impl Iterator<Item = String>) -> Result<Vec<TraceId>, MlflowError> {
    let ids: Vec<TraceId> = ids.map(|s| trace_id_of(&s)).collect::<Result<_, _>>()?;
    if ids.len() > MAX_BATCH {
        return Err(MlflowError::invalid(format!(
            "at most {MAX_BATCH} trace ids per request, got {}",
            ids.len()
        )));
    }
    Ok(ids)
}

async fn batch_get_infos(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let ids = ids_of(
        v.get("trace_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string)),
    )?;
    let summaries = state.store.trace_summaries(ids).await?;
    ok(json!({"trace_infos": infos(&state, &summaries).await?}))
}

/// Experiment ids named by a search: `locations`, else the deprecated `experiment_ids`.
fn searched_experiments(v: &Value) -> Vec<String> {
    let from_locations: Vec<String> = v
        .get("locations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| {
            l.pointer("/mlflow_experiment/experiment_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if !from_locations.is_empty() {
        return from_locations;
    }
    v.get("experiment_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// Parses MLflow `order_by` clauses (`"timestamp_ms DESC"`).
fn order_of(v: &Value) -> Result<Vec<(OrderKey, bool)>, MlflowError> {
    let mut clauses = Vec::new();
    for c in v
        .get("order_by")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        clauses.push(
            c.as_str()
                .ok_or_else(|| MlflowError::invalid("order_by entries must be strings"))?,
        );
    }
    OrderKey::parse_clauses(clauses).map_err(MlflowError::invalid)
}

/// `POST /api/3.0/mlflow/traces/search`.
async fn search_traces(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let limit = match v.get("max_results") {
        None | Some(Value::Null) => 100,
        Some(n) => n
            .as_u64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| MlflowError::invalid("max_results must be a positive integer"))?
            as usize,
    };
    if limit == 0 || limit > MAX_SEARCH_RESULTS {
        return Err(MlflowError::invalid(format!(
            "Invalid value {limit} for parameter 'max_results' supplied: it must be between 1 and {MAX_SEARCH_RESULTS}"
        )));
    }
    let mut projects = Vec::new();
    for id in searched_experiments(&v) {
        if let Ok(e) = experiment_by_id_str(&state, &id).await {
            projects.push(e.project());
        }
    }
    if projects.is_empty() {
        return ok(json!({"traces": []}));
    }
    let filter = match str_field(&v, "filter").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(
            loupe_query::parse(f, now_ms())
                .map_err(|e| MlflowError::invalid(format!("Invalid filter string {f:?}: {e}")))?,
        ),
        None => None,
    };
    let order = order_of(&v)?;
    let mut query = TraceQuery {
        projects,
        filter,
        limit,
        order: order.clone(),
        ..TraceQuery::default()
    };
    if let Some(token) = str_field(&v, "page_token").filter(|t| !t.is_empty()) {
        let bad = || MlflowError::invalid(format!("invalid page_token {token:?}"));
        if let Some(offset) = token.strip_prefix("o:") {
            query.offset = offset.parse().map_err(|_| bad())?;
        } else if let Some(c) = token.strip_prefix("k:") {
            query.cursor = Some(loupe_store::Cursor::decode(c).map_err(|_| bad())?);
        } else {
            return Err(bad());
        }
    }
    let offset = query.offset;
    let page = state.store.list_traces(query).await?;
    let n = page.consumed;
    let infos = infos(&state, &page.traces).await?;
    let mut out = json!({"traces": infos});
    if let Some(c) = page.next_cursor {
        out["next_page_token"] = Value::String(if order.is_empty() {
            format!("k:{}", c.encode())
        } else {
            format!("o:{}", offset + n)
        });
    }
    ok(out)
}

// ---- tags and deletes ----------------------------------------------------------------------

/// The trace, the body and the tag key of a tag request; server-set tags are refused.
async fn tag_request(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(TraceId, Value, String), MlflowError> {
    let v = json_body(state, headers, body).await?;
    let id = trace_id_of(id)?;
    let key = required(&v, "key")?.to_string();
    if IMMUTABLE_TAGS.contains(&key.as_str()) {
        return Err(MlflowError::invalid(format!(
            "tag {key:?} is set by the server and cannot be changed"
        )));
    }
    Ok((id, v, key))
}

async fn set_tag(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (id, v, key) = tag_request(&state, &id, &headers, body).await?;
    if key.len() > 250 {
        return Err(MlflowError::invalid("tag keys are at most 250 characters"));
    }
    let value = match v.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    if value.len() > 8_000 {
        return Err(MlflowError::invalid(
            "tag values are at most 8,000 characters",
        ));
    }
    if !state
        .store
        .set_trace_tag(id, key, Some(Value::String(value)))
        .await?
    {
        return Err(MlflowError::missing(format!(
            "Trace with ID {} not found.",
            mlflow_id(&id)
        )));
    }
    ok(json!({}))
}

async fn delete_tag(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (id, _, key) = tag_request(&state, &id, &headers, body).await?;
    if !state.store.set_trace_tag(id, key.clone(), None).await? {
        return Err(MlflowError::missing(format!(
            "No trace tag with key '{key}' for trace with ID {}",
            mlflow_id(&id)
        )));
    }
    ok(json!({}))
}

/// `POST /api/2.0/mlflow/traces/delete-traces`: by ids, or the oldest up to a time.
async fn delete_traces(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let experiment = experiment_by_id_str(&state, required(&v, "experiment_id")?).await?;
    let project = experiment.project();
    let ids = v.get("request_ids").or_else(|| v.get("trace_ids"));
    let max_ts = v.get("max_timestamp_millis").filter(|x| !x.is_null());
    let max_traces = v.get("max_traces").filter(|x| !x.is_null());
    let which = match (ids, max_ts) {
        (Some(ids), None) => {
            if max_traces.is_some() {
                return Err(MlflowError::invalid(
                    "max_traces cannot be given with trace ids",
                ));
            }
            let ids = ids_of(
                ids.as_array()
                    .ok_or_else(|| MlflowError::invalid("request_ids must be a list"))?
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string)),
            )?;
            // Only traces of the named experiment.
            let owned = state.store.trace_summaries(ids).await?;
            TraceSelection::Ids(
                owned
                    .into_iter()
                    .filter(|t| t.project == project)
                    .map(|t| t.trace_id)
                    .collect(),
            )
        }
        (None, Some(ts)) => {
            let max_start_ms = ts
                .as_i64()
                .or_else(|| ts.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| MlflowError::invalid("max_timestamp_millis must be an integer"))?;
            let limit = match max_traces {
                None => None,
                Some(m) => match m
                    .as_u64()
                    .or_else(|| m.as_str().and_then(|s| s.parse().ok()))
                {
                    Some(n) if n > 0 => Some(n),
                    _ => {
                        return Err(MlflowError::invalid(
                            "max_traces must be a positive integer",
                        ));
                    }
                },
            };
            TraceSelection::StartedBy {
                project,
                max_start_ms,
                limit,
            }
        }
        _ => {
            return Err(MlflowError::invalid(
                "give exactly one of request_ids and max_timestamp_millis",
            ));
        }
    };
    let n = state.store.delete_traces(which).await?;
    ok(json!({"traces_deleted": n}))
}

// ---- assessments ---------------------------------------------------------------------------

/// Stores an assessment a client sent without an id: assigns one, fills defaults, and marks the
/// assessment it overrides as no longer valid.
async fn store_new_assessment(
    state: &AppState,
    trace_id: TraceId,
    mut a: Value,
) -> Result<Value, MlflowError> {
    let obj = a
        .as_object_mut()
        .ok_or_else(|| MlflowError::invalid("an assessment must be a JSON object"))?;
    let has_value = ["feedback", "expectation", "issue"]
        .iter()
        .any(|k| obj.get(*k).is_some_and(|v| !v.is_null()));
    if !has_value {
        return Err(MlflowError::invalid(
            "an assessment needs one of feedback, expectation or issue",
        ));
    }
    let id = match obj.get("assessment_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("a-{}", random_hex()),
    };
    let now = convert::rfc3339_ms(now_ms());
    obj.insert("assessment_id".into(), Value::String(id.clone()));
    obj.insert("trace_id".into(), Value::String(mlflow_id(&trace_id)));
    obj.entry("create_time")
        .or_insert_with(|| Value::String(now.clone()));
    obj.entry("last_update_time")
        .or_insert_with(|| Value::String(now.clone()));
    obj.entry("valid").or_insert(Value::Bool(true));
    let created = obj
        .get("create_time")
        .and_then(Value::as_str)
        .and_then(convert::parse_rfc3339_ns)
        .map_or_else(now_ms, |ns| {
            i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
        });
    let overrides = obj
        .get("overrides")
        .and_then(Value::as_str)
        .map(str::to_string);
    let stored = Assessment {
        assessment_id: id,
        trace_id,
        create_time_ms: created,
        body: a.clone(),
    };
    if !state.store.put_assessment(trace_id, stored).await? {
        return Err(MlflowError::missing(format!(
            "Trace with ID {} not found.",
            mlflow_id(&trace_id)
        )));
    }
    if let Some(old) = overrides
        && let Some(mut prev) = find_assessment(state, trace_id, &old).await?
    {
        prev.body["valid"] = Value::Bool(false);
        state.store.put_assessment(trace_id, prev).await?;
    }
    Ok(a)
}

async fn find_assessment(
    state: &AppState,
    trace_id: TraceId,
    id: &str,
) -> Result<Option<Assessment>, MlflowError> {
    Ok(state
        .store
        .assessments(vec![trace_id])
        .await?
        .into_iter()
        .find(|a| a.assessment_id == id))
}

async fn create_assessment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let trace_id = trace_id_of(&id)?;
    let a = v
        .get("assessment")
        .cloned()
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'assessment'"))?;
    let mut a = a;
    if let Some(o) = a.as_object_mut() {
        // The server assigns ids.
        o.remove("assessment_id");
    }
    let stored = store_new_assessment(&state, trace_id, a).await?;
    ok(json!({"assessment": stored}))
}

async fn get_assessment(
    State(state): State<AppState>,
    Path((id, aid)): Path<(String, String)>,
) -> Reply {
    let trace_id = trace_id_of(&id)?;
    let a = find_assessment(&state, trace_id, &aid)
        .await?
        .ok_or_else(|| MlflowError::missing(format!("Assessment with ID '{aid}' not found")))?;
    ok(json!({"assessment": a.body}))
}

async fn update_assessment(
    State(state): State<AppState>,
    Path((id, aid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let trace_id = trace_id_of(&id)?;
    let mut stored = find_assessment(&state, trace_id, &aid)
        .await?
        .ok_or_else(|| MlflowError::missing(format!("Assessment with ID '{aid}' not found")))?;
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
    let body = stored
        .body
        .as_object_mut()
        .ok_or_else(|| MlflowError::invalid("stored assessment is not an object"))?;
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
    body.insert(
        "last_update_time".into(),
        Value::String(convert::rfc3339_ms(now_ms())),
    );
    let out = stored.body.clone();
    state.store.put_assessment(trace_id, stored).await?;
    ok(json!({"assessment": out}))
}

async fn delete_assessment(
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

// ---- artifacts -----------------------------------------------------------------------------

/// `<experiment>/traces/<trace id>/artifacts/traces.json` → (experiment, trace).
fn traces_json_path(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (exp, t, id, a, file) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (t == "traces" && a == "artifacts" && file == "traces.json" && parts.next().is_none())
        .then_some((exp, id))
}

/// `PUT …/traces.json`: the client's span data when its spans did not (or could not) go over
/// OTLP. The spans are ingested like any others, so the trace reads from the store.
async fn put_artifact(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let Some((exp, id)) = traces_json_path(&path) else {
        return Err(MlflowError::no_endpoint(
            "PUT",
            &format!("artifact {path} (Loupe stores only traces.json)"),
        ));
    };
    let experiment = experiment_by_id_str(&state, exp).await?;
    let trace_id = trace_id_of(id)?;
    let v = json_body(&state, &headers, body).await?;
    let prices = state.prices.clone();
    let project = experiment.project();
    let spans = convert::spans_from_traces_json(trace_id, &v, &project, &prices)
        .map_err(MlflowError::invalid)?;
    let encoded = loupe_store::encode_spans(spans);
    state.queue.submit(encoded).await.map_err(|e| match e {
        loupe_ingest::IngestError::BadRequest(m) => MlflowError::invalid(m),
        loupe_ingest::IngestError::Store(s) => s.into(),
        other => MlflowError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "TEMPORARILY_UNAVAILABLE",
            message: other.to_string(),
        },
    })?;
    ok(json!({}))
}

/// `GET …/traces.json`: the trace's spans as MLflow span dicts.
async fn get_artifact(State(state): State<AppState>, Path(path): Path<String>) -> Reply {
    let Some((_, id)) = traces_json_path(&path) else {
        return Err(MlflowError::no_endpoint("GET", &format!("artifact {path}")));
    };
    let trace_id = trace_id_of(id)?;
    let detail = state
        .store
        .get_trace(trace_id)
        .await?
        .ok_or_else(|| MlflowError::missing(format!("no artifact {path}")))?;
    let mut spans = detail.spans;
    spans.sort_by_key(|s| (s.parent_id.is_some(), s.start_ns));
    let dicts: Vec<Value> = spans
        .iter()
        .map(|s| convert::span_dict(&trace_id, s))
        .collect();
    ok(json!({"spans": dicts}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths() {
        assert_eq!(
            traces_json_path("1/traces/tr-ab/artifacts/traces.json"),
            Some(("1", "tr-ab"))
        );
        assert_eq!(
            traces_json_path("1/traces/tr-ab/artifacts/other.json"),
            None
        );
        assert_eq!(
            traces_json_path("1/traces/tr-ab/artifacts/traces.json/x"),
            None
        );
    }

    #[test]
    fn order_clauses() {
        let o = order_of(&json!({"order_by": ["timestamp_ms DESC", "execution_time_ms"]})).unwrap();
        assert_eq!(
            o,
            vec![(OrderKey::Start, true), (OrderKey::Duration, false)]
        );
        assert!(order_of(&json!({"order_by": ["bogus DESC"]})).is_err());
        assert!(order_of(&json!({"order_by": ["timestamp_ms SIDEWAYS"]})).is_err());
        assert!(order_of(&json!({"order_by": ["timestamp_ms", "timestamp"]})).is_err());
    }

    #[test]
    fn field_masks_become_snake_case() {
        use loupe_model::normalize::snake_case;
        assert_eq!(snake_case("assessmentName"), "assessment_name");
        assert_eq!(snake_case("feedback"), "feedback");
    }

    #[test]
    fn random_ids_differ() {
        let a = random_hex();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex());
    }
}
