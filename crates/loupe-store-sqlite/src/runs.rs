//! MLflow runs (`loupe_store::runs`): one JSON document per run, changed inside a transaction.

use loupe_store::StoreError;
use loupe_store::runs::{Metric, Run, RunChange};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db_err;

pub(crate) fn create_run(c: &mut Connection, run: &Run) -> Result<(), StoreError> {
    let inserted = c
        .execute(
            "INSERT INTO runs (run_id, experiment_id, start_time, doc) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (run_id) DO NOTHING",
            params![run.run_id, run.experiment_id, run.start_time, run.to_doc()?],
        )
        .map_err(db_err)?;
    if inserted == 0 {
        return Err(StoreError::already_exists(format!(
            "Run '{}' already exists.",
            run.run_id
        )));
    }
    Ok(())
}

pub(crate) fn run(c: &Connection, run_id: &str) -> Result<Option<Run>, StoreError> {
    c.query_row("SELECT doc FROM runs WHERE run_id = ?1", [run_id], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map_err(db_err)?
    .map(|d| Run::from_doc(&d))
    .transpose()
}

pub(crate) fn change_run(
    c: &mut Connection,
    run_id: &str,
    change: &RunChange,
) -> Result<Run, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    let mut run = run(&tx, run_id)?
        .ok_or_else(|| StoreError::not_found(format!("Run with id={run_id} not found")))?;
    run.apply(change)?;
    tx.execute(
        "UPDATE runs SET doc = ?2 WHERE run_id = ?1",
        params![run_id, run.to_doc()?],
    )
    .map_err(db_err)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO run_metrics (run_id, key, step, timestamp, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(db_err)?;
        for m in change.metrics() {
            // SQLite stores NaN as NULL; the infinities stay.
            let value = (!m.value.is_nan()).then_some(m.value);
            insert
                .execute(params![run_id, m.key, m.step, m.timestamp, value])
                .map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(run)
}

pub(crate) fn runs(c: &Connection, experiment_ids: &[String]) -> Result<Vec<Run>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT doc FROM runs WHERE experiment_id = ?1 ORDER BY start_time DESC, run_id",
        )
        .map_err(db_err)?;
    let mut out = Vec::new();
    for id in experiment_ids {
        let docs = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        for d in docs {
            out.push(Run::from_doc(&d.map_err(db_err)?)?);
        }
    }
    out.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then(a.run_id.cmp(&b.run_id))
    });
    Ok(out)
}

pub(crate) fn metric_history(
    c: &Connection,
    run_id: &str,
    key: &str,
) -> Result<Vec<Metric>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT step, timestamp, value FROM run_metrics WHERE run_id = ?1 AND key = ?2 \
             ORDER BY step, timestamp, rowid",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([run_id, key], |r| {
            Ok(Metric {
                key: key.to_string(),
                step: r.get(0)?,
                timestamp: r.get(1)?,
                value: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}
