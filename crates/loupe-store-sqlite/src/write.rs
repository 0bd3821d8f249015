//! The write path: span batches applied in the writer's open transaction (see `redo.rs`), trace
//! roll-ups kept incrementally.
//!
//! Spans are grouped by trace. A trace seen for the first time is inserted once, with roll-ups
//! already computed from its spans in the batch; a trace already stored gets its new spans
//! inserted (duplicates ignored) and one UPDATE that adds what they contribute. A row a client
//! created before any span arrived (MLflow's StartTraceV3) takes its times from the first spans,
//! and keeps the state the client reported.

use std::collections::{HashMap, HashSet};

use loupe_model::{SpanId, TraceId, TraceSummary};
use loupe_store::{
    EncodedSpan, StoreError, TraceDelta, WriteOutcome, root_status_sql, trace_status_sql,
};
use rusqlite::{CachedStatement, Connection, Statement, params};

use crate::bodylog::LogWriter;
use crate::db_err;
use crate::redo::{self, BodyAt};

pub(crate) use loupe_store::to_i64;

const INSERT_SPAN: &str = "INSERT INTO spans (trace_seq, span_id, parent_id, name, span_type, \
     start_ns, end_ns, status, status_message, model, input_tokens, output_tokens, total_tokens, \
     provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, body_pos, \
     body_len, body_idx) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21) \
     ON CONFLICT (trace_seq, span_id) DO NOTHING";

const INSERT_TRACE: &str = "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, \
     duration_ms, status, root_status, has_root, span_count, error_count, input_tokens, \
     output_tokens, total_tokens, metadata, cost_usd, session_id, user_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// The `seq` of the trace whose id is `?1` (NULL if none), from the two tables of trace ids.
///
/// Trace ids are random, so a unique index of them takes every new trace at a random page;
/// once that index is larger than a commit's new traces, each commit dirtied (and copied into
/// the WAL) about one page per new trace, more as the store grew. New ids go to the small
/// `trace_ids_recent`, whose pages stay few; once it holds [`MERGE_RECENT_IDS`] the writer
/// moves them into `trace_ids` in id order ([`merge_recent_ids`]), one pass over its pages.
pub(crate) const SEQ_OF_ID: &str = "(SELECT seq FROM trace_ids_recent WHERE trace_id = ?1 \
     UNION ALL SELECT seq FROM trace_ids WHERE trace_id = ?1 LIMIT 1)";

/// New trace ids past which the writer moves them into the large table (see [`SEQ_OF_ID`]).
pub(crate) const MERGE_RECENT_IDS: usize = 262_144;

/// And past this share of all traces: a merge rewrites about every page of the large table,
/// so with a fixed batch its cost per trace grew with the store; a batch in proportion keeps
/// it flat, while the recent table stays a few thousand pages, in the writer's cache (figures:
/// docs/performance.md, "Start indexes and trace ids").
pub(crate) const MERGE_SHARE: usize = 16;

/// About how many traces the store holds (the last trace number, so deleted ones count):
/// a lookup of the table's last row, not a count.
pub(crate) fn traces_stored(conn: &Connection) -> Result<usize, StoreError> {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM traces")
        .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(db_err)
}

/// Moves the recent trace ids into the large table, in the open transaction.
///
/// An id goes into `trace_ids_recent` only when neither table has it, and a deleted trace's id
/// leaves both, so no id is in both tables and `OR IGNORE` never drops one: it is there because
/// a statement that could stop half-way on a conflict makes SQLite keep, in memory, the
/// original of every page it changes (figures: docs/performance.md, "Memory").
pub(crate) fn merge_recent_ids(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "INSERT OR IGNORE INTO trace_ids (trace_id, seq) \
         SELECT trace_id, seq FROM trace_ids_recent; \
         DELETE FROM trace_ids_recent;",
    )
    .map_err(db_err)
}

/// Records a new trace's id (see [`SEQ_OF_ID`]).
pub(crate) fn add_trace_id(
    conn: &Connection,
    trace_id: TraceId,
    seq: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO trace_ids_recent (trace_id, seq) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![&trace_id.0[..], seq]))
        .map_err(db_err)?;
    Ok(())
}

