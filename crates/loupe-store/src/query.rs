//! Trace listing: the simple filters, and opaque cursors for keyset pagination.

use loupe_model::{SpanStatus, TraceSummary};
use loupe_query::Expr;
use loupe_query::ast::{CmpOp, Field, Literal, TraceField};

use crate::StoreError;

/// Where the next page starts: the (start time, insertion sequence) of the last trace returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Start time of the last trace on the previous page, ns.
    pub start_ns: i64,
    /// Store-internal tie breaker.
    pub seq: i64,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        format!("{:x}.{:x}", self.start_ns, self.seq)
    }

    /// Parses what [`Cursor::encode`] produced.
    pub fn decode(s: &str) -> Result<Self, StoreError> {
        let bad = || {
            StoreError::invalid(format!(
                "invalid cursor {s:?}: pass back a next_cursor value unchanged"
            ))
        };
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            start_ns: i64::from_str_radix(a, 16).map_err(|_| bad())?,
            seq: i64::from_str_radix(b, 16).map_err(|_| bad())?,
        })
    }
}

/// Which traces to list, in what order, from where. The conditions are one query-language
/// filter: the API's simple parameters (project, status, name …) become conditions of it where
/// the request arrives ([`TraceQuery::and`] and the builders after it), so that each backend
/// lowers one thing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// Only traces matching this filter.
    pub filter: Option<Expr>,
    /// Page size.
    pub limit: usize,
    /// Continue after this point (with the default order).
    pub cursor: Option<Cursor>,
    /// Sort keys; empty is newest first, paged by `cursor`. Any other order pages by `offset`.
    pub order: Vec<(OrderKey, Direction)>,
    /// Rows to skip (with a custom `order`).
    pub offset: usize,
}

impl TraceQuery {
    /// Newest first, `limit` to a page, no conditions.
    pub fn newest(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Only the traces that also match `condition`.
    pub fn and(mut self, condition: Expr) -> Self {
        self.filter = Expr::all(self.filter.take().into_iter().chain([condition]));
        self
    }

    /// Only the traces that also match `condition`, when there is one.
    pub fn and_maybe(self, condition: Option<Expr>) -> Self {
        match condition {
            Some(c) => self.and(c),
            None => self,
        }
    }

    /// Only traces of this project.
    pub fn project(self, project: &str) -> Self {
        self.and(Expr::trace(
            TraceField::Project,
            CmpOp::Eq,
            Literal::Str(project.to_string()),
        ))
    }

    /// Only traces of one of these projects (none: no condition).
    pub fn projects(self, projects: &[String]) -> Self {
        if projects.is_empty() {
            return self;
        }
        self.and(Expr::In {
            field: Field::Trace(TraceField::Project),
            values: projects.iter().cloned().map(Literal::Str).collect(),
            negated: false,
        })
    }

    /// Only traces with this status.
    pub fn status(self, status: SpanStatus) -> Self {
        self.and(Expr::trace(
            TraceField::Status,
            CmpOp::Eq,
            Literal::Int(status.code()),
        ))
    }

    /// Only traces at least this long, ms.
    pub fn min_duration_ms(self, ms: u64) -> Self {
        self.and(Expr::trace(
            TraceField::DurationMs,
            CmpOp::Ge,
            Literal::Int(i64::try_from(ms).unwrap_or(i64::MAX)),
        ))
    }

    /// Only traces with exactly this name.
    pub fn name(self, name: &str) -> Self {
        self.and(Expr::trace(
            TraceField::Name,
            CmpOp::Eq,
            Literal::Str(name.to_string()),
        ))
    }

    /// Only traces started in `[from_ms, to_ms)`, ms since the epoch (each bound optional).
    pub fn started(self, from_ms: Option<i64>, to_ms: Option<i64>) -> Self {
        self.and_maybe(started(from_ms, to_ms))
    }
}

/// "Started in `[from_ms, to_ms)`", ms since the epoch (each bound optional; `None` for none).
pub fn started(from_ms: Option<i64>, to_ms: Option<i64>) -> Option<Expr> {
    let bound =
        |op, ms: Option<i64>| ms.map(|ms| Expr::trace(TraceField::Start, op, Literal::Int(ms)));
    Expr::all(
        bound(CmpOp::Ge, from_ms)
            .into_iter()
            .chain(bound(CmpOp::Lt, to_ms)),
    )
}

/// Which way a sort key runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

impl Direction {
    /// SQL spelling.
    pub fn sql(self) -> &'static str {
        match self {
            Direction::Ascending => "ASC",
            Direction::Descending => "DESC",
        }
    }
}

