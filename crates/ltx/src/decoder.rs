//! Streaming LTX reader.
//!
//! [`Decoder::new`] reads and validates the header, [`Decoder::next_page`]
//! yields pages in order, and [`Decoder::finish`] reads the trailer and checks
//! the file checksum. Every structural rule is checked as the bytes arrive, so
//! a bad file fails at the first bad frame rather than after it is applied.
//!
//! Memory use is bounded by the header: the only buffers are one page (for
//! draining in `finish`) and the LZ4 frame decoder's block buffers, which the
//! LZ4 frame format caps at 4 MiB per block. Decompression is incremental, so
//! a compression bomb costs time, never memory.

use std::io::{self, Read};

use lz4_flex::frame::FrameDecoder;

use crate::checksum::{hasher, lock_pgno, page_checksum, DbChecksum, Hasher, CHECKSUM_FLAG};
use crate::encoder::{last_snapshot_pgno, next_snapshot_pgno, PAGE_HEADER_SIZE};
use crate::header::{Header, HEADER_SIZE};
use crate::trailer::{Trailer, TRAILER_SIZE};
use crate::Error;

enum Source<R: Read> {
    Plain(R),
    Lz4(Box<FrameDecoder<R>>),
}

impl<R: Read> Source<R> {
    /// The page block: decompressed if the file is compressed.
    fn body(&mut self) -> &mut dyn Read {
        match self {
            Source::Plain(r) => r,
            Source::Lz4(z) => z.as_mut(),
        }
    }

