//! Query errors, with the position of the mistake.

/// A query that cannot be run, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct QueryError {
    /// 1-based character position in the query text.
    pub position: usize,
    /// What went wrong, and what was expected.
    pub message: String,
}

impl QueryError {
    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}
