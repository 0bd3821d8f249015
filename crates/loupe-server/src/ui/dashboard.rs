//! `/dashboard`: volume, error rate, p50/p95 latency, tokens and cost over time, per model,
//! as SVG charts drawn here (no chart library, no script).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use loupe_query::Expr;
use loupe_query::ast::{CmpOp, Literal, TraceField};
use loupe_store::{GroupKey, StatsGroup, StatsQuery};
use maud::{Markup, html};

use super::{failure_page, fmt_cost, fmt_ms, layout, page_response};
use crate::AppState;

/// A series: its name and one value per bucket (None: no data).
struct Series {
    name: String,
    points: Vec<Option<f64>>,
}

const COLORS: [&str; 8] = [
    "#2f5fd0", "#1f8a4c", "#c4362b", "#b58b00", "#7a4fd0", "#0f8a8a", "#d0602f", "#6b7280",
];

const W: f64 = 560.0;
const H: f64 = 180.0;
const PAD_L: f64 = 86.0;
const PAD_B: f64 = 26.0;

/// A line chart of `series` over `buckets` (bucket starts, ms), y from 0 to the largest value.
fn chart(title: &str, buckets: &[i64], series: &[Series], fmt: fn(f64) -> String) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let n = buckets.len().max(1);
    let x = |i: usize| PAD_L + (W - PAD_L - 8.0) * (i as f64 + 0.5) / n as f64;
    let y = |v: f64| 8.0 + (H - PAD_B - 8.0) * (1.0 - v / top);
    let label = |ms: i64| {
        let t = crate::util::rfc3339(ms);
        t.get(5..16).unwrap_or(&t).replace('T', " ")
    };
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
                @for k in 0..=4u32 {
                    @let v = top * f64::from(k) / 4.0;
                    line.grid x1=(PAD_L) x2=(W - 4.0) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) {}
                    text.axis x=(PAD_L - 6.0) y=(format!("{:.1}", y(v) + 5.0)) text-anchor="end" { (fmt(v)) }
                }
                @if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
                    text.axis x=(x(0)) y=(H - 6.0) text-anchor="start" { (label(*first)) }
                    text.axis x=(x(n - 1)) y=(H - 6.0) text-anchor="end" { (label(*last)) }
                }
                @for (si, s) in series.iter().enumerate() {
                    @let color = COLORS[si % COLORS.len()];
                    @let path = s.points.iter().enumerate()
                        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                        .collect::<Vec<_>>().join(" ");
                    polyline fill="none" stroke=(color) stroke-width="2" points=(path) {}
                    @for (i, v) in s.points.iter().enumerate() {
                        @if let Some(v) = v {
                            circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill=(color) {
                                title { (s.name) " · " (label(buckets[i])) ": " (fmt(*v)) }
                            }
                        }
                    }
                }
            }
            @if series.len() > 1 {
                ul.legend {
                    @for (si, s) in series.iter().enumerate() {
                        li { svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(COLORS[si % COLORS.len()]) {} } " " (s.name) }
                    }
                }
            }
        }
    }
}

fn range_ms(range: &str) -> Option<(i64, i64)> {
    // (span, bucket)
    Some(match range {
        "1h" => (3_600_000, 300_000),
        "24h" => (86_400_000, 3_600_000),
        "7d" => (7 * 86_400_000, 21_600_000),
        "30d" => (30 * 86_400_000, 86_400_000),
        _ => return None,
    })
}

fn key_str(g: &StatsGroup, i: usize) -> String {
    match g.key.get(i) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "(none)".into(),
        Some(v) => v.to_string(),
    }
}

fn key_ms(g: &StatsGroup, i: usize) -> i64 {
    g.key
        .get(i)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}

/// The time buckets a chart plots, from the range's start to now.
struct Grid {
    buckets: Vec<i64>,
    index: HashMap<i64, usize>,
}

impl Grid {
    fn new(from: i64, bucket_ms: i64, now: i64) -> Self {
        let buckets: Vec<i64> = (0..)
            .map(|i| from + i * bucket_ms)
            .take_while(|b| *b <= now)
            .collect();
        let index = buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();
        Grid { buckets, index }
    }

    /// One series over groups keyed by time alone.
    fn series(&self, groups: &[StatsGroup], name: &str, f: &dyn Fn(&StatsGroup) -> f64) -> Series {
        let mut points = vec![None; self.buckets.len()];
        for g in groups {
            if let Some(i) = self.index.get(&key_ms(g, 0)) {
                points[*i] = Some(f(g));
            }
        }
        Series {
            name: name.to_string(),
            points,
        }
    }