    /// The file itself, for the trailer after the LZ4 frame.
    fn raw(&mut self) -> &mut R {
        match self {
            Source::Plain(r) => r,
            Source::Lz4(z) => z.get_mut(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pages,
    Trailer,
    Failed,
}

/// Reads one LTX file from `R`. Pass a buffered reader for plain files: pages
/// are read as two small reads each.
pub struct Decoder<R: Read> {
    src: Source<R>,
    header: Header,
    hash: Hasher,
    state: State,
    lock_pgno: u32,
    prev_pgno: u32,
    pages: u32,
    snapshot_sum: Option<DbChecksum>,
}

impl<R: Read> Decoder<R> {
    /// Reads and validates the header.
    pub fn new(mut r: R) -> Result<Self, Error> {
        let mut b = [0u8; HEADER_SIZE];
        r.read_exact(&mut b)
            .map_err(|e| Error::from_io(e, "header"))?;
        let header = Header::from_bytes(&b)?;
        header.validate()?;
        let mut hash = hasher();
        hash.update(&b);
        let src = if header.is_compressed() {
            Source::Lz4(Box::new(FrameDecoder::new(r)))
        } else {
            Source::Plain(r)
        };
        Ok(Decoder {
            src,
            header,
            hash,
            state: State::Pages,
            lock_pgno: lock_pgno(header.page_size),
            prev_pgno: 0,
            pages: 0,
            snapshot_sum: header.is_snapshot().then(DbChecksum::new),
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Pages read so far.
    pub fn page_count(&self) -> u32 {
        self.pages
    }

    /// Fills `buf` (exactly `page_size` bytes) with the next page and returns
    /// its number, or `None` once the terminator has been read. Calling again
    /// after `None` keeps returning `None`.
    pub fn next_page(&mut self, buf: &mut [u8]) -> Result<Option<u32>, Error> {
        match self.state {
            State::Pages => {}
            State::Trailer => return Ok(None),
            State::Failed => {
                return Err(Error::DecoderState("next_page after a decoding error"));
            }
        }
        if buf.len() != self.header.page_size as usize {
            return Err(Error::PageSizeMismatch {
                expected: self.header.page_size,
                actual: buf.len(),
            });
        }
        let result = self.read_page(buf);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn read_page(&mut self, buf: &mut [u8]) -> Result<Option<u32>, Error> {
        let mut pgno_bytes = [0u8; PAGE_HEADER_SIZE];
        self.src
            .body()
            .read_exact(&mut pgno_bytes)
            .map_err(|e| Error::from_io(e, "page header"))?;
        self.hash.update(&pgno_bytes);
        let pgno = u32::from_be_bytes(pgno_bytes);
        let h = &self.header;

        if pgno == 0 {
            if h.is_snapshot() && self.prev_pgno != last_snapshot_pgno(h.commit, self.lock_pgno) {
                return Err(Error::SnapshotIncomplete {
                    missing: next_snapshot_pgno(self.prev_pgno, self.lock_pgno),
                    commit: h.commit,
                });
            }
            self.end_page_block()?;
            self.state = State::Trailer;
            return Ok(None);
        }
        if pgno > h.commit {
            return Err(Error::PageBeyondCommit {
                pgno,
                commit: h.commit,
            });
        }
        if pgno <= self.prev_pgno {
            return Err(Error::PageOutOfOrder {
                prev: self.prev_pgno,
                pgno,
            });
        }
        if pgno == self.lock_pgno {
            return Err(Error::LockPage { pgno });
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

        self.src
            .body()
            .read_exact(buf)
            .map_err(|e| Error::from_io(e, "page data"))?;
        self.hash.update(buf);
        if let Some(sum) = &mut self.snapshot_sum {
            sum.xor(page_checksum(pgno, buf));
        }
        self.prev_pgno = pgno;
        self.pages += 1;
        Ok(Some(pgno))
    }

    /// After the terminator the LZ4 frame must end: reading on has to reach
    /// the frame's end mark (which also checks its content checksum) without
    /// yielding more data.
    fn end_page_block(&mut self) -> Result<(), Error> {
        if let Source::Lz4(z) = &mut self.src {
            let mut probe = [0u8; 1];
            loop {
                match z.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => {
                        return Err(Error::Lz4(
                            "data after the page block terminator".to_string(),
                        ))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::from_io(e, "LZ4 end mark")),
                }
            }
        }
        Ok(())
    }

    /// Skips any unread pages, reads the trailer, checks the file checksum,
    /// the trailer's format, a snapshot's post-apply checksum, and that no
    /// bytes follow.
    pub fn finish(mut self) -> Result<Trailer, Error> {
        if self.state == State::Pages {
            let mut buf = vec![0u8; self.header.page_size as usize];
            while self.next_page(&mut buf)?.is_some() {}
        }
        if self.state == State::Failed {
            return Err(Error::DecoderState("finish after a decoding error"));
        }

        let raw = self.src.raw();
        let mut b = [0u8; TRAILER_SIZE];
        raw.read_exact(&mut b)
            .map_err(|e| Error::from_io(e, "trailer"))?;
        let trailer = Trailer::from_bytes(&b)?;
        self.hash.update(&b[..8]);
        let actual = CHECKSUM_FLAG | self.hash.finalize();
        if actual != trailer.file_checksum {
            return Err(Error::FileChecksumMismatch {
                expected: trailer.file_checksum,
                actual,
            });
        }
        trailer.validate()?;

        let expected_post = match (&self.snapshot_sum, self.header.commit) {
            (_, 0) => Some(CHECKSUM_FLAG),
            (Some(sum), _) => Some(sum.value()),
            (None, _) => None,
        };
        if let Some(actual) = expected_post.filter(|&v| v != trailer.post_apply_checksum) {
            return Err(Error::PostApplyChecksumMismatch {
                expected: trailer.post_apply_checksum,
                actual,
            });
        }

        let mut probe = [0u8; 1];
        loop {
            match raw.read(&mut probe) {
                Ok(0) => return Ok(trailer),
                Ok(_) => return Err(Error::TrailingData),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

/// Reads a whole LTX file and checks everything a decoder can: header fields,
/// page order and bounds, snapshot completeness, trailer format, file
/// checksum, a snapshot's post-apply checksum, and that nothing follows.
pub fn verify<R: Read>(r: R) -> Result<(Header, Trailer), Error> {
    let mut dec = Decoder::new(r)?;
    let header = *dec.header();
    let mut buf = vec![0u8; header.page_size as usize];
    while dec.next_page(&mut buf)?.is_some() {}
    let trailer = dec.finish()?;
    Ok((header, trailer))
}
