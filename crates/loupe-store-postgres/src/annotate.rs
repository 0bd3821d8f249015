//! What clients add around spans: experiments, trace info reported by the client, tags,
//! assessments, and deleting traces. Each write is one transaction (or one statement).

use std::collections::HashMap;

use loupe_model::{SpanStatus, TraceId, TraceSummary};
use loupe_store::{
    ASSESSMENT_COLUMNS, Assessment, AssessmentRow, Experiment, ExperimentKey, StoreError,
    TraceInfoUpdate, TraceSelection, trace_status_sql,
};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use crate::read::{TRACE_COLUMNS, trace_row};
use crate::{pg_err, to_i64};

use loupe_model::now_ms;

const EXPERIMENT_COLUMNS: &str =
    "id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, tags";

fn experiment_row(r: &Row) -> Result<Experiment, StoreError> {
    let g = |e| pg_err(e);
    Ok(Experiment {
        id: r.try_get(0).map_err(g)?,
        name: r.try_get(1).map_err(g)?,
        artifact_location: r.try_get(2).map_err(g)?,
        lifecycle_stage: r.try_get(3).map_err(g)?,
        creation_time_ms: r.try_get(4).map_err(g)?,
        last_update_time_ms: r.try_get(5).map_err(g)?,
        tags: match r.try_get::<_, Value>(6).map_err(g)? {
            Value::Object(m) => m,
            _ => {
                return Err(StoreError::internal(
                    "corrupt experiment tags: not an object",
                ));
            }
        },
    })
}

pub(crate) async fn create_experiment(
    client: &deadpool_postgres::Object,
    name: &str,
    artifact_location: Option<&str>,
    tags: &Map<String, Value>,
) -> Result<Experiment, StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::invalid("an experiment needs a non-empty name"));
    }
    let now = now_ms();
    // One statement: the id comes from a sequence, a name taken (now or concurrently) inserts
    // nothing.
    let stmt = client
        .prepare_cached(&format!(
            "WITH id AS (SELECT nextval('experiments_id') AS id) \
             INSERT INTO experiments (id, name, artifact_location, creation_time, \
             last_update_time, tags) \
             SELECT id.id, $1, coalesce(NULLIF($2, ''), 'mlflow-artifacts:/' || id.id), $3, $3, $4 \
             FROM id ON CONFLICT (name) DO NOTHING RETURNING {EXPERIMENT_COLUMNS}"
        ))
        .await
        .map_err(pg_err)?;
    let tags = Value::Object(tags.clone());
    let row = client
        .query_opt(&stmt, &[&name, &artifact_location, &now, &tags])
        .await
        .map_err(pg_err)?;
    match row {
        Some(r) => experiment_row(&r),
        None => Err(StoreError::already_exists(format!(
            "Experiment '{name}' already exists."
        ))),
    }
}

pub(crate) async fn experiment(
    client: &deadpool_postgres::Object,
    key: &ExperimentKey,
) -> Result<Option<Experiment>, StoreError> {
    let row = match key {
        ExperimentKey::Id(id) => {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = $1"
                ))
                .await
                .map_err(pg_err)?;
            client.query_opt(&stmt, &[id]).await
        }
        ExperimentKey::Name(n) => {
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
                ))
                .await
                .map_err(pg_err)?;
            client.query_opt(&stmt, &[n]).await
        }
    }
    .map_err(pg_err)?;
    row.as_ref().map(experiment_row).transpose()
}

pub(crate) async fn list_experiments(
    client: &deadpool_postgres::Object,
) -> Result<Vec<Experiment>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY id"
        ))
        .await
        .map_err(pg_err)?;
    client
        .query(&stmt, &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(experiment_row)
        .collect()
}

