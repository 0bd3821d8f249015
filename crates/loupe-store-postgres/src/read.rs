//! The read path: keyset-paginated trace lists, whole traces, span bodies.

use std::collections::HashMap;

use loupe_model::{SpanId, SpanStatus, TraceId, TraceSummary};
use loupe_store::{
    Cursor, SpanBodies, SpanBody, SpanColumns, StoreError, StoredSpan, TraceDetail, TracePage,
    TraceQuery, decode_bodies,
};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use crate::{Sql, cpu, pg_err, to_i64, u};

pub(crate) const TRACE_COLUMNS: &str = "t.seq, t.trace_id, t.project, t.name, t.start_ns, \
     t.end_ns, t.status, t.has_root, t.span_count, t.error_count, t.input_tokens, \
     t.output_tokens, t.total_tokens, t.tags, t.metadata, t.cost_usd, t.session_id, t.user_id, \
     t.info";

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A trace row read with [`TRACE_COLUMNS`], starting at column `at`.
pub(crate) fn trace_row_at(r: &Row, at: usize) -> Result<(i64, TraceSummary), StoreError> {
    let g = |e: tokio_postgres::Error| pg_err(e);
    let id: Vec<u8> = r.try_get(at + 1).map_err(g)?;
    let trace_id = TraceId::from_slice(&id).map_err(StoreError::internal)?;
    Ok((
        r.try_get(at).map_err(g)?,
        TraceSummary {
            trace_id,
            project: r.try_get(at + 2).map_err(g)?,
            name: r.try_get(at + 3).map_err(g)?,
            start_ns: u(r.try_get(at + 4).map_err(g)?),
            end_ns: u(r.try_get(at + 5).map_err(g)?),
            status: SpanStatus::from_code(r.try_get(at + 6).map_err(g)?),
            has_root: r.try_get(at + 7).map_err(g)?,
            span_count: u(r.try_get(at + 8).map_err(g)?),
            error_count: u(r.try_get(at + 9).map_err(g)?),
            input_tokens: u(r.try_get(at + 10).map_err(g)?),
            output_tokens: u(r.try_get(at + 11).map_err(g)?),
            total_tokens: u(r.try_get(at + 12).map_err(g)?),
            tags: json_map(r.try_get(at + 13).map_err(g)?),
            metadata: json_map(r.try_get(at + 14).map_err(g)?),
            cost_usd: r.try_get(at + 15).map_err(g)?,
            session_id: r.try_get(at + 16).map_err(g)?,
            user_id: r.try_get(at + 17).map_err(g)?,
            info: json_map(r.try_get(at + 18).map_err(g)?),
        },
    ))
}

pub(crate) fn trace_row(r: &Row) -> Result<(i64, TraceSummary), StoreError> {
    trace_row_at(r, 0)
}

/// The columns of [`SpanColumns`], in its field order, over `spans s` (a macro, so that
/// [`SPAN_COLUMNS`] can end with them).
macro_rules! derived_column_list {
    () => {
        "s.span_type, s.model, s.provider, s.input_tokens, s.output_tokens, s.total_tokens, \
         s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens, s.cost_usd"
    };
}

/// The columns [`derived_columns`] reads.
pub(crate) const DERIVED_COLUMNS: &str = derived_column_list!();

/// Reads the [`DERIVED_COLUMNS`] of a row, selected from column `at` on.
pub(crate) fn derived_columns(r: &Row, at: usize) -> Result<SpanColumns, StoreError> {
    let get_count = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(r.try_get::<_, Option<i64>>(at + i).map_err(pg_err)?.map(u))
    };
    Ok(SpanColumns {
        span_type: r.try_get(at).map_err(pg_err)?,
        model: r.try_get(at + 1).map_err(pg_err)?,
        provider: r.try_get(at + 2).map_err(pg_err)?,
        input_tokens: get_count(3)?,
        output_tokens: get_count(4)?,
        total_tokens: get_count(5)?,
        cache_read_tokens: get_count(6)?,
        cache_write_tokens: get_count(7)?,
        reasoning_tokens: get_count(8)?,
        cost_usd: r.try_get(at + 9).map_err(pg_err)?,
    })
}

/// The span columns of [`span_row`], over `spans s`.
pub(crate) const SPAN_COLUMNS: &str = concat!(
    "s.span_id, s.parent_id, s.name, s.start_ns, s.end_ns, s.status, s.status_message, \
     s.body_group, s.body_idx, ",
    derived_column_list!()
);

/// Where a span's body is: its group and its index in it.
pub(crate) type BodyRef = (i64, i32);

