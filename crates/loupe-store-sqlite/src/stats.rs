//! Aggregations (per model, span type, project, tag or time bucket) and span search.

use std::cmp::Ordering;
use std::collections::HashMap;

use loupe_model::{SpanId, SpanStatus, TraceId};
use loupe_query::sql::json_path;
use loupe_store::{GroupKey, StatsGroup, StatsQuery, StoreError, StoredSpan};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use crate::bodylog::LogReader;
use crate::db_err;
use crate::layout::{bind, lower, lower_spans};
use crate::read::{BODY_COLUMNS, SPAN_COLUMN_COUNT, SPAN_COLUMNS, span_columns, u};

#[derive(Default)]
struct Acc {
    durations: Vec<f64>,
    errors: u64,
    input: u64,
    output: u64,
    total: u64,
    cost: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn to_json(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(r) => Value::from(r),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Blob(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

impl Acc {
    /// The group of `key`, with its percentiles.
    fn into_group(mut self, key: Vec<Value>) -> StatsGroup {
        self.durations
            .sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
        StatsGroup {
            key,
            count: self.durations.len() as u64,
            error_count: self.errors,
            p50_ms: percentile(&self.durations, 0.50),
            p95_ms: percentile(&self.durations, 0.95),
            p99_ms: percentile(&self.durations, 0.99),
            input_tokens: self.input,
            output_tokens: self.output,
            total_tokens: self.total,
            cost_usd: self.cost,
        }
    }
}

/// Groups the traces (or, for a span-level key, the spans) the query selects.
pub(crate) fn stats(conn: &Connection, q: &StatsQuery) -> Result<Vec<StatsGroup>, StoreError> {
    let (sql, args) = stats_sql(q);
    let nkeys = q.group_by.len();
    let mut groups: HashMap<Vec<String>, (Vec<Value>, Acc)> = HashMap::new();
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        let mut key = Vec::with_capacity(nkeys);
        for i in 0..nkeys {
            key.push(to_json(r.get::<_, SqlValue>(i).map_err(db_err)?));
        }
        let id: Vec<String> = key.iter().map(Value::to_string).collect();
        let (_, acc) = groups.entry(id).or_insert_with(|| (key, Acc::default()));
        let g = |i: usize| -> Result<i64, StoreError> {
            r.get::<_, Option<i64>>(nkeys + i)
                .map(|v| v.unwrap_or(0))
                .map_err(db_err)
        };
        acc.durations.push(
            r.get::<_, Option<f64>>(nkeys)
                .map_err(db_err)?
                .unwrap_or(0.0),
        );
        acc.errors += u64::from(g(1)? != 0);
        acc.input += u(g(2)?);
        acc.output += u(g(3)?);
        acc.total += u(g(4)?);
        acc.cost += r
            .get::<_, Option<f64>>(nkeys + 5)
            .map_err(db_err)?
            .unwrap_or(0.0);
    }
    let mut out: Vec<StatsGroup> = groups
        .into_values()
        .map(|(key, acc)| acc.into_group(key))
        .collect();
    out.sort_by(|a, b| loupe_store::cmp_group_keys(&a.key, &b.key));
    Ok(out)
}

/// The aggregation's SQL and its arguments: the group keys, then duration, error flag, input,
/// output and total tokens, and cost, for each trace (or span, when a key is span-level).
fn stats_sql(q: &StatsQuery) -> (String, Vec<SqlValue>) {
    let span_level = q.group_by.iter().any(GroupKey::span_level);
    let bucket_ms = q.bucket_ms.max(1);
    let mut sql = String::from("SELECT ");
    let mut args: Vec<SqlValue> = Vec::new();
    for k in &q.group_by {
        match k {
            GroupKey::Project => sql.push_str("t.project"),
            GroupKey::Tag(key) => {
                sql.push_str("json_extract(t.tags, ?)");
                args.push(SqlValue::Text(json_path(key)));
            }
            GroupKey::Metadata(key) => {
                sql.push_str("json_extract(t.metadata, ?)");
                args.push(SqlValue::Text(json_path(key)));
            }
            GroupKey::Time => {
                sql.push_str(if span_level {
                    "(s.start_ns / ?) * ?"
                } else {
                    "(t.start_ns / ?) * ?"
                });
                args.push(SqlValue::Integer(bucket_ms.saturating_mul(1_000_000)));
                args.push(SqlValue::Integer(bucket_ms));
            }
            GroupKey::Model => sql.push_str("s.model"),
            GroupKey::Provider => sql.push_str("s.provider"),
            GroupKey::SpanType => sql.push_str("s.span_type"),
        }
        sql.push_str(", ");
    }
    if span_level {
        sql.push_str(
            "(s.end_ns - s.start_ns) / 1000000.0, s.status = 2, coalesce(s.input_tokens, 0), \
             coalesce(s.output_tokens, 0), coalesce(s.total_tokens, 0), coalesce(s.cost_usd, 0) \
             FROM traces t CROSS JOIN spans s ON s.trace_seq = t.seq WHERE 1 = 1",
        );
        // CROSS JOIN keeps traces as the outer loop: the time filter uses the start index,
        // then each trace's spans come from the (trace, span) index.
        if q.group_by
            .iter()
            .any(|k| matches!(k, GroupKey::Model | GroupKey::Provider))
        {
            sql.push_str(" AND s.model IS NOT NULL");
        }
    } else {
        sql.push_str(
            "t.duration_ms, t.status = 2, t.input_tokens, t.output_tokens, t.total_tokens, \
             t.cost_usd FROM traces t WHERE 1 = 1",
        );
    }
    if let Some(f) = q.condition() {
        let l = lower(&f);
        sql.push_str(" AND ");
        sql.push_str(&l.sql);
        bind(l.params, &mut args);
    }
    (sql, args)
}

pub(crate) fn list_spans(
    conn: &Connection,
    log: &LogReader,
    filter: Option<&loupe_query::Expr>,
    limit: usize,
    before: Option<(i64, i64)>,
) -> Result<loupe_store::SpanPage, StoreError> {
    let mut sql = format!(
        "SELECT t.trace_id, s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status, \
         s.status_message, s.rowid, {SPAN_COLUMNS}, {BODY_COLUMNS} \
         FROM spans s JOIN traces t ON t.seq = s.trace_seq WHERE 1 = 1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(f) = filter {
        let l = lower_spans(f);
        sql.push_str(" AND ");
        sql.push_str(&l.sql);
        bind(l.params, &mut args);
    }
    if let Some((_, rowid)) = before {
        sql.push_str(" AND s.rowid < ?");
        args.push(SqlValue::Integer(rowid));
    }
    // Newest first by arrival: the rowid order, which needs no sort.
    sql.push_str(" ORDER BY s.rowid DESC LIMIT ?");
    let limit = limit.max(1);
    args.push(SqlValue::Integer(limit as i64 + 1));
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(db_err)?;
    let mut out = Vec::new();
    let mut last = None;
    let mut bodies = crate::read::Bodies::new(log);
    while let Some(r) = rows.next().map_err(db_err)? {
        if out.len() == limit {
            return Ok((out, last));
        }
        let tid: Vec<u8> = r.get(0).map_err(db_err)?;
        let trace_id = TraceId::from_slice(&tid).map_err(StoreError::internal)?;
        let at = crate::read::body_ref(r, 9 + SPAN_COLUMN_COUNT).map_err(db_err)?;
        let start: i64 = r.get(4).map_err(db_err)?;
        let rowid: i64 = r.get(8).map_err(db_err)?;
        out.push((
            trace_id,
            StoredSpan {
                span_id: SpanId::from_i64(r.get(1).map_err(db_err)?),
                parent_id: r
                    .get::<_, Option<i64>>(2)
                    .map_err(db_err)?
                    .map(SpanId::from_i64),
                name: r.get(3).map_err(db_err)?,
                start_ns: u(start),
                end_ns: u(r.get(5).map_err(db_err)?),
                status: SpanStatus::from_code(r.get(6).map_err(db_err)?),
                status_message: r.get(7).map_err(db_err)?,
                columns: span_columns(r, 9).map_err(db_err)?,
                body: bodies.get_or_note(at),
            },
        ));
        last = Some((start, rowid));
    }
    Ok((out, None))
}
