//! MLflow evaluation datasets (`loupe_store::datasets`): header documents and records.

use loupe_store::StoreError;
use loupe_store::datasets::{
    DatasetChange, EvalDataset, RecordUpsert, check_record, input_hash, merge_record,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::db_err;

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::internal(format!("dataset document: {e}")))
}

pub(crate) fn create_dataset(c: &mut Connection, d: &EvalDataset) -> Result<(), StoreError> {
    let n = c
        .execute(
            "INSERT INTO eval_datasets (dataset_id, name, doc) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
            params![d.dataset_id, d.name, json_text(&d.to_doc()?)],
        )
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::already_exists(format!(
            "Dataset '{}' already exists.",
            d.name
        )));
    }
    Ok(())
}

pub(crate) fn dataset(c: &Connection, id: &str) -> Result<Option<EvalDataset>, StoreError> {
    c.query_row(
        "SELECT doc FROM eval_datasets WHERE dataset_id = ?1",
        [id],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map_err(db_err)?
    .map(|d| EvalDataset::from_doc(parse(&d)?))
    .transpose()
}

pub(crate) fn datasets(c: &Connection) -> Result<Vec<EvalDataset>, StoreError> {
    let mut stmt = c
        .prepare_cached("SELECT doc FROM eval_datasets ORDER BY dataset_id")
        .map_err(db_err)?;
    let docs = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    docs.map(|d| EvalDataset::from_doc(parse(&d.map_err(db_err)?)?))
        .collect()
}

fn locked(tx: &Transaction<'_>, id: &str) -> Result<EvalDataset, StoreError> {
    dataset(tx, id)?.ok_or_else(|| StoreError::not_found(format!("Dataset '{id}' not found")))
}

fn save(tx: &Transaction<'_>, d: &EvalDataset) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE eval_datasets SET doc = ?2 WHERE dataset_id = ?1",
        params![d.dataset_id, json_text(&d.to_doc()?)],
    )
    .map_err(db_err)?;
    Ok(())
}

fn count(tx: &Transaction<'_>, id: &str) -> Result<u64, StoreError> {
    tx.query_row(
        "SELECT count(*) FROM eval_dataset_records WHERE dataset_id = ?1",
        [id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .map_err(db_err)
}

pub(crate) fn change_dataset(
    c: &mut Connection,
    id: &str,
    change: &DatasetChange,
    now: i64,
) -> Result<EvalDataset, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    let mut d = locked(&tx, id)?;
    d.apply(change, now);
    save(&tx, &d)?;
    tx.commit().map_err(db_err)?;
    Ok(d)
}

pub(crate) fn delete_dataset(c: &mut Connection, id: &str) -> Result<bool, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    tx.execute(
        "DELETE FROM eval_dataset_records WHERE dataset_id = ?1",
        [id],
    )
    .map_err(db_err)?;
    let n = tx
        .execute("DELETE FROM eval_datasets WHERE dataset_id = ?1", [id])
        .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(n > 0)
}

pub(crate) fn upsert_records(
    c: &mut Connection,
    u: &RecordUpsert,
) -> Result<(u64, u64), StoreError> {
    for r in &u.records {
        check_record(r)?;
    }
    let tx = c.transaction().map_err(db_err)?;
    let mut d = locked(&tx, &u.dataset_id)?;
    let mut fresh = u.fresh_ids.iter().cloned();
    let (mut inserted, mut updated) = (0, 0);
    for r in &u.records {
        let hash = input_hash(r);
        let existing = tx
            .query_row(
                "SELECT doc FROM eval_dataset_records WHERE dataset_id = ?1 AND input_hash = ?2",
                params![u.dataset_id, hash],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map_err(db_err)?
            .map(|t| parse(&t))
            .transpose()?;
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
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (dataset_id, input_hash) DO UPDATE SET doc = excluded.doc",
            params![u.dataset_id, hash, record_id, created, json_text(&merged)],
        )
        .map_err(db_err)?;
    }
    let n = count(&tx, &u.dataset_id)?;
    d.touched(u.now, &u.records.iter().collect::<Vec<_>>(), n);
    save(&tx, &d)?;
    tx.commit().map_err(db_err)?;
    Ok((inserted, updated))
}

pub(crate) fn records(
    c: &Connection,
    id: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<Value>, u64), StoreError> {
    let total: i64 = c
        .query_row(
            "SELECT count(*) FROM eval_dataset_records WHERE dataset_id = ?1",
            [id],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let mut stmt = c
        .prepare_cached(
            "SELECT doc FROM eval_dataset_records WHERE dataset_id = ?1 \
             ORDER BY created_time, record_id LIMIT ?2 OFFSET ?3",
        )
        .map_err(db_err)?;
    let docs = stmt
        .query_map(
            params![
                id,
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX)
            ],
            |r| r.get::<_, String>(0),
        )
        .map_err(db_err)?;
    let out = docs
        .map(|d| parse(&d.map_err(db_err)?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, total.max(0) as u64))
}

pub(crate) fn delete_records(
    c: &mut Connection,
    id: &str,
    record_ids: &[String],
    now: i64,
) -> Result<u64, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    let mut d = locked(&tx, id)?;
    let mut deleted = 0;
    for r in record_ids {
        deleted += tx
            .execute(
                "DELETE FROM eval_dataset_records WHERE dataset_id = ?1 AND record_id = ?2",
                params![id, r],
            )
            .map_err(db_err)? as u64;
    }
    let n = count(&tx, id)?;
    d.touched(now, &[], n);
    save(&tx, &d)?;
    tx.commit().map_err(db_err)?;
    Ok(deleted)
}
