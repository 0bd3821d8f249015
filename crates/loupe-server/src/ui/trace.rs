//! `/traces/{id}`: the span tree beside a timeline drawn to scale, the selected span's detail
//! (chat, inputs and outputs, attributes, events and exceptions), tokens and cost, tags,
//! assessments and a feedback form.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_model::normalize::{self, Message};
use loupe_model::pricing::PriceBook;
use loupe_model::{
    Assessment, AssessmentKind, AssessmentSource, AssessmentValue, SourceType, SpanId, TraceId,
};
use loupe_store::{SpanBodies, StoredSpan, TraceDetail};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    failure_page, fmt_cost, fmt_ms, fmt_time, layout, page_response, status_badge, tag_chips,
};
use crate::AppState;
use crate::util::new_assessment_id;

/// Tree rows rendered at most; the rest of a big trace is summarized per parent.
const MAX_ROWS: usize = 2_000;
/// A text field longer than this shows truncated, with "show all".
const FIELD_CAP: usize = 20_000;

fn error_page(status: StatusCode, message: &str) -> Response {
    page_response(
        status,
        layout(
            "Error",
            html! { p.error role="alert" { (message) } p { a href="/" { "← Traces" } } },
        ),
    )
}

fn parse_id(id: &str) -> Result<TraceId, Box<Response>> {
    TraceId::from_hex(id.strip_prefix("tr-").unwrap_or(id)).map_err(|e| {
        Box::new(error_page(
            StatusCode::BAD_REQUEST,
            &format!("invalid trace id {id:?}: {e}"),
        ))
    })
}

async fn load(
    state: &AppState,
    id: &str,
    bodies: SpanBodies,
) -> Result<(TraceDetail, Vec<Assessment>), Box<Response>> {
    let trace_id = parse_id(id)?;
    let detail = match state.store.get_trace_with(trace_id, bodies).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(Box::new(error_page(
                StatusCode::NOT_FOUND,
                &format!("trace {trace_id} not found"),
            )));
        }
        Err(e) => return Err(Box::new(failure_page(e.into()))),
    };
    let assessments = state
        .store
        .assessments(vec![trace_id])
        .await
        .map_err(|e| Box::new(failure_page(e.into())))?;
    Ok((detail, assessments))
}

/// Children of each span in start order, and the roots (no parent, or a parent never seen).
fn tree(spans: &[StoredSpan]) -> (Vec<usize>, HashMap<SpanId, Vec<usize>>) {
    let present: std::collections::HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let mut roots = Vec::new();
    let mut children: HashMap<SpanId, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        match s
            .parent_id
            .filter(|p| present.contains(p) && *p != s.span_id)
        {
            Some(p) => children.entry(p).or_default().push(i),
            None => roots.push(i),
        }
    }
    (roots, children)
}

