//! Registered scorers and their online configurations (`loupe_store::scorers`).

use loupe_store::StoreError;
use loupe_store::scorers::{OnlineConfig, ScorerVersion};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db_err;

pub(crate) fn register(
    c: &mut Connection,
    experiment_id: &str,
    name: &str,
    serialized: &str,
    new_id: &str,
    now: i64,
) -> Result<ScorerVersion, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT version, scorer_id FROM scorers WHERE experiment_id = ?1 AND name = ?2 \
             ORDER BY version DESC LIMIT 1",
            params![experiment_id, name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err)?;
    let (version, scorer_id) = match last {
        Some((v, id)) => (v + 1, id),
        None => (1, new_id.to_string()),
    };
    tx.execute(
        "INSERT INTO scorers (experiment_id, name, version, scorer_id, serialized, creation_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![experiment_id, name, version, scorer_id, serialized, now],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    Ok(ScorerVersion {
        scorer_id,
        experiment_id: experiment_id.to_string(),
        name: name.to_string(),
        version,
        serialized: serialized.to_string(),
        creation_time: now,
    })
}

pub(crate) fn list(c: &Connection, experiment_id: &str) -> Result<Vec<ScorerVersion>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT scorer_id, name, version, serialized, creation_time FROM scorers \
             WHERE experiment_id = ?1 ORDER BY name, version",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([experiment_id], |r| {
            Ok(ScorerVersion {
                scorer_id: r.get(0)?,
                experiment_id: experiment_id.to_string(),
                name: r.get(1)?,
                version: r.get(2)?,
                serialized: r.get(3)?,
                creation_time: r.get(4)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

pub(crate) fn delete(
    c: &mut Connection,
    experiment_id: &str,
    name: &str,
    version: Option<i64>,
) -> Result<u64, StoreError> {
    let tx = c.transaction().map_err(db_err)?;
    let id: Option<String> = tx
        .query_row(
            "SELECT scorer_id FROM scorers WHERE experiment_id = ?1 AND name = ?2 LIMIT 1",
            params![experiment_id, name],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let n = match version {
        Some(v) => tx.execute(
            "DELETE FROM scorers WHERE experiment_id = ?1 AND name = ?2 AND version = ?3",
            params![experiment_id, name, v],
        ),
        None => tx.execute(
            "DELETE FROM scorers WHERE experiment_id = ?1 AND name = ?2",
            params![experiment_id, name],
        ),
    }
    .map_err(db_err)?;
    let left: i64 = tx
        .query_row(
            "SELECT count(*) FROM scorers WHERE experiment_id = ?1 AND name = ?2",
            params![experiment_id, name],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if let (Some(id), 0) = (id, left) {
        tx.execute(
            "DELETE FROM scorer_online_configs WHERE scorer_id = ?1",
            [id],
        )
        .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)?;
    Ok(n as u64)
}

fn doc(config: &OnlineConfig) -> Result<String, StoreError> {
    serde_json::to_string(config).map_err(|e| StoreError::internal(format!("online config: {e}")))
}

pub(crate) fn put_config(c: &mut Connection, config: &OnlineConfig) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO scorer_online_configs (scorer_id, doc) VALUES (?1, ?2) \
         ON CONFLICT (scorer_id) DO UPDATE SET doc = excluded.doc",
        params![config.scorer_id, doc(config)?],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(crate) fn configs(c: &Connection, ids: &[String]) -> Result<Vec<OnlineConfig>, StoreError> {
    let mut stmt = c
        .prepare_cached("SELECT doc FROM scorer_online_configs WHERE scorer_id = ?1")
        .map_err(db_err)?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(d) = stmt
            .query_row([id], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db_err)?
        {
            out.push(
                serde_json::from_str(&d)
                    .map_err(|e| StoreError::internal(format!("online config: {e}")))?,
            );
        }
    }
    Ok(out)
}
