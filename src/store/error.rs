//! What a store call fails with: one enum, so a caller can tell a failure
//! worth retrying from stored data that cannot be read back. The `From`
//! impls sort each driver's errors into the three kinds, so store code
//! propagates them with `?`.

/// A store failure. The message is the underlying error's own text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer or could not write: a node down or slow, a
    /// full or failing disk, the writer restarting. Nothing was changed by
    /// the failed call, so it may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode as the record it should hold. Retrying
    /// does not help; an operator has to look.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Anything else the store refused: a missing schema, a bound, a race
    /// the caller may retry, a bug.
    #[error("storage failed: {0}")]
    Failed(String),
}

impl StoreError {
    /// `Failed` with `e`'s text.
    pub fn failed(e: impl std::fmt::Display) -> Self {
        StoreError::Failed(e.to_string())
    }

    /// `Unavailable` with `e`'s text.
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(e.to_string())
    }

    /// The message without the kind's prefix.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unavailable(m) | StoreError::Corrupt(m) | StoreError::Failed(m) => m,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// redb: an I/O failure, or its refusal of every call after one, is
/// `Unavailable` (a reopen cures it once the disk has room again).
fn from_redb(e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(_) | redb::Error::PreviousIo => StoreError::Unavailable(e.to_string()),
        other => StoreError::Failed(other.to_string()),
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                from_redb(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// `From` impls that file each listed error under one kind.
macro_rules! kind_from {
    ($kind:ident: $($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::$kind(e.to_string())
            }
        }
    )*};
}

// A row's JSON that does not parse as its record, stored bytes of the
// wrong length for what they hold (a hash, an id), a click log record that
// does not decode.
kind_from!(Corrupt: serde_json::Error, std::array::TryFromSliceError, super::clicklog::Corrupt);

// The disk refused; the store's own gate closed (it is shutting down); a
// store thread that should answer has gone.
kind_from!(Unavailable: std::io::Error, tokio::sync::AcquireError, std::sync::mpsc::RecvError);

// A blocking task that panicked or was cancelled.
kind_from!(Failed: tokio::task::JoinError);

// The CQL driver: a request that failed or timed out, or a session that
// could not be made, is `Unavailable`.
kind_from!(
    Unavailable: scylla::errors::ExecutionError,
    scylla::errors::PrepareError,
    scylla::errors::NewSessionError,
    scylla::errors::PagerExecutionError,
    scylla::errors::NextRowError,
    scylla::errors::NextPageError
);

// The CQL driver: rows that do not have the shape of their record.
kind_from!(
    Corrupt: scylla::errors::IntoRowsResultError,
    scylla::errors::RowsError,
    scylla::errors::MaybeFirstRowError,
    scylla::errors::FirstRowError,
    scylla::errors::SingleRowError,
    scylla::errors::DeserializationError,
    scylla::errors::TypeCheckError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_disk_is_unavailable_and_an_unreadable_row_is_corrupt() {
        let disk = redb::StorageError::Io(std::io::Error::other("No space left on device"));
        assert!(StoreError::from(disk).is_unavailable());
        assert!(StoreError::from(redb::StorageError::PreviousIo).is_unavailable());
        let row = serde_json::from_str::<u64>("{").unwrap_err();
        assert!(matches!(StoreError::from(row), StoreError::Corrupt(_)));
        let missing = redb::TableError::TableDoesNotExist("leads".into());
        assert!(matches!(StoreError::from(missing), StoreError::Failed(_)));
    }

    #[test]
    fn the_message_is_the_cause_without_the_kind() {
        let e = StoreError::unavailable("node down");
        assert_eq!((e.message(), e.to_string().as_str()), ("node down", "storage unavailable: node down"));
    }
}
