//! Streaming LTX writer.
//!
//! The header goes out in [`Encoder::new`], pages in [`Encoder::encode_page`],
//! and the terminator and trailer in [`Encoder::finish`], which consumes the
//! encoder so a finished file cannot be extended. Checks that fail before
//! anything is written (order, size, bounds) leave the encoder usable; a
//! failed write poisons it, because the output is then undefined.

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};

use crate::checksum::{hasher, lock_pgno, page_checksum, DbChecksum, Hasher, CHECKSUM_FLAG};
use crate::header::Header;
use crate::trailer::Trailer;
use crate::Error;

/// Size of the big-endian page number before each page.
pub const PAGE_HEADER_SIZE: usize = 4;

enum Sink<W: Write> {
    Plain(W),
    Lz4(Box<FrameEncoder<W>>),
}

impl<W: Write> Sink<W> {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Lz4(z) => z.write_all(b),
        }
    }

    fn finish(self) -> Result<W, Error> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Lz4(z) => z.finish().map_err(Error::from_lz4),
        }
    }
}

/// Writes one LTX file to `W`. Pass a buffered writer: pages are written as
/// two small writes each.
pub struct Encoder<W: Write> {
    sink: Sink<W>,
    header: Header,
    hash: Hasher,
    lock_pgno: u32,
    prev_pgno: u32,
    pages: u32,
    // Snapshots carry their own database checksum; tracking it lets `finish`
    // refuse a post-apply checksum that Go's decoder would reject.
    snapshot_sum: Option<DbChecksum>,
    poisoned: bool,
}

impl<W: Write> Encoder<W> {
    /// Validates `header` and writes it. With the LZ4 flag the page block that
    /// follows is one LZ4 frame of 64 KiB independent blocks with a content
    /// checksum, as Go's ltx v0.3 writes it. No per-block checksums: the LZ4
    /// library Go's ltx v0.3.14 uses (pierrec/lz4 v4.1.17) computes them over
    /// the uncompressed bytes, against the LZ4 spec, so it rejects frames that
    /// carry spec-conforming ones.
    pub fn new(mut w: W, header: &Header) -> Result<Self, Error> {
        header.validate()?;
        let bytes = header.to_bytes();
        w.write_all(&bytes)?;
        let mut hash = hasher();
        hash.update(&bytes);
        let sink = if header.is_compressed() {
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .content_checksum(true);
            Sink::Lz4(Box::new(FrameEncoder::with_frame_info(info, w)))
        } else {
            Sink::Plain(w)
        };
        Ok(Encoder {
            sink,
            header: *header,
            hash,
            lock_pgno: lock_pgno(header.page_size),
            prev_pgno: 0,
            pages: 0,
            snapshot_sum: header.is_snapshot().then(DbChecksum::new),
            poisoned: false,
        })
    }

    /// The header this encoder writes.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Pages written so far.
    pub fn page_count(&self) -> u32 {
        self.pages
    }

    /// For a snapshot, the database checksum of the pages written so far,
    /// which after the last page is the post-apply checksum to pass to
    /// [`Encoder::finish`]. `None` for incremental files.
    pub fn snapshot_checksum(&self) -> Option<u64> {
        self.snapshot_sum.map(|s| s.value())
    }

