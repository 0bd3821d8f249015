//! Registered scorers (`/api/3.0/mlflow/scorers/*`): what `scorer.register()`,
//! `list_scorers`, `get_scorer`, `delete_scorer` and `.start()` / `.update()` / `.stop()` call.
//! Loupe keeps them, versions and online configurations included; it does not run them (its own
//! evaluators are another issue), and says so where it shows them ([`NOT_RUN`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use loupe_store::scorers::{OnlineConfig, ScorerVersion};
use serde_json::{Value, json};

use super::experiments::experiment_by_id_str;
use super::{MlflowError, Reply, json_body, ok, query_one, query_pairs, required, str_field};
use crate::AppState;
use crate::util::{now_ms, random_hex};

/// Why a registered scorer's online configuration does nothing yet, shown beside it.
pub(crate) const NOT_RUN: &str = "stored, not run on this server: MLflow scorers are Python \
     code or judge prompts the client runs, and Loupe's own online evaluators are not built yet";

/// The experiment id as MLflow's proto has it (an int32).
fn experiment_number(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

fn version_json(s: &ScorerVersion) -> Value {
    json!({
        "experiment_id": experiment_number(&s.experiment_id),
        "scorer_name": s.name,
        "scorer_version": s.version,
        "serialized_scorer": s.serialized,
        "creation_time": s.creation_time,
        "scorer_id": s.scorer_id,
    })
}

fn config_json(c: &OnlineConfig) -> Value {
    let mut out = json!({
        "online_scoring_config_id": c.config_id,
        "scorer_id": c.scorer_id,
        "sample_rate": c.sample_rate,
        "experiment_id": c.experiment_id,
    });
    if let Some(f) = &c.filter_string {
        out["filter_string"] = json!(f);
    }
    out
}

/// Request fields from the query string, then the JSON body (DELETE may send either).
async fn fields(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<Value, MlflowError> {
    let mut v = json_body(state, headers, body).await?;
    for (k, x) in query_pairs(uri) {
        if v.get(&k).is_none() {
            v[k] = json!(x);
        }
    }
    Ok(v)
}

fn experiment_of(v: &Value) -> Result<String, MlflowError> {
    match v.get("experiment_id") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(MlflowError::invalid(
            "missing value for required parameter 'experiment_id'",
        )),
    }
}

fn version_of(v: &Value) -> Result<Option<i64>, MlflowError> {
    match v.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| MlflowError::invalid(format!("'version' must be an integer, got {x}"))),
    }
}

/// The judge model a serialized scorer names, where MLflow's serialization keeps it.
pub(crate) fn judge_model(serialized: &str) -> Option<String> {
    let v: Value = serde_json::from_str(serialized).ok()?;
    let model = |key: &str| {
        v.get(key)
            .and_then(|d| d.get("model"))
            .and_then(Value::as_str)
    };
    model("instructions_judge_pydantic_data")
        .or_else(|| model("builtin_scorer_pydantic_data"))
        .or_else(|| {
            v.pointer(
                "/memory_augmented_judge_data/base_judge/instructions_judge_pydantic_data/model",
            )
            .and_then(Value::as_str)
        })
        .or_else(|| model("third_party_scorer_data"))
        .map(str::to_string)
}

/// The latest version of each name.
pub(crate) fn latest(all: Vec<ScorerVersion>) -> Vec<ScorerVersion> {
    let mut out: Vec<ScorerVersion> = Vec::new();
    for s in all {
        match out.last_mut() {
            Some(last) if last.name == s.name => *last = s,
            _ => out.push(s),
        }
    }
    out
}

pub(super) async fn register_scorer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let experiment = experiment_of(&v)?;
    experiment_by_id_str(&state, &experiment).await?;
    let name = required(&v, "name")?.to_string();
    let serialized = required(&v, "serialized_scorer")?.to_string();
    let s = state
        .store
        .register_scorer(
            experiment,
            name,
            serialized,
            format!("s-{}", random_hex()),
            now_ms(),
        )
        .await?;
    ok(json!({
        "version": s.version,
        "scorer_id": s.scorer_id,
        // A string here, where the Scorer message has an int32.
        "experiment_id": s.experiment_id,
        "name": s.name,
        "serialized_scorer": s.serialized,
        "creation_time": s.creation_time,
    }))
}

