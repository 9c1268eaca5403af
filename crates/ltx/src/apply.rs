//! Whole-file operations over a database file: snapshot, apply.
//!
//! These stream: pages go to the database as they are decoded, and the file
//! checksum is known only at the end. An error part way (a corrupt or
//! truncated file) therefore leaves the database partly written. Callers that
//! need all-or-nothing do what LiteFS does: receive the LTX file to disk,
//! [`crate::verify`] it, then apply it under the database's write lock (and
//! keep the file to replay if the apply itself is interrupted).

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use crate::checksum::{lock_pgno, page_checksum, DbChecksum};
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::header::{is_valid_page_size, Header, HEADER_FLAG_COMPRESS_LZ4};
use crate::trailer::Trailer;
use crate::Error;

/// Length control for a database file, beyond `Read`/`Write`/`Seek`.
pub trait FileLen {
    /// Current length in bytes.
    fn file_len(&self) -> io::Result<u64>;
    /// Truncates or zero-extends to `len` bytes.
    fn set_file_len(&mut self, len: u64) -> io::Result<()>;
}

impl FileLen for File {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_file_len(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// An in-memory database, for tests and tools.
impl FileLen for Cursor<Vec<u8>> {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.get_ref().len() as u64)
    }

    fn set_file_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        self.get_mut().resize(len, 0);
        Ok(())
    }
}

/// Encodes the whole database read from `db` as one snapshot LTX file
/// (min TXID 1, max TXID `max_txid`) and returns its trailer, whose
/// post-apply checksum is the database's checksum.
///
/// `db` must be `Seek` because the header, written first, holds the page
/// count: the database's length is taken once, and that many pages are read
/// from its start. It must be a whole number of `page_size` pages; the caller
/// holds whatever lock keeps it from changing meanwhile.
pub fn encode_snapshot<R: Read + Seek, W: Write>(
    mut db: R,
    w: W,
    page_size: u32,
    max_txid: u64,
    timestamp: i64,
    node_id: u64,
    compress: bool,
) -> Result<Trailer, Error> {
    if !is_valid_page_size(page_size) {
        return Err(Error::InvalidPageSize(page_size));
    }
    let len = db.seek(SeekFrom::End(0))?;
    db.seek(SeekFrom::Start(0))?;
    let ps = u64::from(page_size);
    let commit = u32::try_from(len / ps)
        .ok()
        .filter(|_| len % ps == 0)
        .ok_or(Error::InvalidDatabaseSize { len, page_size })?;

    let header = Header {
        flags: if compress {
            HEADER_FLAG_COMPRESS_LZ4
        } else {
            0
        },
        page_size,
        commit,
        min_txid: 1,
        max_txid,
        timestamp,
        node_id,
        ..Header::default()
    };
    let mut enc = Encoder::new(w, &header)?;
    let lock = lock_pgno(page_size);
    let mut buf = vec![0u8; page_size as usize];
    for pgno in 1..=commit {
        db.read_exact(&mut buf)
            .map_err(|e| Error::from_io(e, "database page"))?;
        if pgno != lock {
            enc.encode_page(pgno, &buf)?;
        }
    }
    let sum = enc.snapshot_checksum().unwrap_or_default();
    let (_, trailer) = enc.finish(sum)?;
    Ok(trailer)
}

/// Applies one LTX file to a database file: writes each page at
/// `(pgno - 1) * page_size`, then (once the file checksum has been verified)
/// truncates or extends the database to `commit` pages.
///
/// Checks everything [`crate::verify`] checks, including a snapshot's
/// post-apply checksum, but not that the file follows the database's current
/// state; use [`apply_verified`] for that. See the module docs on atomicity.
pub fn apply<R: Read, F: Write + Seek + FileLen>(
    ltx: R,
    db: &mut F,
) -> Result<(Header, Trailer), Error> {
    let mut dec = Decoder::new(ltx)?;
    let header = *dec.header();
    let ps = u64::from(header.page_size);
    let mut buf = vec![0u8; header.page_size as usize];
    let mut pos = None;
    while let Some(pgno) = dec.next_page(&mut buf)? {
        let off = u64::from(pgno - 1) * ps;
        if pos != Some(off) {
            db.seek(SeekFrom::Start(off))?;
        }
        db.write_all(&buf)?;
        pos = Some(off + ps);
    }
    let trailer = dec.finish()?;
    db.set_file_len(u64::from(header.commit) * ps)?;
    Ok((header, trailer))
}

