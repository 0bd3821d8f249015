//! MLflow runs (`loupe_store::runs`): one JSONB document per run, changed under a row lock so
//! replicas logging to the same run never lose each other's writes.

use loupe_store::StoreError;
use loupe_store::runs::{Metric, Run, RunChange};
use serde_json::Value;

use crate::pg_err;

fn to_json(run: &Run) -> Result<Value, StoreError> {
    serde_json::to_value(run).map_err(|e| StoreError::internal(format!("run document: {e}")))
}

fn from_json(v: Value) -> Result<Run, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::internal(format!("run document: {e}")))
}

pub(crate) async fn create_run(
    client: &deadpool_postgres::Object,
    run: &Run,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO runs (run_id, experiment_id, start_time, doc) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id) DO NOTHING",
        )
        .await
        .map_err(pg_err)?;
    let n = client
        .execute(
            &stmt,
            &[
                &run.run_id,
                &run.experiment_id,
                &run.start_time,
                &to_json(run)?,
            ],
        )
        .await
        .map_err(pg_err)?;
    if n == 0 {
        return Err(StoreError::already_exists(format!(
            "Run '{}' already exists.",
            run.run_id
        )));
    }
    Ok(())
}

pub(crate) async fn run(
    client: &deadpool_postgres::Object,
    run_id: &str,
) -> Result<Option<Run>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT doc FROM runs WHERE run_id = $1")
        .await
        .map_err(pg_err)?;
    client
        .query_opt(&stmt, &[&run_id])
        .await
        .map_err(pg_err)?
        .map(|r| from_json(r.get(0)))
        .transpose()
}

pub(crate) async fn change_run(
    client: &mut deadpool_postgres::Object,
    run_id: &str,
    change: &RunChange,
) -> Result<Run, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let row = tx
        .query_opt(
            "SELECT doc FROM runs WHERE run_id = $1 FOR UPDATE",
            &[&run_id],
        )
        .await
        .map_err(pg_err)?
        .ok_or_else(|| StoreError::not_found(format!("Run with id={run_id} not found")))?;
    let mut run = from_json(row.get(0))?;
    run.apply(change)?;
    tx.execute(
        "UPDATE runs SET doc = $2 WHERE run_id = $1",
        &[&run_id, &to_json(&run)?],
    )
    .await
    .map_err(pg_err)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO run_metrics (run_id, key, step, timestamp, value) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(pg_err)?;
    for m in change.metrics() {
        tx.execute(&insert, &[&run_id, &m.key, &m.step, &m.timestamp, &m.value])
            .await
            .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(run)
}

pub(crate) async fn runs(
    client: &deadpool_postgres::Object,
    experiment_ids: &[String],
) -> Result<Vec<Run>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT doc FROM runs WHERE experiment_id = ANY($1) ORDER BY start_time DESC, run_id",
        )
        .await
        .map_err(pg_err)?;
    client
        .query(&stmt, &[&experiment_ids])
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| from_json(r.get(0)))
        .collect()
}

pub(crate) async fn metric_history(
    client: &deadpool_postgres::Object,
    run_id: &str,
    key: &str,
) -> Result<Vec<Metric>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT step, timestamp, value FROM run_metrics WHERE run_id = $1 AND key = $2 \
             ORDER BY step, timestamp, ctid",
        )
        .await
        .map_err(pg_err)?;
    Ok(client
        .query(&stmt, &[&run_id, &key])
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| Metric {
            key: key.to_string(),
            step: r.get(0),
            timestamp: r.get(1),
            value: r.get(2),
        })
        .collect())
}
