//! Runs in Loupe's own API: the MLflow runs of a project (evaluations and experiment tracking)
//! with their params and metrics, and one run with the traces filed under it and its scores
//! aggregated by name.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use loupe_model::{Assessment, DEFAULT_PROJECT};
use loupe_store::runs::{ACTIVE, Run};
use loupe_store::{ExperimentKey, TraceQuery};
use serde::Serialize;
use utoipa::ToSchema;

use super::types::Trace;
use super::{ApiError, DEFAULT_LIMIT, MAX_LIMIT, check_params, parse_num};
use crate::AppState;
use crate::mlflow::filter::{Filter, Order, newest_run_first, run_key, sort};

/// Most traces returned with one run.
const MAX_RUN_TRACES: usize = 1_000;

/// A run: what it logged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunSummary {
    /// 32 hex digits.
    pub run_id: String,
    /// Display name.
    pub name: String,
    /// The project (MLflow experiment) it belongs to.
    pub project: String,
    /// `RUNNING`, `FINISHED`, `FAILED`, `KILLED` or `SCHEDULED`.
    pub status: String,
    /// Start, ms since the epoch.
    pub start_time_ms: i64,
    /// End, ms since the epoch, once ended.
    pub end_time_ms: Option<i64>,
    /// Who ran it.
    pub user_id: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Params.
    pub params: BTreeMap<String, String>,
    /// The latest value of each metric (null for NaN).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Names of the datasets it took as inputs.
    pub datasets: Vec<String>,
}

impl RunSummary {
    fn new(r: &Run, project: &str) -> Self {
        Self {
            run_id: r.run_id.clone(),
            name: r.run_name.clone(),
            project: project.to_string(),
            status: r.status.clone(),
            start_time_ms: r.start_time,
            end_time_ms: r.end_time,
            user_id: r.user_id.clone(),
            lifecycle_stage: r.lifecycle_stage.clone(),
            params: r.params.clone(),
            metrics: r
                .metrics
                .iter()
                .map(|(k, m)| (k.clone(), m.value.is_finite().then_some(m.value)))
                .collect(),
            tags: r.tags.clone(),
            datasets: r
                .dataset_inputs
                .iter()
                .filter_map(|d| d.pointer("/dataset/name").and_then(|n| n.as_str()))
                .map(str::to_string)
                .collect(),
        }
    }
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunPage {
    /// Newest first, or in the order asked for.
    pub runs: Vec<RunSummary>,
    /// Pass back as `offset` for the next page; none on the last.
    pub next_offset: Option<usize>,
}

/// One name's assessments over a run's traces.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScoreSummary {
    /// The assessment's name (`correctness`, `exact_match` …).
    pub name: String,
    /// `feedback` or `expectation`.
    pub kind: String,
    /// Valid assessments of this name.
    pub count: u64,
    /// Of which failed to compute (a scorer error).
    pub errors: u64,
    /// Mean of the numeric and boolean values (true = 1), if any.
    pub mean: Option<f64>,
    /// How often each text value occurs (`yes`, `no` …).
    pub values: BTreeMap<String, u64>,
}

/// A run with its traces and scores.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    /// The run.
    pub run: RunSummary,
    /// Traces filed under it (its source run, or linked to it), newest first.
    pub traces: Vec<Trace>,
    /// Its traces' assessments, by name: those the run logged, and any made since.
    pub scores: Vec<ScoreSummary>,
}

#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunListParams {
    /// The project (MLflow experiment name; `default` is experiment 0).
    project: Option<String>,
    /// MLflow's run filter: `metrics.accuracy > 0.9 AND params.lr = '0.01' AND tags.team = 'x'`.
    filter: Option<String>,
    /// Comma-separated MLflow orderings: `metrics.accuracy DESC,attributes.start_time`.
    order_by: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    limit: Option<usize>,
    /// `next_offset` of the previous page.
    offset: Option<usize>,
    /// Include deleted runs.
    deleted: Option<bool>,
}

async fn experiment_id(state: &AppState, project: &str) -> Result<Option<String>, ApiError> {
    let key = if project == DEFAULT_PROJECT {
        ExperimentKey::Id(0)
    } else {
        ExperimentKey::Name(project.to_string())
    };
    Ok(state.store.experiment(key).await?.map(|e| e.id.to_string()))
}

