//! Runs: what `mlflow.start_run()`, `log_metric(s)`, `log_param(s)`, `set_tag(s)`,
//! `log_input` and `mlflow.genai.evaluate` call (`/api/2.0/mlflow/runs/*`,
//! `metrics/get-history`). Changes go through `loupe_store::runs::Run::apply` in the store, so
//! MLflow's rules (params written once, the latest metric by step, deleted runs frozen) are
//! written once.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use loupe_query::ast::{LINKED_RUN_PREFIX, SOURCE_RUN};
use loupe_store::TraceInfoUpdate;
use loupe_store::runs::{ACTIVE, DELETED, Metric, Run, RunChange};
use serde_json::{Value, json};

use super::convert::mlflow_id;
use super::experiments::experiment_by_id_str;
use super::filter::{Filter, Order, newest_run_first, run_key, sort};
use super::traces::ids_of;
use super::{
    MlflowError, Reply, json_body, offset_page, ok, page_offset, query_one, query_pairs, required,
    str_field,
};
use crate::AppState;
use crate::util::{now_ms, random_hex};

/// Largest page of `runs/search` (MLflow's own limit).
const MAX_RUNS_PAGE: usize = 50_000;
/// Default page of `runs/search`.
const DEFAULT_RUNS_PAGE: usize = 1_000;
/// What one `log-batch` may carry (MLflow's limits).
const MAX_BATCH_METRICS: usize = 1_000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
/// Largest page of a metric's history.
const MAX_HISTORY_PAGE: usize = 25_000;

/// A double as protobuf's JSON writes it: NaN and the infinities as strings.
fn double(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

fn metric_json(m: &Metric) -> Value {
    json!({"key": m.key, "value": double(m.value), "timestamp": m.timestamp, "step": m.step})
}

fn info_json(r: &Run) -> Value {
    let mut info = json!({
        "run_id": r.run_id,
        "run_uuid": r.run_id,
        "run_name": r.run_name,
        "experiment_id": r.experiment_id,
        "user_id": r.user_id,
        "status": r.status,
        "start_time": r.start_time,
        "artifact_uri": r.artifact_uri,
        "lifecycle_stage": r.lifecycle_stage,
    });
    if let Some(end) = r.end_time {
        info["end_time"] = json!(end);
    }
    info
}

fn pairs(m: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    m.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn run_json(r: &Run) -> Value {
    json!({
        "info": info_json(r),
        "data": {
            "metrics": r.metrics.values().map(metric_json).collect::<Vec<_>>(),
            "params": pairs(&r.params),
            "tags": pairs(&r.tags),
        },
        "inputs": {"dataset_inputs": r.dataset_inputs, "model_inputs": r.model_inputs},
    })
}

/// An integer field, as a JSON number or the string protobuf's JSON may send.
fn int_field(v: &Value, key: &str) -> Result<Option<i64>, MlflowError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_i64()
            .or_else(|| x.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| MlflowError::invalid(format!("'{key}' must be an integer, got {x}"))),
    }
}

/// A double field: a number, or "NaN" / "Infinity" / "-Infinity".
fn double_field(v: &Value, key: &str) -> Result<f64, MlflowError> {
    let x = v.get(key).ok_or_else(|| {
        MlflowError::invalid(format!("missing value for required parameter '{key}'"))
    })?;
    x.as_f64()
        .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| MlflowError::invalid(format!("'{key}' must be a number, got {x}")))
}

/// The run a request names (`run_id`, or the older `run_uuid`).
fn run_id_of(v: &Value) -> Result<String, MlflowError> {
    str_field(v, "run_id")
        .or_else(|| str_field(v, "run_uuid"))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))
}

fn key_values(v: &Value, field: &str) -> Result<Vec<(String, String)>, MlflowError> {
    let Some(list) = v.get(field).filter(|x| !x.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| MlflowError::invalid(format!("'{field}' must be a list")))?;
    list.iter().map(key_value).collect()
}

fn key_value(x: &Value) -> Result<(String, String), MlflowError> {
    let key = required(x, "key")?.to_string();
    let value = match x.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    Ok((key, value))
}

fn metric_of(x: &Value) -> Result<Metric, MlflowError> {
    Ok(Metric {
        key: required(x, "key")?.to_string(),
        value: double_field(x, "value")?,
        timestamp: int_field(x, "timestamp")?.unwrap_or_else(now_ms),
        step: int_field(x, "step")?.unwrap_or(0),
    })
}

async fn change(state: &AppState, run_id: String, change: RunChange) -> Result<Run, MlflowError> {
    Ok(state.store.change_run(run_id, change).await?)
}

fn log(
    metrics: Vec<Metric>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
) -> RunChange {
    RunChange::Log {
        metrics,
        params,
        tags,
    }
}