/// Forgets a deleted trace's id.
pub(crate) fn remove_trace_id(conn: &Connection, trace_id: &[u8]) -> Result<(), StoreError> {
    for table in ["trace_ids_recent", "trace_ids"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE trace_id = ?1"))
            .and_then(|mut st| st.execute([trace_id]))
            .map_err(db_err)?;
    }
    Ok(())
}

const UPDATE_TRACE: &str = concat!(
    "UPDATE traces SET \
     start_ns = CASE WHEN span_count = 0 THEN ?2 ELSE min(start_ns, ?2) END, \
     end_ns = CASE WHEN span_count = 0 THEN ?3 ELSE max(end_ns, ?3) END, \
     duration_ms = CASE WHEN span_count = 0 THEN (?3 - ?2) / 1000000 \
                   ELSE (max(end_ns, ?3) - min(start_ns, ?2)) / 1000000 END, \
     span_count = span_count + ?4, \
     error_count = error_count + ?5, \
     input_tokens = input_tokens + ?6, \
     output_tokens = output_tokens + ?7, \
     total_tokens = total_tokens + ?8, \
     name = CASE WHEN ?9 IS NOT NULL THEN ?9 \
                 WHEN has_root = 0 AND ?10 IS NOT NULL AND (name = '' OR ?11 < start_ns) THEN ?10 \
                 ELSE name END, \
     has_root = has_root OR (?9 IS NOT NULL), \
     root_status = ",
    root_status_sql!("json_extract(info, '$.state')", "root_status", "?12"),
    ", \
     status = ",
    trace_status_sql!(
        root_status_sql!("json_extract(info, '$.state')", "root_status", "?12"),
        "error_count + ?5"
    ),
    ", \
     cost_usd = cost_usd + ?13, \
     session_id = coalesce(session_id, ?14), \
     user_id = coalesce(user_id, ?15) \
     WHERE seq = ?1"
);

/// Where a batch's bodies go.
pub(crate) enum Place<'a> {
    /// A batch arriving now: each group is appended to the body log once its first span is
    /// stored (a group of duplicates is never written).
    Live {
        log: &'a mut LogWriter,
        /// Groups already appended in this batch: group key → position.
        placed: HashMap<usize, i64>,
    },
    /// A batch read back from the redo log: its bodies are in the body log already.
    Replay,
}

/// Inserts a span; where its body went, or `None` if the span was already stored. `recorded`
/// is where a replayed span's body is.
fn insert_span(
    stmt: &mut Statement<'_>,
    place: &mut Place<'_>,
    seq: i64,
    s: &EncodedSpan,
    recorded: Option<BodyAt>,
) -> Result<Option<BodyAt>, StoreError> {
    let (pos, len, placed) = match place {
        Place::Live { log, placed } => {
            let len = s.body.group.len() as i64;
            match placed.get(&s.body.group_key()) {
                Some(pos) => (*pos, len, true),
                None => (log.next_position(), len, false),
            }
        }
        Place::Replay => match recorded {
            Some((pos, len)) => (pos, len, true),
            None => return Err(diverged()),
        },
    };
    let changed = stmt
        .execute(params![
            seq,
            s.span_id.to_i64(),
            s.parent_id.map(|p| p.to_i64()),
            s.name,
            s.columns.span_type,
            to_i64(s.start_ns),
            to_i64(s.end_ns),
            s.status.code(),
            s.status_message,
            s.columns.model,
            s.columns.input_tokens.map(to_i64),
            s.columns.output_tokens.map(to_i64),
            s.columns.total_tokens.map(to_i64),
            s.columns.provider,
            s.columns.cache_read_tokens.map(to_i64),
            s.columns.cache_write_tokens.map(to_i64),
            s.columns.reasoning_tokens.map(to_i64),
            s.columns.cost_usd,
            pos,
            len,
            i64::from(s.body.index),
        ])
        .map_err(db_err)?;
    if changed == 0 {
        return Ok(None);
    }
    if !placed && let Place::Live { log, placed } = place {
        let at = log.append(&s.body.group);
        placed.insert(s.body.group_key(), at);
    }
    Ok(Some((pos, len)))
}

