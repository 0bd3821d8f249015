//! The `traces.json` artifact: the client's span data when its spans did not go over OTLP.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::convert;
use super::experiments::experiment_by_id_str;
use super::{MlflowError, Reply, ok, raw_body, trace_id_of};
use crate::AppState;

/// `<experiment>/traces/<trace id>/artifacts/traces.json` → (experiment, trace).
pub(super) fn traces_json_path(path: &str) -> Option<(&str, &str)> {
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
pub(super) async fn put_artifact(
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
    let bytes = raw_body(&state, &headers, body).await?;
    let prices = state.prices.clone();
    let project = experiment.project();
    // Parsing and encoding are CPU work: on ingest's decode threads, as OTLP's are.
    let encoded = state
        .queue
        .cpu(move || loupe_ingest::prepare_traces_json(trace_id, &bytes, &project, &prices))
        .await??;
    state.queue.submit(encoded).await?;
    ok(json!({}))
}

/// `GET …/traces.json`: the trace's spans as MLflow span dicts.
pub(super) async fn get_artifact(State(state): State<AppState>, Path(path): Path<String>) -> Reply {
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
