//! MLflow evaluation datasets (`loupe_store::datasets`): header documents and records, each
//! change under a lock on the header row so replicas never interleave.

use loupe_store::StoreError;
use loupe_store::datasets::{
    DatasetChange, EvalDataset, RecordUpsert, check_record, input_hash, merge_record,
};
use serde_json::Value;

use crate::pg_err;

pub(crate) async fn create_dataset(
    client: &deadpool_postgres::Object,
    d: &EvalDataset,
) -> Result<(), StoreError> {
    let n = client
        .execute(
            "INSERT INTO eval_datasets (dataset_id, name, doc) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&d.dataset_id, &d.name, &d.to_doc()?],
        )
        .await
        .map_err(pg_err)?;
    if n == 0 {
        return Err(StoreError::already_exists(format!(
            "Dataset '{}' already exists.",
            d.name
        )));
    }
    Ok(())
}

pub(crate) async fn dataset(
    client: &impl tokio_postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<EvalDataset>, StoreError> {
    let sql = if lock {
        "SELECT doc FROM eval_datasets WHERE dataset_id = $1 FOR UPDATE"
    } else {
        "SELECT doc FROM eval_datasets WHERE dataset_id = $1"
    };
    client
        .query_opt(sql, &[&id])
        .await
        .map_err(pg_err)?
        .map(|r| EvalDataset::from_doc(r.get(0)))
        .transpose()
}

pub(crate) async fn datasets(
    client: &deadpool_postgres::Object,
) -> Result<Vec<EvalDataset>, StoreError> {
    client
        .query("SELECT doc FROM eval_datasets ORDER BY dataset_id", &[])
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| EvalDataset::from_doc(r.get(0)))
        .collect()
}

async fn locked(tx: &tokio_postgres::Transaction<'_>, id: &str) -> Result<EvalDataset, StoreError> {
    dataset(tx, id, true)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("Dataset '{id}' not found")))
}

async fn save(tx: &tokio_postgres::Transaction<'_>, d: &EvalDataset) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE eval_datasets SET doc = $2 WHERE dataset_id = $1",
        &[&d.dataset_id, &d.to_doc()?],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn count(tx: &tokio_postgres::Transaction<'_>, id: &str) -> Result<u64, StoreError> {
    let n: i64 = tx
        .query_one(
            "SELECT count(*) FROM eval_dataset_records WHERE dataset_id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    Ok(n.max(0) as u64)
}

pub(crate) async fn change_dataset(
    client: &mut deadpool_postgres::Object,
    id: &str,
    change: &DatasetChange,
    now: i64,
) -> Result<EvalDataset, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let mut d = locked(&tx, id).await?;
    d.apply(change, now);
    save(&tx, &d).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(d)
}

pub(crate) async fn delete_dataset(
    client: &mut deadpool_postgres::Object,
    id: &str,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute(
        "DELETE FROM eval_dataset_records WHERE dataset_id = $1",
        &[&id],
    )
    .await
    .map_err(pg_err)?;
    let n = tx
        .execute("DELETE FROM eval_datasets WHERE dataset_id = $1", &[&id])
        .await
        .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    Ok(n > 0)
}

pub(crate) async fn upsert_records(
    client: &mut deadpool_postgres::Object,
    u: &RecordUpsert,
) -> Result<(u64, u64), StoreError> {
    for r in &u.records {
        check_record(r)?;
    }
    let tx = client.transaction().await.map_err(pg_err)?;
    let mut d = locked(&tx, &u.dataset_id).await?;
    let mut fresh = u.fresh_ids.iter().cloned();
    let (mut inserted, mut updated) = (0, 0);
    for r in &u.records {
        let hash = input_hash(r);
        let existing: Option<Value> = tx
            .query_opt(
                "SELECT doc FROM eval_dataset_records WHERE dataset_id = $1 AND input_hash = $2",
                &[&u.dataset_id, &hash],
            )
            .await
            .map_err(pg_err)?
            .map(|row| row.get(0));
        if existing.is_some() {
            updated += 1;
        } else {
            inserted += 1;
        }
        let next_id = || fresh.next().unwrap_or_default();
        let merged = merge_record(&u.dataset_id, existing, r, next_id, u.now);
        let record_id = merged["dataset_record_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let created = merged["created_time"].as_i64().unwrap_or(u.now);
        tx.execute(
            "INSERT INTO eval_dataset_records (dataset_id, input_hash, record_id, created_time, doc) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (dataset_id, input_hash) DO UPDATE SET doc = excluded.doc",
            &[&u.dataset_id, &hash, &record_id, &created, &merged],
        )
        .await
        .map_err(pg_err)?;
    }
    let n = count(&tx, &u.dataset_id).await?;
    d.touched(u.now, &u.records.iter().collect::<Vec<_>>(), n);
    save(&tx, &d).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok((inserted, updated))
}

pub(crate) async fn records(
    client: &deadpool_postgres::Object,
    id: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Value>, u64), StoreError> {
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM eval_dataset_records WHERE dataset_id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let rows = client
        .query(
            "SELECT doc FROM eval_dataset_records WHERE dataset_id = $1 \
             ORDER BY created_time, record_id LIMIT $2 OFFSET $3",
            &[
                &id,
                &i64::try_from(limit).unwrap_or(i64::MAX),
                &i64::try_from(offset).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(pg_err)?;
    Ok((
        rows.into_iter().map(|r| r.get(0)).collect(),
        total.max(0) as u64,
    ))
}

pub(crate) async fn delete_records(
    client: &mut deadpool_postgres::Object,
    id: &str,
    record_ids: &[String],
    now: i64,
) -> Result<u64, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let mut d = locked(&tx, id).await?;
    let deleted = tx
        .execute(
            "DELETE FROM eval_dataset_records WHERE dataset_id = $1 AND record_id = ANY($2)",
            &[&id, &record_ids],
        )
        .await
        .map_err(pg_err)?;
    let n = count(&tx, id).await?;
    d.touched(now, &[], n);
    save(&tx, &d).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(deleted)
}
