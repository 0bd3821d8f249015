//! `loupe`: the server, the command-line client and the benchmarks, in one binary.

mod bench;
mod bench_overload;
mod bench_query;
mod bench_template;
mod client;
mod maintain;
mod prices;
mod serve;
mod tree;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc's allocator spent a noticeable share of ingest CPU in malloc/free of span-sized
/// buffers (figures: docs/performance.md, "Memory").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Loupe: LLM tracing and observability, on your machine.
#[derive(Debug, Parser)]
#[command(name = "loupe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OTLP/HTTP, the JSON API and the UI on one port, OTLP/gRPC on another.
    Serve(serve::ServeArgs),
    /// Read traces from a running server.
    Traces {
        #[command(subcommand)]
        command: client::TracesCommand,
    },
    /// Aggregate: count, error rate, latency percentiles, tokens and cost per model, span type,
    /// project, tag or time bucket.
    Stats(client::StatsArgs),
    /// Re-derive span types, models, tokens, sessions and costs from the stored attributes
    /// (after a mapping change), without re-ingesting.
    Reindex(maintain::MaintainArgs),
    /// Recompute stored costs from the price book (after a price change).
    Reprice(maintain::MaintainArgs),
    /// Check the price book against the models a store has seen.
    Prices {
        #[command(subcommand)]
        command: prices::PricesCommand,
    },
    /// Measure Loupe on this machine.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loupe: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Traces { command } => client::run(command).await,
            Command::Bench { command } => bench::run(command).await,
            Command::Stats(args) => client::stats(args).await,
            Command::Reindex(args) => maintain::run(args, maintain::What::Reindex).await,
            Command::Reprice(args) => maintain::run(args, maintain::What::Reprice).await,
            Command::Prices { command } => prices::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loupe: {e:#}");
            ExitCode::from(1)
        }
    }
}
