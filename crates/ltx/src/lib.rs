//! LTX v1: the transaction file format of LiteFS, bit-compatible with what
//! LiteFS 0.5.14 writes (Go `github.com/superfly/ltx` v0.3.14).
//!
//! A file is a 100-byte header, a page block (frames of a big-endian `u32`
//! page number and one page, in ascending order, ended by a zero page number;
//! with the LZ4 flag the whole block is one LZ4 frame), and a 16-byte trailer
//! holding the post-apply database checksum and the file checksum.
//!
//! This crate owns the format and its checksums and nothing else: it works
//! over `io::Read`/`io::Write`, does no async and has no file-naming or
//! durability policy beyond [`format_filename`].
//!
//! ```
//! use ltx::{Decoder, Encoder, Header, DbChecksum, page_checksum};
//! let page = vec![7u8; 4096];
//! let header = Header { page_size: 4096, commit: 1, min_txid: 1, max_txid: 1, ..Header::default() };
//! let mut enc = Encoder::new(Vec::new(), &header)?;
//! enc.encode_page(1, &page)?;
//! let mut sum = DbChecksum::new();
//! sum.xor(page_checksum(1, &page));
//! let (file, trailer) = enc.finish(sum.value())?;
//!
//! let mut dec = Decoder::new(&file[..])?;
//! let mut buf = vec![0u8; 4096];
//! assert_eq!(dec.next_page(&mut buf)?, Some(1));
//! assert_eq!(dec.next_page(&mut buf)?, None);
//! assert_eq!(dec.finish()?, trailer);
//! # Ok::<(), ltx::Error>(())
//! ```

mod apply;
mod checksum;
mod decoder;
mod encoder;
mod error;
mod filename;
mod header;
mod trailer;

pub use apply::{apply, apply_verified, encode_snapshot, FileLen};
pub use checksum::{
    database_checksum, lock_pgno, page_checksum, sqlite_page_size, DbChecksum, CHECKSUM_FLAG,
    PENDING_BYTE,
};
pub use decoder::{verify, Decoder};
pub use encoder::{Encoder, PAGE_HEADER_SIZE};
pub use error::Error;
pub use filename::{format_filename, parse_filename};
pub use header::{
    is_valid_page_size, Header, HEADER_FLAG_COMPRESS_LZ4, HEADER_FLAG_MASK, HEADER_SIZE, MAGIC,
    MAX_PAGE_SIZE,
};
pub use trailer::{Trailer, TRAILER_SIZE};
