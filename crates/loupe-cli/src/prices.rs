//! `loupe prices check`: the models a store has seen that the price book does not price.

use std::process::ExitCode;

use clap::Subcommand;
use loupe_store::{GroupKey, StatsQuery, TraceStore, unpriced_models};
use loupe_store_sqlite::SqliteStore;

use crate::maintain::MaintainArgs;
use crate::serve::load_prices;

/// `loupe prices …`.
#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// List every model seen in the store whose tokens have no cost (not in the price book,
    /// billed by another unit, or stored before the book priced it); exits 1 if there is one.
    Check(MaintainArgs),
}

pub async fn run(command: PricesCommand) -> anyhow::Result<ExitCode> {
    let PricesCommand::Check(args) = command;
    if !args.data_dir.join(loupe_store_sqlite::DB_FILE).exists() {
        anyhow::bail!("no Loupe data in {}", args.data_dir.display());
    }
    let prices = load_prices(args.prices.as_deref())?;
    let store = SqliteStore::open(&args.data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let groups = store
        .stats(StatsQuery {
            filter: None,
            group_by: vec![GroupKey::Model],
            bucket_ms: 3_600_000,
            start_from_ms: None,
            start_to_ms: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let unpriced = unpriced_models(&groups, 0, &prices);
    println!(
        "{} models seen; {} without a cost (price book {})",
        groups.len(),
        unpriced.len(),
        prices.version
    );
    for u in &unpriced {
        println!(
            "  {}: {} spans, {} input and {} output tokens: {}",
            u.model, u.spans, u.input_tokens, u.output_tokens, u.reason
        );
    }
    Ok(if unpriced.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
