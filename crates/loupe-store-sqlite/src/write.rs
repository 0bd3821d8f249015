//! The write path: one transaction per batch, incremental trace roll-ups.

use std::collections::HashMap;

use loupe_model::{SpanStatus, TraceId};
use loupe_store::{EncodedSpan, StoreError, WriteOutcome};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db_err;

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What the new spans of one trace in one batch add to its roll-up.
#[derive(Default)]
struct Delta {
    seq: i64,
    min_start: i64,
    max_end: i64,
    spans: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    root: Option<(String, SpanStatus)>,
    /// Name of the earliest new span, for traces whose root has not arrived.
    earliest: Option<(i64, String)>,
}

const INSERT_SPAN: &str = "INSERT INTO spans (trace_seq, span_id, parent_id, name, span_type, \
     start_ns, end_ns, status, status_message, model, input_tokens, output_tokens, total_tokens, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
     ON CONFLICT (trace_seq, span_id) DO NOTHING";

const UPDATE_TRACE: &str = "UPDATE traces SET \
     start_ns = min(start_ns, ?2), \
     end_ns = max(end_ns, ?3), \
     duration_ms = (max(end_ns, ?3) - min(start_ns, ?2)) / 1000000, \
     span_count = span_count + ?4, \
     error_count = error_count + ?5, \
     input_tokens = input_tokens + ?6, \
     output_tokens = output_tokens + ?7, \
     total_tokens = total_tokens + ?8, \
     name = CASE WHEN ?9 IS NOT NULL THEN ?9 \
                 WHEN has_root = 0 AND ?10 IS NOT NULL AND (name = '' OR ?11 < start_ns) THEN ?10 \
                 ELSE name END, \
     has_root = has_root OR (?9 IS NOT NULL), \
     root_status = coalesce(?12, root_status), \
     status = CASE coalesce(?12, root_status) WHEN 1 THEN 1 WHEN 2 THEN 2 \
                   ELSE CASE WHEN error_count + ?5 > 0 THEN 2 ELSE 0 END END \
     WHERE seq = ?1";

pub(crate) fn write_spans(
    conn: &mut Connection,
    spans: &[EncodedSpan],
) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    let mut outcome = WriteOutcome::default();
    let mut deltas: HashMap<TraceId, Delta> = HashMap::with_capacity(spans.len() / 4 + 1);
    {
        let mut find = tx
            .prepare_cached("SELECT seq FROM traces WHERE trace_id = ?1")
            .map_err(db_err)?;
        let mut create = tx
            .prepare_cached(
                "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, metadata) \
                 VALUES (?1, ?2, '', ?3, ?4, ?5)",
            )
            .map_err(db_err)?;
        let mut insert = tx.prepare_cached(INSERT_SPAN).map_err(db_err)?;
        for s in spans {
            let start = to_i64(s.start_ns);
            let end = to_i64(s.end_ns);
            let delta = match deltas.get_mut(&s.trace_id) {
                Some(d) => d,
                None => {
                    let seq: Option<i64> = find
                        .query_row([&s.trace_id.0[..]], |r| r.get(0))
                        .optional()
                        .map_err(db_err)?;
                    let seq = match seq {
                        Some(seq) => seq,
                        None => {
                            let meta = serde_json::to_string(&s.trace_metadata)
                                .unwrap_or_else(|_| "{}".into());
                            create
                                .execute(params![&s.trace_id.0[..], s.project, start, end, meta])
                                .map_err(db_err)?;
                            tx.last_insert_rowid()
                        }
                    };
                    deltas.entry(s.trace_id).or_insert(Delta {
                        seq,
                        min_start: start,
                        max_end: end,
                        ..Delta::default()
                    })
                }
            };
            let changed = insert
                .execute(params![
                    delta.seq,
                    s.span_id.to_i64(),
                    s.parent_id.map(|p| p.to_i64()),
                    s.name,
                    s.span_type,
                    start,
                    end,
                    s.status.code(),
                    s.status_message,
                    s.model,
                    s.input_tokens.map(to_i64),
                    s.output_tokens.map(to_i64),
                    s.total_tokens.map(to_i64),
                    s.body,
                ])
                .map_err(db_err)?;
            if changed == 0 {
                outcome.duplicates += 1;
                continue;
            }
            outcome.inserted += 1;
            delta.min_start = delta.min_start.min(start);
            delta.max_end = delta.max_end.max(end);
            delta.spans += 1;
            delta.errors += i64::from(s.status == SpanStatus::Error);
            delta.input_tokens = delta
                .input_tokens
                .saturating_add(s.input_tokens.map_or(0, to_i64));
            delta.output_tokens = delta
                .output_tokens
                .saturating_add(s.output_tokens.map_or(0, to_i64));
            delta.total_tokens = delta
                .total_tokens
                .saturating_add(s.total_tokens.map_or(0, to_i64));
            if s.parent_id.is_none() {
                delta.root = Some((s.name.clone(), s.status));
            } else if delta.earliest.as_ref().is_none_or(|(t, _)| start < *t) {
                delta.earliest = Some((start, s.name.clone()));
            }
        }
        let mut update = tx.prepare_cached(UPDATE_TRACE).map_err(db_err)?;
        for d in deltas.values() {
            if d.spans == 0 {
                continue;
            }
            let root_status = d.root.as_ref().and_then(|(_, st)| match st {
                SpanStatus::Unset => None,
                other => Some(other.code()),
            });
            // The root's arrival with an unset status still fixes the trace's rule: record 0.
            let root_status = match (&d.root, root_status) {
                (Some(_), None) => Some(0),
                (_, rs) => rs,
            };
            update
                .execute(params![
                    d.seq,
                    d.min_start,
                    d.max_end,
                    d.spans,
                    d.errors,
                    d.input_tokens,
                    d.output_tokens,
                    d.total_tokens,
                    d.root.as_ref().map(|(n, _)| n.as_str()),
                    d.earliest.as_ref().map(|(_, n)| n.as_str()),
                    d.earliest.as_ref().map(|(t, _)| *t),
                    root_status,
                ])
                .map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(outcome)
}