/// What traces can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    /// Start time.
    Start,
    /// End time.
    End,
    /// Duration.
    Duration,
    /// Status.
    Status,
    /// Name.
    Name,
    /// Trace id.
    TraceId,
}

impl OrderKey {
    /// Parses `"<field> [ASC|DESC]"` (ascending by default), in Loupe's or MLflow's field
    /// names (`start`, `timestamp_ms`, `duration_ms`, `execution_time_ms`, `attributes.status` …).
    pub fn parse_clause(text: &str) -> Result<(OrderKey, Direction), String> {
        let mut parts = text.split_whitespace();
        let field = parts.next().unwrap_or("");
        let direction = match parts.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => Direction::Ascending,
            Some("DESC") => Direction::Descending,
            Some(other) => {
                return Err(format!(
                    "invalid order clause {text:?}: expected ASC or DESC, found {other:?}"
                ));
            }
        };
        if parts.next().is_some() {
            return Err(format!("invalid order clause {text:?}"));
        }
        let bare = ["attributes.", "attribute.", "trace."]
            .iter()
            .find_map(|p| field.strip_prefix(p))
            .unwrap_or(field);
        let key = match bare.to_ascii_lowercase().as_str() {
            "start" | "start_time" | "start_time_ms" | "timestamp_ms" | "timestamp"
            | "request_time" => OrderKey::Start,
            "end" | "end_time" | "end_time_ms" => OrderKey::End,
            "duration" | "duration_ms" | "execution_time_ms" | "execution_time" | "latency" => {
                OrderKey::Duration
            }
            "status" | "state" => OrderKey::Status,
            "name" => OrderKey::Name,
            "trace_id" | "request_id" => OrderKey::TraceId,
            other => {
                return Err(format!(
                    "invalid order field {other:?}: traces sort by start, end, duration_ms, \
                     status, name or trace_id"
                ));
            }
        };
        Ok((key, direction))
    }

    /// Parses a list of clauses, refusing a field named twice.
    pub fn parse_clauses<'a>(
        clauses: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(OrderKey, Direction)>, String> {
        let mut out: Vec<(OrderKey, Direction)> = Vec::new();
        for c in clauses {
            let (key, direction) = OrderKey::parse_clause(c)?;
            if out.iter().any(|(k, _)| *k == key) {
                return Err(format!("the order names {c:?} twice"));
            }
            out.push((key, direction));
        }
        Ok(out)
    }

    /// The column.
    pub fn column(self) -> &'static str {
        match self {
            OrderKey::Start => "start_ns",
            OrderKey::End => "end_ns",
            OrderKey::Duration => "duration_ms",
            OrderKey::Status => "status",
            OrderKey::Name => "name",
            OrderKey::TraceId => "trace_id",
        }
    }
}

/// One page of traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePage {
    /// Newest first.
    pub traces: Vec<TraceSummary>,
    /// Set when more traces may follow.
    pub next_cursor: Option<Cursor>,
    /// Rows the page went through (more than it returns when span-attribute conditions
    /// dropped some): the next page's `offset` is this page's plus this.
    pub consumed: usize,
}