fn diverged() -> StoreError {
    StoreError::internal("redo log replay diverged: a span recorded as a duplicate is not stored")
}

/// Applies a batch inside the writer's open transaction (the caller begins and commits it).
/// Live, the batch's bodies are queued on the log (written by the caller) and the batch's redo
/// record is appended to `redo`. Replayed, `recorded` holds where each span's body is.
pub(crate) fn apply_spans(
    conn: &Connection,
    mut place: Place<'_>,
    spans: &[EncodedSpan],
    recorded: Option<&[Option<BodyAt>]>,
    redo: &mut Vec<u8>,
    new_traces: &mut usize,
) -> Result<WriteOutcome, StoreError> {
    // Group by trace, keeping the order traces were first seen in; each span with where its
    // body is (known on replay, filled in as it is stored live).
    let mut order: Vec<TraceId> = Vec::with_capacity(spans.len() / 4 + 1);
    let mut groups: HashMap<TraceId, Vec<(&EncodedSpan, Option<BodyAt>)>> =
        HashMap::with_capacity(spans.len() / 4 + 1);
    for (i, s) in spans.iter().enumerate() {
        groups
            .entry(s.trace_id)
            .or_insert_with(|| {
                order.push(s.trace_id);
                Vec::with_capacity(8)
            })
            .push((s, recorded.and_then(|r| r.get(i).copied().flatten())));
    }
    let mut outcome = WriteOutcome::default();
    let mut stmts = Statements {
        conn,
        insert_span: conn.prepare_cached(INSERT_SPAN).map_err(db_err)?,
        insert_trace: conn.prepare_cached(INSERT_TRACE).map_err(db_err)?,
        find_trace: conn
            .prepare_cached(&format!("SELECT {SEQ_OF_ID}"))
            .map_err(db_err)?,
        new_traces: 0,
        update_trace: conn.prepare_cached(UPDATE_TRACE).map_err(db_err)?,
        span_exists: conn
            .prepare_cached("SELECT 1 FROM spans WHERE trace_seq = ?1 AND span_id = ?2")
            .map_err(db_err)?,
    };
    for trace_id in &order {
        let Some(group) = groups.get_mut(trace_id) else {
            continue;
        };
        let meta = write_trace(&mut stmts, *trace_id, group, &mut place, &mut outcome)?;
        if matches!(place, Place::Live { .. }) {
            redo::put_trace(redo, *trace_id, &meta, group);
        }
    }
    *new_traces += stmts.new_traces;
    Ok(outcome)
}

/// The batch's statements, prepared once per transaction.
struct Statements<'c> {
    conn: &'c Connection,
    insert_span: CachedStatement<'c>,
    insert_trace: CachedStatement<'c>,
    find_trace: CachedStatement<'c>,
    update_trace: CachedStatement<'c>,
    span_exists: CachedStatement<'c>,
    /// Traces created so far.
    new_traces: usize,
}

