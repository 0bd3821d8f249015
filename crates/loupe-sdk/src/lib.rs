//! Loupe's Rust SDK: trace your code and your LLM calls into Loupe (or any OTLP endpoint).
//!
//! ```no_run
//! #[loupe_sdk::trace(span_type = "TOOL")]
//! fn lookup_order(id: u64) -> Result<String, std::io::Error> {
//!     Ok(format!("order {id} shipped"))
//! }
//!
//! #[loupe_sdk::trace(span_type = "AGENT")]
//! async fn answer(question: String) -> String {
//!     let status = lookup_order(42).unwrap_or_default();
//!     format!("{question}: {status}")
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let _guard = loupe_sdk::init(); // LOUPE_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else 127.0.0.1:4318
//!     answer("where is my order?".into()).await;
//! } // the guard flushes on drop
//! ```
//!
//! - [`trace`]: a function call as a span (sync or async; arguments as inputs, the return value
//!   as outputs, `Err` and panics as errors).
//! - [`span`]: a span by hand, `loupe_sdk::span("retrieve").span_type("RETRIEVER").start()`.
//! - The current span follows `.await` ([`ActiveSpan::in_scope`], [`Instrumented`]) and
//!   [`spawn`] carries it into `tokio::spawn`.
//! - [`openai::client`]: OpenAI-compatible HTTP calls (chat, streaming, embeddings) traced as
//!   `CHAT_MODEL` / `EMBEDDING` spans with the GenAI conventions, and Anthropic Messages API
//!   calls (streaming too) the same way.
//! - [`async_openai::Traced`]: the `async-openai` client, traced the same way.
//! - [`tracing_layer`]: `tracing` spans (`#[tracing::instrument]`, libraries such as `rig`) as
//!   Loupe spans, nested with `#[trace]` ones both ways.
//! - Spans are exported in batches over OTLP/HTTP protobuf from a background thread; the
//!   calling thread only pushes into a bounded queue and never blocks (when full, spans are
//!   dropped and counted: [`dropped_spans`]).

#[doc(hidden)]
pub mod __private;
mod anthropic;
#[cfg(feature = "async-openai")]
pub mod async_openai;
mod export;
pub mod openai;
mod span;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

use std::time::Duration;

pub use export::{ExportGuard, dropped_spans, exported_spans, flush};
pub use loupe_macros::trace;
pub use span::{
    ActiveSpan, AttrValue, Entered, Instrumented, SpanBuilder, SpanContext, current, span, spawn,
};
#[cfg(feature = "tracing")]
pub use tracing_layer::{TracingLayer, tracing_layer};

/// Exporter settings. [`Config::from_env`] reads the environment; the builder methods override.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the OTLP/HTTP endpoint (`/v1/traces` is appended).
    pub endpoint: String,
    /// Project the traces are filed under (sent as `x-loupe-project`).
    pub project: Option<String>,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Fraction of traces recorded, decided at each root span (0 to 1).
    pub sample_rate: f64,
    /// Finished spans waiting for export at most; more are dropped and counted.
    pub queue_capacity: usize,
    /// Spans per request at most.
    pub batch_size: usize,
    /// A partial batch is sent after this long.
    pub batch_interval: Duration,
    /// Retries of a request that failed with 429/502/503/504 or no connection.
    pub max_retries: u32,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// How long dropping the guard waits for the last spans to go out.
    pub flush_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:4318".into(),
            project: None,
            service_name: "rust-app".into(),
            sample_rate: 1.0,
            queue_capacity: 8_192,
            batch_size: 512,
            batch_interval: Duration::from_millis(500),
            max_retries: 5,
            request_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Settings from the environment: `LOUPE_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// else `http://127.0.0.1:4318`; `LOUPE_PROJECT`; `OTEL_SERVICE_NAME`;
    /// `LOUPE_SAMPLE_RATE` (0 to 1).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Config::from_env`] over any source of variables (testable without the process env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut c = Self::default();
        if let Some(e) = set("LOUPE_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT")) {
            c.endpoint = e;
        }
        c.project = set("LOUPE_PROJECT");
        if let Some(s) = set("OTEL_SERVICE_NAME") {
            c.service_name = s;
        }
        if let Some(r) = set("LOUPE_SAMPLE_RATE")
            .and_then(|r| r.parse::<f64>().ok())
            .filter(|r| r.is_finite())
        {
            c.sample_rate = r.clamp(0.0, 1.0);
        }
        c
    }

    /// The endpoint.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// The project.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The sample rate.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self
    }

    /// The queue capacity.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Starts exporting; keep the guard alive while the program runs (dropping it flushes).
    pub fn init(self) -> ExportGuard {
        export::start(self)
    }
}

/// Starts exporting with [`Config::from_env`]; keep the guard until the program ends.
pub fn init() -> ExportGuard {
    Config::from_env().init()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_vars() {
        let c = Config::from_vars(|k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://otel:4318".into()),
            "LOUPE_PROJECT" => Some("shop".into()),
            "LOUPE_SAMPLE_RATE" => Some("7".into()),
            _ => None,
        });
        assert_eq!(c.endpoint, "http://otel:4318");
        assert_eq!(c.project.as_deref(), Some("shop"));
        assert_eq!(c.sample_rate, 1.0);
        let c = Config::from_vars(|k| match k {
            "LOUPE_ENDPOINT" => Some("http://loupe:9".into()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://otel:4318".into()),
            _ => None,
        });
        assert_eq!(c.endpoint, "http://loupe:9");
        assert_eq!(
            Config::from_vars(|_| None).endpoint,
            "http://127.0.0.1:4318"
        );
    }

    #[test]
    fn without_an_exporter_spans_cost_nothing_and_nest() {
        let outer = span("outer").start();
        assert!(!outer.is_recording());
        let _e = outer.enter();
        let inner = span("inner").start();
        assert_eq!(inner.context().trace_id, outer.context().trace_id);
        assert_ne!(inner.context().span_id, outer.context().span_id);
    }
}
