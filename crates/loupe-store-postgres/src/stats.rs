//! Aggregations (per model, span type, project, tag or time bucket) and span search.
//!
//! PostgreSQL groups and aggregates itself; percentiles are `percentile_disc`, the nearest rank
//! the SQLite store computes (the smallest value with at least that share of values at or
//! below it).

use loupe_model::TraceId;
use loupe_store::{GroupKey, StatsGroup, StatsQuery, StoreError};
use serde_json::Value;

use crate::read::{Groups, SPAN_COLUMNS, span_row};
use crate::{Sql, pg_err, u};

/// How a group key column is read back.
#[derive(Clone, Copy)]
enum KeyType {
    Text,
    Int,
    Json,
}

pub(crate) async fn stats(
    client: &deadpool_postgres::Object,
    q: &StatsQuery,
    common_text: usize,
) -> Result<Vec<StatsGroup>, StoreError> {
    let span_level = q.group_by.iter().any(GroupKey::span_level);
    let matches = crate::read::text_matches(client, q.filter.as_ref(), common_text).await?;
    let mut sql = Sql::new("SELECT ");
    let types = group_columns(&mut sql, q, span_level);
    sql.push(&measures(span_level));
    if span_level
        && q.group_by
            .iter()
            .any(|k| matches!(k, GroupKey::Model | GroupKey::Provider))
    {
        sql.push(" AND s.model IS NOT NULL");
    }
    if let Some(f) = q.condition() {
        sql.push(" AND ");
        sql.lowered(&crate::layout::lower(&f, &matches));
    }
    if !q.group_by.is_empty() {
        let cols: Vec<String> = (1..=q.group_by.len()).map(|i| i.to_string()).collect();
        sql.push(" GROUP BY ").push(&cols.join(", "));
    }
    // Without groups an aggregate over no rows is still one row; the SQLite store returns none.
    sql.push(" HAVING count(*) > 0");
    let rows = client
        .query(sql.text.as_str(), &sql.params())
        .await
        .map_err(pg_err)?;
    let mut out = rows
        .iter()
        .map(|r| group_row(r, &types))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| loupe_store::cmp_group_keys(&a.key, &b.key));
    Ok(out)
}

/// Pushes the group key columns, each followed by `, `; returns how to read each.
fn group_columns(sql: &mut Sql, q: &StatsQuery, span_level: bool) -> Vec<KeyType> {
    let bucket_ms = q.bucket_ms.max(1);
    let mut types = Vec::with_capacity(q.group_by.len());
    for k in &q.group_by {
        let ty = match k {
            GroupKey::Project => {
                sql.push("t.project");
                KeyType::Text
            }
            GroupKey::Tag(key) => {
                sql.push("(t.tags -> ").arg(key.clone(), "text").push(")");
                KeyType::Json
            }
            GroupKey::Metadata(key) => {
                sql.push("(t.metadata -> ")
                    .arg(key.clone(), "text")
                    .push(")");
                KeyType::Json
            }
            GroupKey::Time => {
                sql.push(if span_level {
                    "((s.start_ns / "
                } else {
                    "((t.start_ns / "
                });
                sql.arg(bucket_ms.saturating_mul(1_000_000), "bigint")
                    .push(") * ")
                    .arg(bucket_ms, "bigint")
                    .push(")");
                KeyType::Int
            }
            GroupKey::Model => {
                sql.push("s.model");
                KeyType::Text
            }
            GroupKey::Provider => {
                sql.push("s.provider");
                KeyType::Text
            }
            GroupKey::SpanType => {
                sql.push("s.span_type");
                KeyType::Text
            }
        };
        types.push(ty);
        sql.push(", ");
    }
    types
}

