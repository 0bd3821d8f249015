//! The filter language shared by Loupe's API, CLI and MLflow search.
//!
//! `status = 'ERROR' AND duration_ms > 5s AND (span.model LIKE 'gpt-4%' OR tags.env = 'prod')`
//!
//! Text goes through [`lexer`] → [`parser`] (which resolves every field against the catalog in
//! [`ast`] and types every value) → [`sql`], which lowers the tree to a SQL condition whose user
//! values are all bound parameters. Errors carry the character position and what was expected.
//! MLflow's `filter_string` spellings (`attributes.status`, `attributes.timestamp_ms`,
//! `trace.name`, `tags.\`k\``, `span.type` …) are accepted by the same parser.

pub mod ast;
mod error;
pub mod lexer;
pub mod parser;
pub mod post;
pub mod sql;

pub use ast::{Expr, Field, Literal, SpanField, TraceField};
pub use error::QueryError;
pub use parser::parse;
