//! Store failures, split by what the caller should do about them.

/// A store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (in this organization).
    #[error("{0} not found")]
    NotFound(String),
    /// The change would break a uniqueness rule, such as two actions with one name.
    #[error("{0} already exists")]
    Conflict(String),
    /// The backend failed; the message is for operators, not end users.
    #[error("storage backend error: {0}")]
    Backend(String),
}