async fn summary(
    client: &impl deadpool_postgres::GenericClient,
    trace_id: &TraceId,
    lock: bool,
) -> Result<Option<(i64, TraceSummary)>, StoreError> {
    let sql = format!(
        "SELECT {TRACE_COLUMNS} FROM traces t WHERE t.trace_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    client
        .query_opt(&stmt, &[&&trace_id.0[..]])
        .await
        .map_err(pg_err)?
        .as_ref()
        .map(trace_row)
        .transpose()
}

pub(crate) async fn upsert_trace_info(
    client: &mut deadpool_postgres::Object,
    u: &TraceInfoUpdate,
) -> Result<TraceSummary, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let row = u.new_row();
    let status = TraceSummary::status_from(u.status, 0);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, duration_ms, status, \
             root_status, has_root, span_count, tags, metadata, info, session_id, user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, 0, $9, $10, $11, $12, $13) \
             ON CONFLICT (trace_id) DO NOTHING RETURNING seq",
        )
        .await
        .map_err(pg_err)?;
    let inserted = tx
        .query_opt(
            &stmt,
            &[
                &&u.trace_id.0[..],
                &u.project,
                &row.name,
                &row.start_ns,
                &row.end_ns,
                &row.duration_ms(),
                &status.code(),
                &u.status.map(|s| s.code()),
                &Value::Object(u.tags.clone()),
                &Value::Object(u.metadata.clone()),
                &Value::Object(u.info.clone()),
                &u.session_id,
                &u.user_id,
            ],
        )
        .await
        .map_err(pg_err)?;
    if inserted.is_none() {
        // The row exists: lock it, merge, write back.
        let (seq, old) = summary(&tx, &u.trace_id, true)
            .await?
            .ok_or_else(|| crate::retry_later("a trace row vanished under a concurrent delete"))?;
        let merged = u.merge(&old);
        let stmt = tx
            .prepare_cached(concat!(
                "UPDATE traces SET tags = tags || $2::jsonb, metadata = metadata || $3::jsonb, \
                 info = info || $4::jsonb, start_ns = $5::bigint, end_ns = $6::bigint, \
                 duration_ms = ($6::bigint - $5::bigint) / 1000000, name = $7::text, \
                 root_status = coalesce($8::bigint, root_status), \
                 session_id = coalesce(session_id, $9::text), \
                 user_id = coalesce(user_id, $10::text), \
                 status = ",
                trace_status_sql!("coalesce($8::bigint, root_status)", "error_count"),
                " \
                 WHERE seq = $1"
            ))
            .await
            .map_err(pg_err)?;
        tx.execute(
            &stmt,
            &[
                &seq,
                &Value::Object(u.tags.clone()),
                &Value::Object(u.metadata.clone()),
                &Value::Object(u.info.clone()),
                &merged.start_ns,
                &merged.end_ns,
                &merged.name,
                &u.status.map(|s: SpanStatus| s.code()),
                &u.session_id,
                &u.user_id,
            ],
        )
        .await
        .map_err(pg_err)?;
    }
    let out = summary(&tx, &u.trace_id, false)
        .await?
        .map(|(_, s)| s)
        .ok_or_else(|| crate::retry_later("a trace row vanished under a concurrent delete"))?;
    tx.commit().await.map_err(pg_err)?;
    Ok(out)
}

pub(crate) async fn trace_summaries(
    client: &deadpool_postgres::Object,
    ids: &[TraceId],
) -> Result<Vec<TraceSummary>, StoreError> {
    let raw: Vec<&[u8]> = ids.iter().map(|t| &t.0[..]).collect();
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {TRACE_COLUMNS} FROM traces t WHERE t.trace_id = ANY($1::bytea[])"
        ))
        .await
        .map_err(pg_err)?;
    let mut found: HashMap<TraceId, TraceSummary> = HashMap::with_capacity(ids.len());
    for r in client.query(&stmt, &[&raw]).await.map_err(pg_err)? {
        let (_, s) = trace_row(&r)?;
        found.insert(s.trace_id, s);
    }
    // In the order asked (an id asked twice comes back twice, as the SQLite store does).
    Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
}

pub(crate) async fn set_trace_tag(
    client: &deadpool_postgres::Object,
    trace_id: &TraceId,
    key: &str,
    value: Option<&Value>,
) -> Result<bool, StoreError> {
    let n = match value {
        Some(v) => {
            let stmt = client
                .prepare_cached(
                    "UPDATE traces SET tags = tags || jsonb_build_object($2::text, $3::jsonb) \
                     WHERE trace_id = $1",
                )
                .await
                .map_err(pg_err)?;
            client
                .execute(&stmt, &[&&trace_id.0[..], &key, v])
                .await
                .map_err(pg_err)?
        }
        None => {
            let stmt = client
                .prepare_cached(
                    "UPDATE traces SET tags = tags - $2::text \
                     WHERE trace_id = $1 AND tags ? $2::text",
                )
                .await
                .map_err(pg_err)?;
            client
                .execute(&stmt, &[&&trace_id.0[..], &key])
                .await
                .map_err(pg_err)?
        }
    };
    Ok(n > 0)
}

/// Traces deleted per transaction, so ingest waits only briefly.
const DELETE_CHUNK: usize = 500;

