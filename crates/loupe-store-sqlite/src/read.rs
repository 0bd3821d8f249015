//! The read path: keyset-paginated trace lists and whole traces.

use loupe_model::{SpanId, SpanStatus, TraceId, TraceSummary};
use std::collections::HashMap;

use loupe_store::{
    Cursor, OrderKey, SpanBodies, SpanBody, SpanColumns, StoreError, StoredSpan, TraceDetail,
    TracePage, TraceQuery, decode_bodies,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::{Map, Value};

use crate::annotate::json_column;
use crate::bodylog::LogReader;
use crate::db_err;
use crate::layout::{BUCKET, SqliteLayout, bind, start_bucket};
use crate::write::{SEQ_OF_ID, to_i64};

/// The columns that locate a span's body, in this order, for [`Bodies::get`].
pub(crate) const BODY_COLUMNS: &str = "s.body_pos, s.body_len, s.body_idx, \
     CASE WHEN s.body_pos IS NULL THEN (SELECT body FROM span_bodies WHERE id = s.rowid) END";

/// Reads span bodies, decompressing each group once per request.
pub(crate) struct Bodies<'a> {
    log: &'a LogReader,
    groups: HashMap<i64, Vec<SpanBody>>,
}

/// Where a span's body is.
pub(crate) enum BodyRef {
    /// In the body log: body `idx` of the group of `len` bytes at `pos`.
    InLog { pos: i64, len: i64, idx: usize },
    /// Inline, for rows written before the body log (the `span_bodies` table).
    Inline(Vec<u8>),
}

impl BodyRef {
    /// From the [`BODY_COLUMNS`]: a row holds either all three log columns or, from before the
    /// log, none of them and an inline body. Any other combination is a corrupt row.
    fn from_columns(
        pos: Option<i64>,
        len: Option<i64>,
        idx: Option<i64>,
        inline: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        match (pos, len, idx, inline) {
            (Some(pos), Some(len), Some(idx), None) => match usize::try_from(idx) {
                Ok(idx) => Ok(Self::InLog { pos, len, idx }),
                Err(_) => Err(StoreError::internal(format!(
                    "corrupt span row: body index {idx}"
                ))),
            },
            (None, None, None, Some(inline)) => Ok(Self::Inline(inline)),
            (pos, len, idx, inline) => Err(StoreError::internal(format!(
                "corrupt span row: its columns locate no body (position {pos:?}, length {len:?}, \
                 index {idx:?}, inline body {})",
                inline.map_or("absent", |_| "present")
            ))),
        }
    }
}

/// Reads the [`BODY_COLUMNS`] starting at column `i`. Columns that locate no body give the
/// inner error, for the caller to report on that span alone (see [`Bodies::get_or_note`]).
pub(crate) fn body_ref(r: &Row<'_>, i: usize) -> rusqlite::Result<Result<BodyRef, StoreError>> {
    Ok(BodyRef::from_columns(
        r.get(i)?,
        r.get(i + 1)?,
        r.get(i + 2)?,
        r.get(i + 3)?,
    ))
}

impl<'a> Bodies<'a> {
    pub(crate) fn new(log: &'a LogReader) -> Self {
        Self {
            log,
            groups: HashMap::new(),
        }
    }

    /// The body of one span.
    pub(crate) fn get(&mut self, at: BodyRef) -> Result<SpanBody, StoreError> {
        match at {
            BodyRef::InLog { pos, len, idx } => {
                if !self.groups.contains_key(&pos) {
                    let blob = self.log.read(pos, len)?;
                    self.groups.insert(pos, decode_bodies(&blob)?);
                }
                self.groups
                    .get(&pos)
                    .and_then(|g| g.get(idx))
                    .cloned()
                    .ok_or_else(|| {
                        StoreError::internal(format!("corrupt span body: no body at index {idx}"))
                    })
            }
            BodyRef::Inline(inline) => Ok(decode_bodies(&inline)?
                .into_iter()
                .next()
                .unwrap_or_default()),
        }
    }

    /// Like [`Bodies::get`], but a body that cannot be read (or a row that locates none, from
    /// [`body_ref`]) becomes an empty one that says so (one damaged body must not hide the rest
    /// of a trace).
    pub(crate) fn get_or_note(&mut self, at: Result<BodyRef, StoreError>) -> SpanBody {
        at.and_then(|at| self.get(at)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable span body");
            let mut body = SpanBody::default();
            body.attributes
                .insert("loupe.body_error".into(), Value::String(e.to_string()));
            body
        })
    }
}

