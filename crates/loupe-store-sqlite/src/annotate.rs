//! What clients add around spans: experiments, trace info reported by the client, tags,
//! assessments, and deleting traces. Writes run on the writer connection (one transaction
//! each); reads on a reader.

use loupe_model::{SpanStatus, TraceId, TraceSummary};
use loupe_store::{
    ASSESSMENT_COLUMNS, Assessment, AssessmentRow, Experiment, ExperimentKey, StoreError,
    TraceInfoUpdate, TraceSelection, json_object, trace_status_sql,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::db_err;
use crate::layout::{BUCKET, start_bucket};
use crate::read::{TRACE_COLUMNS, trace_row};
use crate::write::{SEQ_OF_ID, add_trace_id, remove_trace_id, to_i64};

use loupe_model::now_ms;

/// A JSON-object column; a corrupt one is a conversion error, never an empty map.
pub(crate) fn json_column(
    r: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<Map<String, Value>> {
    let text: String = r.get(idx)?;
    json_object("JSON", &text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn to_text(m: &Map<String, Value>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

const EXPERIMENT_COLUMNS: &str =
    "id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, tags";

fn experiment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Experiment> {
    Ok(Experiment {
        id: r.get(0)?,
        name: r.get(1)?,
        artifact_location: r.get(2)?,
        lifecycle_stage: r.get(3)?,
        creation_time_ms: r.get(4)?,
        last_update_time_ms: r.get(5)?,
        tags: json_column(r, 6)?,
    })
}

pub(crate) fn create_experiment(
    conn: &mut Connection,
    name: &str,
    artifact_location: Option<&str>,
    tags: &Map<String, Value>,
) -> Result<Experiment, StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::invalid("an experiment needs a non-empty name"));
    }
    let tx = conn.transaction().map_err(db_err)?;
    let exists: Option<i64> = tx
        .query_row("SELECT id FROM experiments WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    if exists.is_some() {
        return Err(StoreError::already_exists(format!(
            "Experiment '{name}' already exists."
        )));
    }
    let id: i64 = tx
        .query_row(
            "SELECT coalesce(max(id), 0) + 1 FROM experiments",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let now = now_ms();
    let location = artifact_location
        .filter(|l| !l.is_empty())
        .map_or_else(|| format!("mlflow-artifacts:/{id}"), str::to_string);
    tx.execute(
        "INSERT INTO experiments (id, name, artifact_location, creation_time, last_update_time, tags) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![id, name, location, now, to_text(tags)],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(Experiment {
        id,
        name: name.to_string(),
        artifact_location: location,
        lifecycle_stage: "active".into(),
        creation_time_ms: now,
        last_update_time_ms: now,
        tags: tags.clone(),
    })
}

pub(crate) fn experiment(
    conn: &Connection,
    key: &ExperimentKey,
) -> Result<Option<Experiment>, StoreError> {
    let (sql, arg) = match key {
        ExperimentKey::Id(id) => (
            format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?1"),
            rusqlite::types::Value::Integer(*id),
        ),
        ExperimentKey::Name(n) => (
            format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1"),
            rusqlite::types::Value::Text(n.clone()),
        ),
    };
    conn.prepare_cached(&sql)
        .map_err(db_err)?
        .query_row([arg], experiment_row)
        .optional()
        .map_err(db_err)
}

pub(crate) fn list_experiments(conn: &Connection) -> Result<Vec<Experiment>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY id"
        ))
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], experiment_row)
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    Ok(rows)
}

fn summary(
    conn: &Connection,
    trace_id: &TraceId,
) -> Result<Option<(i64, TraceSummary)>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TRACE_COLUMNS} FROM traces WHERE seq = {SEQ_OF_ID}"
    ))
    .map_err(db_err)?
    .query_row([&trace_id.0[..]], trace_row)
    .optional()
    .map_err(db_err)
}

pub(crate) fn upsert_trace_info(
    conn: &mut Connection,
    u: &TraceInfoUpdate,
) -> Result<TraceSummary, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    match summary(&tx, &u.trace_id)? {
        None => {
            let row = u.new_row();
            let root_status = u.status.map(|s| s.code());
            let status = TraceSummary::status_from(u.status, 0);
            tx.execute(
                "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, duration_ms, status, \
                 root_status, has_root, span_count, tags, metadata, info, session_id, user_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0, ?9, ?10, ?11, ?12, ?13)",
                params![
                    &u.trace_id.0[..],
                    u.project,
                    row.name,
                    row.start_ns,
                    row.end_ns,
                    row.duration_ms(),
                    status.code(),
                    root_status,
                    to_text(&u.tags),
                    to_text(&u.metadata),
                    to_text(&u.info),
                    u.session_id,
                    u.user_id,
                ],
            )
            .map_err(db_err)?;
            add_trace_id(&tx, u.trace_id, tx.last_insert_rowid())?;
        }
        Some((seq, old)) => {
            let mut tags = old.tags.clone();
            tags.extend(u.tags.clone());
            let mut metadata = old.metadata.clone();
            metadata.extend(u.metadata.clone());
            let mut info = old.info.clone();
            info.extend(u.info.clone());
            let merged = u.merge(&old);
            tx.execute(
                concat!("UPDATE traces SET tags = ?2, metadata = ?3, info = ?4, start_ns = ?5, end_ns = ?6, \
                 duration_ms = (?6 - ?5) / 1000000, name = ?7, \
                 root_status = coalesce(?8, root_status), \
                 session_id = coalesce(session_id, ?9), user_id = coalesce(user_id, ?10), \
                 status = ", trace_status_sql!("coalesce(?8, root_status)", "error_count"), " \
                 WHERE seq = ?1"),
                params![
                    seq,
                    to_text(&tags),
                    to_text(&metadata),
                    to_text(&info),
                    merged.start_ns,
                    merged.end_ns,
                    merged.name,
                    u.status.map(|s: SpanStatus| s.code()),
                    u.session_id,
                    u.user_id,
                ],
            )
            .map_err(db_err)?;
        }
    }
    let out = summary(&tx, &u.trace_id)?
        .map(|(_, s)| s)
        .ok_or_else(|| StoreError::internal("the trace row vanished inside its transaction"))?;
    tx.commit().map_err(db_err)?;
    Ok(out)
}