/// Writes the spans of one trace; returns the trace metadata (JSON) for the redo record, and
/// leaves beside each span where its body is (`None`: a duplicate).
///
/// The id is looked up first (see [`SEQ_OF_ID`]). A new trace's row is inserted with the
/// roll-ups of its spans; a stored trace gets the spans it does not have, then one update.
fn write_trace(
    stmts: &mut Statements<'_>,
    trace_id: TraceId,
    group: &mut [(&EncodedSpan, Option<BodyAt>)],
    place: &mut Place<'_>,
    outcome: &mut WriteOutcome,
) -> Result<String, StoreError> {
    let Some(&(first, _)) = group.first() else {
        return Ok(String::new());
    };
    let stored: Option<i64> = stmts
        .find_trace
        .query_row([&trace_id.0[..]], |r| r.get(0))
        .map_err(db_err)?;
    let meta = serde_json::to_string(&first.trace_metadata).unwrap_or_else(|_| "{}".into());
    if let Some(seq) = stored {
        add_spans(stmts, seq, group, place, outcome)?;
        return Ok(meta);
    }
    // A new trace: roll up in memory (a span repeated within the batch counts once).
    let mut seen: HashSet<SpanId> = HashSet::with_capacity(group.len());
    let unique: Vec<bool> = group.iter().map(|(s, _)| seen.insert(s.span_id)).collect();
    let mut delta = TraceDelta::new();
    for ((s, _), _) in group.iter().zip(&unique).filter(|(_, u)| **u) {
        delta.add(s);
    }
    let status = TraceSummary::status_from(
        delta.root.as_ref().map(|(_, st)| *st),
        u64::try_from(delta.errors).unwrap_or(0),
    );
    let name = delta
        .root
        .as_ref()
        .map(|(n, _)| n.as_str())
        .or(delta.earliest.as_ref().map(|(_, n)| n.as_str()))
        .unwrap_or("");
    stmts
        .insert_trace
        .execute(params![
            &trace_id.0[..],
            first.project,
            name,
            delta.min_start,
            delta.max_end,
            delta.max_end.saturating_sub(delta.min_start) / 1_000_000,
            status.code(),
            delta.root_status(),
            delta.root.is_some(),
            delta.spans,
            delta.errors,
            delta.input_tokens,
            delta.output_tokens,
            delta.total_tokens,
            meta,
            delta.cost_usd,
            delta.session_id,
            delta.user_id,
        ])
        .map_err(db_err)?;
    let seq = stmts.conn.last_insert_rowid();
    add_trace_id(stmts.conn, trace_id, seq)?;
    stmts.new_traces += 1;
    for ((s, body), _) in group.iter_mut().zip(&unique).filter(|(_, u)| **u) {
        *body = insert_span(&mut stmts.insert_span, place, seq, s, *body)?;
        if body.is_none() {
            // A new trace has no stored span, so only a replay can get here.
            return Err(diverged());
        }
    }
    let stored = seen.len();
    outcome.inserted += stored as u64;
    outcome.duplicates += (group.len() - stored) as u64;
    Ok(meta)
}

/// Adds to the stored trace `seq` the spans it does not have, then what they contribute.
fn add_spans(
    stmts: &mut Statements<'_>,
    seq: i64,
    group: &mut [(&EncodedSpan, Option<BodyAt>)],
    place: &mut Place<'_>,
    outcome: &mut WriteOutcome,
) -> Result<(), StoreError> {
    let mut delta = TraceDelta::new();
    for (s, body) in group.iter_mut() {
        let stored = if matches!(place, Place::Replay) && body.is_none() {
            // Recorded as a duplicate: it must be stored already.
            if !stmts
                .span_exists
                .exists(params![seq, s.span_id.to_i64()])
                .map_err(db_err)?
            {
                return Err(diverged());
            }
            None
        } else {
            insert_span(&mut stmts.insert_span, place, seq, s, *body)?
        };
        *body = stored;
        if stored.is_some() {
            delta.add(s);
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    if delta.spans > 0 {
        stmts
            .update_trace
            .execute(params![
                seq,
                delta.min_start,
                delta.max_end,
                delta.spans,
                delta.errors,
                delta.input_tokens,
                delta.output_tokens,
                delta.total_tokens,
                delta.root.as_ref().map(|(n, _)| n.as_str()),
                delta.earliest.as_ref().map(|(_, n)| n.as_str()),
                delta.earliest.as_ref().map(|(t, _)| *t),
                delta.root_status(),
                delta.cost_usd,
                delta.session_id,
                delta.user_id,
            ])
            .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) fn write_events(
    conn: &mut Connection,
    events: &[loupe_store::EncodedEvent],
) -> Result<u64, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO span_events (trace_id, span_id, time_ns, event) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db_err)?;
        for e in events {
            let json = serde_json::to_string(&e.event).map_err(StoreError::internal)?;
            insert
                .execute(params![
                    &e.trace_id.0[..],
                    e.span_id.to_i64(),
                    to_i64(e.event.time_ns),
                    json
                ])
                .map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(events.len() as u64)
}