pub(crate) async fn trace_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    // Only the selected span's body is read (the root's by default): a big trace's outline
    // costs no decompression.
    let wanted = params.get("span").and_then(|s| SpanId::from_hex(s).ok());
    let bodies = wanted.map_or(SpanBodies::Roots, SpanBodies::Only);
    let (detail, assessments) = match load(&state, &id, bodies).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let t = &detail.summary;
    let spans = &detail.spans;
    let (mut roots, children) = tree(spans);
    // `focus`: show one subtree (what a "+N more spans" link of a big trace opens).
    let focus = params
        .get("focus")
        .and_then(|f| SpanId::from_hex(f).ok())
        .and_then(|f| spans.iter().position(|s| s.span_id == f));
    if let Some(f) = focus {
        roots = vec![f];
    }
    let selected = wanted
        .and_then(|sid| spans.iter().position(|s| s.span_id == sid))
        .or_else(|| {
            roots
                .iter()
                .copied()
                .find(|i| spans[*i].parent_id.is_none())
        })
        .or_else(|| roots.first().copied());
    let full = params.get("full").is_some_and(|v| v == "1");
    let hex = t.trace_id.to_hex();
    let t0 = t.start_ns;
    let total = t.duration_ns().max(1);
    let mut rows = 0usize;
    let body = html! {
        section.summary {
            h1 { @if t.name.is_empty() { "(unnamed trace)" } @else { (t.name) } " " (status_badge(t.status.as_str())) }
            dl.facts {
                dt { "Trace" } dd.mono { (hex) }
                dt { "Project" } dd { (t.project) }
                dt { "Start (UTC)" } dd { (fmt_time(t.start_ns)) }
                dt { "Duration" } dd { (fmt_ms(total as f64 / 1e6)) }
                dt { "Spans" } dd { (t.span_count) @if t.error_count > 0 { " (" (t.error_count) " failed)" } }
                dt { "Tokens" } dd { (t.input_tokens) " in · " (t.output_tokens) " out · " (t.total_tokens) " total" }
                dt { "Cost" } dd { (fmt_cost(t.cost_usd)) }
                @if let Some(s) = &t.session_id {
                    dt { "Session" }
                    dd { a href={ "/sessions/" (form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")) } { (s) } }
                }
                @if let Some(u) = &t.user_id { dt { "User" } dd { (u) } }
            }
            @if !t.tags.is_empty() { p.tags { (tag_chips(&t.tags)) } }
        }
        div.trace-view {
            section.tree-pane aria-label="Spans" {
                ul.tree role="tree" id="span-tree" data-trace-id=(hex) {
                    @for r in &roots {
                        (node(spans, &children, *r, t0, total, &hex, selected, &mut rows))
                    }
                }
                @if rows >= MAX_ROWS {
                    p.note { "Showing the first " (MAX_ROWS) " spans of " (spans.len()) "; open a “more” row for the rest of its subtree." }
                }
                @if focus.is_some() {
                    p.note { a href={ "/traces/" (hex) } { "← the whole trace" } }
                }
            }
            section.detail-pane id="span-detail" aria-live="polite" {
                @if let Some(i) = selected { (span_detail(&spans[i], &hex, full, &state.prices)) }
            }
        }
        section.assessments id="assessments" {
            h2 { "Assessments" }
            @if assessments.is_empty() { p.empty { "None yet." } }
            ul {
                @for a in &assessments { (assessment_item(a)) }
            }
            form.feedback method="post" action={ "/traces/" (hex) "/feedback" } {
                fieldset {
                    legend { "Your feedback" }
                    label { input type="radio" name="value" value="up" required; " Thumbs up" }
                    label { input type="radio" name="value" value="down"; " Thumbs down" }
                    textarea name="comment" rows="2" maxlength="4000" placeholder="Comment (optional)" aria-label="Comment" {}
                    button type="submit" { "Send feedback" }
                }
            }
        }
    };
    page_response(StatusCode::OK, layout(&format!("Trace {}", t.name), body))
}

#[allow(clippy::too_many_arguments)]
fn node(
    spans: &[StoredSpan],
    children: &HashMap<SpanId, Vec<usize>>,
    i: usize,
    t0: u64,
    total: u64,
    trace: &str,
    selected: Option<usize>,
    rows: &mut usize,
) -> Markup {
    *rows += 1;
    let s = &spans[i];
    let kids = children.get(&s.span_id).map(Vec::as_slice).unwrap_or(&[]);
    let x = (s.start_ns.saturating_sub(t0)) as f64 / total as f64 * 1000.0;
    let w = ((s.end_ns.saturating_sub(s.start_ns)) as f64 / total as f64 * 1000.0).max(2.0);
    let id = s.span_id.to_hex();
    let status = s.status.as_str().to_ascii_lowercase();
    // Children first (depth first, within the row budget); what does not fit is counted.
    let mut rendered = Vec::with_capacity(kids.len());
    let mut hidden = 0usize;
    for k in kids {
        if *rows >= MAX_ROWS {
            hidden += 1;
        } else {
            rendered.push(node(spans, children, *k, t0, total, trace, selected, rows));
        }
    }
    html! {
        li role="treeitem" aria-expanded=[(!kids.is_empty()).then_some("true")]
            aria-selected=(if selected == Some(i) { "true" } else { "false" }) data-span-id=(id) {
            div.row {
                @if kids.is_empty() { span.twisty {} } @else { button.twisty type="button" tabindex="-1" aria-label="Collapse" { "▾" } }
                a.span-link href={ "/traces/" (trace) "?span=" (id) } tabindex="-1" {
                    span class={ "type type-" (s.columns.span_type.to_ascii_lowercase()) } { (s.columns.span_type) }
                    " " span.span-name { (s.name) }
                }
                span.dur { (fmt_ms((s.end_ns.saturating_sub(s.start_ns)) as f64 / 1e6)) }
                @if let Some(tk) = s.columns.total_tokens { span.tok { (tk) " tok" } }
                @if status == "error" { span.err { "error" } }
                svg.bar viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true" {
                    rect class={ "bar-" (status) } x=(format!("{x:.1}")) y="1" width=(format!("{w:.1}")) height="8" {}
                }
            }
            @if !kids.is_empty() {
                ul role="group" {
                    @for child in &rendered { (child) }
                    @if hidden > 0 {
                        li.more { a href={ "/traces/" (trace) "?focus=" (id) } { "+" (hidden) " more spans" } }
                    }
                }
            }
        }
    }
}

/// Text, cut at the cap unless `full`.
fn capped(text: &str, full: bool, href: &str) -> Markup {
    if full || text.len() <= FIELD_CAP {
        return html! { pre.json { (text) } };
    }
    let mut end = FIELD_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    html! {
        pre.json { (&text[..end]) "…" }
        p { a.show-all href=(href) { "Show all (" (text.len()) " bytes)" } }
    }
}

/// Indented JSON; a string holding a JSON object or array (how many clients send inputs and
/// outputs) is shown as that object.
fn pretty(v: &Value) -> String {
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => {
                serde_json::to_string_pretty(&inner).unwrap_or_else(|_| s.clone())
            }
            _ => s.clone(),
        },
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn message(m: &Message) -> Markup {
    html! {
        div class={ "msg role-" (m.role.to_ascii_lowercase()) } {
            div.role { (m.role) @if let Some(id) = &m.tool_call_id { " · result of " span.mono { (id) } } }
            @if let Some(c) = &m.content { pre.content { (c) } }
            @for tc in &m.tool_calls {
                div.tool-call {
                    span.label { "calls " } strong { (tc.name) }
                    @if let Some(id) = &tc.id { " " span.mono { (id) } }
                    pre.json { (pretty(&serde_json::from_str::<Value>(&tc.arguments).unwrap_or(Value::String(tc.arguments.clone())))) }
                }
            }
        }
    }
}

/// The detail of one span (also served alone, for the script to swap in).
fn span_detail(s: &StoredSpan, trace: &str, full: bool, prices: &PriceBook) -> Markup {
    let view = normalize::view(&s.body.attributes, &s.body.events);
    let id = s.span_id.to_hex();
    let all = format!("/traces/{trace}?span={id}&full=1");
    html! {
        article.span-detail data-span-id=(id) {
            h2 { (s.name) " " span class={ "type type-" (s.columns.span_type.to_ascii_lowercase()) } { (s.columns.span_type) } " " (status_badge(s.status.as_str())) }
            @if !s.status_message.is_empty() { p.error { (s.status_message) } }
            dl.facts {
                dt { "Span" } dd.mono { (id) }
                dt { "Duration" } dd { (fmt_ms((s.end_ns.saturating_sub(s.start_ns)) as f64 / 1e6)) }
                @if let Some(m) = &s.columns.model { dt { "Model" } dd { (m) @if let Some(p) = &s.columns.provider { " (" (p) ")" } } }
                @if s.columns.input_tokens.is_some() || s.columns.output_tokens.is_some() {
                    dt { "Tokens" } dd { (s.columns.input_tokens.unwrap_or(0)) " in · " (s.columns.output_tokens.unwrap_or(0)) " out" }
                }
                @if let Some(c) = s.columns.cost_usd { dt { "Cost" } dd { (fmt_cost(c)) } }
                @if let Some(why) = s.columns.missing_price(prices) { dt { "Cost" } dd.unpriced { (why) } }
            }
            @if !view.input_messages.is_empty() || !view.output_messages.is_empty() {
                section.chat aria-label="Chat" {
                    h3 { "Chat" }
                    @for m in &view.input_messages { (message(m)) }
                    @for m in &view.output_messages { (message(m)) }
                }
            }
            @if !view.exceptions.is_empty() {
                section.exceptions {
                    h3 { "Exceptions" }
                    @for e in &view.exceptions {
                        div.exception {
                            strong { (e.kind.clone().unwrap_or_default()) } ": " (e.message.clone().unwrap_or_default())
                            @if let Some(st) = &e.stacktrace { details { summary { "Stack trace" } pre { (st) } } }
                        }
                    }
                }
            }
            @if let Some(i) = &view.inputs { details.field open { summary { "Inputs" } (capped(&pretty(i), full, &all)) } }
            @if let Some(o) = &view.outputs { details.field open { summary { "Outputs" } (capped(&pretty(o), full, &all)) } }
            @if !view.request_params.is_empty() {
                details.field { summary { "Parameters" } (capped(&pretty(&Value::Object(view.request_params.clone())), full, &all)) }
            }
            details.field {
                summary { "Attributes (" (s.body.attributes.len()) ")" }
                table.attrs {
                    @for (k, v) in &s.body.attributes {
                        tr { th { (k) } td { (capped(&pretty(v), full, &all)) } }
                    }
                }
            }
            @if !s.body.events.is_empty() {
                details.field {
                    summary { "Events (" (s.body.events.len()) ")" }
                    @for e in &s.body.events {
                        div.event { strong { (e.name) } " " span.mono { (fmt_time(e.time_ns)) }
                            (capped(&pretty(&Value::Object(e.attributes.clone())), full, &all)) }
                    }
                }
            }
        }
    }
}

fn assessment_item(a: &Assessment) -> Markup {
    let value = a
        .value
        .as_ref()
        .map_or(Value::Null, AssessmentValue::to_json);
    html! {
        li.assessment data-assessment-id=(a.id) {
            strong { @if a.name.is_empty() { "(unnamed)" } @else { (a.name) } }
            " " span.kind { (a.kind.as_str()) }
            ": " span.value { (pretty(&value)) }
            @if let Some(e) = &a.error { " " span.error { "failed: " (e.message) } }
            @if let Some(r) = &a.rationale { " — " span.rationale { (r) } }
            @if !a.source.source_id.is_empty() { " " span.source { "by " (a.source.source_id) } }
            @if !a.valid { " " span.note { "(overridden)" } }
        }
    }
}

/// `GET /traces/{id}/spans/{span_id}`: one span's detail, without the page around it.
pub(crate) async fn span_fragment(
    State(state): State<AppState>,
    Path((id, span_id)): Path<(String, String)>,
) -> Response {
    let Ok(sid) = SpanId::from_hex(&span_id) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("invalid span id {span_id:?}"),
        );
    };
    let (detail, _) = match load(&state, &id, SpanBodies::Only(sid)).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(s) = detail.spans.iter().find(|s| s.span_id == sid) else {
        return error_page(StatusCode::NOT_FOUND, &format!("span {span_id} not found"));
    };
    page_response(
        StatusCode::OK,
        span_detail(s, &detail.summary.trace_id.to_hex(), false, &state.prices),
    )
}

