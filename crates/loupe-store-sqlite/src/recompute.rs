//! Re-deriving stored spans after a mapping or price change, in small transactions.

use loupe_store::{Recompute, RecomputeStats, StoreError, StoredDerived, Touched};
use rusqlite::{Connection, params};

use crate::bodylog::LogReader;
use crate::db_err;
use crate::read::{Bodies, BodyRef, SPAN_COLUMN_COUNT, SPAN_COLUMNS, body_ref, span_columns, u};
use crate::write::to_i64;

/// Spans per transaction: small enough that ingest waits at most a few milliseconds.
const CHUNK: i64 = 2_000;

/// A stored span as a recompute reads it.
struct SpanRow {
    rowid: i64,
    /// Where its body is; `None` when the recompute reads no bodies (a reprice).
    body: Option<Result<BodyRef, StoreError>>,
    stored: StoredDerived,
}

/// Processes the spans after `after` (a rowid); returns the last rowid seen, or `None` at the end.
pub(crate) fn recompute_chunk(
    conn: &mut Connection,
    log: &LogReader,
    how: &Recompute,
    after: i64,
    stats: &mut RecomputeStats,
) -> Result<Option<i64>, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    let rows = read_chunk(&tx, how, after)?;
    let Some(last) = rows.last().map(|r| r.rowid) else {
        return Ok(None);
    };
    let touched = update_spans(&tx, log, how, rows, stats)?;
    roll_up(&tx, &touched)?;
    stats.traces += touched.len() as u64;
    tx.commit().map_err(db_err)?;
    Ok(Some(last))
}

/// Reads up to [`CHUNK`] spans after `after` (a rowid), in rowid order.
fn read_chunk(conn: &Connection, how: &Recompute, after: i64) -> Result<Vec<SpanRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT s.rowid, s.trace_seq, s.start_ns, {SPAN_COLUMNS}, \
             s.body_pos, s.body_len, s.body_idx, \
             CASE WHEN ?2 AND s.body_pos IS NULL \
                  THEN (SELECT body FROM span_bodies WHERE id = s.rowid) END \
             FROM spans s WHERE s.rowid > ?1 ORDER BY s.rowid LIMIT ?3"
        ))
        .map_err(db_err)?;
    let want_body = matches!(how, Recompute::Reindex(_));
    stmt.query_map(params![after, want_body, CHUNK], |r| {
        Ok(SpanRow {
            rowid: r.get(0)?,
            body: if want_body {
                Some(body_ref(r, 3 + SPAN_COLUMN_COUNT)?)
            } else {
                None
            },
            stored: StoredDerived {
                trace_seq: r.get(1)?,
                start_ns: u(r.get(2)?),
                columns: span_columns(r, 3)?,
            },
        })
    })
    .map_err(db_err)?
    .collect::<Result<_, _>>()
    .map_err(db_err)
}

/// Recomputes each span and writes those that changed; returns the traces touched.
fn update_spans(
    conn: &Connection,
    log: &LogReader,
    how: &Recompute,
    rows: Vec<SpanRow>,
    stats: &mut RecomputeStats,
) -> Result<Touched, StoreError> {
    let mut touched = Touched::new();
    let mut update = conn
        .prepare_cached(
            "UPDATE spans SET span_type = ?2, model = ?3, provider = ?4, input_tokens = ?5, \
             output_tokens = ?6, total_tokens = ?7, cache_read_tokens = ?8, \
             cache_write_tokens = ?9, reasoning_tokens = ?10, cost_usd = ?11 WHERE rowid = ?1",
        )
        .map_err(db_err)?;
    let mut bodies = Bodies::new(log);
    for row in rows {
        let body = || match row.body {
            Some(at) => bodies.get(at?),
            None => Err(StoreError::internal("recompute: span body not read")),
        };
        let Some(new) = how.span(&row.stored, body, &mut touched, stats)? else {
            continue;
        };
        update
            .execute(params![
                row.rowid,
                new.span_type,
                new.model,
                new.provider,
                new.input_tokens.map(to_i64),
                new.output_tokens.map(to_i64),
                new.total_tokens.map(to_i64),
                new.cache_read_tokens.map(to_i64),
                new.cache_write_tokens.map(to_i64),
                new.reasoning_tokens.map(to_i64),
                new.cost_usd,
            ])
            .map_err(db_err)?;
    }
    Ok(touched)
}

/// Recomputes the roll-ups of the traces a chunk touched.
fn roll_up(conn: &Connection, touched: &Touched) -> Result<(), StoreError> {
    let mut rollup = conn
        .prepare_cached(
            "UPDATE traces SET \
             input_tokens = (SELECT coalesce(sum(input_tokens), 0) FROM spans WHERE trace_seq = ?1), \
             output_tokens = (SELECT coalesce(sum(output_tokens), 0) FROM spans WHERE trace_seq = ?1), \
             total_tokens = (SELECT coalesce(sum(total_tokens), 0) FROM spans WHERE trace_seq = ?1), \
             cost_usd = (SELECT coalesce(sum(cost_usd), 0) FROM spans WHERE trace_seq = ?1), \
             session_id = coalesce(?2, session_id), \
             user_id = coalesce(?3, user_id) \
             WHERE seq = ?1",
        )
        .map_err(db_err)?;
    for (seq, (session, user)) in touched {
        rollup
            .execute(params![seq, session, user])
            .map_err(db_err)?;
    }
    Ok(())
}
