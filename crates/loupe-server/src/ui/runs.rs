//! `/runs`, `/runs/{id}` and `/runs/compare`: MLflow runs (evaluations and experiment
//! tracking), one run with its scores and traces, and two or more runs side by side — their
//! metrics, and per input each run's output and scores, with what differs marked.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use loupe_model::{Assessment, DEFAULT_PROJECT, TraceSummary};
use loupe_store::ExperimentKey;
use loupe_store::runs::{ACTIVE, Run};
use maud::{Markup, html};

use super::{fmt_cost, fmt_ms, fmt_time, layout, page_response, status_badge};
use crate::AppState;
use crate::api::runs::{run_with_scores, score_summaries};
use crate::mlflow::filter::{newest_run_first, sort};
use crate::mlflow::scorers::{NOT_RUN, judge_model, latest};

/// Runs listed at most.
const MAX_RUNS: usize = 200;
/// Metric columns in the list at most.
const MAX_METRIC_COLUMNS: usize = 8;
/// Runs compared at most.
const MAX_COMPARED: usize = 6;
/// Characters of an input or output shown in a comparison cell.
const CELL_CAP: usize = 600;

fn error(status: StatusCode, message: &str) -> Response {
    page_response(
        status,
        layout("Runs", html! { p.error role="alert" { (message) } }),
    )
}

fn metric(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= CELL_CAP {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(CELL_CAP).collect();
        out.push('…');
        out
    }
}

