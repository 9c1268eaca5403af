//! The one error type of the crate.
//!
//! Every variant names what is wrong with the file or the call, so a caller can
//! log it as is. Truncation anywhere is [`Error::Truncated`], never a bare I/O
//! error, because "the file is short" and "the disk failed" need different
//! handling upstream (refetch versus retry).

use std::io;

/// Errors returned by encoding, decoding, applying and verifying LTX files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first four bytes are not `LTX1`.
    #[error("invalid LTX magic {found:02x?}, expected \"LTX1\"")]
    InvalidMagic { found: [u8; 4] },

    /// A header flag other than LZ4 compression (0x1) is set.
    #[error("unsupported LTX header flags 0x{0:08x} (only 0x00000001 = LZ4 is defined)")]
    UnsupportedFlags(u32),

    /// The page size is not a power of two in 512..=65536.
    #[error("invalid page size {0} (must be a power of two from 512 to 65536)")]
    InvalidPageSize(u32),

    /// The minimum or maximum TXID is zero.
    #[error("transaction id must be non-zero (min={min}, max={max})")]
    ZeroTxid { min: u64, max: u64 },

    /// The minimum TXID is greater than the maximum TXID.
    #[error("transaction ids out of order: min {min} > max {max}")]
    InvalidTxidRange { min: u64, max: u64 },

    /// The WAL offset, size and salts are inconsistent (see `Header::validate`).
    #[error("invalid WAL fields in header: {0}")]
    InvalidWalFields(&'static str),

    /// A snapshot carries a non-zero pre-apply checksum, or an incremental file
    /// carries one without the checksum flag.
    #[error(
        "invalid pre-apply checksum {checksum:016x} for {} file",
        if *snapshot { "snapshot (must be zero)" } else { "incremental (must have top bit set)" }
    )]
    InvalidPreApplyChecksum { checksum: u64, snapshot: bool },

    /// The trailer's post-apply checksum is zero or lacks the checksum flag.
    #[error("invalid post-apply checksum {0:016x} (must have top bit set)")]
    InvalidPostApplyChecksum(u64),

    /// The trailer's file checksum is zero or lacks the checksum flag.
    #[error("invalid file checksum {0:016x} (must have top bit set)")]
    InvalidFileChecksum(u64),

    /// Page number zero passed to the encoder (zero ends the page block).
    #[error("page number must be non-zero")]
    ZeroPgno,

    /// Page numbers are not strictly ascending.
    #[error("page {pgno} out of order: follows page {prev}")]
    PageOutOfOrder { prev: u32, pgno: u32 },

    /// A page lies beyond the database size the header declares.
    #[error("page {pgno} beyond commit size of {commit} pages")]
    PageBeyondCommit { pgno: u32, commit: u32 },

    /// The lock page (holding byte 0x40000000) never appears in an LTX file.
    #[error("page {pgno} is the lock page and cannot be stored")]
    LockPage { pgno: u32 },

    /// A snapshot skips a page between 1 and its commit size.
    #[error("snapshot is missing page {missing} of {commit}")]
    SnapshotIncomplete { missing: u32, commit: u32 },

    /// A page buffer's length differs from the header's page size.
    #[error("page buffer is {actual} bytes, page size is {expected}")]
    PageSizeMismatch { expected: u32, actual: usize },

    /// The database checksum before applying does not match the header.
    #[error(
        "pre-apply checksum mismatch: file expects {expected:016x}, database has {actual:016x}"
    )]
    PreApplyChecksumMismatch { expected: u64, actual: u64 },

    /// The post-apply checksum stated in a trailer (or passed to the encoder)
    /// differs from the one computed from the pages or the database.
    #[error("post-apply checksum mismatch: stated {expected:016x}, computed {actual:016x}")]
    PostApplyChecksumMismatch { expected: u64, actual: u64 },

    /// The CRC over the file's contents does not match the trailer.
    #[error("file checksum mismatch: trailer has {expected:016x}, computed {actual:016x}")]
    FileChecksumMismatch { expected: u64, actual: u64 },

    /// A page's checksum differs from one recorded elsewhere (for callers that
    /// keep per-page checksums and check pages against them).
    #[error("page {pgno} checksum mismatch: expected {expected:016x}, computed {actual:016x}")]
    PageChecksumMismatch {
        pgno: u32,
        expected: u64,
        actual: u64,
    },

    /// The input ended early; `at` names the part being read.
    #[error("unexpected end of file while reading {at}")]
    Truncated { at: &'static str },

    /// Bytes follow the trailer.
    #[error("unexpected data after LTX trailer")]
    TrailingData,

    /// A database file's length is not a whole number of pages (or too many pages).
    #[error("database size {len} is not a whole number of {page_size}-byte pages")]
    InvalidDatabaseSize { len: u64, page_size: u32 },

    /// The encoder was used after a write failed and left the output undefined.
    #[error("LTX encoder misuse: {0}")]
    EncoderState(&'static str),

    /// The decoder was used after an error left its position undefined.
    #[error("LTX decoder misuse: {0}")]
    DecoderState(&'static str),

    /// The LZ4 frame holding the page block is malformed.
    #[error("bad LZ4 page block: {0}")]
    Lz4(String),

    /// A file name is not `<16 hex>-<16 hex>.ltx` in lower case.
    #[error("invalid LTX file name {0:?} (expected %016x-%016x.ltx)")]
    InvalidFilename(String),

    /// The underlying reader or writer failed.
    #[error("LTX I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// Classifies an I/O error raised while handling part `at` of a file:
    /// end of input is truncation, LZ4 frame errors are [`Error::Lz4`].
    pub(crate) fn from_io(err: io::Error, at: &'static str) -> Error {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            return Error::Truncated { at };
        }
        if let Some(inner) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<lz4_flex::frame::Error>())
        {
            return Error::Lz4(inner.to_string());
        }
        Error::Io(err)
    }

    /// Same split for the writing side, where only LZ4 needs separating out.
    pub(crate) fn from_lz4(err: lz4_flex::frame::Error) -> Error {
        match err {
            lz4_flex::frame::Error::IoError(e) => Error::Io(e),
            other => Error::Lz4(other.to_string()),
        }
    }
}