pub(crate) const TRACE_COLUMNS: &str = "seq, trace_id, project, name, start_ns, end_ns, status, \
     has_root, span_count, error_count, input_tokens, output_tokens, total_tokens, tags, metadata, \
     cost_usd, session_id, user_id, info";

/// The span columns of [`SpanColumns`], in its field order, as [`span_columns`] reads them.
pub(crate) const SPAN_COLUMNS: &str = "s.span_type, s.model, s.provider, s.input_tokens, \
     s.output_tokens, s.total_tokens, s.cache_read_tokens, s.cache_write_tokens, \
     s.reasoning_tokens, s.cost_usd";
/// How many columns [`SPAN_COLUMNS`] names.
pub(crate) const SPAN_COLUMN_COUNT: usize = 10;

/// Reads the [`SPAN_COLUMNS`] of a row, selected from column `at` on.
pub(crate) fn span_columns(r: &Row, at: usize) -> rusqlite::Result<SpanColumns> {
    let count =
        |i: usize| -> rusqlite::Result<Option<u64>> { Ok(r.get::<_, Option<i64>>(at + i)?.map(u)) };
    Ok(SpanColumns {
        span_type: r.get(at)?,
        model: r.get(at + 1)?,
        provider: r.get(at + 2)?,
        input_tokens: count(3)?,
        output_tokens: count(4)?,
        total_tokens: count(5)?,
        cache_read_tokens: count(6)?,
        cache_write_tokens: count(7)?,
        reasoning_tokens: count(8)?,
        cost_usd: r.get(at + 9)?,
    })
}

pub(crate) fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn trace_row(r: &Row<'_>) -> rusqlite::Result<(i64, TraceSummary)> {
    let id: Vec<u8> = r.get(1)?;
    let trace_id = TraceId::from_slice(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok((
        r.get(0)?,
        TraceSummary {
            trace_id,
            project: r.get(2)?,
            name: r.get(3)?,
            start_ns: u(r.get(4)?),
            end_ns: u(r.get(5)?),
            status: SpanStatus::from_code(r.get(6)?),
            has_root: r.get::<_, i64>(7)? != 0,
            span_count: u(r.get(8)?),
            error_count: u(r.get(9)?),
            input_tokens: u(r.get(10)?),
            output_tokens: u(r.get(11)?),
            total_tokens: u(r.get(12)?),
            tags: json_column(r, 13)?,
            metadata: json_column(r, 14)?,
            cost_usd: r.get(15)?,
            session_id: r.get(16)?,
            user_id: r.get(17)?,
            info: json_column(r, 18)?,
        },
    ))
}

/// Candidate rows a page may examine when span-attribute conditions filter after SQL; past it
/// the page ends early with a cursor, so one request stays bounded.
const MAX_POST_SCAN: usize = 20_000;

/// Matches past which a `text ~` query counts as common (see [`text_plan`]).
pub(crate) const COMMON_TEXT: i64 = 5_000;

/// Most index terms a query's last word (a prefix) is spelled out as.
const MAX_PREFIX_TERMS: usize = 16;

/// The FTS5 query for `words`, with its last word (a prefix) spelled out as the terms of the
/// index that start with it: FTS5 answers a prefix by merging every such term's list of
/// documents, over the whole index, on every lookup; an OR of a few whole terms seeks instead.
fn fts5_query(conn: &Connection, words: &str) -> Result<Option<String>, StoreError> {
    let terms = loupe_model::text::query_terms(words);
    let Some((last, head)) = terms.split_last() else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT term FROM fts.trace_text_terms WHERE term >= ?1 AND term < ?2 \
             ORDER BY term LIMIT ?3",
        )
        .map_err(db_err)?;
    let upper = format!("{last}{}", char::MAX);
    let found: Vec<String> = stmt
        .query_map(
            rusqlite::params![last, upper, MAX_PREFIX_TERMS as i64 + 1],
            |r| r.get(0),
        )
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let quote = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    let mut q: Vec<String> = head.iter().map(|t| quote(t)).collect();
    if found.len() > MAX_PREFIX_TERMS {
        q.push(format!("{} *", quote(last)));
    } else if found.is_empty() {
        // No term starts with it: the query matches nothing, and says so exactly.
        q.push(quote(last));
    } else {
        let any: Vec<String> = found.iter().map(|t| quote(t)).collect();
        q.push(format!("({})", any.join(" OR ")));
    }
    Ok(Some(q.join(" AND ")))
}