/// `POST /traces/{id}/feedback`: thumbs up or down and a comment, stored as a human feedback
/// assessment (the same record `mlflow.log_feedback` writes), then back to the trace.
pub(crate) async fn feedback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    // A form posted from another site must not write here.
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return error_page(StatusCode::FORBIDDEN, "cross-site form posts are refused");
    }
    let trace_id = match parse_id(&id) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let value = match form.get("value").map(String::as_str) {
        Some("up") => true,
        Some("down") => false,
        _ => return error_page(StatusCode::BAD_REQUEST, "choose thumbs up or thumbs down"),
    };
    let comment = form
        .get("comment")
        .map(|c| c.trim().chars().take(4_000).collect::<String>())
        .filter(|c| !c.is_empty());
    let mut a = Assessment::new(
        new_assessment_id(),
        trace_id,
        "user_feedback".into(),
        AssessmentKind::Feedback,
        Some(AssessmentValue::Bool(value)),
        AssessmentSource {
            source_type: SourceType::Human,
            source_id: "loupe-ui".into(),
        },
    );
    a.rationale = comment;
    match state.store.put_assessments(vec![a]).await {
        Ok(()) => (
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                format!("/traces/{}#assessments", trace_id.to_hex()),
            )],
        )
            .into_response(),
        Err(e) => failure_page(e.into()),
    }
}