pub(crate) fn trace_summaries(
    conn: &Connection,
    ids: &[TraceId],
) -> Result<Vec<TraceSummary>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((_, s)) = summary(conn, id)? {
            out.push(s);
        }
    }
    Ok(out)
}

pub(crate) fn set_trace_tag(
    conn: &mut Connection,
    trace_id: &TraceId,
    key: &str,
    value: Option<&Value>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    let Some((seq, old)) = summary(&tx, trace_id)? else {
        return Ok(false);
    };
    let mut tags = old.tags;
    match value {
        Some(v) => {
            tags.insert(key.to_string(), v.clone());
        }
        None => {
            if tags.remove(key).is_none() {
                return Ok(false);
            }
        }
    }
    tx.execute(
        "UPDATE traces SET tags = ?2 WHERE seq = ?1",
        params![seq, to_text(&tags)],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(true)
}

/// Traces deleted per transaction, so ingest waits only briefly.
const DELETE_CHUNK: usize = 500;

/// Told, after each chunk of a delete commits, the deleted traces' numbers and the lowest rowid
/// of their spans (for the text index).
pub(crate) type OnDeleted<'a> = &'a dyn Fn(&[i64], Option<i64>) -> Result<(), StoreError>;

/// Deletes traces in chunks, telling `committed` about each chunk.
pub(crate) fn delete_traces(
    conn: &mut Connection,
    which: &TraceSelection,
    committed: OnDeleted<'_>,
) -> Result<u64, StoreError> {
    let targets: Vec<(i64, Vec<u8>)> = match which {
        TraceSelection::Ids(ids) => {
            let mut v = Vec::with_capacity(ids.len());
            let mut stmt = conn
                .prepare_cached(&format!("SELECT seq FROM traces WHERE seq = {SEQ_OF_ID}"))
                .map_err(db_err)?;
            for id in ids {
                if let Some(seq) = stmt
                    .query_row([&id.0[..]], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(db_err)?
                {
                    v.push((seq, id.0.to_vec()));
                }
            }
            v
        }
        TraceSelection::StartedBy {
            project,
            max_start_ms,
            limit,
        } => {
            // Oldest first, read from the project's start index by bucket, named as pages
            // name it (see `read::page_index`).
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT seq, trace_id FROM traces t INDEXED BY traces_by_project_start \
                     WHERE project = ?1 AND start_ns <= ?2 \
                     AND {BUCKET} <= ?4 ORDER BY {BUCKET}, start_ns, seq LIMIT ?3"
                ))
                .map_err(db_err)?;
            let max_ns = max_start_ms
                .saturating_mul(1_000_000)
                .saturating_add(999_999);
            let limit = limit.map_or(i64::MAX, to_i64);
            let bucket = start_bucket(max_ns);
            stmt.query_map(params![project, max_ns, limit, bucket], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?
        }
    };
    let mut deleted = 0u64;
    for chunk in targets.chunks(DELETE_CHUNK) {
        let tx = conn.transaction().map_err(db_err)?;
        let mut min_span: Option<i64> = None;
        for (seq, id) in chunk {
            let first: Option<i64> = tx
                .query_row(
                    "SELECT min(rowid) FROM spans WHERE trace_seq = ?1",
                    [seq],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            min_span = match (min_span, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tx.execute(
                "DELETE FROM span_bodies WHERE id IN (SELECT rowid FROM spans WHERE trace_seq = ?1)",
                [seq],
            )
            .map_err(db_err)?;
            tx.execute("DELETE FROM spans WHERE trace_seq = ?1", [seq])
                .map_err(db_err)?;
            tx.execute("DELETE FROM span_events WHERE trace_id = ?1", [id])
                .map_err(db_err)?;
            tx.execute("DELETE FROM assessments WHERE trace_seq = ?1", [seq])
                .map_err(db_err)?;
            deleted += tx
                .execute("DELETE FROM traces WHERE seq = ?1", [seq])
                .map_err(db_err)? as u64;
            remove_trace_id(&tx, id)?;
        }
        tx.commit().map_err(db_err)?;
        let seqs: Vec<i64> = chunk.iter().map(|(seq, _)| *seq).collect();
        committed(&seqs, min_span)?;
    }
    Ok(deleted)
}

/// Stores assessments in the writer's open transaction (see
/// [`loupe_store::TraceStore::put_assessments`] and `Inner::write_assessments`): every trace is
/// looked up before anything is written, so a missing one changes nothing.
pub(crate) fn apply_assessments(
    conn: &Connection,
    assessments: &[Assessment],
) -> Result<(), StoreError> {
    let mut seq_of = conn
        .prepare_cached(&format!("SELECT seq FROM traces WHERE seq = {SEQ_OF_ID}"))
        .map_err(db_err)?;
    let mut seqs = Vec::with_capacity(assessments.len());
    for a in assessments {
        let Some(seq) = seq_of
            .query_row([&a.trace_id.0[..]], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(db_err)?
        else {
            return Err(StoreError::not_found(format!(
                "trace {} not found",
                a.trace_id.to_hex()
            )));
        };
        seqs.push(seq);
    }
    let mut upsert = conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO assessments ({ASSESSMENT_COLUMNS}, trace_seq) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22)"
        ))
        .map_err(db_err)?;
    let mut overridden = conn
        .prepare_cached(
            "UPDATE assessments SET valid = 0, overridden_by = ?1, update_time = ?2 \
             WHERE id = ?3 AND trace_id = ?4 AND id != ?1",
        )
        .map_err(db_err)?;
    for (a, seq) in assessments.iter().zip(seqs) {
        let r = AssessmentRow::from(a);
        upsert
            .execute(params![
                r.id,
                r.trace_id,
                r.span_id,
                r.name,
                r.kind,
                r.value_type,
                r.value_num,
                r.value_text,
                r.error_code,
                r.error_message,
                r.error_trace,
                r.rationale,
                r.source_type,
                r.source_id,
                to_text(&r.metadata),
                r.valid,
                r.overrides,
                r.overridden_by,
                r.run_id,
                r.create_time,
                r.update_time,
                seq,
            ])
            .map_err(db_err)?;
        if let Some(old) = &a.overrides {
            overridden
                .execute(params![a.id, a.last_update_time_ms, old, r.trace_id])
                .map_err(db_err)?;
        }
    }
    Ok(())
}

fn assessment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AssessmentRow> {
    Ok(AssessmentRow {
        id: r.get(0)?,
        trace_id: r.get(1)?,
        span_id: r.get(2)?,
        name: r.get(3)?,
        kind: r.get(4)?,
        value_type: r.get(5)?,
        value_num: r.get(6)?,
        value_text: r.get(7)?,
        error_code: r.get(8)?,
        error_message: r.get(9)?,
        error_trace: r.get(10)?,
        rationale: r.get(11)?,
        source_type: r.get(12)?,
        source_id: r.get(13)?,
        metadata: json_column(r, 14)?,
        valid: r.get(15)?,
        overrides: r.get(16)?,
        overridden_by: r.get(17)?,
        run_id: r.get(18)?,
        create_time: r.get(19)?,
        update_time: r.get(20)?,
    })
}

pub(crate) fn assessment(conn: &Connection, id: &str) -> Result<Option<Assessment>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = ?1"
    ))
    .map_err(db_err)?
    .query_row([id], assessment_row)
    .optional()
    .map_err(db_err)?
    .map(AssessmentRow::into_assessment)
    .transpose()
}