impl TracePage {
    /// The page from rows read with one more than `limit` asked for: a row past the limit
    /// means more follow, and the cursor is the last row kept (`seq` is the store's own
    /// tie-breaker).
    pub fn from_rows(mut rows: Vec<(i64, TraceSummary)>, limit: usize, consumed: usize) -> Self {
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(seq, t)| Cursor {
                start_ns: i64::try_from(t.start_ns).unwrap_or(i64::MAX),
                seq: *seq,
            })
        } else {
            None
        };
        Self {
            traces: rows.into_iter().map(|(_, t)| t).collect(),
            next_cursor,
            consumed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_past_the_limit_sets_the_cursor_at_the_last_row_kept() {
        let row = |seq: i64, start_ns: u64| {
            let t = TraceSummary {
                trace_id: loupe_model::TraceId([seq as u8; 16]),
                project: String::new(),
                name: String::new(),
                status: SpanStatus::Ok,
                start_ns,
                end_ns: start_ns,
                span_count: 1,
                error_count: 0,
                input_tokens: 0,
                output_tokens: 0,
                total_tokens: 0,
                cost_usd: 0.0,
                session_id: None,
                user_id: None,
                has_root: true,
                tags: Default::default(),
                metadata: Default::default(),
                info: Default::default(),
            };
            (seq, t)
        };
        let page = TracePage::from_rows(vec![row(9, 300), row(7, 200), row(4, 100)], 2, 2);
        assert_eq!(page.traces.len(), 2);
        assert_eq!(
            page.next_cursor,
            Some(Cursor {
                start_ns: 200,
                seq: 7
            })
        );
        let page = TracePage::from_rows(vec![row(9, 300), row(7, 200)], 2, 2);
        assert_eq!((page.traces.len(), page.next_cursor), (2, None));
    }

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            start_ns: 1_700_000_000_000_000_000,
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "x",
            "1.",
            ".1",
            "zz.1",
            "1.1.1",
            "'; drop table traces; --",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}

/// Filters for listing sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionQuery {
    /// Only this project.
    pub project: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue after this point (`start_ns` is the last activity, `seq` unused).
    pub cursor: Option<(i64, String)>,
}

/// A session's roll-up over its traces.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionSummary {
    /// Session id.
    pub session_id: String,
    /// Traces in the session.
    pub trace_count: u64,
    /// Traces with errors.
    pub error_count: u64,
    /// Start of the first trace, ns.
    pub first_start_ns: u64,
    /// Start of the last trace, ns.
    pub last_start_ns: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// A user id seen in the session.
    pub user_id: Option<String>,
    /// Project.
    pub project: String,
}

/// One page of sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// Most recently active first.
    pub sessions: Vec<SessionSummary>,
    /// Set when more may follow: (last activity ns, session id) of the last one.
    pub next_cursor: Option<(i64, String)>,
}

impl SessionPage {
    /// The page from sessions read with one more than `limit` asked for (see
    /// [`TracePage::from_rows`]).
    pub fn from_rows(mut sessions: Vec<SessionSummary>, limit: usize) -> Self {
        let next_cursor = if sessions.len() > limit {
            sessions.truncate(limit);
            sessions.last().map(|s| {
                (
                    i64::try_from(s.last_start_ns).unwrap_or(i64::MAX),
                    s.session_id.clone(),
                )
            })
        } else {
            None
        };
        Self {
            sessions,
            next_cursor,
        }
    }
}

/// What statistics are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// Project.
    Project,
    /// A trace tag.
    Tag(String),
    /// A trace metadata key.
    Metadata(String),
    /// Start time, in buckets of `StatsQuery::bucket_ms`.
    Time,
    /// The model of LLM spans (makes the statistics span-level).
    Model,
    /// The provider of LLM spans (span-level).
    Provider,
    /// The span type (span-level).
    SpanType,
}

impl GroupKey {
    /// Whether grouping by this key aggregates spans rather than traces.
    pub fn span_level(&self) -> bool {
        matches!(
            self,
            GroupKey::Model | GroupKey::Provider | GroupKey::SpanType
        )
    }
}

/// An aggregation request.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    /// Only traces matching this filter.
    pub filter: Option<loupe_query::Expr>,
    /// Group keys (none: one group of everything).
    pub group_by: Vec<GroupKey>,
    /// Time bucket width, ms.
    pub bucket_ms: i64,
    /// Only traces starting at or after this time, ms.
    pub start_from_ms: Option<i64>,
    /// Only traces starting before this time, ms.
    pub start_to_ms: Option<i64>,
}

impl StatsQuery {
    /// The traces aggregated: the filter and the time range, as one condition.
    pub fn condition(&self) -> Option<Expr> {
        Expr::all(
            self.filter
                .iter()
                .cloned()
                .chain(started(self.start_from_ms, self.start_to_ms)),
        )
    }
}

/// One group's statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatsGroup {
    /// The group's key values, in `group_by` order (the time bucket as its start, ms).
    pub key: Vec<serde_json::Value>,
    /// Traces (or spans, when grouped by a span-level key).
    pub count: u64,
    /// Of which failed.
    pub error_count: u64,
    /// Duration percentiles, ms.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost, US dollars.
    pub cost_usd: f64,
}