/// The FTS5 queries of `filter`'s `text ~` conditions, and whether one of them is common (more
/// than [`COMMON_TEXT`] documents): then a newest-first page probes the index trace by trace
/// and finds its page among the newest traces after a few lookups; for rarer words the list of
/// matches is short and cheapest to build whole.
fn text_plan(
    conn: &Connection,
    filter: &loupe_query::Expr,
    common_text: i64,
) -> Result<(bool, Vec<(String, String)>), StoreError> {
    let mut common = false;
    let mut queries = Vec::new();
    for words in loupe_query::sql::full_text_conditions(filter) {
        let Some(q) = fts5_query(conn, words)? else {
            continue;
        };
        if !common {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM (SELECT 1 FROM fts.trace_text \
                     WHERE trace_text MATCH ?1 LIMIT ?2)",
                    rusqlite::params![q, common_text.saturating_add(1)],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            common = n > common_text;
        }
        queries.push((words.to_string(), q));
    }
    Ok((common, queries))
}

/// Matches up to which an assessment condition counts as rare (see
/// [`rare_assessment_conditions`]).
const RARE_ASSESSMENTS: i64 = 5_000;

/// The assessment conditions joined by the filter's top AND that few traces satisfy (at most
/// [`RARE_ASSESSMENTS`], counted on `assessments_by_value`). A newest-first page checks traces
/// one by one and stops when it is full, which for a common condition is soon; for a rare one
/// it would walk most of the store, where the list of its matches is short to read and sort.
fn rare_assessment_conditions(
    conn: &Connection,
    filter: &loupe_query::Expr,
) -> Result<Vec<loupe_query::Expr>, StoreError> {
    let conjuncts: Vec<&loupe_query::Expr> = match filter {
        loupe_query::Expr::And(items) => items.iter().collect(),
        e => vec![e],
    };
    let mut rare = Vec::new();
    for c in conjuncts {
        let Some(matches) = loupe_query::sql::assessment_matches_of(c, &SqliteLayout::default())
        else {
            continue;
        };
        let mut args = Vec::new();
        bind(matches.params, &mut args);
        args.push(SqlValue::Integer(RARE_ASSESSMENTS + 1));
        let n: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM ({} LIMIT ?)", matches.sql))
            .and_then(|mut stmt| stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
            .map_err(db_err)?;
        if n <= RARE_ASSESSMENTS {
            rare.push(c.clone());
        }
    }
    Ok(rare)
}

/// The SQL of a page of traces and its parameters. With `post_filtered`, rows are read until
/// the caller stops (conditions on span attributes are checked after SQL).
pub(crate) fn page_sql(
    conn: &Connection,
    q: &TraceQuery,
    common_text: i64,
    post_filtered: bool,
) -> Result<(String, Vec<SqlValue>), StoreError> {
    // The conditions and order; the SELECT goes in front once the index is chosen.
    let mut sql = String::from(" WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    let mut matches_listed = false;
    if let Some(filter) = &q.filter {
        let (common, queries) = text_plan(conn, filter, common_text)?;
        let probe = if common && q.order.is_empty() {
            Some(
                conn.query_row(
                    "SELECT coalesce(max(trace_seq), 0) FROM fts.text_parts",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db_err)?,
            )
        } else {
            None
        };
        let listed = rare_assessment_conditions(conn, filter)?;
        matches_listed = (probe.is_none() && !queries.is_empty()) || !listed.is_empty();
        let layout = SqliteLayout {
            probe,
            queries,
            listed,
        };
        let lowered = loupe_query::sql::lower_traces(filter, &layout);
        sql.push_str(" AND ");
        sql.push_str(&lowered.sql);
        bind(lowered.params, &mut args);
    }
    let fetch = if post_filtered {
        -1
    } else {
        q.limit.max(1) as i64 + 1
    };
    if q.order.is_empty() {
        if let Some(c) = q.cursor {
            sql.push_str(&format!(" AND {BUCKET} <= ? AND (start_ns, seq) < (?, ?)"));
            args.push(SqlValue::Integer(start_bucket(c.start_ns)));
            args.push(SqlValue::Integer(c.start_ns));
            args.push(SqlValue::Integer(c.seq));
        }
        // The start indexes hold each bucket's traces in arrival order: SQLite reads them
        // bucket by bucket, newest first, and sorts each bucket's rows until the page is full.
        sql.push_str(&format!(
            " ORDER BY {BUCKET} DESC, start_ns DESC, seq DESC LIMIT ?"
        ));
        args.push(SqlValue::Integer(fetch));
    } else {
        // Columns come from a closed list, never from the caller's text.
        sql.push_str(" ORDER BY ");
        for (key, direction) in &q.order {
            if *key == OrderKey::Start {
                // As the start indexes are ordered (see above).
                sql.push_str(&format!("{BUCKET} {}, ", direction.sql()));
            }
            sql.push_str(&format!("{} {}, ", key.column(), direction.sql()));
        }
        sql.push_str("start_ns DESC, seq DESC LIMIT ? OFFSET ?");
        args.push(SqlValue::Integer(fetch));
        args.push(SqlValue::Integer(
            i64::try_from(q.offset).unwrap_or(i64::MAX),
        ));
    }
    let indexed = page_index(q, matches_listed)
        .map(|index| format!(" INDEXED BY {index}"))
        .unwrap_or_default();
    Ok((
        format!("SELECT {TRACE_COLUMNS} FROM traces t{indexed}{sql}"),
        args,
    ))
}

/// The start index a page in start order reads, when SQLite's planner is not to choose.
///
/// The start indexes give the order bucket by bucket (see
/// [`BUCKET`]); SQLite then sorts each bucket's rows, and stops
/// when the page is full. Its planner does not count on that stop: left to choose, it read the
/// whole table and sorted it, even for a page without conditions, or walked the trace id index
/// checking a span condition on every trace, where the start index answered in milliseconds
/// (figures: docs/performance.md, "Start indexes and trace ids"). So a page in start order
/// names its index (`INDEXED BY`), except where another one finds the few traces asked for: a
/// session (`session_id = …`), or the list of traces holding a rare `text ~` word.
pub(crate) fn page_index(q: &TraceQuery, matches_listed: bool) -> Option<&'static str> {
    let by_start = match q.order.first() {
        None => true,
        Some((key, _)) => *key == OrderKey::Start,
    };
    if !by_start || matches_listed {
        return None;
    }
    let conjuncts: Vec<&loupe_query::Expr> = match &q.filter {
        Some(loupe_query::Expr::And(items)) => items.iter().collect(),
        Some(e) => vec![e],
        None => Vec::new(),
    };
    use loupe_query::ast::{CmpOp, Expr, Field, Literal, TraceField};
    let session = |e: &&Expr| {
        matches!(
            e,
            Expr::Cmp {
                field: Field::Trace(TraceField::SessionId),
                op: CmpOp::Eq,
                ..
            } | Expr::In {
                field: Field::Trace(TraceField::SessionId),
                negated: false,
                ..
            }
        )
    };
    if conjuncts.iter().any(session) {
        return None;
    }
    let failed = |e: &&Expr| {
        matches!(
            e,
            Expr::Cmp {
                field: Field::Trace(TraceField::Status),
                op: CmpOp::Eq,
                value: Literal::Int(code),
            } if *code == SpanStatus::Error.code()
        )
    };
    let project = |e: &&Expr| {
        matches!(
            e,
            Expr::Cmp {
                field: Field::Trace(TraceField::Project),
                op: CmpOp::Eq,
                ..
            }
        )
    };
    Some(if conjuncts.iter().any(project) {
        "traces_by_project_start"
    } else if conjuncts.iter().any(failed) {
        "traces_errors"
    } else {
        "traces_by_start"
    })
}

pub(crate) fn list_traces(
    conn: &Connection,
    log: &LogReader,
    q: &TraceQuery,
    common_text: i64,
) -> Result<TracePage, StoreError> {
    let post: Vec<&loupe_query::Expr> = q
        .filter
        .as_ref()
        .map(loupe_query::post::span_attribute_conditions)
        .unwrap_or_default();
    let limit = q.limit.max(1);
    let (sql, args) = page_sql(conn, q, common_text, !post.is_empty())?;
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows: Vec<(i64, TraceSummary)> = Vec::with_capacity(limit + 1);
    let mut consumed = 0usize;
    let mut cut_short = false;
    {
        let mut it = stmt
            .query_map(rusqlite::params_from_iter(args), trace_row)
            .map_err(db_err)?;
        let mut bodies = Bodies::new(log);
        for row in it.by_ref() {
            let (seq, t) = row.map_err(db_err)?;
            if !post.is_empty() {
                if consumed >= MAX_POST_SCAN && rows.len() < limit {
                    cut_short = true;
                    rows.push((seq, t));
                    break;
                }
                if !span_attributes_match(conn, &mut bodies, seq, &post)? {
                    consumed += 1;
                    continue;
                }
            }
            rows.push((seq, t));
            if rows.len() > limit {
                break;
            }
            consumed += 1;
        }
    }
    if cut_short && let Some((seq, t)) = rows.pop() {
        // The row that ended the scan was not checked: the next page starts at it.
        return Ok(TracePage {
            traces: rows.into_iter().map(|(_, t)| t).collect(),
            next_cursor: Some(Cursor {
                start_ns: to_i64(t.start_ns),
                seq: seq.saturating_add(1),
            }),
            consumed,
        });
    }
    Ok(TracePage::from_rows(rows, limit, consumed))
}

/// Whether some span of the trace satisfies each span-attribute condition.
fn span_attributes_match(
    conn: &Connection,
    bodies: &mut Bodies<'_>,
    seq: i64,
    conds: &[&loupe_query::Expr],
) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {BODY_COLUMNS} FROM spans s WHERE s.trace_seq = ?1"
        ))
        .map_err(db_err)?;
    let refs: Vec<Result<BodyRef, StoreError>> = stmt
        .query_map([seq], |r| body_ref(r, 0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let attrs: Vec<Map<String, Value>> = refs
        .into_iter()
        .map(|at| bodies.get_or_note(at).attributes)
        .collect();
    Ok(loupe_query::post::trace_matches(conds, attrs.iter()))
}

pub(crate) fn get_trace(
    log: &LogReader,
    conn: &Connection,
    trace_id: TraceId,
    which: &SpanBodies,
) -> Result<Option<TraceDetail>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TRACE_COLUMNS} FROM traces WHERE seq = {SEQ_OF_ID}"
        ))
        .map_err(db_err)?;
    let Some((seq, summary)) = stmt
        .query_row([&trace_id.0[..]], trace_row)
        .optional()
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT span_id, parent_id, name, start_ns, end_ns, status, status_message, \
             {SPAN_COLUMNS}, {BODY_COLUMNS} \
             FROM spans s WHERE s.trace_seq = ?1 ORDER BY s.start_ns, s.span_id",
        ))
        .map_err(db_err)?;
    let raw = stmt
        .query_map([seq], |r| {
            Ok((
                StoredSpan {
                    span_id: SpanId::from_i64(r.get(0)?),
                    parent_id: r.get::<_, Option<i64>>(1)?.map(SpanId::from_i64),
                    name: r.get(2)?,
                    start_ns: u(r.get(3)?),
                    end_ns: u(r.get(4)?),
                    status: SpanStatus::from_code(r.get(5)?),
                    status_message: r.get(6)?,
                    columns: span_columns(r, 7)?,
                    body: Default::default(),
                },
                body_ref(r, 7 + SPAN_COLUMN_COUNT)?,
            ))
        })
        .map_err(db_err)?;
    let mut spans = Vec::with_capacity(usize::try_from(summary.span_count).unwrap_or(0));
    let mut bodies = Bodies::new(log);
    for row in raw {
        let (mut span, at) = row.map_err(db_err)?;
        let wanted = match which {
            SpanBodies::All => true,
            SpanBodies::None => false,
            SpanBodies::Only(id) => span.span_id == *id,
            SpanBodies::Roots => span.parent_id.is_none(),
        };
        if wanted {
            span.body = bodies.get_or_note(at);
        }
        spans.push(span);
    }
    // Events that arrived as log records join their spans.
    let mut stmt = conn
        .prepare_cached(
            "SELECT span_id, event FROM span_events WHERE trace_id = ?1 ORDER BY span_id, time_ns",
        )
        .map_err(db_err)?;
    let extra = stmt
        .query_map([&trace_id.0[..]], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db_err)?;
    for row in extra {
        let (span_id, json) = row.map_err(db_err)?;
        let span_id = SpanId::from_i64(span_id);
        let Ok(event) = serde_json::from_str(&json) else {
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