pub(crate) async fn delete_traces(
    client: &mut deadpool_postgres::Object,
    which: &TraceSelection,
) -> Result<u64, StoreError> {
    let targets: Vec<(i64, Vec<u8>)> = match which {
        TraceSelection::Ids(ids) => {
            let raw: Vec<&[u8]> = ids.iter().map(|t| &t.0[..]).collect();
            let stmt = client
                .prepare_cached(
                    "SELECT seq, trace_id FROM traces WHERE trace_id = ANY($1::bytea[])",
                )
                .await
                .map_err(pg_err)?;
            client
                .query(&stmt, &[&raw])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()
                .map_err(pg_err)?
        }
        TraceSelection::StartedBy {
            project,
            max_start_ms,
            limit,
        } => {
            let max_ns = max_start_ms
                .saturating_mul(1_000_000)
                .saturating_add(999_999);
            let limit = limit.map_or(i64::MAX, to_i64);
            let stmt = client
                .prepare_cached(
                    "SELECT seq, trace_id FROM traces WHERE project = $1 AND start_ns <= $2 \
                     ORDER BY start_ns, seq LIMIT $3",
                )
                .await
                .map_err(pg_err)?;
            client
                .query(&stmt, &[project, &max_ns, &limit])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()
                .map_err(pg_err)?
        }
    };
    let mut deleted = 0u64;
    for chunk in targets.chunks(DELETE_CHUNK) {
        let seqs: Vec<i64> = chunk.iter().map(|(s, _)| *s).collect();
        let ids: Vec<&[u8]> = chunk.iter().map(|(_, id)| id.as_slice()).collect();
        let tx = client.transaction().await.map_err(pg_err)?;
        // The trace rows first: a writer adding spans to one of them waits, then finds it gone
        // and starts it again.
        let n = tx
            .execute("DELETE FROM traces WHERE seq = ANY($1::bigint[])", &[&seqs])
            .await
            .map_err(pg_err)?;
        tx.execute(
            "DELETE FROM span_groups WHERE id IN \
             (SELECT body_group FROM spans WHERE trace_seq = ANY($1::bigint[]))",
            &[&seqs],
        )
        .await
        .map_err(pg_err)?;
        for sql in [
            "DELETE FROM spans WHERE trace_seq = ANY($1::bigint[])",
            "DELETE FROM trace_text WHERE trace_seq = ANY($1::bigint[])",
        ] {
            tx.execute(sql, &[&seqs]).await.map_err(pg_err)?;
        }
        for sql in [
            "DELETE FROM span_events WHERE trace_id = ANY($1::bytea[])",
            "DELETE FROM assessments WHERE trace_id = ANY($1::bytea[])",
        ] {
            tx.execute(sql, &[&ids]).await.map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)?;
        deleted += n;
    }
    Ok(deleted)
}

/// Stores assessments in one transaction (see [`loupe_store::TraceStore::put_assessments`]).
pub(crate) async fn put_assessments(
    client: &mut deadpool_postgres::Object,
    assessments: &[Assessment],
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM traces WHERE trace_id = $1")
        .await
        .map_err(pg_err)?;
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO assessments ({ASSESSMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (id) DO UPDATE SET trace_id = EXCLUDED.trace_id, \
             span_id = EXCLUDED.span_id, name = EXCLUDED.name, kind = EXCLUDED.kind, \
             value_type = EXCLUDED.value_type, value_num = EXCLUDED.value_num, \
             value_text = EXCLUDED.value_text, error_code = EXCLUDED.error_code, \
             error_message = EXCLUDED.error_message, error_trace = EXCLUDED.error_trace, \
             rationale = EXCLUDED.rationale, source_type = EXCLUDED.source_type, \
             source_id = EXCLUDED.source_id, metadata = EXCLUDED.metadata, \
             valid = EXCLUDED.valid, overrides = EXCLUDED.overrides, \
             overridden_by = EXCLUDED.overridden_by, run_id = EXCLUDED.run_id, \
             create_time = EXCLUDED.create_time, update_time = EXCLUDED.update_time"
        ))
        .await
        .map_err(pg_err)?;
    let overridden = tx
        .prepare_cached(
            "UPDATE assessments SET valid = false, overridden_by = $1, update_time = $2 \
             WHERE id = $3 AND trace_id = $4 AND id != $1",
        )
        .await
        .map_err(pg_err)?;
    for a in assessments {
        let trace = &a.trace_id.0[..];
        if tx
            .query_opt(&exists, &[&trace])
            .await
            .map_err(pg_err)?
            .is_none()
        {
            return Err(StoreError::not_found(format!(
                "trace {} not found",
                a.trace_id.to_hex()
            )));
        }
        let r = AssessmentRow::from(a);
        let metadata = Value::Object(r.metadata);
        tx.execute(
            &upsert,
            &[
                &r.id,
                &r.trace_id,
                &r.span_id,
                &r.name,
                &r.kind,
                &r.value_type,
                &r.value_num,
                &r.value_text,
                &r.error_code,
                &r.error_message,
                &r.error_trace,
                &r.rationale,
                &r.source_type,
                &r.source_id,
                &metadata,
                &r.valid,
                &r.overrides,
                &r.overridden_by,
                &r.run_id,
                &r.create_time,
                &r.update_time,
            ],
        )
        .await
        .map_err(pg_err)?;
        if let Some(old) = &a.overrides {
            tx.execute(&overridden, &[&a.id, &a.last_update_time_ms, old, &trace])
                .await
                .map_err(pg_err)?;
        }
    }
    tx.commit().await.map_err(pg_err)
}

