//! Database errors turned into [`StoreError`]s: uniqueness and foreign-key violations become
//! `Conflict` and `NotFound`, by the database's own error kind; the rest is `Backend`.

use sqlx::error::ErrorKind;

use crate::error::StoreError;

/// A mapper for errors that can only be backend failures, naming what was being done.
pub(super) fn backend(doing: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| StoreError::Backend(format!("{doing}: {err}"))
}

/// What a failed write means to the caller.
pub(super) struct WriteContext<'a> {
    /// What was being done, for backend failures.
    pub doing: &'a str,
    /// The record whose uniqueness rule the write would break (`Conflict`).
    pub taken: &'a str,
    /// The record a foreign key needed that is absent (`NotFound`).
    pub missing: &'a str,
}

impl WriteContext<'_> {
    /// Classifies `err` by the database's error kind.
    pub(super) fn classify(&self, err: sqlx::Error) -> StoreError {
        match database_kind(&err) {
            Some(ErrorKind::UniqueViolation) => StoreError::Conflict(self.taken.to_string()),
            Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound(self.missing.to_string()),
            _ => StoreError::Backend(format!("{}: {err}", self.doing)),
        }
    }
}

/// The kind of a database-reported error, if `err` is one.
fn database_kind(err: &sqlx::Error) -> Option<ErrorKind> {
    match err {
        sqlx::Error::Database(db_err) => Some(db_err.kind()),
        _ => None,
    }
}

/// A `NotFound` when a statement touched no row (the record it was meant for is absent).
pub(super) fn require_one(
    rows_affected: u64,
    what: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}