/// [`apply`], plus the checks that make a replica provably identical to its
/// primary: the header's pre-apply checksum must equal `current_checksum`
/// (the database's checksum now; ignored for snapshots, which replace the
/// whole database), and the database's checksum afterwards must equal the
/// trailer's post-apply checksum.
///
/// The post-apply checksum is computed incrementally: each overwritten page is
/// read first and its checksum XOR-ed out, pages cut off by a smaller
/// `commit` are XOR-ed out, and zero pages created by growth are XOR-ed in.
/// The pre-apply mismatch is reported before anything is written; a
/// post-apply mismatch is reported after the database has been changed.
pub fn apply_verified<R: Read, F: Read + Write + Seek + FileLen>(
    ltx: R,
    db: &mut F,
    current_checksum: u64,
) -> Result<(Header, Trailer), Error> {
    let mut dec = Decoder::new(ltx)?;
    let header = *dec.header();
    let snapshot = header.is_snapshot();
    if !snapshot && header.pre_apply_checksum != current_checksum {
        return Err(Error::PreApplyChecksumMismatch {
            expected: header.pre_apply_checksum,
            actual: current_checksum,
        });
    }

    let page_size = header.page_size;
    let ps = u64::from(page_size);
    let lock = u64::from(lock_pgno(page_size));
    let old_len = db.file_len()?;
    if old_len % ps != 0 {
        return Err(Error::InvalidDatabaseSize {
            len: old_len,
            page_size,
        });
    }
    let old_pages = old_len / ps;
    let zero_page = vec![0u8; page_size as usize];
    let mut buf = vec![0u8; page_size as usize];
    let mut old = vec![0u8; page_size as usize];
    let mut sum = if snapshot {
        DbChecksum::new()
    } else {
        DbChecksum::from_value(current_checksum)
    };
    // First page past the old end whose zero-filled contents are not yet in `sum`.
    let mut next_new = old_pages + 1;
    let add_zero_pages = |sum: &mut DbChecksum, range: std::ops::Range<u64>| {
        for p in range.filter(|&p| p != lock) {
            // p <= commit, which is a u32.
            sum.xor(page_checksum(p as u32, &zero_page));
        }
    };

    while let Some(pgno) = dec.next_page(&mut buf)? {
        let p = u64::from(pgno);
        let off = (p - 1) * ps;
        if !snapshot {
            if p <= old_pages {
                db.seek(SeekFrom::Start(off))?;
                db.read_exact(&mut old)
                    .map_err(|e| Error::from_io(e, "database page"))?;
                sum.xor(page_checksum(pgno, &old));
            } else {
                add_zero_pages(&mut sum, next_new..p);
                next_new = p + 1;
            }
        }
        db.seek(SeekFrom::Start(off))?;
        db.write_all(&buf)?;
        sum.xor(page_checksum(pgno, &buf));
    }
    let trailer = dec.finish()?;

    let commit = u64::from(header.commit);
    if !snapshot {
        if commit < old_pages {
            for p in (commit + 1..=old_pages).filter(|&p| p != lock) {
                db.seek(SeekFrom::Start((p - 1) * ps))?;
                db.read_exact(&mut old)
                    .map_err(|e| Error::from_io(e, "database page"))?;
                sum.xor(page_checksum(p as u32, &old));
            }
        } else {
            add_zero_pages(&mut sum, next_new..commit + 1);
        }
    }
    db.set_file_len(commit * ps)?;

    if sum.value() != trailer.post_apply_checksum {
        return Err(Error::PostApplyChecksumMismatch {
            expected: trailer.post_apply_checksum,
            actual: sum.value(),
        });
    }
    Ok((header, trailer))
}
