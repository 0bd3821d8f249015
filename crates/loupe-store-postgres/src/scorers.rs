//! Registered scorers and their online configurations (`loupe_store::scorers`). A registration
//! locks the scorer's experiment row, so two replicas never hand out one version twice.

use loupe_store::StoreError;
use loupe_store::scorers::{OnlineConfig, ScorerVersion};

use crate::pg_err;

pub(crate) async fn register(
    client: &mut deadpool_postgres::Object,
    experiment_id: &str,
    name: &str,
    serialized: &str,
    new_id: &str,
    now: i64,
) -> Result<ScorerVersion, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    // Serializes registrations of one name (the key of a transaction-scoped advisory lock).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
        &[&experiment_id, &name],
    )
    .await
    .map_err(pg_err)?;
    let last = tx
        .query_opt(
            "SELECT version, scorer_id FROM scorers WHERE experiment_id = $1 AND name = $2 \
             ORDER BY version DESC LIMIT 1",
            &[&experiment_id, &name],
        )
        .await
        .map_err(pg_err)?;
    let (version, scorer_id) = match last {
        Some(r) => (r.get::<_, i64>(0) + 1, r.get::<_, String>(1)),
        None => (1, new_id.to_string()),
    };
    tx.execute(
        "INSERT INTO scorers (experiment_id, name, version, scorer_id, serialized, creation_time) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &experiment_id,
            &name,
            &version,
            &scorer_id,
            &serialized,
            &now,
        ],
    )
    .await
    .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)?;
    Ok(ScorerVersion {
        scorer_id,
        experiment_id: experiment_id.to_string(),
        name: name.to_string(),
        version,
        serialized: serialized.to_string(),
        creation_time: now,
    })
}

pub(crate) async fn list(
    client: &deadpool_postgres::Object,
    experiment_id: &str,
) -> Result<Vec<ScorerVersion>, StoreError> {
    Ok(client
        .query(
            "SELECT scorer_id, name, version, serialized, creation_time FROM scorers \
             WHERE experiment_id = $1 ORDER BY name, version",
            &[&experiment_id],
        )
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| ScorerVersion {
            scorer_id: r.get(0),
            experiment_id: experiment_id.to_string(),
            name: r.get(1),
            version: r.get(2),
            serialized: r.get(3),
            creation_time: r.get(4),
        })
        .collect())
}

pub(crate) async fn delete(
    client: &mut deadpool_postgres::Object,
    experiment_id: &str,
    name: &str,
    version: Option<i64>,
) -> Result<u64, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let id: Option<String> = tx
        .query_opt(
            "SELECT scorer_id FROM scorers WHERE experiment_id = $1 AND name = $2 LIMIT 1",
            &[&experiment_id, &name],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0));
    let n = tx
        .execute(
            "DELETE FROM scorers WHERE experiment_id = $1 AND name = $2 \
             AND ($3::BIGINT IS NULL OR version = $3)",
            &[&experiment_id, &name, &version],
        )
        .await
        .map_err(pg_err)?;
    let left: i64 = tx
        .query_one(
            "SELECT count(*) FROM scorers WHERE experiment_id = $1 AND name = $2",
            &[&experiment_id, &name],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    if let (Some(id), 0) = (id, left) {
        tx.execute(
            "DELETE FROM scorer_online_configs WHERE scorer_id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(n)
}

pub(crate) async fn put_config(
    client: &deadpool_postgres::Object,
    config: &OnlineConfig,
) -> Result<(), StoreError> {
    let doc = serde_json::to_value(config)
        .map_err(|e| StoreError::internal(format!("online config: {e}")))?;
    client
        .execute(
            "INSERT INTO scorer_online_configs (scorer_id, doc) VALUES ($1, $2) \
             ON CONFLICT (scorer_id) DO UPDATE SET doc = excluded.doc",
            &[&config.scorer_id, &doc],
        )
        .await
        .map_err(pg_err)?;
    Ok(())
}

pub(crate) async fn configs(
    client: &deadpool_postgres::Object,
    ids: &[String],
) -> Result<Vec<OnlineConfig>, StoreError> {
    client
        .query(
            "SELECT doc FROM scorer_online_configs WHERE scorer_id = ANY($1) ORDER BY scorer_id",
            &[&ids],
        )
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| {
            serde_json::from_value(r.get(0))
                .map_err(|e| StoreError::internal(format!("online config: {e}")))
        })
        .collect()
}