fn query_values(raw: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub(crate) async fn run_list(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let project = query_values(raw.as_deref(), "project")
        .pop()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    let key = if project == DEFAULT_PROJECT {
        ExperimentKey::Id(0)
    } else {
        ExperimentKey::Name(project.clone())
    };
    let experiment = match state.store.experiment(key).await {
        Ok(e) => e,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message),
    };
    let (mut runs, scorers) = match experiment {
        Some(e) => match registered(&state, e.id.to_string()).await {
            Ok(x) => x,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.message),
        },
        None => (Vec::new(), Markup::default()),
    };
    runs.retain(|r| r.lifecycle_stage == ACTIVE);
    sort(&mut runs, &[], newest_run_first);
    runs.truncate(MAX_RUNS);
    let metric_names: Vec<String> = runs
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(MAX_METRIC_COLUMNS)
        .collect();
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "Project " input type="text" name="project" value=(project); }
            button type="submit" { "Show" }
        }
        @if runs.is_empty() {
            p.empty { "No runs in " (project) " yet: mlflow.start_run() and mlflow.genai.evaluate() create them." }
        } @else {
            form method="get" action="/runs/compare" {
                table.traces {
                    thead { tr {
                        th { "Compare" } th { "Run" } th { "Status" } th { "Started (UTC)" }
                        @for m in &metric_names { th.num { (m) } }
                    } }
                    tbody {
                        @for r in &runs {
                            tr {
                                td { input type="checkbox" name="ids" value=(r.run_id) aria-label={ "compare " (r.run_name) }; }
                                td { a href={ "/runs/" (r.run_id) } { (r.run_name) } }
                                td { (r.status) }
                                td.time { (fmt_time(u64::try_from(r.start_time).unwrap_or(0).saturating_mul(1_000_000))) }
                                @for m in &metric_names {
                                    td.num { (r.metrics.get(m).map(|x| metric(x.value)).unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
                button type="submit" { "Compare selected" }
            }
        }
        (scorers)
    };
    page_response(StatusCode::OK, layout("Runs", body))
}

/// An experiment's runs, and its registered scorers as a table (empty when it has none).
async fn registered(
    state: &AppState,
    experiment_id: String,
) -> Result<(Vec<Run>, Markup), loupe_store::StoreError> {
    let runs = state.store.runs(vec![experiment_id.clone()]).await?;
    let scorers = latest(state.store.scorers(experiment_id).await?);
    let ids = scorers.iter().map(|s| s.scorer_id.clone()).collect();
    let configs = state.store.online_configs(ids).await?;
    let table = html! {
        @if !scorers.is_empty() {
            h2 { "Registered scorers" }
            table.traces {
                thead { tr { th { "Scorer" } th.num { "Version" } th { "Judge model" } th { "Online" } th { "On this server" } } }
                tbody { @for s in &scorers {
                    @let config = configs.iter().find(|c| c.scorer_id == s.scorer_id);
                    tr {
                        td { (s.name) }
                        td.num { (s.version) }
                        td { (judge_model(&s.serialized).unwrap_or_else(|| "code".into())) }
                        td { @match config {
                            Some(c) if c.sample_rate > 0.0 => {
                                (format!("{:.0}% of traces", c.sample_rate * 100.0))
                                @if let Some(f) = &c.filter_string { " where " code { (f) } }
                            }
                            _ => "off",
                        } }
                        td { (NOT_RUN) }
                    }
                } }
            }
        }
    };
    Ok((runs, table))
}

fn kv_table(title: &str, rows: &BTreeMap<String, String>) -> Markup {
    html! {
        @if !rows.is_empty() {
            h2 { (title) }
            table.traces { tbody { @for (k, v) in rows { tr { th { (k) } td { (v) } } } } }
        }
    }
}

pub(crate) async fn run_page(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let (run, traces, assessments) = match run_with_scores(&state, &id).await {
        Ok(x) => x,
        Err(e) => return error(e.status, &e.message),
    };
    let metrics: BTreeMap<String, String> = run
        .metrics
        .iter()
        .map(|(k, m)| (k.clone(), metric(m.value)))
        .collect();
    let body = html! {
        h1 { "Run " (run.run_name) }
        p { "Status " (run.status) " · started " (fmt_time(u64::try_from(run.start_time).unwrap_or(0).saturating_mul(1_000_000))) " UTC · id " code { (run.run_id) } }
        (kv_table("Metrics", &metrics))
        (kv_table("Params", &run.params))
        (scores_table(&assessments))
        h2 { "Traces (" (traces.len()) ")" }
        (trace_table(&traces))
        (kv_table("Tags", &run.tags))
    };
    page_response(
        StatusCode::OK,
        layout(&format!("Run {}", run.run_name), body),
    )
}

fn scores_table(assessments: &[Assessment]) -> Markup {
    let scores = score_summaries(assessments);
    html! {
        @if !scores.is_empty() {
            h2 { "Scores" }
            table.traces {
                thead { tr { th { "Name" } th { "Kind" } th.num { "Count" } th.num { "Errors" } th.num { "Mean" } th { "Values" } } }
                tbody { @for s in &scores { tr {
                    td { (s.name) } td { (s.kind) } td.num { (s.count) } td.num { (s.errors) }
                    td.num { (s.mean.map(metric).unwrap_or_default()) }
                    td { @for (v, n) in &s.values { span.chip { (v) " × " (n) } " " } }
                } } }
            }
        }
    }
}

fn trace_table(traces: &[TraceSummary]) -> Markup {
    html! {
        table.traces {
            thead { tr { th { "Started (UTC)" } th { "Trace" } th { "Status" } th.num { "Duration" } th.num { "Cost" } } }
            tbody { @for t in traces { tr {
                td.time { (fmt_time(t.start_ns)) }
                td { a href={ "/traces/" (t.trace_id.to_string()) } { (t.name) } }
                td { (status_badge(t.status.as_str())) }
                td.num { (fmt_ms(t.duration_ns() as f64 / 1e6)) }
                td.num { (fmt_cost(t.cost_usd)) }
            } } }
        }
    }
}

/// What one run did with one input: its trace, output and scores.
struct Cell {
    trace_id: String,
    output: String,
    scores: BTreeMap<String, String>,
}

fn metadata_text(t: &TraceSummary, key: &str) -> String {
    match t.metadata.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Each run's cells by input (the trace's `mlflow.traceInputs`), feedback scores only.
fn cells(traces: &[TraceSummary], assessments: &[Assessment]) -> BTreeMap<String, Cell> {
    let mut out = BTreeMap::new();
    for t in traces {
        let scores = assessments
            .iter()
            .filter(|a| a.valid && a.trace_id == t.trace_id && a.kind.as_str() == "feedback")
            .map(|a| {
                let v = match (&a.value, &a.error) {
                    (Some(v), _) => v.as_text(),
                    (None, Some(e)) => format!("error: {}", e.code),
                    (None, None) => String::new(),
                };
                (a.name.clone(), v)
            })
            .collect();
        out.entry(metadata_text(t, "mlflow.traceInputs"))
            .or_insert(Cell {
                trace_id: t.trace_id.to_string(),
                output: metadata_text(t, "mlflow.traceOutputs"),
                scores,
            });
    }
    out
}

pub(crate) async fn compare(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let mut ids = query_values(raw.as_deref(), "ids");
    ids.dedup();
    if ids.len() < 2 || ids.len() > MAX_COMPARED {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("choose 2 to {MAX_COMPARED} runs to compare"),
        );
    }
    let mut runs: Vec<(Run, BTreeMap<String, Cell>)> = Vec::new();
    for id in &ids {
        match run_with_scores(&state, id).await {
            Ok((run, traces, assessments)) => {
                let c = cells(&traces, &assessments);
                runs.push((run, c));
            }
            Err(e) => return error(e.status, &e.message),
        }
    }
    let metric_names: BTreeSet<&String> = runs.iter().flat_map(|(r, _)| r.metrics.keys()).collect();
    let inputs: BTreeSet<&String> = runs.iter().flat_map(|(_, c)| c.keys()).collect();
    let score_names: BTreeSet<&String> = runs
        .iter()
        .flat_map(|(_, c)| c.values().flat_map(|cell| cell.scores.keys()))
        .collect();
    let differs = |values: &[String]| values.iter().collect::<BTreeSet<_>>().len() > 1;
    let body = html! {
        h1 { "Compare runs" }
        h2 { "Metrics" }
        table.traces.compare {
            thead { tr { th { "Metric" } @for (r, _) in &runs { th { a href={ "/runs/" (r.run_id) } { (r.run_name) } } } } }
            tbody { @for m in &metric_names {
                @let values: Vec<String> = runs.iter().map(|(r, _)| r.metrics.get(*m).map(|x| metric(x.value)).unwrap_or_default()).collect();
                tr.diff[differs(&values)] {
                    th { (m) }
                    @for v in &values { td.num { (v) } }
                }
            } }
        }
        h2 { "Per input" }
        @if inputs.is_empty() { p.empty { "These runs have no traces." } }
        table.traces.compare {
            thead { tr { th { "Input" } @for (r, _) in &runs { th { (r.run_name) } } } }
            tbody { @for input in &inputs {
                @let outputs: Vec<String> = runs.iter().map(|(_, c)| c.get(*input).map(|x| x.output.clone()).unwrap_or_default()).collect();
                tr {
                    th { code { (cut(input)) } }
                    @for (_, c) in &runs {
                        td.diff[differs(&outputs)] {
                            @if let Some(cell) = c.get(*input) {
                                div { a href={ "/traces/" (cell.trace_id) } { (cut(&cell.output)) } }
                                @for name in &score_names {
                                    @let all: Vec<String> = runs.iter().map(|(_, c2)| c2.get(*input).and_then(|x| x.scores.get(*name).cloned()).unwrap_or_default()).collect();
                                    @if let Some(v) = cell.scores.get(*name) {
                                        span.chip.diff[differs(&all)] { (name) ": " (v) } " "
                                    }
                                }
                            } @else { span.empty { "—" } }
                        }
                    }
                }
            } }
        }
    };
    page_response(StatusCode::OK, layout("Compare runs", body))
}
