//! `/sessions` and `/sessions/{id}`: conversations, and one conversation's traces in order,
//! each shown as the turn it was (what came in, what went out).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use loupe_model::normalize;
use loupe_store::{SessionQuery, SpanBodies};
use maud::{Markup, html};
use serde_json::Value;

use super::{fmt_cost, fmt_ms, fmt_time, layout, page_response, status_badge};
use crate::AppState;

/// Traces of one session shown at most.
const MAX_TURNS: usize = 200;
/// Characters of a turn's input or output shown.
const TURN_CAP: usize = 4_000;

fn error(status: StatusCode, message: &str) -> Response {
    page_response(
        status,
        layout("Sessions", html! { p.error role="alert" { (message) } }),
    )
}

pub(crate) async fn session_list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let page = state
        .store
        .list_sessions(SessionQuery {
            project: params.get("project").filter(|p| !p.is_empty()).cloned(),
            limit: 100,
            cursor: None,
        })
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message),
    };
    let body = html! {
        h1 { "Sessions" }
        @if page.sessions.is_empty() { p.empty { "No sessions yet: traces join one through session.id (or MLflow's mlflow.trace.session)." } }
        table.traces {
            thead { tr { th { "Last active (UTC)" } th { "Session" } th { "User" } th.num { "Traces" } th.num { "Errors" } th.num { "Tokens" } th.num { "Cost" } } }
            tbody {
                @for s in &page.sessions {
                    tr {
                        td.time { (fmt_time(s.last_start_ns)) }
                        td { a href={ "/sessions/" (urlencode(&s.session_id)) } { (s.session_id) } }
                        td { (s.user_id.clone().unwrap_or_default()) }
                        td.num { (s.trace_count) }
                        td.num { (s.error_count) }
                        td.num { (s.total_tokens) }
                        td.num { (fmt_cost(s.cost_usd)) }
                    }
                }
            }
        }
    };
    page_response(StatusCode::OK, layout("Sessions", body))
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn cut(s: &str) -> String {
    if s.chars().count() <= TURN_CAP {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(TURN_CAP).collect();
        out.push('…');
        out
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// What a turn said: the last user message and the reply when the root is a model call, else
/// the root's inputs and outputs.
fn turn(
    attributes: &serde_json::Map<String, Value>,
    events: &[loupe_model::SpanEvent],
) -> (Option<String>, Option<String>) {
    let view = normalize::view(attributes, events);
    let asked = view
        .input_messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.clone())
        .or_else(|| view.inputs.as_ref().map(text_of));
    let answered = view
        .output_messages
        .iter()
        .find_map(|m| m.content.clone())
        .or_else(|| view.outputs.as_ref().map(text_of));
    (asked, answered)
}

pub(crate) async fn session_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let (summary, traces) = match state.store.get_session(id.clone(), MAX_TURNS).await {
        Ok(Some(x)) => x,
        Ok(None) => return error(StatusCode::NOT_FOUND, &format!("session {id:?} not found")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message),
    };
    let mut turns: Vec<Markup> = Vec::with_capacity(traces.len());
    for t in &traces {
        let root = state
            .store
            .get_trace_with(t.trace_id, SpanBodies::Roots)
            .await
            .ok()
            .flatten()
            .and_then(|d| d.spans.into_iter().find(|s| s.parent_id.is_none()));
        let (asked, answered) = root
            .as_ref()
            .map(|r| turn(&r.body.attributes, &r.body.events))
            .unwrap_or((None, None));
        let hex = t.trace_id.to_hex();
        turns.push(html! {
            article.turn data-trace-id=(hex) {
                header {
                    a href={ "/traces/" (hex) } { @if t.name.is_empty() { "(unnamed)" } @else { (t.name) } }
                    " " (status_badge(t.status.as_str()))
                    span.meta { " " (fmt_time(t.start_ns)) " · " (fmt_ms(t.duration_ns() as f64 / 1e6)) " · " (t.total_tokens) " tokens · " (fmt_cost(t.cost_usd)) }
                }
                @if let Some(a) = asked { div."msg role-user" { div.role { "in" } pre.content { (cut(&a)) } } }
                @if let Some(b) = answered { div."msg role-assistant" { div.role { "out" } pre.content { (cut(&b)) } } }
            }
        });
    }
    let body = html! {
        h1 { "Session " span.mono { (summary.session_id) } }
        dl.facts {
            dt { "Project" } dd { (summary.project) }
            @if let Some(u) = &summary.user_id { dt { "User" } dd { (u) } }
            dt { "Traces" } dd { (summary.trace_count) @if summary.error_count > 0 { " (" (summary.error_count) " failed)" } }
            dt { "Tokens" } dd { (summary.total_tokens) }
            dt { "Cost" } dd { (fmt_cost(summary.cost_usd)) }
        }
        section.chat.session { @for t in turns { (t) } }
        @if traces.len() >= MAX_TURNS { p.note { "Showing the first " (MAX_TURNS) " traces." } }
    };
    page_response(
        StatusCode::OK,
        layout(&format!("Session {}", summary.session_id), body),
    )
}