fn assessment_row(r: &Row) -> Result<Assessment, StoreError> {
    let metadata = match r.try_get::<_, Value>(14).map_err(pg_err)? {
        Value::Object(m) => m,
        _ => {
            return Err(StoreError::internal(
                "corrupt assessment metadata: not an object",
            ));
        }
    };
    AssessmentRow {
        id: r.try_get(0).map_err(pg_err)?,
        trace_id: r.try_get(1).map_err(pg_err)?,
        span_id: r.try_get(2).map_err(pg_err)?,
        name: r.try_get(3).map_err(pg_err)?,
        kind: r.try_get(4).map_err(pg_err)?,
        value_type: r.try_get(5).map_err(pg_err)?,
        value_num: r.try_get(6).map_err(pg_err)?,
        value_text: r.try_get(7).map_err(pg_err)?,
        error_code: r.try_get(8).map_err(pg_err)?,
        error_message: r.try_get(9).map_err(pg_err)?,
        error_trace: r.try_get(10).map_err(pg_err)?,
        rationale: r.try_get(11).map_err(pg_err)?,
        source_type: r.try_get(12).map_err(pg_err)?,
        source_id: r.try_get(13).map_err(pg_err)?,
        metadata,
        valid: r.try_get(15).map_err(pg_err)?,
        overrides: r.try_get(16).map_err(pg_err)?,
        overridden_by: r.try_get(17).map_err(pg_err)?,
        run_id: r.try_get(18).map_err(pg_err)?,
        create_time: r.try_get(19).map_err(pg_err)?,
        update_time: r.try_get(20).map_err(pg_err)?,
    }
    .into_assessment()
}

pub(crate) async fn assessment(
    client: &deadpool_postgres::Object,
    id: &str,
) -> Result<Option<Assessment>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = $1"
        ))
        .await
        .map_err(pg_err)?;
    client
        .query_opt(&stmt, &[&id])
        .await
        .map_err(pg_err)?
        .map(|r| assessment_row(&r))
        .transpose()
}

pub(crate) async fn assessments(
    client: &deadpool_postgres::Object,
    trace_ids: &[TraceId],
) -> Result<Vec<Assessment>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE trace_id = $1 \
             ORDER BY create_time, id"
        ))
        .await
        .map_err(pg_err)?;
    let mut out = Vec::new();
    for t in trace_ids {
        for r in client.query(&stmt, &[&&t.0[..]]).await.map_err(pg_err)? {
            out.push(assessment_row(&r)?);
        }
    }
    Ok(out)
}

pub(crate) async fn delete_assessment(
    client: &deadpool_postgres::Object,
    trace_id: &TraceId,
    id: &str,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM assessments WHERE id = $1 AND trace_id = $2")
        .await
        .map_err(pg_err)?;
    let n = client
        .execute(&stmt, &[&id, &&trace_id.0[..]])
        .await
        .map_err(pg_err)?;
    Ok(n > 0)
}

pub(crate) async fn trace_models(
    client: &deadpool_postgres::Object,
    ids: &[TraceId],
) -> Result<HashMap<TraceId, Vec<String>>, StoreError> {
    let raw: Vec<&[u8]> = ids.iter().map(|t| &t.0[..]).collect();
    let stmt = client
        .prepare_cached(
            "SELECT DISTINCT t.trace_id, s.model FROM traces t JOIN spans s ON s.trace_seq = t.seq \
             WHERE t.trace_id = ANY($1::bytea[]) AND s.model IS NOT NULL \
             ORDER BY t.trace_id, s.model",
        )
        .await
        .map_err(pg_err)?;
    let mut out: HashMap<TraceId, Vec<String>> = HashMap::new();
    for r in client.query(&stmt, &[&raw]).await.map_err(pg_err)? {
        let id: Vec<u8> = r.try_get(0).map_err(pg_err)?;
        let id = TraceId::from_slice(&id).map_err(StoreError::internal)?;
        out.entry(id)
            .or_default()
            .push(r.try_get(1).map_err(pg_err)?);
    }
    Ok(out)
}
