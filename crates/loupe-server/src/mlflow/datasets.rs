//! Evaluation datasets (`/api/3.0/mlflow/datasets/*`): what `mlflow.genai.datasets`
//! (`create_dataset`, `get_dataset`, `search_datasets`, `delete_dataset`, `merge_records`,
//! `set_dataset_tags` …) and `mlflow.genai.evaluate(data=dataset)` call. Tags, schema, profile
//! and records travel as JSON text inside the JSON, as MLflow's protos define them.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use loupe_store::datasets::{DatasetChange, EvalDataset, MAX_UPSERT, RecordUpsert};
use serde_json::{Value, json};

use super::experiments::experiment_by_id_str;
use super::filter::{Filter, Order, dataset_key, sort};
use super::{
    MlflowError, Reply, json_body, offset_page, ok, page_offset, query_one, query_pairs, required,
    str_field,
};
use crate::AppState;
use crate::util::{now_ms, random_hex};

/// Largest page of records or datasets.
const MAX_PAGE: usize = 5_000;
/// Default page of a dataset search.
const DEFAULT_PAGE: usize = 1_000;

fn text_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

fn dataset_json(d: &EvalDataset) -> Value {
    let mut out = json!({
        "dataset_id": d.dataset_id,
        "name": d.name,
        "tags": text_json(&d.tags),
        "digest": d.digest,
        "created_time": d.created_time,
        "last_update_time": d.last_update_time,
        "experiment_ids": d.experiment_ids,
    });
    for (key, v) in [("schema", &d.schema), ("profile", &d.profile)] {
        if let Some(v) = v {
            out[key] = json!(text_json(v));
        }
    }
    for (key, v) in [
        ("created_by", &d.created_by),
        ("last_updated_by", &d.last_updated_by),
    ] {
        if let Some(v) = v {
            out[key] = json!(v);
        }
    }
    out
}

/// A map sent as JSON text (or, leniently, as an object) of string values; a null value is
/// `None` (a tag to remove).
fn string_map(v: &Value, key: &str) -> Result<BTreeMap<String, Option<String>>, MlflowError> {
    let parsed = match v.get(key) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| MlflowError::invalid(format!("'{key}' must be a JSON object: {e}")))?,
        Some(other) => other.clone(),
    };
    let Value::Object(m) = parsed else {
        return Err(MlflowError::invalid(format!(
            "'{key}' must be a JSON object"
        )));
    };
    Ok(m.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            (k, v)
        })
        .collect())
}

