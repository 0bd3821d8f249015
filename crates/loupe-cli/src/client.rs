//! `loupe traces …`: read traces from a running server, as tables and trees or as JSON.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::tree;

/// Where the server is.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the Loupe server.
    #[arg(
        long,
        env = "LOUPE_SERVER",
        default_value = "http://127.0.0.1:4318",
        global = true
    )]
    pub server: String,
    /// Print the API's JSON instead of a table or tree.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// List traces, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this status (OK, ERROR, UNSET).
        #[arg(long)]
        status: Option<String>,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only traces at least this long (ms).
        #[arg(long)]
        min_duration_ms: Option<u64>,
        /// Only traces with this name.
        #[arg(long)]
        name: Option<String>,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Search traces with the query language, newest first:
    /// `loupe traces search "status = 'ERROR' AND span.model LIKE 'gpt-4%' AND start > now - 1d"`
    Search {
        #[command(flatten)]
        server: ServerArgs,
        /// The query.
        query: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Sort order instead of newest first: `duration_ms desc`, `name,start desc` …
        #[arg(long)]
        order_by: Option<String>,
        /// Continue from a previous page's cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one trace as a span tree.
    Get {
        #[command(flatten)]
        server: ServerArgs,
        /// The trace id (32 hex characters).
        trace_id: String,
    },
}

/// Writes to stdout; a closed pipe (`loupe traces list | head`) ends quietly instead of panicking.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Options of `loupe stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only traces matching this query.
    query: Option<String>,
    /// Group by: model, provider, span_type, project, time, tags.<key>, metadata.<key> (comma-separated).
    #[arg(long, default_value = "model")]
    group_by: String,
    /// Time bucket when grouping by time (e.g. 15m, 1h, 1d).
    #[arg(long, default_value = "1h")]
    bucket: String,
}

/// `loupe stats`: count, error rate, latency percentiles, tokens and cost per group.
pub async fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let mut u = url(&args.server.server, "/api/v1/stats")?;
    {
        let mut q = u.query_pairs_mut();
        if let Some(query) = &args.query {
            q.append_pair("q", query);
        }
        q.append_pair("group_by", &args.group_by);
        q.append_pair("bucket", &args.bucket);
    }
    let body = get_json(u).await?;
    show(args.server.json, &body, tree::stats_table)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the API's JSON with `--json`, else the human rendering.
fn show(json: bool, body: &Value, render: fn(&Value) -> String) -> anyhow::Result<()> {
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(body)?))
    } else {
        emit(&render(body))
    }
}

async fn get_json(url: reqwest::Url) -> anyhow::Result<Value> {
    let resp = reqwest::get(url.clone())
        .await
        .with_context(|| format!("cannot reach {url}; is `loupe serve` running?"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("{status}: {msg}");
    }
    Ok(body)
}

fn url(server: &str, path: &str) -> anyhow::Result<reqwest::Url> {
    let base =
        reqwest::Url::parse(server).with_context(|| format!("invalid --server {server:?}"))?;
    base.join(path)
        .with_context(|| format!("invalid --server {server:?}"))
}

pub async fn run(cmd: TracesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TracesCommand::List {
            server,
            limit,
            status,
            project,
            min_duration_ms,
            name,
            cursor,
        } => {
            let mut u = url(&server.server, "/api/v1/traces")?;
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("limit", &limit.to_string());
                if let Some(s) = &status {
                    q.append_pair("status", s);
                }
                if let Some(p) = &project {
                    q.append_pair("project", p);
                }
                if let Some(d) = min_duration_ms {
                    q.append_pair("min_duration_ms", &d.to_string());
                }
                if let Some(n) = &name {
                    q.append_pair("name", n);
                }
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let body = get_json(u).await?;
            show(server.json, &body, tree::trace_table)?;
        }
        TracesCommand::Search {
            server,
            query,
            limit,
            order_by,
            cursor,
        } => {
            let mut u = url(&server.server, "/api/v1/traces")?;
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("q", &query);
                q.append_pair("limit", &limit.to_string());
                if let Some(o) = &order_by {
                    q.append_pair("order_by", o);
                }
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let body = get_json(u).await?;
            show(server.json, &body, tree::trace_table)?;
        }
        TracesCommand::Get { server, trace_id } => {
            let id: String = trace_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let body = get_json(url(&server.server, &format!("/api/v1/traces/{id}"))?).await?;
            show(server.json, &body, tree::span_tree)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
