//! The store's error type. Every variant says which database or file it is
//! about, so the edge (FUSE errno, CLI message) can report it as is.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write reached a node that is not the primary.
    #[error("database {db}: {op} refused: this node is not the primary")]
    ReadOnly { db: String, op: &'static str },

    #[error("database {db}: write of {len} bytes at offset {offset} is not aligned to the page size {page_size}")]
    Misaligned {
        db: String,
        offset: u64,
        len: usize,
        page_size: u32,
    },

    #[error("database {db}: changing the page size from {from} to {to} is not supported")]
    PageSizeChange { db: String, from: u32, to: u32 },

    #[error("database {db}: a database write outside of a journaled transaction (journal_mode OFF and MEMORY are not supported)")]
    Unjournaled { db: String },

    #[error("data directory {} is in use by another litefs process (it holds the lock on {}); stop it first", dir.display(), lock.display())]
    InUse { dir: PathBuf, lock: PathBuf },

    /// The operation would cut off a transaction in progress.
    #[error("database {db}: busy: {reason}")]
    Busy { db: String, reason: String },

    #[error("invalid database name {0:?}")]
    InvalidName(String),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{}: {source}", path.display())]
    Ltx {
        path: PathBuf,
        #[source]
        source: ltx::Error,
    },

    /// State on disk that cannot be reconciled without a human: the message
    /// says what was found and how to get out.
    #[error("database {db}: {reason}")]
    Corrupt { db: String, reason: String },

    /// A commit could not be captured; the store stops taking writes.
    #[error("database {db}: commit could not be captured: {reason}")]
    Capture { db: String, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches a path to io errors, so nobody sees a bare "No such file".
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })
    }
}