pub(super) async fn list_scorers(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let experiment = query_one(&q, "experiment_id").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'experiment_id'")
    })?;
    let all = state.store.scorers(experiment).await?;
    ok(json!({"scorers": latest(all).iter().map(version_json).collect::<Vec<_>>()}))
}

pub(super) async fn scorer_versions(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let v = json!({"experiment_id": query_one(&q, "experiment_id"), "name": query_one(&q, "name")});
    let name = required(&v, "name")?;
    let all = state.store.scorers(experiment_of(&v)?).await?;
    ok(
        json!({"scorers": all.iter().filter(|s| s.name == name).map(version_json).collect::<Vec<_>>()}),
    )
}

pub(super) async fn get_scorer(State(state): State<AppState>, uri: Uri) -> Reply {
    let q = query_pairs(&uri);
    let v = json!({
        "experiment_id": query_one(&q, "experiment_id"),
        "name": query_one(&q, "name"),
        "version": query_one(&q, "version"),
    });
    let name = required(&v, "name")?;
    let version = version_of(&v)?;
    let found = state
        .store
        .scorers(experiment_of(&v)?)
        .await?
        .into_iter()
        .rfind(|s| s.name == name && version.is_none_or(|n| s.version == n))
        .ok_or_else(|| MlflowError::missing(format!("Scorer with name '{name}' not found")))?;
    ok(json!({"scorer": version_json(&found)}))
}

pub(super) async fn delete_scorer(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Reply {
    let v = fields(&state, &headers, &uri, body).await?;
    let name = required(&v, "name")?.to_string();
    let n = state
        .store
        .delete_scorer(experiment_of(&v)?, name.clone(), version_of(&v)?)
        .await?;
    if n == 0 {
        return Err(MlflowError::missing(format!(
            "Scorer with name '{name}' not found"
        )));
    }
    ok(json!({}))
}

/// `PUT scorers/online-config` `{experiment_id, name, sample_rate, filter_string}`.
pub(super) async fn put_online_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let experiment = experiment_of(&v)?;
    let name = required(&v, "name")?;
    let rate = v
        .get("sample_rate")
        .and_then(Value::as_f64)
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| MlflowError::invalid("sample_rate must be a number from 0 to 1"))?;
    let filter_string = str_field(&v, "filter_string")
        .filter(|f| !f.trim().is_empty())
        .map(str::to_string);
    if let Some(f) = &filter_string {
        loupe_query::parse(f, now_ms())
            .map_err(|e| MlflowError::invalid(format!("Invalid filter string {f:?}: {e}")))?;
    }
    let scorer = latest(state.store.scorers(experiment.clone()).await?)
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| MlflowError::missing(format!("Scorer with name '{name}' not found")))?;
    if rate > 0.0 && !judge_model(&scorer.serialized).is_some_and(|m| m.starts_with("gateway:/")) {
        // MLflow's own rule (and message): online scoring takes judges on a gateway endpoint.
        return Err(MlflowError::invalid(format!(
            "Scorer '{name}' does not use a gateway model. Automatic evaluation is only \
             supported for scorers that use gateway models."
        )));
    }
    let existing = state
        .store
        .online_configs(vec![scorer.scorer_id.clone()])
        .await?;
    let config = OnlineConfig {
        config_id: existing
            .first()
            .map_or_else(|| format!("oc-{}", random_hex()), |c| c.config_id.clone()),
        scorer_id: scorer.scorer_id,
        experiment_id: experiment,
        sample_rate: rate,
        filter_string,
    };
    state.store.put_online_config(config.clone()).await?;
    ok(json!({"config": config_json(&config)}))
}

/// `GET scorers/online-configs?scorer_ids=…`.
pub(super) async fn online_configs(State(state): State<AppState>, uri: Uri) -> Reply {
    let ids: Vec<String> = query_pairs(&uri)
        .into_iter()
        .filter(|(k, _)| k == "scorer_ids")
        .map(|(_, v)| v)
        .collect();
    let configs = state.store.online_configs(ids).await?;
    ok(json!({"configs": configs.iter().map(config_json).collect::<Vec<_>>()}))
}