    /// Writes one page. Page numbers must ascend, stay within `commit`, skip
    /// the lock page, and in a snapshot run 1, 2, 3, … with no gaps.
    pub fn encode_page(&mut self, pgno: u32, data: &[u8]) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::EncoderState("encode_page after a failed write"));
        }
        let h = &self.header;
        if pgno == 0 {
            return Err(Error::ZeroPgno);
        }
        if data.len() != h.page_size as usize {
            return Err(Error::PageSizeMismatch {
                expected: h.page_size,
                actual: data.len(),
            });
        }
        if pgno > h.commit {
            return Err(Error::PageBeyondCommit {
                pgno,
                commit: h.commit,
            });
        }
        if pgno == self.lock_pgno {
            return Err(Error::LockPage { pgno });
        }
        if pgno <= self.prev_pgno {
            return Err(Error::PageOutOfOrder {
                prev: self.prev_pgno,
                pgno,
            });
        }
        if h.is_snapshot() {
            let expected = next_snapshot_pgno(self.prev_pgno, self.lock_pgno);
            if pgno != expected {
                return Err(Error::SnapshotIncomplete {
                    missing: expected,
                    commit: h.commit,
                });
            }
        }

        let pgno_bytes = pgno.to_be_bytes();
        let written = self
            .sink
            .write_all(&pgno_bytes)
            .and_then(|()| self.sink.write_all(data));
        if let Err(e) = written {
            self.poisoned = true;
            return Err(Error::from_io(e, "page"));
        }
        self.hash.update(&pgno_bytes);
        self.hash.update(data);
        if let Some(sum) = &mut self.snapshot_sum {
            sum.xor(page_checksum(pgno, data));
        }
        self.prev_pgno = pgno;
        self.pages += 1;
        Ok(())
    }

    /// Writes the terminator and trailer, flushes, and returns the writer and
    /// the trailer. `post_apply_checksum` is the database checksum after this
    /// file is applied; for a snapshot it must equal
    /// [`Encoder::snapshot_checksum`], and for an empty database it must be
    /// [`CHECKSUM_FLAG`] alone.
    pub fn finish(mut self, post_apply_checksum: u64) -> Result<(W, Trailer), Error> {
        if self.poisoned {
            return Err(Error::EncoderState("finish after a failed write"));
        }
        let h = self.header;
        if h.is_snapshot() {
            let last = last_snapshot_pgno(h.commit, self.lock_pgno);
            if self.prev_pgno != last {
                return Err(Error::SnapshotIncomplete {
                    missing: next_snapshot_pgno(self.prev_pgno, self.lock_pgno),
                    commit: h.commit,
                });
            }
        }
        if post_apply_checksum & CHECKSUM_FLAG == 0 {
            return Err(Error::InvalidPostApplyChecksum(post_apply_checksum));
        }
        let expected = match (&self.snapshot_sum, h.commit) {
            (_, 0) => Some(CHECKSUM_FLAG),
            (Some(sum), _) => Some(sum.value()),
            (None, _) => None,
        };
        if let Some(expected) = expected.filter(|&v| v != post_apply_checksum) {
            return Err(Error::PostApplyChecksumMismatch {
                expected: post_apply_checksum,
                actual: expected,
            });
        }

        let terminator = [0u8; PAGE_HEADER_SIZE];
        self.sink.write_all(&terminator)?;
        self.hash.update(&terminator);
        let mut w = self.sink.finish()?;

        let post = post_apply_checksum.to_be_bytes();
        self.hash.update(&post);
        let trailer = Trailer {
            post_apply_checksum,
            file_checksum: CHECKSUM_FLAG | self.hash.finalize(),
        };
        w.write_all(&trailer.to_bytes())?;
        w.flush()?;
        Ok((w, trailer))
    }
}

/// The page a snapshot must hold after `prev` (0 = none yet).
pub(crate) fn next_snapshot_pgno(prev: u32, lock: u32) -> u32 {
    let next = prev.saturating_add(1);
    if next == lock {
        next.saturating_add(1)
    } else {
        next
    }
}

/// The last page a complete snapshot of `commit` pages holds (0 = none).
pub(crate) fn last_snapshot_pgno(commit: u32, lock: u32) -> u32 {
    if commit == lock {
        commit - 1
    } else {
        commit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sequence_skips_lock_page() {
        assert_eq!(next_snapshot_pgno(0, 16385), 1);
        assert_eq!(next_snapshot_pgno(16383, 16385), 16384);
        assert_eq!(next_snapshot_pgno(16384, 16385), 16386);
        assert_eq!(last_snapshot_pgno(16385, 16385), 16384);
        assert_eq!(last_snapshot_pgno(16386, 16385), 16386);
        assert_eq!(last_snapshot_pgno(0, 16385), 0);
    }
}