pub(crate) fn assessments(
    conn: &Connection,
    trace_ids: &[TraceId],
) -> Result<Vec<Assessment>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE trace_seq = {SEQ_OF_ID} \
             ORDER BY create_time, id"
        ))
        .map_err(db_err)?;
    let mut out = Vec::new();
    for t in trace_ids {
        for row in stmt.query_map([&t.0[..]], assessment_row).map_err(db_err)? {
            out.push(row.map_err(db_err)?.into_assessment()?);
        }
    }
    Ok(out)
}

pub(crate) fn delete_assessment(
    conn: &mut Connection,
    trace_id: &TraceId,
    id: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "DELETE FROM assessments WHERE id = ?1 AND trace_id = ?2",
            params![id, &trace_id.0[..]],
        )
        .map_err(db_err)?;
    Ok(n > 0)
}

pub(crate) fn trace_models(
    conn: &Connection,
    ids: &[TraceId],
) -> Result<std::collections::HashMap<TraceId, Vec<String>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT DISTINCT s.model FROM spans s WHERE s.trace_seq = {SEQ_OF_ID} \
                 AND s.model IS NOT NULL ORDER BY s.model"
        ))
        .map_err(db_err)?;
    let mut out = std::collections::HashMap::new();
    for id in ids {
        let models: Vec<String> = stmt
            .query_map([&id.0[..]], |r| r.get(0))
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        if !models.is_empty() {
            out.insert(*id, models);
        }
    }
    Ok(out)
}
