//! The JSON API (`/api/v1/...`), health, and the home page.

mod annotations;

pub(crate) use annotations::{
    delete_assessment, delete_tag, get_assessment, patch_assessment, post_assessments, put_tag,
};

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use loupe_model::{SpanStatus, TraceId, TraceSummary, normalize};
use loupe_store::{
    Cursor, GroupKey, SessionQuery, SessionSummary, StatsQuery, StoredSpan, TraceQuery,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Page size when the client gives none.
const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
const MAX_LIMIT: usize = 1000;

const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/v1/openapi.json`
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Anything else: a JSON 404 (MLflow's `ENDPOINT_NOT_FOUND` under MLflow's prefixes, which
/// the MLflow client's fallbacks key on).
pub(crate) async fn not_found(method: axum::http::Method, uri: Uri) -> Response {
    if crate::mlflow::is_mlflow_path(uri.path()) {
        return crate::mlflow::MlflowError::no_endpoint(method.as_str(), uri.path())
            .into_response();
    }
    ApiError::not_found(format!("no route for {}", uri.path())).into_response()
}

fn ns_to_ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// The JSON form of a trace, shared by the list and the detail.
pub(crate) fn trace_json(t: &TraceSummary) -> Value {
    json!({
        "trace_id": t.trace_id,
        "name": t.name,
        "status": t.status.as_str(),
        "start_time_ms": ns_to_ms(t.start_ns),
        "end_time_ms": ns_to_ms(t.end_ns),
        "duration_ms": ns_to_ms(t.duration_ns()),
        "span_count": t.span_count,
        "error_count": t.error_count,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "total_tokens": t.total_tokens,
        "cost_usd": t.cost_usd,
        "session_id": t.session_id,
        "user_id": t.user_id,
        "project": t.project,
        "tags": t.tags,
        "metadata": t.metadata,
    })
}

fn span_json(s: StoredSpan) -> Value {
    let view = normalize::view(&s.body.attributes, &s.body.events);
    json!({
        "span_id": s.span_id,
        "parent_id": s.parent_id,
        "name": s.name,
        "span_type": s.span_type,
        "kind": s.body.kind,
        "start_time_ns": s.start_ns,
        "end_time_ns": s.end_ns,
        "duration_ms": (s.end_ns.saturating_sub(s.start_ns)) as f64 / 1e6,
        "status": s.status.as_str(),
        "status_message": s.status_message,
        "model": s.model,
        "provider": s.provider,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "total_tokens": s.total_tokens,
        "cache_read_tokens": s.cache_read_tokens,
        "cache_write_tokens": s.cache_write_tokens,
        "reasoning_tokens": s.reasoning_tokens,
        "cost_usd": s.cost_usd,
        "input_messages": view.input_messages,
        "output_messages": view.output_messages,
        "tool_calls": view.tool_calls,
        "request_params": view.request_params,
        "documents": view.documents,
        "exceptions": view.exceptions,
        "inputs": view.inputs,
        "outputs": view.outputs,
        "attributes": s.body.attributes,
        "events": s.body.events.iter().map(|e| json!({
            "name": e.name,
            "time_ns": e.time_ns,
            "attributes": e.attributes,
        })).collect::<Vec<_>>(),
        "links": s.body.links,
        "resource": s.body.resource,
        "scope": s.body.scope.as_ref().map(|(n, v)| json!({"name": n, "version": v})),
    })
}

fn parse_status(s: &str) -> Result<SpanStatus, ApiError> {
    match s.to_ascii_uppercase().as_str() {
        "OK" => Ok(SpanStatus::Ok),
        "ERROR" => Ok(SpanStatus::Error),
        "UNSET" => Ok(SpanStatus::Unset),
        _ => Err(ApiError::bad_request(format!(
            "invalid status {s:?}: expected OK, ERROR or UNSET"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid {key} {v:?}: expected a non-negative integer"
                ))
            })
        })
        .transpose()
}

/// Query parameters of `GET /api/v1/traces` that the handler understands.
const LIST_PARAMS: &[&str] = &[
    "q",
    "order_by",
    "limit",
    "cursor",
    "project",
    "status",
    "min_duration_ms",
    "name",
    "start_time_from_ms",
    "start_time_to_ms",
];

pub(crate) fn trace_query(params: &HashMap<String, String>) -> Result<TraceQuery, ApiError> {
    if let Some(unknown) = params.keys().find(|k| !LIST_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {unknown:?}; known: {}",
            LIST_PARAMS.join(", ")
        )));
    }
    let limit = parse_num::<usize>(params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let order = match params.get("order_by").filter(|o| !o.trim().is_empty()) {
        Some(o) => {
            loupe_store::OrderKey::parse_clauses(o.split(',')).map_err(ApiError::bad_request)?
        }
        None => Vec::new(),
    };
    let offset = match (order.is_empty(), params.get("cursor")) {
        (false, Some(c)) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid cursor {c:?}: pass back a next_cursor value unchanged"
                ))
            })?,
        _ => 0,
    };
    let mut query = TraceQuery {
        limit,
        cursor: if order.is_empty() {
            params
                .get("cursor")
                .map(|c| Cursor::decode(c))
                .transpose()?
        } else {
            None
        },
        offset,
        order,
        filter: filter_param(params)?,
    }
    .started(
        parse_num(params, "start_time_from_ms")?,
        parse_num(params, "start_time_to_ms")?,
    );
    if let Some(p) = params.get("project") {
        query = query.project(p);
    }
    if let Some(s) = params.get("status") {
        query = query.status(parse_status(s)?);
    }
    if let Some(ms) = parse_num(params, "min_duration_ms")? {
        query = query.min_duration_ms(ms);
    }
    if let Some(n) = params.get("name") {
        query = query.name(n);
    }
    Ok(query)
}

/// The `q` parameter, parsed.
fn filter_param(params: &HashMap<String, String>) -> Result<Option<loupe_query::Expr>, ApiError> {
    let Some(q) = params.get("q").filter(|q| !q.trim().is_empty()) else {
        return Ok(None);
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    loupe_query::parse(q, now_ms)
        .map(Some)
        .map_err(|e| ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "INVALID_QUERY",
            message: format!("invalid query: {e}"),
        })
}

fn check_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "unknown query parameter {unknown:?}; known: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn bucket_ms(text: &str) -> Result<i64, ApiError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid bucket {text:?}: use e.g. 5m, 1h, 1d"))
    })?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid bucket {text:?}: use e.g. 5m, 1h, 1d"
            )));
        }
    };
    if n <= 0 || n.saturating_mul(unit_ms) < 1_000 {
        return Err(ApiError::bad_request(format!(
            "invalid bucket {text:?}: at least 1s"
        )));
    }
    Ok(n.saturating_mul(unit_ms))
}

/// `GET /api/v1/stats?q=&group_by=model,time&bucket=1h`: count, error rate, duration
/// percentiles, tokens and cost per group. Grouping by model, provider or span type aggregates
/// the spans of the matching traces; the other keys aggregate traces.
pub(crate) async fn stats(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_params(
        &params,
        &[
            "q",
            "group_by",
            "bucket",
            "start_time_from_ms",
            "start_time_to_ms",
        ],
    )?;
    let mut group_by = Vec::new();
    let mut names = Vec::new();
    for raw in params
        .get("group_by")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        let k = raw.trim();
        if k.is_empty() || k == "none" {
            continue;
        }
        let key = match k {
            "model" => GroupKey::Model,
            "provider" => GroupKey::Provider,
            "span_type" | "type" => GroupKey::SpanType,
            "project" => GroupKey::Project,
            "time" => GroupKey::Time,
            _ => match k.split_once('.') {
                Some(("tags", t)) if !t.is_empty() && !t.contains('"') => {
                    GroupKey::Tag(t.to_string())
                }
                Some(("metadata", t)) if !t.is_empty() && !t.contains('"') => {
                    GroupKey::Metadata(t.to_string())
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid group_by {k:?}: use model, provider, span_type, project, time, tags.<key> or metadata.<key>"
                    )));
                }
            },
        };
        names.push(k.to_string());
        group_by.push(key);
    }
    if group_by.len() > 3 {
        return Err(ApiError::bad_request("group_by takes at most 3 keys"));
    }
    let bucket = bucket_ms(params.get("bucket").map(String::as_str).unwrap_or("1h"))?;
    let query = StatsQuery {
        filter: filter_param(&params)?,
        group_by,
        bucket_ms: bucket,
        start_from_ms: parse_num(&params, "start_time_from_ms")?,
        start_to_ms: parse_num(&params, "start_time_to_ms")?,
    };
    let groups = state.store.stats(query).await?;
    Ok(Json(json!({
        "group_by": names,
        "bucket_ms": bucket,
        "groups": groups.iter().map(|g| {
            let key: serde_json::Map<String, Value> = names.iter().cloned().zip(g.key.iter().cloned()).collect();
            json!({
                "key": key,
                "count": g.count,
                "error_count": g.error_count,
                "error_rate": if g.count == 0 { 0.0 } else { g.error_count as f64 / g.count as f64 },
                "p50_ms": g.p50_ms,
                "p95_ms": g.p95_ms,
                "p99_ms": g.p99_ms,
                "input_tokens": g.input_tokens,
                "output_tokens": g.output_tokens,
                "total_tokens": g.total_tokens,
                "cost_usd": g.cost_usd,
            })
        }).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/spans?q=`: spans matching the query (span fields about the span itself),
/// newest first.
pub(crate) async fn list_spans(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    check_params(&params, &["q", "limit", "cursor"])?;
    let limit = parse_num::<usize>(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let before = params
        .get("cursor")
        .map(|c| Cursor::decode(c).map(|c| (c.start_ns, c.seq)))
        .transpose()?;
    let (spans, next) = state
        .store
        .list_spans(filter_param(&params)?, limit, before)
        .await?;
    Ok(Json(json!({
        "spans": spans.into_iter().map(|(trace_id, s)| {
            let mut v = span_json(s);
            v["trace_id"] = json!(trace_id);
            v
        }).collect::<Vec<_>>(),
        "next_cursor": next.map(|(start_ns, seq)| Cursor { start_ns, seq }.encode()),
    })))
}

/// `GET /api/v1/traces`
pub(crate) async fn list_traces(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = trace_query(&params)?;
    let (ordered, offset) = (!query.order.is_empty(), query.offset);
    let page = state.store.list_traces(query).await?;
    // A custom order pages by position; the default order by keyset.
    let next = page.next_cursor.map(|c| {
        if ordered {
            format!("o{}", offset + page.consumed)
        } else {
            c.encode()
        }
    });
    Ok(Json(json!({
        "traces": page.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /api/v1/traces/{trace_id}`; also accepts MLflow's `tr-` prefix.
pub(crate) async fn get_trace(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hex = id.strip_prefix("tr-").unwrap_or(&id);
    let trace_id = TraceId::from_hex(hex)
        .map_err(|e| ApiError::bad_request(format!("invalid trace id {id:?}: {e}")))?;
    let detail = state
        .store
        .get_trace(trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trace {trace_id} not found")))?;
    let assessments = state.store.assessments(vec![trace_id]).await?;
    Ok(Json(json!({
        "trace": trace_json(&detail.summary),
        "spans": detail.spans.into_iter().map(span_json).collect::<Vec<_>>(),
        "assessments": assessments,
    })))
}

fn session_json(s: &SessionSummary) -> Value {
    json!({
        "session_id": s.session_id,
        "project": s.project,
        "user_id": s.user_id,
        "trace_count": s.trace_count,
        "error_count": s.error_count,
        "first_start_time_ms": ns_to_ms(s.first_start_ns),
        "last_start_time_ms": ns_to_ms(s.last_start_ns),
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "total_tokens": s.total_tokens,
        "cost_usd": s.cost_usd,
    })
}

fn session_cursor(c: &str) -> Result<(i64, String), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid cursor {c:?}: pass back a next_cursor value unchanged"
        ))
    };
    let (t, id) = c.split_once('.').ok_or_else(bad)?;
    let t = i64::from_str_radix(t, 16).map_err(|_| bad())?;
    let bytes = (0..id.len())
        .step_by(2)
        .map(|i| {
            id.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    Ok((t, String::from_utf8(bytes).map_err(|_| bad())?))
}

/// `GET /api/v1/sessions`
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KNOWN: &[&str] = &["limit", "cursor", "project"];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {unknown:?}; known: {}",
            KNOWN.join(", ")
        )));
    }
    let limit = parse_num::<usize>(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let query = SessionQuery {
        project: params.get("project").cloned(),
        limit,
        cursor: params
            .get("cursor")
            .map(|c| session_cursor(c))
            .transpose()?,
    };
    let page = state.store.list_sessions(query).await?;
    let next = page.next_cursor.map(|(t, id)| {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{t:x}.{hex}")
    });
    Ok(Json(json!({
        "sessions": page.sessions.iter().map(session_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// Most traces returned with one session.
const MAX_SESSION_TRACES: usize = 5_000;

/// `GET /api/v1/sessions/{session_id}`: the conversation's traces in order, with totals.
pub(crate) async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (summary, traces) = state
        .store
        .get_session(id.clone(), MAX_SESSION_TRACES)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id:?} not found")))?;
    Ok(Json(json!({
        "session": session_json(&summary),
        "traces": traces.iter().map(trace_json).collect::<Vec<_>>(),
    })))
}
