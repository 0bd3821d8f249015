//! Traces: StartTraceV3, trace info and spans, search, tags and deletes.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use loupe_model::Assessment;
use loupe_model::{SpanStatus, TraceId, TraceSummary};
use loupe_store::{Experiment, OrderKey, TraceInfoUpdate, TraceQuery, TraceSelection};
use serde_json::{Map, Value, json};

use super::assessments::{assessments_of_trace_info, store_assessments};
use super::convert::{self, mlflow_id};
use super::experiments::{experiment_by_id_str, experiment_for_project};
use super::{
    IMMUTABLE_TAGS, MAX_BATCH, MAX_SEARCH_RESULTS, MlflowError, Reply, json_body, ok, query_one,
    query_pairs, required, str_field, trace_id_of,
};
use crate::AppState;
use crate::util::now_ms;

/// TraceInfoV3 of many traces: their experiments and assessments looked up once.
pub(super) async fn infos(
    state: &AppState,
    traces: &[TraceSummary],
) -> Result<Vec<Value>, MlflowError> {
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

pub(super) async fn summary(state: &AppState, id: TraceId) -> Result<TraceSummary, MlflowError> {
    state
        .store
        .trace_summaries(vec![id])
        .await?
        .pop()
        .ok_or_else(|| MlflowError::missing(format!("Trace with ID {} not found.", mlflow_id(&id))))
}

/// A string map from a JSON object of strings (other values as JSON text).
pub(super) fn string_map(v: Option<&Value>) -> Map<String, Value> {
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

/// A StartTraceV3 body, read whole before anything is stored: the experiment it names, the
/// trace info to store (its project set once the experiment is looked up) and the assessments
/// logged while the trace was open, so a bad assessment leaves nothing half stored.
pub(crate) struct StartTrace {
    pub(crate) experiment_id: String,
    pub(crate) update: TraceInfoUpdate,
    pub(crate) assessments: Vec<Assessment>,
}

/// Reads a StartTraceV3 body (`{"trace": {"trace_info": …}}`).
pub(crate) fn read_start_trace(v: &Value) -> Result<StartTrace, MlflowError> {
    let info = v.pointer("/trace/trace_info").ok_or_else(|| {
        MlflowError::invalid("missing value for required parameter 'trace.trace_info'")
    })?;
    let trace_id = trace_id_of(required(info, "trace_id")?)?;
    let experiment_id = info
        .pointer("/trace_location/mlflow_experiment/experiment_id")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
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
    let assessments = assessments_of_trace_info(info, trace_id)?;
    let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
    let update = TraceInfoUpdate {
        trace_id,
        project: String::new(),
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
    Ok(StartTrace {
        experiment_id,
        update,
        assessments,
    })
}

/// `POST /api/3.0/mlflow/traces` (StartTraceV3): sent once per trace, after its root ended,
/// before or after its spans arrive over OTLP.
pub(super) async fn start_trace(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let StartTrace {
        experiment_id,
        mut update,
        assessments,
    } = read_start_trace(&v)?;
    let experiment = experiment_by_id_str(&state, &experiment_id).await?;
    if experiment.lifecycle_stage != "active" {
        return Err(MlflowError::invalid(format!(
            "experiment {experiment_id} is deleted"
        )));
    }
    update.project = experiment.project();
    let stored = state.store.upsert_trace_info(update).await?;
    store_assessments(&state, assessments).await?;
    let info = infos(&state, std::slice::from_ref(&stored)).await?;
    ok(json!({"trace": {"trace_info": info[0]}}))
}

pub(super) async fn get_trace_info(State(state): State<AppState>, Path(id): Path<String>) -> Reply {
    let t = summary(&state, trace_id_of(&id)?).await?;
    let info = infos(&state, std::slice::from_ref(&t)).await?;
    ok(json!({"trace": {"trace_info": info[0]}}))
}

/// Spans of one trace as OTel proto JSON, the root first, then by start.
pub(super) async fn otel_spans(state: &AppState, id: TraceId) -> Result<Vec<Value>, MlflowError> {
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
pub(super) fn announced_spans(t: &TraceSummary) -> Option<u64> {
    let stats = t.metadata.get("mlflow.trace.sizeStats")?.as_str()?;
    serde_json::from_str::<Value>(stats)
        .ok()?
        .get("num_spans")?
        .as_u64()
}

/// `GET /api/3.0/mlflow/traces/get?trace_id=&allow_partial=`: with `allow_partial=False`,
/// waits up to 3 s for spans the client announced but that have not arrived yet.
pub(super) async fn get_trace(State(state): State<AppState>, uri: Uri) -> Reply {
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
pub(super) async fn batch_get(State(state): State<AppState>, uri: Uri) -> Reply {
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

pub(super) fn ids_of(ids: impl Iterator<Item = String>) -> Result<Vec<TraceId>, MlflowError> {
    let ids: Vec<TraceId> = ids.map(|s| trace_id_of(&s)).collect::<Result<_, _>>()?;
    if ids.len() > MAX_BATCH {
        return Err(MlflowError::invalid(format!(
            "at most {MAX_BATCH} trace ids per request, got {}",
            ids.len()
        )));
    }
    Ok(ids)
}

pub(super) async fn batch_get_infos(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
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
pub(super) fn searched_experiments(v: &Value) -> Vec<String> {
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
pub(super) fn order_of(v: &Value) -> Result<Vec<(OrderKey, loupe_store::Direction)>, MlflowError> {
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

/// A SearchTracesV3 body, read: the experiments searched and the query (its projects set once
/// the experiments are looked up).
pub(crate) struct SearchTraces {
    pub(crate) experiments: Vec<String>,
    pub(crate) query: TraceQuery,
}

/// Reads a SearchTracesV3 body: limit, filter, order and page token.
pub(crate) fn read_search_traces(v: &Value) -> Result<SearchTraces, MlflowError> {
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
    let filter = match str_field(v, "filter").filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(
            loupe_query::parse(f, now_ms())
                .map_err(|e| MlflowError::invalid(format!("Invalid filter string {f:?}: {e}")))?,
        ),
        None => None,
    };
    let mut query = TraceQuery {
        filter,
        limit,
        order: order_of(v)?,
        ..TraceQuery::default()
    };
    if let Some(token) = str_field(v, "page_token").filter(|t| !t.is_empty()) {
        let bad = || MlflowError::invalid(format!("invalid page_token {token:?}"));
        if let Some(offset) = token.strip_prefix("o:") {
            query.offset = offset.parse().map_err(|_| bad())?;
        } else if let Some(c) = token.strip_prefix("k:") {
            query.cursor = Some(loupe_store::Cursor::decode(c).map_err(|_| bad())?);
        } else {
            return Err(bad());
        }
    }
    Ok(SearchTraces {
        experiments: searched_experiments(v),
        query,
    })
}

/// `POST /api/3.0/mlflow/traces/search`.
pub(super) async fn search_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let v = json_body(&state, &headers, body).await?;
    let SearchTraces { experiments, query } = read_search_traces(&v)?;
    let mut projects = Vec::new();
    for id in experiments {
        if let Ok(e) = experiment_by_id_str(&state, &id).await {
            projects.push(e.project());
        }
    }
    if projects.is_empty() {
        return ok(json!({"traces": []}));
    }
    let keyset = query.order.is_empty();
    let offset = query.offset;
    let page = state.store.list_traces(query.projects(&projects)).await?;
    let n = page.consumed;
    let infos = infos(&state, &page.traces).await?;
    let mut out = json!({"traces": infos});
    if let Some(c) = page.next_cursor {
        out["next_page_token"] = Value::String(if keyset {
            format!("k:{}", c.encode())
        } else {
            format!("o:{}", offset + n)
        });
    }
    ok(out)
}

/// The trace, the body and the tag key of a tag request; server-set tags are refused.
pub(super) async fn tag_request(
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

pub(super) async fn set_tag(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (id, v, key) = tag_request(&state, &id, &headers, body).await?;
    let value = match v.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    loupe_model::check_tag(&key, &value).map_err(MlflowError::invalid)?;
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

pub(super) async fn delete_tag(
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
pub(super) async fn delete_traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
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