/// A span read with [`SPAN_COLUMNS`] starting at column `at` (the body left empty), and where
/// its body is.
pub(crate) fn span_row(r: &Row, at: usize) -> Result<(StoredSpan, BodyRef), StoreError> {
    let g = |e: tokio_postgres::Error| pg_err(e);
    Ok((
        StoredSpan {
            span_id: SpanId::from_i64(r.try_get(at).map_err(g)?),
            parent_id: r
                .try_get::<_, Option<i64>>(at + 1)
                .map_err(g)?
                .map(SpanId::from_i64),
            name: r.try_get(at + 2).map_err(g)?,
            start_ns: u(r.try_get(at + 3).map_err(g)?),
            end_ns: u(r.try_get(at + 4).map_err(g)?),
            status: SpanStatus::from_code(r.try_get(at + 5).map_err(g)?),
            status_message: r.try_get(at + 6).map_err(g)?,
            columns: derived_columns(r, at + 9)?,
            body: SpanBody::default(),
        },
        (r.try_get(at + 7).map_err(g)?, r.try_get(at + 8).map_err(g)?),
    ))
}

/// Decompressed body groups, by id; a group that cannot be read keeps its error.
pub(crate) struct Groups(HashMap<i64, Result<Vec<SpanBody>, StoreError>>);

impl Groups {
    /// No groups.
    pub(crate) fn empty() -> Self {
        Self(HashMap::new())
    }

    /// Reads and decompresses these groups (each once).
    pub(crate) async fn load(
        client: &impl deadpool_postgres::GenericClient,
        mut ids: Vec<i64>,
    ) -> Result<Self, StoreError> {
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Self(HashMap::new()));
        }
        let stmt = client
            .prepare_cached("SELECT id, body FROM span_groups WHERE id = ANY($1::bigint[])")
            .await
            .map_err(pg_err)?;
        let mut blobs: Vec<(i64, Vec<u8>)> = Vec::with_capacity(ids.len());
        for r in client.query(&stmt, &[&ids]).await.map_err(pg_err)? {
            blobs.push((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?));
        }
        let decoded = cpu(move || {
            blobs
                .into_iter()
                .map(|(id, b)| (id, decode_bodies(&b)))
                .collect::<HashMap<_, _>>()
        })
        .await?;
        Ok(Self(decoded))
    }

    /// The body of one span.
    pub(crate) fn get(&self, at: BodyRef) -> Result<SpanBody, StoreError> {
        let (group, idx) = at;
        match self.0.get(&group) {
            None => Err(StoreError::internal(format!(
                "corrupt span body: body group {group} is missing"
            ))),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(bodies)) => usize::try_from(idx)
                .ok()
                .and_then(|i| bodies.get(i))
                .cloned()
                .ok_or_else(|| {
                    StoreError::internal(format!("corrupt span body: no body at index {idx}"))
                }),
        }
    }

    /// Like [`Groups::get`], but a body that cannot be read becomes an empty one that says so
    /// (one damaged body must not hide the rest of a trace).
    pub(crate) fn get_or_note(&self, at: BodyRef) -> SpanBody {
        self.get(at).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable span body");
            let mut body = SpanBody::default();
            body.attributes
                .insert("loupe.body_error".into(), Value::String(e.to_string()));
            body
        })
    }
}

/// Candidate rows a page may examine when span-attribute conditions filter after SQL; past it
/// the page ends early with a cursor, so one request stays bounded.
const MAX_POST_SCAN: usize = 20_000;

/// Candidates read per round when span-attribute conditions filter after SQL.
const POST_CHUNK: usize = 256;

/// Index documents past which a `text ~` word counts as common (see [`text_matches`]).
pub(crate) const COMMON_TEXT: usize = 5_000;

/// The traces matching each rare `text ~` of `filter`, as PostgreSQL array literals for
/// [`crate::layout::PgLayout`]. A rare word's few matches come from the GIN index at
/// once, and the page is a lookup of those traces. A word is rare when the planner estimates
/// at most `common` documents and listing them finds no more. Common words are left to the plan that
/// checks the newest traces one by one, which stops after a page's worth: there, listing every
/// match first would cost more than the page.
pub(crate) async fn text_matches(
    client: &deadpool_postgres::Object,
    filter: Option<&loupe_query::Expr>,
    common: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    let Some(filter) = filter else {
        return Ok(out);
    };
    for words in loupe_query::sql::full_text_conditions(filter) {
        let Some(tsquery) = loupe_model::text::pg_tsquery(words) else {
            continue;
        };
        if out.iter().any(|(w, _)| w == words) {
            continue;
        }
        // The planner's estimate first (its statistics know a table's common words): a word it
        // calls common skips the listing, which would read and recheck 5,001 documents.
        if estimated_documents(client, &tsquery).await? > common as f64 {
            continue;
        }
        let rows = client
            .query(
                "SELECT trace_seq FROM trace_text WHERE doc @@ $1::text::tsquery LIMIT $2",
                &[&tsquery, &i64::try_from(common + 1).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg_err)?;
        if rows.len() > common {
            continue;
        }
        let mut seqs: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<_, i64>(0))
            .collect::<Result<_, _>>()
            .map_err(pg_err)?;
        seqs.sort_unstable();
        seqs.dedup();
        let list: Vec<String> = seqs.iter().map(i64::to_string).collect();
        out.push((words.to_string(), format!("{{{}}}", list.join(","))));
    }
    Ok(out)
}

