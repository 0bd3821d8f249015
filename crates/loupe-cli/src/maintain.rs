//! `loupe reindex` and `loupe reprice`: re-derive stored spans in place.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use loupe_store::{Recompute, TraceStore};
use loupe_store_sqlite::SqliteStore;

use crate::serve::load_prices;

/// Options shared by the maintenance commands.
#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// The data directory to work on (a running server may keep ingesting meanwhile).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value = "./loupe-data")]
    pub data_dir: PathBuf,
    /// A price book whose models replace or add to the built-in prices.
    #[arg(long, env = "LOUPE_PRICES")]
    pub prices: Option<PathBuf>,
}

/// Which recompute to run.
#[derive(Debug, Clone, Copy)]
pub enum What {
    /// Normalizers and prices, from the raw attributes.
    Reindex,
    /// Prices only, from the stored model and token counts.
    Reprice,
}

pub async fn run(args: MaintainArgs, what: What) -> anyhow::Result<ExitCode> {
    if !args.data_dir.join(loupe_store_sqlite::DB_FILE).exists() {
        anyhow::bail!("no Loupe data in {}", args.data_dir.display());
    }
    let prices = Arc::new(load_prices(args.prices.as_deref())?);
    let store = SqliteStore::open(&args.data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let how = match what {
        What::Reindex => Recompute::Reindex(Arc::new(move |body, start_ns| {
            prices.derive(&body.attributes, start_ns)
        })),
        What::Reprice => Recompute::Reprice(Arc::new(move |d, start_ns| prices.cost(d, start_ns))),
    };
    let t0 = Instant::now();
    let stats = store
        .recompute(how)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}: {} spans read, {} changed, {} traces rolled up again, in {:.1} s",
        match what {
            What::Reindex => "reindex",
            What::Reprice => "reprice",
        },
        stats.spans,
        stats.changed,
        stats.traces,
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
