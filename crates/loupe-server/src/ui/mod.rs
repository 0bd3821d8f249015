//! The web UI: server-rendered HTML (maud escapes everything it interpolates), one stylesheet
//! and one small script served from the binary, and a strict Content-Security-Policy (no inline
//! script or style, nothing from elsewhere). Every page works without the script; the script
//! adds the live tail, span selection without a reload and tree keyboard navigation.

mod dashboard;
mod runs;
mod sessions;
mod trace;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loupe_model::TraceSummary;
use loupe_store::{Cursor, TraceQuery};
use maud::{DOCTYPE, Markup, html};

use crate::AppState;
use crate::error::Failure;

/// What a page may load: itself only. No inline script or style anywhere.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<circle cx=\"6.5\" cy=\"6.5\" r=\"4.5\" fill=\"none\" stroke=\"#2f5fd0\" stroke-width=\"2\"/>\
<path d=\"M10 10l4.5 4.5\" stroke=\"#2f5fd0\" stroke-width=\"2.2\"/></svg>";

/// Traces per page of the list.
const PAGE: usize = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(trace_list))
        .route("/traces/{trace_id}", get(trace::trace_page))
        .route(
            "/traces/{trace_id}/spans/{span_id}",
            get(trace::span_fragment),
        )
        .route("/traces/{trace_id}/feedback", post(trace::feedback))
        .route("/sessions", get(sessions::session_list))
        .route("/sessions/{session_id}", get(sessions::session_page))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/runs", get(runs::run_list))
        .route("/runs/compare", get(runs::compare))
        .route("/runs/{run_id}", get(runs::run_page))
        .route(
            "/static/app.css",
            get(|| async { asset("text/css", APP_CSS) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// An HTML response with the security headers every page carries.
/// The UI's table of failures: a page with the status the failure calls for and the message a
/// client may see.
pub(crate) fn failure_page(failure: Failure) -> Response {
    let status = match &failure {
        Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
        Failure::NotFound(_) => StatusCode::NOT_FOUND,
        Failure::AlreadyExists(_) => StatusCode::CONFLICT,
        Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = failure.message();
    page_response(
        status,
        layout(
            "Error",
            html! { p.error role="alert" { (message) } p { a href="/" { "← Traces" } } },
        ),
    )
}

pub(crate) fn page_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// The page frame: header, navigation, the stylesheet and the script.
pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Loupe" }
                link rel="stylesheet" href="/static/app.css";
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
                script src="/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Loupe" }
                    nav { a href="/" { "Traces" } a href="/sessions" { "Sessions" } a href="/runs" { "Runs" } a href="/dashboard" { "Dashboard" } }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms >= 60_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else if ms >= 1_000.0 {
        format!("{:.2} s", ms / 1_000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

pub(crate) fn fmt_cost(usd: f64) -> String {
    if usd == 0.0 {
        "–".into()
    } else if usd < 0.000_01 {
        "< $0.00001".into()
    } else if usd < 0.01 {
        format!("${usd:.5}")
    } else {
        format!("${usd:.3}")
    }
}

/// UTC `YYYY-MM-DD HH:MM:SS` of ns since the epoch.
pub(crate) fn fmt_time(ns: u64) -> String {
    let ms = i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX);
    let s = crate::util::rfc3339(ms);
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

pub(crate) fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge status-" (status.to_ascii_lowercase()) } { (status) } }
}

pub(crate) fn tag_chips(tags: &serde_json::Map<String, serde_json::Value>) -> Markup {
    html! {
        @for (k, v) in tags {
            span.chip { (k) "=" (v.as_str().map_or_else(|| v.to_string(), str::to_string)) }
        }
    }
}

/// The page of the trace list asked for; a query that does not parse is the error shown.
fn list_query(
    q: &str,
    project: Option<&str>,
    cursor: Option<Cursor>,
) -> Result<TraceQuery, String> {
    let filter = if q.is_empty() {
        None
    } else {
        Some(loupe_query::parse(q, crate::util::now_ms()).map_err(|e| e.to_string())?)
    };
    let query = TraceQuery {
        filter,
        cursor,
        limit: PAGE,
        ..TraceQuery::default()
    };
    Ok(match project {
        Some(p) => query.project(p),
        None => query,
    })
}

/// The link to the page after `cursor`, keeping the search and the project.
fn next_page_href(q: &str, project: Option<&str>, cursor: Cursor) -> String {
    let mut qs = form_urlencoded::Serializer::new(String::new());
    if !q.is_empty() {
        qs.append_pair("q", q);
    }
    if let Some(p) = project {
        qs.append_pair("project", p);
    }
    qs.append_pair("cursor", &cursor.encode());
    format!("/?{}", qs.finish())
}

/// `/`: the trace list with search, project picker, pagination and a live tail.
async fn trace_list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = params
        .get("q")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let project = params.get("project").filter(|p| !p.is_empty()).cloned();
    let mut error: Option<String> = None;
    let cursor = match params.get("cursor").map(|c| Cursor::decode(c)).transpose() {
        Ok(c) => c,
        Err(e) => {
            error = Some(e.message);
            None
        }
    };
    let page = match list_query(&q, project.as_deref(), cursor) {
        // A bad cursor: the error alone, no page.
        Ok(_) if error.is_some() => Ok(loupe_store::TracePage {
            traces: Vec::new(),
            next_cursor: None,
            consumed: 0,
        }),
        Ok(query) => state
            .store
            .list_traces(query)
            .await
            .map_err(|e| Failure::from(e).message()),
        Err(e) => Err(e),
    };
    let (traces, next) = match page {
        Ok(p) => (p.traces, p.next_cursor),
        Err(e) => {
            error = Some(e);
            (Vec::new(), None)
        }
    };
    let models = state
        .store
        .trace_models(traces.iter().map(|t| t.trace_id).collect())
        .await
        .unwrap_or_default();
    let projects: Vec<String> = state
        .store
        .list_experiments()
        .await
        .map(|es| es.iter().map(loupe_store::Experiment::project).collect())
        .unwrap_or_default();
    let next_href = next.map(|c| next_page_href(&q, project.as_deref(), c));
    let body = html! {
        form.search method="get" action="/" {
            select name="project" aria-label="Project" {
                option value="" { "All projects" }
                @for p in &projects {
                    option value=(p) selected[project.as_deref() == Some(p.as_str())] { (p) }
                }
            }
            input type="search" name="q" value=(q) placeholder="status = 'ERROR' AND duration_ms > 5s"
                aria-label="Query" autocomplete="off" spellcheck="false";
            button type="submit" { "Search" }
            label.live { input type="checkbox" id="live" checked[cursor.is_none()]; " Live" }
        }
        @if let Some(e) = &error {
            p.error role="alert" id="query-error" { "Invalid query: " (e) }
        }
        table.traces id="traces" data-project=(project.clone().unwrap_or_default()) data-q=(q) {
            thead { tr {
                th { "Time (UTC)" } th { "Name" } th { "Status" } th.num { "Duration" }
                th.num { "Tokens" } th.num { "Cost" } th { "Model" } th { "Tags" }
            } }
            tbody {
                @for t in &traces { (trace_row(t, models.get(&t.trace_id))) }
            }
        }
        @if traces.is_empty() && error.is_none() {
            p.empty { "No traces yet. Send OTLP to /v1/traces or point an MLflow client here." }
        }
        @if let Some(href) = next_href {
            p.pager { a href=(href) rel="next" { "Older traces →" } }
        }
    };
    page_response(StatusCode::OK, layout("Traces", body))
}

fn trace_row(t: &TraceSummary, models: Option<&Vec<String>>) -> Markup {
    let id = t.trace_id.to_hex();
    html! {
        tr data-trace-id=(id) {
            td.time { (fmt_time(t.start_ns)) }
            td.name { a href={ "/traces/" (id) } { @if t.name.is_empty() { "(unnamed)" } @else { (t.name) } } }
            td { (status_badge(t.status.as_str())) }
            td.num { (fmt_ms(t.duration_ns() as f64 / 1e6)) }
            td.num { (t.total_tokens) }
            td.num { (fmt_cost(t.cost_usd)) }
            td.model { @if let Some(m) = models { (m.join(", ")) } }
            td.tags { (tag_chips(&t.tags)) }
        }
    }
}