/// The planner's estimate of the index documents matching `tsquery`.
async fn estimated_documents(
    client: &deadpool_postgres::Object,
    tsquery: &str,
) -> Result<f64, StoreError> {
    let row = client
        .query_one(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM trace_text WHERE doc @@ $1::text::tsquery",
            &[&tsquery],
        )
        .await
        .map_err(pg_err)?;
    let plan: Value = row.try_get(0).map_err(pg_err)?;
    Ok(plan
        .pointer("/0/Plan/Plan Rows")
        .and_then(Value::as_f64)
        .unwrap_or(0.0))
}

/// The trace query without its order and limit.
fn filtered(q: &TraceQuery, matches: &[(String, String)]) -> Sql {
    let mut sql = Sql::new(format!("SELECT {TRACE_COLUMNS} FROM traces t WHERE true"));
    if let Some(filter) = &q.filter {
        sql.push(" AND ");
        sql.lowered(&crate::layout::lower(filter, matches));
    }
    sql
}

/// The query for one run of candidates: after `cursor` (default order) or from `offset`
/// (custom order), at most `limit` rows.
fn candidates(
    q: &TraceQuery,
    matches: &[(String, String)],
    cursor: Option<Cursor>,
    offset: usize,
    limit: usize,
) -> Sql {
    let mut sql = filtered(q, matches);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if q.order.is_empty() {
        if let Some(c) = cursor {
            sql.push(" AND (t.start_ns, t.seq) < (")
                .arg(c.start_ns, "bigint")
                .push(", ")
                .arg(c.seq, "bigint")
                .push(")");
        }
        sql.push(" ORDER BY t.start_ns DESC, t.seq DESC LIMIT ")
            .arg(limit, "bigint");
    } else {
        // Columns come from a closed list, never from the caller's text.
        sql.push(" ORDER BY ");
        for (key, direction) in &q.order {
            sql.push("t.")
                .push(key.column())
                .push(" ")
                .push(direction.sql())
                .push(", ");
        }
        sql.push("t.start_ns DESC, t.seq DESC LIMIT ")
            .arg(limit, "bigint")
            .push(" OFFSET ")
            .arg(i64::try_from(offset).unwrap_or(i64::MAX), "bigint");
    }
    sql
}

async fn run(
    client: &deadpool_postgres::Object,
    sql: &Sql,
) -> Result<Vec<(i64, TraceSummary)>, StoreError> {
    // Built per request: prepared unnamed, not cached.
    client
        .query(sql.text.as_str(), &sql.params())
        .await
        .map_err(pg_err)?
        .iter()
        .map(trace_row)
        .collect()
}

pub(crate) async fn list_traces(
    client: &deadpool_postgres::Object,
    q: &TraceQuery,
    common_text: usize,
) -> Result<TracePage, StoreError> {
    let post: Vec<&loupe_query::Expr> = q
        .filter
        .as_ref()
        .map(loupe_query::post::span_attribute_conditions)
        .unwrap_or_default();
    let matches = text_matches(client, q.filter.as_ref(), common_text).await?;
    let limit = q.limit.max(1);
    let mut rows: Vec<(i64, TraceSummary)> = Vec::with_capacity(limit + 1);
    let mut consumed = 0usize;
    if post.is_empty() {
        rows = run(
            client,
            &candidates(q, &matches, q.cursor, q.offset, limit + 1),
        )
        .await?;
        consumed = rows.len().min(limit);
    } else {
        // Candidates come in runs; each run's spans are read at once and checked here.
        let mut cursor = q.cursor;
        let mut offset = q.offset;
        'scan: loop {
            let chunk = run(client, &candidates(q, &matches, cursor, offset, POST_CHUNK)).await?;
            let end = chunk.len() < POST_CHUNK;
            offset += chunk.len();
            cursor = chunk.last().map(|(seq, t)| Cursor {
                start_ns: to_i64(t.start_ns),
                seq: *seq,
            });
            let seqs: Vec<i64> = chunk.iter().map(|(seq, _)| *seq).collect();
            let attrs = span_attributes(client, &seqs).await?;
            for (seq, t) in chunk {
                if consumed >= MAX_POST_SCAN && rows.len() < limit {
                    // The row that ended the scan was not checked: the next page starts at it.
                    let traces = rows.into_iter().map(|(_, t)| t).collect();
                    return Ok(TracePage {
                        traces,
                        next_cursor: Some(Cursor {
                            start_ns: to_i64(t.start_ns),
                            seq: seq.saturating_add(1),
                        }),
                        consumed,
                    });
                }
                let spans = attrs.get(&seq).map(Vec::as_slice).unwrap_or(&[]);
                if !loupe_query::post::trace_matches(&post, spans.iter()) {
                    consumed += 1;
                    continue;
                }
                rows.push((seq, t));
                if rows.len() > limit {
                    break 'scan;
                }
                consumed += 1;
            }
            if end {
                break;
            }
        }
    }
    Ok(TracePage::from_rows(rows, limit, consumed))
}