fn limit_of(v: Option<&Value>, default: usize) -> Result<usize, MlflowError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(x) => x
            .as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| MlflowError::invalid("max_results must be a positive integer"))?,
    };
    if n == 0 || n as usize > MAX_PAGE {
        return Err(MlflowError::invalid(format!(
            "max_results must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(n as usize)
}

async fn existing(state: &AppState, id: &str) -> Result<EvalDataset, MlflowError> {
    state
        .store
        .dataset(id.to_string())
        .await?
        .ok_or_else(|| MlflowError::missing(format!("Dataset '{id}' not found")))
}

fn experiment_ids(v: &Value) -> Vec<String> {
    v.get("experiment_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| {
            x.as_str()
                .map(str::to_string)
                .or_else(|| x.as_i64().map(|i| i.to_string()))
        })
        .collect()
}

async fn check_experiments(state: &AppState, ids: &[String]) -> Result<(), MlflowError> {
    for id in ids {
        experiment_by_id_str(state, id).await?;
    }
    Ok(())
}

pub(super) async fn create_dataset(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let name = required(&v, "name")?.to_string();
    let ids = experiment_ids(&v);
    check_experiments(&state, &ids).await?;
    let tags: BTreeMap<String, String> = string_map(&v, "tags")?
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let now = now_ms();
    let by = tags
        .get("mlflow.user")
        .cloned()
        .or_else(|| str_field(&v, "created_by").map(str::to_string));
    let mut d = EvalDataset {
        dataset_id: format!("d-{}", random_hex()),
        name,
        tags,
        created_time: now,
        created_by: by.clone(),
        last_updated_by: by,
        experiment_ids: ids,
        ..EvalDataset::default()
    };
    d.touched(now, &[], 0);
    d.schema = None;
    state.store.create_dataset(d.clone()).await?;
    ok(json!({"dataset": dataset_json(&d)}))
}

pub(super) async fn get_dataset(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    ok(json!({"dataset": dataset_json(&existing(&state, &id).await?)}))
}

pub(super) async fn delete_dataset(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    if !state.store.delete_dataset(id.clone()).await? {
        return Err(MlflowError::missing(format!("Dataset '{id}' not found")));
    }
    ok(json!({}))
}

/// `POST` (a JSON body) or `GET` (query parameters) `datasets/search`.
pub(super) async fn search_datasets(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Reply {
    let mut v = json_body(&state, &headers, body).await?;
    let q = query_pairs(&uri);
    for key in ["filter_string", "max_results", "page_token"] {
        if let Some(x) = query_one(&q, key) {
            v[key] = json!(x);
        }
    }
    let wanted: Vec<String> = experiment_ids(&v)
        .into_iter()
        .chain(
            q.iter()
                .filter(|(k, _)| k == "experiment_ids")
                .map(|(_, x)| x.clone()),
        )
        .collect();
    let filter = Filter::parse(str_field(&v, "filter_string").unwrap_or(""), dataset_key)
        .map_err(|e| MlflowError::invalid(format!("Invalid filter string: {e}")))?;
    let orders = v
        .get("order_by")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|o| Order::parse(o, dataset_key).map_err(MlflowError::invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = limit_of(v.get("max_results"), DEFAULT_PAGE)?;
    let offset = page_offset(str_field(&v, "page_token"))?;
    let mut found: Vec<EvalDataset> = state
        .store
        .datasets()
        .await?
        .into_iter()
        .filter(|d| wanted.is_empty() || d.experiment_ids.iter().any(|e| wanted.contains(e)))
        .filter(|d| filter.matches(d))
        .collect();
    // MLflow's default: the most recently created first.
    sort(&mut found, &orders, |a, b| {
        b.created_time
            .cmp(&a.created_time)
            .then_with(|| a.dataset_id.cmp(&b.dataset_id))
    });
    ok(offset_page(&found, offset, limit, "datasets", dataset_json))
}

pub(super) async fn set_dataset_tags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let tags = string_map(&v, "tags")?;
    state
        .store
        .change_dataset(id, DatasetChange::SetTags(tags), now_ms())
        .await?;
    ok(json!({}))
}

pub(super) async fn delete_dataset_tag(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> Reply {
    state
        .store
        .change_dataset(id, DatasetChange::DeleteTag(key), now_ms())
        .await?;
    ok(json!({}))
}

/// `POST datasets/{id}/records` upserts; `GET` pages; `DELETE` deletes by id.
pub(super) async fn upsert_records(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let records: Vec<Value> = match v.get("records") {
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| MlflowError::invalid(format!("'records' must be a JSON list: {e}")))?,
        Some(Value::Array(a)) => a.clone(),
        _ => {
            return Err(MlflowError::invalid(
                "missing value for required parameter 'records'",
            ));
        }
    };
    if records.len() > MAX_UPSERT {
        return Err(MlflowError::invalid(format!(
            "at most {MAX_UPSERT} records per request, got {}",
            records.len()
        )));
    }
    let upsert = RecordUpsert {
        dataset_id: id,
        fresh_ids: records
            .iter()
            .map(|_| format!("dr-{}", random_hex()))
            .collect(),
        records,
        now: now_ms(),
    };
    let (inserted, updated) = state.store.upsert_dataset_records(upsert).await?;
    ok(json!({"inserted_count": inserted, "updated_count": updated}))
}

pub(super) async fn get_records(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Reply {
    let q = query_pairs(&uri);
    existing(&state, &id).await?;
    let limit = limit_of(
        query_one(&q, "max_results").map(Value::String).as_ref(),
        MAX_PAGE,
    )?;
    let offset = page_offset(query_one(&q, "page_token").as_deref())?;
    let (records, total) = state.store.dataset_records(id, offset, limit).await?;
    let mut out = json!({"records": text_json(&records)});
    if (offset + records.len()) < total as usize && !records.is_empty() {
        out["next_page_token"] = json!((offset + records.len()).to_string());
    }
    ok(out)
}

pub(super) async fn delete_records(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let ids: Vec<String> = v
        .get("dataset_record_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| MlflowError::invalid("dataset_record_ids must be a list"))?
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    let n = state
        .store
        .delete_dataset_records(id, ids, now_ms())
        .await?;
    ok(json!({"deleted_count": n}))
}

pub(super) async fn experiment_ids_of(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Reply {
    ok(json!({"experiment_ids": existing(&state, &id).await?.experiment_ids}))
}

async fn change_experiments(
    state: AppState,
    id: String,
    headers: HeaderMap,
    body: Body,
    add: bool,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let ids = experiment_ids(&v);
    let change = if add {
        check_experiments(&state, &ids).await?;
        DatasetChange::AddExperiments(ids)
    } else {
        DatasetChange::RemoveExperiments(ids)
    };
    let d = state.store.change_dataset(id, change, now_ms()).await?;
    ok(json!({"dataset": dataset_json(&d)}))
}

pub(super) async fn add_experiments(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    change_experiments(state, id, headers, body, true).await
}

pub(super) async fn remove_experiments(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    change_experiments(state, id, headers, body, false).await
}
