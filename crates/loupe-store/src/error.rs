//! Store errors: a small kind to branch on, a message for humans.

use std::fmt;

/// What kind of failure this was; the server maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller asked for something malformed (a bad cursor, say).
    InvalidInput,
    /// What the caller named does not exist.
    NotFound,
    /// What the caller wanted to create exists already.
    AlreadyExists,
    /// A concurrent write got in the way; the same request may succeed if retried at once.
    Conflict,
    /// The store is temporarily unable to serve (busy, shutting down); retry later.
    Unavailable,
    /// The disk is full: nothing was written; retry once space is freed.
    StorageFull,
    /// Anything else: a bug or a broken disk. Details are logged, not sent.
    Internal,
}

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub struct StoreError {
    /// Kind.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl StoreError {
    /// An invalid-input error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }

    /// A conflict with a concurrent write, worth retrying.
    pub fn conflict(message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: message.to_string(),
        }
    }

    /// An already-exists error.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::AlreadyExists,
            message: message.into(),
        }
    }

    /// An unavailable error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            message: message.into(),
        }
    }

    /// A disk-full error.
    pub fn storage_full(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::StorageFull,
            message: message.into(),
        }
    }

    /// The error of a failed file operation: disk full, or unavailable.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        let message = format!("{what}: {e}");
        if e.kind() == std::io::ErrorKind::StorageFull {
            Self::storage_full(message)
        } else {
            Self::unavailable(message)
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Unavailable | ErrorKind::Conflict | ErrorKind::StorageFull
        )
    }

    /// An internal error.
    pub fn internal(message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