async fn project_of(state: &AppState, experiment_id: &str) -> String {
    match experiment_id.parse::<i64>() {
        Ok(n) => match state.store.experiment(ExperimentKey::Id(n)).await {
            Ok(Some(e)) => e.project(),
            _ => experiment_id.to_string(),
        },
        Err(_) => experiment_id.to_string(),
    }
}

/// List a project's runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunListParams),
    responses((status = 200, description = "A page", body = RunPage), (status = 400, description = "A bad parameter, named in the message", body = crate::error::ErrorBody)))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<RunPage>, ApiError> {
    check_params::<RunListParams>(&params)?;
    let limit = parse_num::<usize>(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let offset = parse_num::<usize>(&params, "offset")?.unwrap_or(0);
    let deleted = match params.get("deleted").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid deleted {other:?}: expected true or false"
            )));
        }
    };
    let filter = Filter::parse(params.get("filter").map_or("", String::as_str), run_key)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let orders = params
        .get("order_by")
        .into_iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.trim().is_empty())
        .map(|o| Order::parse(o, run_key).map_err(ApiError::bad_request))
        .collect::<Result<Vec<_>, _>>()?;
    let project = params
        .get("project")
        .cloned()
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    let Some(experiment) = experiment_id(&state, &project).await? else {
        return Ok(Json(RunPage {
            runs: Vec::new(),
            next_offset: None,
        }));
    };
    let mut runs: Vec<Run> = state
        .store
        .runs(vec![experiment])
        .await?
        .into_iter()
        .filter(|r| (deleted || r.lifecycle_stage == ACTIVE) && filter.matches(r))
        .collect();
    sort(&mut runs, &orders, newest_run_first);
    let next_offset = crate::util::next_offset(offset, limit, runs.len());
    Ok(Json(RunPage {
        runs: runs
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| RunSummary::new(r, &project))
            .collect(),
        next_offset,
    }))
}

/// A run, its traces and its scores.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = String, Path, description = "The run id")),
    responses((status = 200, description = "The run", body = RunDetail), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let (run, traces, assessments) = run_with_scores(&state, &run_id).await?;
    let project = project_of(&state, &run.experiment_id).await;
    Ok(Json(RunDetail {
        run: RunSummary::new(&run, &project),
        traces: traces.iter().map(Trace::from).collect(),
        scores: score_summaries(&assessments),
    }))
}

/// A run, the traces filed under it, and their assessments (for the API and the UI).
pub(crate) async fn run_with_scores(
    state: &AppState,
    run_id: &str,
) -> Result<(Run, Vec<loupe_model::TraceSummary>, Vec<Assessment>), ApiError> {
    let run = state
        .store
        .run(run_id.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id:?} not found")))?;
    let quoted = run_id.replace('\'', "''");
    let filter = loupe_query::parse(&format!("run_id = '{quoted}'"), loupe_model::now_ms())
        .map_err(|e| ApiError::bad_request(format!("invalid run id: {e}")))?;
    let page = state
        .store
        .list_traces(TraceQuery {
            filter: Some(filter),
            limit: MAX_RUN_TRACES,
            ..TraceQuery::default()
        })
        .await?;
    let ids = page.traces.iter().map(|t| t.trace_id).collect();
    let assessments = state.store.assessments(ids).await?;
    Ok((run, page.traces, assessments))
}

/// Valid assessments by name: counts, errors, the mean of numbers and booleans, text values.
pub(crate) fn score_summaries(assessments: &[Assessment]) -> Vec<ScoreSummary> {
    #[derive(Default)]
    struct Tally {
        count: u64,
        errors: u64,
        sum: f64,
        numbers: u64,
        values: BTreeMap<String, u64>,
    }
    let mut by: BTreeMap<(String, &'static str), Tally> = BTreeMap::new();
    for a in assessments.iter().filter(|a| a.valid) {
        let t = by.entry((a.name.clone(), a.kind.as_str())).or_default();
        t.count += 1;
        match &a.value {
            None if a.error.is_some() => t.errors += 1,
            None => {}
            // Numbers and booleans as the query language compares them (true = 1).
            Some(v) => match v.as_f64() {
                Some(x) => {
                    t.sum += x;
                    t.numbers += 1;
                }
                None => *t.values.entry(v.as_text()).or_default() += 1,
            },
        }
    }
    by.into_iter()
        .map(|((name, kind), t)| ScoreSummary {
            name,
            kind: kind.to_string(),
            count: t.count,
            errors: t.errors,
            mean: (t.numbers > 0).then(|| t.sum / t.numbers as f64),
            values: t.values,
        })
        .collect()
}