/// The measured columns, over spans or over traces, then `FROM … WHERE true`.
fn measures(span_level: bool) -> String {
    let (dur, err, input, output, total, cost, from) = if span_level {
        (
            "((s.end_ns - s.start_ns) / 1000000.0)::float8",
            "s.status = 2",
            "s.input_tokens",
            "s.output_tokens",
            "s.total_tokens",
            "s.cost_usd",
            "traces t JOIN spans s ON s.trace_seq = t.seq",
        )
    } else {
        (
            "t.duration_ms::float8",
            "t.status = 2",
            "t.input_tokens",
            "t.output_tokens",
            "t.total_tokens",
            "t.cost_usd",
            "traces t",
        )
    };
    format!(
        "count(*)::bigint, (count(*) FILTER (WHERE {err}))::bigint, \
         percentile_disc(0.5) WITHIN GROUP (ORDER BY {dur}), \
         percentile_disc(0.95) WITHIN GROUP (ORDER BY {dur}), \
         percentile_disc(0.99) WITHIN GROUP (ORDER BY {dur}), \
         coalesce(sum({input}), 0)::bigint, coalesce(sum({output}), 0)::bigint, \
         coalesce(sum({total}), 0)::bigint, coalesce(sum({cost}), 0)::float8 \
         FROM {from} WHERE true"
    )
}

/// One group: its key values (read as `types` say), then the measures.
fn group_row(r: &tokio_postgres::Row, types: &[KeyType]) -> Result<StatsGroup, StoreError> {
    let n = types.len();
    let mut key = Vec::with_capacity(n);
    for (i, ty) in types.iter().enumerate() {
        key.push(match ty {
            KeyType::Text => r
                .try_get::<_, Option<String>>(i)
                .map_err(pg_err)?
                .map_or(Value::Null, Value::String),
            KeyType::Int => r
                .try_get::<_, Option<i64>>(i)
                .map_err(pg_err)?
                .map_or(Value::Null, Value::from),
            KeyType::Json => r
                .try_get::<_, Option<Value>>(i)
                .map_err(pg_err)?
                .unwrap_or(Value::Null),
        });
    }
    let f = |i: usize| -> Result<f64, StoreError> {
        Ok(r.try_get::<_, Option<f64>>(n + i)
            .map_err(pg_err)?
            .unwrap_or(0.0))
    };
    let i = |i: usize| -> Result<u64, StoreError> {
        Ok(u(r.try_get::<_, i64>(n + i).map_err(pg_err)?))
    };
    Ok(StatsGroup {
        key,
        count: i(0)?,
        error_count: i(1)?,
        p50_ms: f(2)?,
        p95_ms: f(3)?,
        p99_ms: f(4)?,
        input_tokens: i(5)?,
        output_tokens: i(6)?,
        total_tokens: i(7)?,
        cost_usd: f(8)?,
    })
}

pub(crate) async fn list_spans(
    client: &deadpool_postgres::Object,
    filter: Option<&loupe_query::Expr>,
    limit: usize,
    before: Option<(i64, i64)>,
) -> Result<loupe_store::SpanPage, StoreError> {
    let mut sql = Sql::new(format!(
        "SELECT t.trace_id, s.id, {SPAN_COLUMNS} \
         FROM spans s JOIN traces t ON t.seq = s.trace_seq WHERE true"
    ));
    if let Some(f) = filter {
        sql.push(" AND ");
        sql.lowered(&crate::layout::lower_spans(f));
    }
    if let Some((_, id)) = before {
        sql.push(" AND s.id < ").arg(id, "bigint");
    }
    // Newest first by arrival: the id order, which the primary key serves without a sort.
    let limit = limit.max(1);
    sql.push(" ORDER BY s.id DESC LIMIT ")
        .arg(i64::try_from(limit).unwrap_or(i64::MAX) + 1, "bigint");
    let rows = client
        .query(sql.text.as_str(), &sql.params())
        .await
        .map_err(pg_err)?;
    let more = rows.len() > limit;
    let mut spans = Vec::with_capacity(rows.len().min(limit));
    for r in rows.iter().take(limit) {
        let tid: Vec<u8> = r.try_get(0).map_err(pg_err)?;
        let trace_id = TraceId::from_slice(&tid).map_err(StoreError::internal)?;
        let id: i64 = r.try_get(1).map_err(pg_err)?;
        let (span, at) = span_row(r, 2)?;
        spans.push((trace_id, id, span, at));
    }
    let groups = Groups::load(client, spans.iter().map(|(_, _, _, at)| at.0).collect()).await?;
    let last = spans
        .last()
        .map(|(_, id, s, _)| (i64::try_from(s.start_ns).unwrap_or(i64::MAX), *id));
    let out = spans
        .into_iter()
        .map(|(t, _, mut s, at)| {
            s.body = groups.get_or_note(at);
            (t, s)
        })
        .collect();
    Ok((out, if more { last } else { None }))
}
