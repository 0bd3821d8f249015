//! Experiments (MLflow's projects with numeric ids) and the server-info endpoints.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use loupe_store::{ErrorKind, Experiment, ExperimentKey};
use serde_json::{Map, Value, json};

use super::{
    MLFLOW_VERSION, MlflowError, Reply, json_body, ok, query_one, query_pairs, required, str_field,
};
use crate::AppState;

pub(super) fn experiment_json(e: &Experiment) -> Value {
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

pub(super) async fn experiment_by_id_str(
    state: &AppState,
    id: &str,
) -> Result<Experiment, MlflowError> {
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
pub(super) async fn experiment_for_project(
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

pub(super) async fn experiment_by_name(State(state): State<AppState>, uri: Uri) -> Reply {
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

pub(super) async fn experiment_by_id(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let id = query_one(&q, "experiment_id").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'experiment_id'")
    })?;
    let e = experiment_by_id_str(&state, &id).await?;
    ok(json!({"experiment": experiment_json(&e)}))
}

pub(super) async fn create_experiment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
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

pub(super) async fn search_experiments(State(state): State<AppState>) -> Reply {
    let all = state.store.list_experiments().await?;
    ok(
        json!({"experiments": all.iter().filter(|e| e.lifecycle_stage == "active").map(experiment_json).collect::<Vec<_>>()}),
    )
}

pub(super) async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        MLFLOW_VERSION,
    )
        .into_response()
}

pub(super) async fn server_info() -> Reply {
    ok(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "features_enabled": {"gateway": false},
    }))
}