pub(super) async fn create_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let experiment_id = str_field(&v, "experiment_id").unwrap_or("0");
    let experiment = experiment_by_id_str(&state, experiment_id).await?;
    if experiment.lifecycle_stage != "active" {
        return Err(MlflowError::invalid(format!(
            "The experiment {experiment_id} must be in the 'active' state."
        )));
    }
    let run_id = random_hex();
    let mut tags = key_values(&v, "tags")?;
    let run_name = str_field(&v, "run_name")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| {
            tags.iter()
                .find(|(k, _)| k == "mlflow.runName")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| format!("run-{}", &run_id[..8]));
    tags.retain(|(k, _)| k != "mlflow.runName");
    let user_id = str_field(&v, "user_id").unwrap_or_default().to_string();
    let mut run = Run {
        run_id: run_id.clone(),
        experiment_id: experiment.id.to_string(),
        run_name: run_name.clone(),
        user_id: user_id.clone(),
        status: "RUNNING".into(),
        start_time: int_field(&v, "start_time")?.unwrap_or_else(now_ms),
        end_time: None,
        lifecycle_stage: ACTIVE.into(),
        artifact_uri: format!(
            "{}/{run_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        ),
        ..Run::default()
    };
    tags.push(("mlflow.runName".into(), run_name));
    if !user_id.is_empty() {
        tags.push(("mlflow.user".into(), user_id));
    }
    run.apply(&log(Vec::new(), Vec::new(), tags))?;
    state.store.create_run(run.clone()).await?;
    ok(json!({"run": run_json(&run)}))
}

pub(super) async fn update_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let update = RunChange::Update {
        status: str_field(&v, "status").map(str::to_string),
        end_time: int_field(&v, "end_time")?,
        run_name: str_field(&v, "run_name")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    };
    let run = change(&state, run_id_of(&v)?, update).await?;
    ok(json!({"run_info": info_json(&run)}))
}

pub(super) async fn get_run(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let id = query_one(&q, "run_id")
        .or_else(|| query_one(&q, "run_uuid"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))?;
    let run = state
        .store
        .run(id.clone())
        .await?
        .ok_or_else(|| MlflowError::missing(format!("Run with id={id} not found")))?;
    ok(json!({"run": run_json(&run)}))
}

