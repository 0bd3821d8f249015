//! `loupe prices check`: the models a store has seen that the price book does not price;
//! `loupe prices lint`: whether a price book file is fit to publish.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use loupe_model::pricing::PriceBook;
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
    /// Check a price book file as it loads and as a published book must be (providers,
    /// sources, unit prices, required models); exits 1 naming each problem.
    Lint {
        /// The book (default: the one compiled into Loupe).
        file: Option<std::path::PathBuf>,
    },
}

pub async fn run(command: PricesCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        PricesCommand::Check(args) => args,
        PricesCommand::Lint { file } => return lint(file.as_deref()),
    };
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

fn lint(file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let book = match file {
        None => PriceBook::parse(loupe_model::pricing::DEFAULT_PRICES)?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the price book {}", path.display()))?;
            PriceBook::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
    };
    let problems = book.lint();
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        return Ok(ExitCode::from(1));
    }
    println!("{} models, all well formed", book.models.len());
    Ok(ExitCode::SUCCESS)
}
