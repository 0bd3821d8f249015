//! The JSON API (`/api/v1/...`), health, and the home page.

mod annotations;
mod doc;
pub(crate) mod runs;
pub(crate) mod types;

pub(crate) use annotations::{
    delete_assessment, delete_tag, get_assessment, patch_assessment, post_assessments, put_tag,
};

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use loupe_model::{SpanStatus, TraceId};
use loupe_store::{Cursor, GroupKey, SessionQuery, StatsQuery, TraceQuery, unpriced_models};

use crate::AppState;
use crate::error::ApiError;

/// Page size when the client gives none.
const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
const MAX_LIMIT: usize = 1000;

/// Whether the server is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The server is up", body = types::Health)))]
pub(crate) async fn healthz() -> Json<types::Health> {
    Json(types::Health { status: "ok" })
}

/// This document: the JSON API and OTLP/HTTP, in OpenAPI 3.1.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc::document(),
    )
        .into_response()
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

pub(crate) fn trace_query(params: &HashMap<String, String>) -> Result<TraceQuery, ApiError> {
    check_params::<types::TraceListParams>(params)?;
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

/// Refuses a parameter the endpoint's `P` does not list.
fn check_params<P: utoipa::IntoParams>(params: &HashMap<String, String>) -> Result<(), ApiError> {
    let known = types::known_params::<P>();
    match params.keys().find(|k| !known.contains(k)) {
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

/// Aggregates: count, error rate, duration percentiles, tokens and cost per group.
///
/// Grouping by model, provider or span type aggregates the spans of the matching traces; the
/// other keys aggregate traces.
#[utoipa::path(get, path = "/api/v1/stats", tag = "traces", params(types::StatsParams),
    responses((status = 200, description = "The groups", body = types::Stats), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<types::Stats>, ApiError> {
    check_params::<types::StatsParams>(&params)?;
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
    let model_at = query.group_by.iter().position(|k| *k == GroupKey::Model);
    let by_model = match model_at {
        Some(_) => None,
        None => Some(StatsQuery {
            group_by: vec![GroupKey::Model],
            ..query.clone()
        }),
    };
    let groups = state.store.stats(query).await?;
    // The unpriced models come from the groups when they are by model, else from a second
    // aggregation by model of the same traces.
    let unpriced = match by_model {
        None => unpriced_models(&groups, model_at.unwrap_or(0), &state.prices),
        Some(q) => unpriced_models(&state.store.stats(q).await?, 0, &state.prices),
    };
    Ok(Json(types::Stats {
        groups: groups
            .iter()
            .map(|g| types::StatsRow::new(&names, g))
            .collect(),
        group_by: names,
        bucket_ms: bucket,
        unpriced_models: unpriced.into_iter().map(Into::into).collect(),
    }))
}

/// Search spans, newest first.
///
/// Span fields in the query are about the span itself; trace fields about its trace.
#[utoipa::path(get, path = "/api/v1/spans", tag = "traces", params(types::SpanListParams),
    responses((status = 200, description = "A page", body = types::SpanPage), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody)))]
pub(crate) async fn list_spans(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<types::SpanPage>, ApiError> {
    check_params::<types::SpanListParams>(&params)?;
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
    Ok(Json(types::SpanPage {
        spans: spans
            .into_iter()
            .map(|(trace_id, s)| types::Span::new(s, Some(trace_id), &state.prices))
            .collect(),
        next_cursor: next.map(|(start_ns, seq)| Cursor { start_ns, seq }.encode()),
    }))
}

/// List traces, newest first.
#[utoipa::path(get, path = "/api/v1/traces", tag = "traces", params(types::TraceListParams),
    responses((status = 200, description = "A page", body = types::TracePage), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody)))]
pub(crate) async fn list_traces(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<types::TracePage>, ApiError> {
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
    Ok(Json(types::TracePage {
        traces: page.traces.iter().map(types::Trace::from).collect(),
        next_cursor: next,
    }))
}

/// A whole trace: its summary, every span and its assessments.
#[utoipa::path(get, path = "/api/v1/traces/{trace_id}", tag = "traces",
    params(("trace_id" = String, Path, description = "32 hex digits; MLflow's `tr-` prefix is accepted")),
    responses((status = 200, description = "The trace", body = types::TraceDetail), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub(crate) async fn get_trace(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<types::TraceDetail>, ApiError> {
    let hex = id.strip_prefix("tr-").unwrap_or(&id);
    let trace_id = TraceId::from_hex(hex)
        .map_err(|e| ApiError::bad_request(format!("invalid trace id {id:?}: {e}")))?;
    let detail = state
        .store
        .get_trace(trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trace {trace_id} not found")))?;
    let assessments = state.store.assessments(vec![trace_id]).await?;
    Ok(Json(types::TraceDetail {
        trace: types::Trace::from(&detail.summary),
        spans: detail
            .spans
            .into_iter()
            .map(|s| types::Span::new(s, None, &state.prices))
            .collect(),
        assessments,
    }))
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

/// List sessions (conversations), most recently active first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(types::SessionListParams),
    responses((status = 200, description = "A page", body = types::SessionPage), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody)))]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<types::SessionPage>, ApiError> {
    check_params::<types::SessionListParams>(&params)?;
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
    Ok(Json(types::SessionPage {
        sessions: page.sessions.iter().map(types::Session::from).collect(),
        next_cursor: next,
    }))
}

/// Most traces returned with one session.
const MAX_SESSION_TRACES: usize = 5_000;

/// A session: the conversation's traces in order, with totals.
#[utoipa::path(get, path = "/api/v1/sessions/{session_id}", tag = "sessions",
    params(("session_id" = String, Path, description = "The session id")),
    responses((status = 200, description = "The session", body = types::SessionDetail), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub(crate) async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<types::SessionDetail>, ApiError> {
    let (summary, traces) = state
        .store
        .get_session(id.clone(), MAX_SESSION_TRACES)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id:?} not found")))?;
    Ok(Json(types::SessionDetail {
        session: types::Session::from(&summary),
        traces: traces.iter().map(types::Trace::from).collect(),
    }))
}