    /// A series per model, over groups keyed by model and time.
    fn per_model(&self, groups: &[StatsGroup], f: &dyn Fn(&StatsGroup) -> f64) -> Vec<Series> {
        let mut by: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for g in groups {
            let name = key_str(g, 0);
            if name == "(none)" {
                continue;
            }
            if let Some(i) = self.index.get(&key_ms(g, 1)) {
                by.entry(name)
                    .or_insert_with(|| vec![None; self.buckets.len()])[*i] = Some(f(g));
            }
        }
        by.into_iter()
            .map(|(name, points)| Series { name, points })
            .collect()
    }
}

fn fmt_count(v: f64) -> String {
    format!("{v:.0}")
}

fn fmt_pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn fmt_tokens(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The table of models over the whole range.
fn models_table(totals: &[StatsGroup]) -> Markup {
    html! {
        table.traces.models {
            thead { tr { th { "Model" } th.num { "Calls" } th.num { "Error rate" } th.num { "p50" } th.num { "p95" } th.num { "Tokens" } th.num { "Cost" } } }
            tbody {
                @for g in totals.iter().filter(|g| key_str(g, 0) != "(none)") {
                    tr {
                        td { (key_str(g, 0)) }
                        td.num { (g.count) }
                        td.num { (fmt_pct(g.error_count as f64 / g.count.max(1) as f64)) }
                        td.num { (fmt_ms(g.p50_ms)) }
                        td.num { (fmt_ms(g.p95_ms)) }
                        td.num { (g.total_tokens) }
                        td.num { (fmt_cost(g.cost_usd)) }
                    }
                }
            }
        }
    }
}

pub(crate) async fn dashboard(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let range = params.get("range").map_or("24h", String::as_str);
    let Some((span_ms, bucket_ms)) = range_ms(range) else {
        return page_response(
            StatusCode::BAD_REQUEST,
            layout(
                "Dashboard",
                html! { p.error role="alert" { "unknown range " (range) ": use 1h, 24h, 7d or 30d" } },
            ),
        );
    };
    let project = params.get("project").filter(|p| !p.is_empty()).cloned();
    let now = crate::util::now_ms();
    let from = (now - span_ms).div_euclid(bucket_ms) * bucket_ms;
    let filter = project
        .as_ref()
        .map(|p| Expr::trace(TraceField::Project, CmpOp::Eq, Literal::Str(p.clone())));
    let query = |group_by: Vec<GroupKey>| StatsQuery {
        filter: filter.clone(),
        group_by,
        bucket_ms,
        start_from_ms: Some(from),
        start_to_ms: None,
    };
    let traces = state.store.stats(query(vec![GroupKey::Time])).await;
    let models = state
        .store
        .stats(query(vec![GroupKey::Model, GroupKey::Time]))
        .await;
    let totals = state.store.stats(query(vec![GroupKey::Model])).await;
    let (traces, models, totals) = match (traces, models, totals) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failure_page(e.into()),
    };
    let grid = Grid::new(from, bucket_ms, now);
    let b = &grid.buckets;
    let body = html! {
        form.search method="get" action="/dashboard" {
            select name="range" aria-label="Range" {
                @for r in ["1h", "24h", "7d", "30d"] { option value=(r) selected[r == range] { "Last " (r) } }
            }
            input type="text" name="project" value=(project.clone().unwrap_or_default()) placeholder="project (all)" aria-label="Project";
            button type="submit" { "Show" }
        }
        div.charts {
            (chart("Traces", b, &[grid.series(&traces, "traces", &|g| g.count as f64)], fmt_count))
            (chart("Error rate", b, &[grid.series(&traces, "error rate", &|g| g.error_count as f64 / g.count.max(1) as f64)], fmt_pct))
            (chart("Latency p50 / p95", b, &[
                grid.series(&traces, "p50", &|g| g.p50_ms),
                grid.series(&traces, "p95", &|g| g.p95_ms),
            ], fmt_ms))
            (chart("Tokens per model", b, &grid.per_model(&models, &|g| g.total_tokens as f64), fmt_tokens))
            (chart("Cost per model", b, &grid.per_model(&models, &|g| g.cost_usd), fmt_cost))
            (chart("LLM calls per model", b, &grid.per_model(&models, &|g| g.count as f64), fmt_count))
        }
        h2 { "Models" }
        (models_table(&totals))
    };
    page_response(StatusCode::OK, layout("Dashboard", body))
}