pub(super) async fn search_runs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let experiment_ids: Vec<String> = v
        .get("experiment_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .or_else(|| x.as_i64().map(|i| i.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let filter = Filter::parse(str_field(&v, "filter").unwrap_or(""), run_key)
        .map_err(|e| MlflowError::invalid(format!("Invalid filter string: {e}")))?;
    let orders = v
        .get("order_by")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|o| Order::parse(o, run_key).map_err(MlflowError::invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let stage = str_field(&v, "run_view_type").unwrap_or("ACTIVE_ONLY");
    let keep: fn(&Run) -> bool = match stage {
        "ACTIVE_ONLY" => |r| r.lifecycle_stage == ACTIVE,
        "DELETED_ONLY" => |r| r.lifecycle_stage == DELETED,
        "ALL" => |_| true,
        other => {
            return Err(MlflowError::invalid(format!(
                "Invalid run_view_type {other:?}"
            )));
        }
    };
    let asked = int_field(&v, "max_results")?.unwrap_or(DEFAULT_RUNS_PAGE as i64);
    let limit = usize::try_from(asked).unwrap_or(0);
    if limit == 0 || limit > MAX_RUNS_PAGE {
        return Err(MlflowError::invalid(format!(
            "Invalid value {asked} for parameter 'max_results' supplied: it must be between 1 and {MAX_RUNS_PAGE}"
        )));
    }
    let offset = page_offset(str_field(&v, "page_token"))?;
    let mut runs: Vec<Run> = state
        .store
        .runs(experiment_ids)
        .await?
        .into_iter()
        .filter(|r| keep(r) && filter.matches(r))
        .collect();
    sort(&mut runs, &orders, newest_run_first);
    ok(offset_page(&runs, offset, limit, "runs", run_json))
}

/// `runs/delete`, `runs/restore`, `runs/set-tag`, `runs/delete-tag`, `runs/log-metric`,
/// `runs/log-parameter`, `runs/log-batch`, `runs/log-inputs`: a change, answered `{}`.
async fn changed(state: AppState, headers: HeaderMap, body: Body, what: Change) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let run_id = run_id_of(&v)?;
    let c = match what {
        Change::Delete => RunChange::Delete,
        Change::Restore => RunChange::Restore,
        Change::SetTag => log(Vec::new(), Vec::new(), vec![key_value(&v)?]),
        Change::DeleteTag => RunChange::DeleteTag(required(&v, "key")?.to_string()),
        Change::Metric => log(vec![metric_of(&v)?], Vec::new(), Vec::new()),
        Change::Param => log(Vec::new(), vec![key_value(&v)?], Vec::new()),
        Change::Batch => {
            let metrics = v
                .get("metrics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(metric_of)
                .collect::<Result<Vec<_>, _>>()?;
            let params = key_values(&v, "params")?;
            let tags = key_values(&v, "tags")?;
            if metrics.len() > MAX_BATCH_METRICS
                || params.len() > MAX_BATCH_PARAMS
                || tags.len() > MAX_BATCH_TAGS
            {
                return Err(MlflowError::invalid(format!(
                    "A batch logs at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params \
                     and {MAX_BATCH_TAGS} tags"
                )));
            }
            log(metrics, params, tags)
        }
        Change::Inputs => {
            let list = |k: &str| -> Vec<Value> {
                v.get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            RunChange::LogInputs {
                datasets: list("datasets"),
                models: list("models"),
            }
        }
    };
    change(&state, run_id, c).await?;
    ok(json!({}))
}

#[derive(Clone, Copy)]
enum Change {
    Delete,
    Restore,
    SetTag,
    DeleteTag,
    Metric,
    Param,
    Batch,
    Inputs,
}

macro_rules! change_handler {
    ($($name:ident => $what:expr),* $(,)?) => {$(
        pub(super) async fn $name(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
            changed(state, headers, body, $what).await
        }
    )*};
}

change_handler! {
    delete_run => Change::Delete,
    restore_run => Change::Restore,
    set_run_tag => Change::SetTag,
    delete_run_tag => Change::DeleteTag,
    log_metric => Change::Metric,
    log_param => Change::Param,
    log_batch => Change::Batch,
    log_inputs => Change::Inputs,
}

pub(super) async fn metric_history(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let v = json!({
        "run_id": query_one(&q, "run_id").or_else(|| query_one(&q, "run_uuid")),
        "metric_key": query_one(&q, "metric_key"),
        "max_results": query_one(&q, "max_results"),
        "page_token": query_one(&q, "page_token"),
    });
    let run_id = run_id_of(&v)?;
    let key = required(&v, "metric_key")?.to_string();
    if state.store.run(run_id.clone()).await?.is_none() {
        return Err(MlflowError::missing(format!(
            "Run with id={run_id} not found"
        )));
    }
    let limit = int_field(&v, "max_results")?
        .map_or(MAX_HISTORY_PAGE as i64, |n| n)
        .clamp(1, MAX_HISTORY_PAGE as i64) as usize;
    let offset = page_offset(str_field(&v, "page_token"))?;
    let all = state.store.metric_history(run_id, key).await?;
    ok(offset_page(&all, offset, limit, "metrics", metric_json))
}

/// `POST /api/2.0/mlflow/traces/link-to-run` `{run_id, trace_ids}`: files traces under a run
/// (what `mlflow.genai.evaluate` calls for the traces it scored), so `run_id` searches find
/// them. A trace without a source run gets this one; a trace of another run keeps it and is
/// marked linked to this one too (a trace may be evaluated by many runs).
pub(super) async fn link_traces_to_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let run_id = run_id_of(&v)?;
    if state.store.run(run_id.clone()).await?.is_none() {
        return Err(MlflowError::missing(format!(
            "Run with id={run_id} not found"
        )));
    }
    let ids = ids_of(
        v.get("trace_ids")
            .and_then(Value::as_array)
            .ok_or_else(|| MlflowError::invalid("trace_ids must be a list"))?
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string)),
    )?;
    let found = state.store.trace_summaries(ids.clone()).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| found.iter().all(|t| t.trace_id != **id))
    {
        return Err(MlflowError::missing(format!(
            "Trace with id={} not found",
            mlflow_id(missing)
        )));
    }
    for t in found {
        let key = match t.metadata.get(SOURCE_RUN).and_then(Value::as_str) {
            None => SOURCE_RUN.to_string(),
            Some(r) if r == run_id => continue,
            Some(_) => format!("{LINKED_RUN_PREFIX}{run_id}"),
        };
        if t.metadata.contains_key(&key) {
            continue;
        }
        // A linked run is marked "true", the value `run_id = '…'` searches match.
        let value = if key == SOURCE_RUN {
            run_id.clone()
        } else {
            "true".into()
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert(key, Value::String(value));
        state
            .store
            .upsert_trace_info(TraceInfoUpdate {
                trace_id: t.trace_id,
                project: t.project,
                start_ns: None,
                duration_ns: None,
                status: None,
                name: None,
                session_id: None,
                user_id: None,
                tags: serde_json::Map::new(),
                metadata,
                info: serde_json::Map::new(),
            })
            .await?;
    }
    ok(json!({}))
}
