//! The MLflow tracking-server REST API: what the real `mlflow` client calls when its tracking
//! URI is Loupe, for tracing (experiments, StartTraceV3, trace info and spans, search, tags,
//! deletes, assessments, the `traces.json` artifact path, `/version`), for runs (create,
//! update, search, params, metrics and their history, tags, inputs, traces linked to runs) and
//! for evaluation datasets and registered scorers.
//!
//! Everything lands in the same store as OTLP: an experiment is a project (experiment `0` is the
//! project `default`), an MLflow trace id is `tr-` + the OTLP trace id, and MLflow's own spans
//! arrive over OTLP (`POST /v1/traces` with `x-mlflow-experiment-id`). Errors are MLflow's
//! `{"error_code", "message"}`; an endpoint Loupe does not implement answers 404
//! `ENDPOINT_NOT_FOUND`, never a 5xx, which the client would retry for minutes.

mod artifacts;
mod assessments;
mod convert;
mod datasets;
mod errors;
mod experiments;
pub(crate) mod filter;
mod runs;
pub(crate) mod scorers;
pub(crate) mod traces;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use loupe_model::TraceId;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::read_limited;
use artifacts::{get_artifact, put_artifact};
use assessments::{create_assessment, delete_assessment, get_assessment, update_assessment};
use convert::parse_trace_id;
pub(crate) use convert::rfc3339_ms;
pub(crate) use errors::MlflowError;
pub(crate) use experiments::project_for_experiment_id;
use experiments::{
    create_experiment, experiment_by_id, experiment_by_name, search_experiments, server_info,
    version,
};
use traces::{
    batch_get, batch_get_infos, delete_tag, delete_traces, get_trace, get_trace_info,
    search_traces, set_tag, start_trace,
};

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
        .route("/api/2.0/mlflow/runs/create", post(runs::create_run))
        .route("/api/2.0/mlflow/runs/update", post(runs::update_run))
        .route("/api/2.0/mlflow/runs/get", get(runs::get_run))
        .route("/api/2.0/mlflow/runs/search", post(runs::search_runs))
        .route("/api/2.0/mlflow/runs/delete", post(runs::delete_run))
        .route("/api/2.0/mlflow/runs/restore", post(runs::restore_run))
        .route("/api/2.0/mlflow/runs/set-tag", post(runs::set_run_tag))
        .route(
            "/api/2.0/mlflow/runs/delete-tag",
            post(runs::delete_run_tag),
        )
        .route("/api/2.0/mlflow/runs/log-metric", post(runs::log_metric))
        .route("/api/2.0/mlflow/runs/log-parameter", post(runs::log_param))
        .route("/api/2.0/mlflow/runs/log-batch", post(runs::log_batch))
        .route("/api/2.0/mlflow/runs/log-inputs", post(runs::log_inputs))
        .route(
            "/api/2.0/mlflow/metrics/get-history",
            get(runs::metric_history),
        )
        .route(
            "/api/2.0/mlflow/traces/link-to-run",
            post(runs::link_traces_to_run),
        )
        .route(
            "/api/3.0/mlflow/datasets/create",
            post(datasets::create_dataset),
        )
        .route(
            "/api/3.0/mlflow/datasets/search",
            get(datasets::search_datasets).post(datasets::search_datasets),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}",
            get(datasets::get_dataset).delete(datasets::delete_dataset),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/tags",
            axum::routing::patch(datasets::set_dataset_tags),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/tags/{key}",
            axum::routing::delete(datasets::delete_dataset_tag),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/records",
            get(datasets::get_records)
                .post(datasets::upsert_records)
                .delete(datasets::delete_records),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/experiment-ids",
            get(datasets::experiment_ids_of),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/add-experiments",
            post(datasets::add_experiments),
        )
        .route(
            "/api/3.0/mlflow/datasets/{dataset_id}/remove-experiments",
            post(datasets::remove_experiments),
        )
        .route(
            "/api/3.0/mlflow/scorers/register",
            post(scorers::register_scorer),
        )
        .route("/api/3.0/mlflow/scorers/list", get(scorers::list_scorers))
        .route(
            "/api/3.0/mlflow/scorers/versions",
            get(scorers::scorer_versions),
        )
        .route("/api/3.0/mlflow/scorers/get", get(scorers::get_scorer))
        .route(
            "/api/3.0/mlflow/scorers/delete",
            axum::routing::delete(scorers::delete_scorer),
        )
        .route(
            "/api/3.0/mlflow/scorers/online-config",
            put(scorers::put_online_config),
        )
        .route(
            "/api/3.0/mlflow/scorers/online-configs",
            get(scorers::online_configs),
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

/// The query string as (key, value) pairs, repeated keys kept.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_one(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The request body, within the size limit (decompressed).
async fn raw_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, MlflowError> {
    read_limited(headers, body, state.config.max_request_bytes)
        .await
        .map_err(|e| MlflowError {
            status: e.status,
            code: if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                "RESOURCE_EXHAUSTED"
            } else {
                "INVALID_PARAMETER_VALUE"
            },
            message: e.message,
        })
}

async fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, MlflowError> {
    json_object(&raw_body(state, headers, body).await?)
}

/// An MLflow request body: a JSON object, or nothing (the client sends none for some calls).
pub(crate) fn json_object(bytes: &[u8]) -> Result<Value, MlflowError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(bytes)
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

/// The offset a page token carries (none: the first page). For the lists Loupe pages in memory
/// (runs, metric history, datasets and their records) a token is the next item's offset.
fn page_offset(token: Option<&str>) -> Result<usize, MlflowError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| MlflowError::invalid(format!("Invalid page token {t:?}"))),
    }
}

/// One page of an in-memory list: `{key: [...]}`, with `next_page_token` unless it is the last.
fn offset_page<T>(
    items: &[T],
    offset: usize,
    limit: usize,
    key: &str,
    to_json: impl Fn(&T) -> Value,
) -> Value {
    let page: Vec<Value> = items.iter().skip(offset).take(limit).map(to_json).collect();
    let mut out = json!({ key: page });
    if let Some(next) = crate::util::next_offset(offset, limit, items.len()) {
        out["next_page_token"] = json!(next.to_string());
    }
    out
}

type Reply = Result<Response, MlflowError>;

fn ok(v: Value) -> Reply {
    Ok(axum::Json(v).into_response())
}
