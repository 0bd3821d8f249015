//! Ingest errors, classed so each transport maps them to its own status in one place.

use loupe_store::{ErrorKind, StoreError};

/// Why an ingest request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The request is malformed; retrying it will not help (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    BadRequest(String),
    /// The write queue is full; retry after a pause (HTTP 503 + Retry-After, gRPC UNAVAILABLE).
    #[error("the write queue is full; retry later")]
    Overloaded,
    /// The server is shutting down (HTTP 503, gRPC UNAVAILABLE).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store failed to commit (HTTP 503 or 500).
    #[error("storage failed: {0}")]
    Store(StoreError),
}

impl IngestError {
    /// Whether a client should retry the same request later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::BadRequest(_) => false,
            IngestError::Overloaded | IngestError::ShuttingDown => true,
            IngestError::Store(e) => e.is_retryable() && e.kind != ErrorKind::Conflict,
        }
    }
}