/// The attributes of every span of these traces.
async fn span_attributes(
    client: &deadpool_postgres::Object,
    seqs: &[i64],
) -> Result<HashMap<i64, Vec<Map<String, Value>>>, StoreError> {
    if seqs.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT s.trace_seq, s.body_group, s.body_idx FROM spans s \
             WHERE s.trace_seq = ANY($1::bigint[])",
        )
        .await
        .map_err(pg_err)?;
    let mut refs: Vec<(i64, BodyRef)> = Vec::new();
    for r in client.query(&stmt, &[&seqs]).await.map_err(pg_err)? {
        refs.push((
            r.try_get(0).map_err(pg_err)?,
            (r.try_get(1).map_err(pg_err)?, r.try_get(2).map_err(pg_err)?),
        ));
    }
    let groups = Groups::load(client, refs.iter().map(|(_, (g, _))| *g).collect()).await?;
    let mut out: HashMap<i64, Vec<Map<String, Value>>> = HashMap::new();
    for (seq, at) in refs {
        out.entry(seq)
            .or_default()
            .push(groups.get_or_note(at).attributes);
    }
    Ok(out)
}

pub(crate) async fn get_trace(
    client: &deadpool_postgres::Object,
    trace_id: TraceId,
    which: &SpanBodies,
) -> Result<Option<TraceDetail>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {TRACE_COLUMNS} FROM traces t WHERE t.trace_id = $1"
        ))
        .await
        .map_err(pg_err)?;
    let Some(row) = client
        .query_opt(&stmt, &[&&trace_id.0[..]])
        .await
        .map_err(pg_err)?
    else {
        return Ok(None);
    };
    let (seq, summary) = trace_row(&row)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SPAN_COLUMNS} FROM spans s WHERE s.trace_seq = $1 \
             ORDER BY s.start_ns, s.span_id"
        ))
        .await
        .map_err(pg_err)?;
    let mut spans = Vec::with_capacity(usize::try_from(summary.span_count).unwrap_or(0));
    for r in client.query(&stmt, &[&seq]).await.map_err(pg_err)? {
        let (span, at) = span_row(&r, 0)?;
        let wanted = match which {
            SpanBodies::All => true,
            SpanBodies::None => false,
            SpanBodies::Only(id) => span.span_id == *id,
            SpanBodies::Roots => span.parent_id.is_none(),
        };
        spans.push((span, wanted.then_some(at)));
    }
    let groups = Groups::load(
        client,
        spans.iter().filter_map(|(_, at)| at.map(|a| a.0)).collect(),
    )
    .await?;
    let mut spans: Vec<StoredSpan> = spans
        .into_iter()
        .map(|(mut span, at)| {
            if let Some(at) = at {
                span.body = groups.get_or_note(at);
            }
            span
        })
        .collect();
    // Events that arrived as log records join their spans.
    let stmt = client
        .prepare_cached(
            "SELECT span_id, event FROM span_events WHERE trace_id = $1 ORDER BY span_id, time_ns",
        )
        .await
        .map_err(pg_err)?;
    for r in client
        .query(&stmt, &[&&trace_id.0[..]])
        .await
        .map_err(pg_err)?
    {
        let span_id = SpanId::from_i64(r.try_get(0).map_err(pg_err)?);
        let Ok(event) = serde_json::from_value(r.try_get::<_, Value>(1).map_err(pg_err)?) else {
            continue;
        };
        if let Some(span) = spans.iter_mut().find(|s| s.span_id == span_id) {
            span.body.events.push(event);
        }
    }
    for span in &mut spans {
        span.body.events.sort_by_key(|e| e.time_ns);
    }
    Ok(Some(TraceDetail { summary, spans }))
}
