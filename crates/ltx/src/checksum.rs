//! CRC-64/ISO checksums as LiteFS computes them.
//!
//! Go's `hash/crc64` with the ISO table is the `CRC_64_GO_ISO` algorithm of
//! the `crc` crate. Every stored checksum has [`CHECKSUM_FLAG`] set so that a
//! zero can always mean "absent".

use std::io::Read;

use crc::{Crc, Digest, Table, CRC_64_GO_ISO};

use crate::header::is_valid_page_size;
use crate::Error;

/// Top bit set on every stored checksum.
pub const CHECKSUM_FLAG: u64 = 1 << 63;

/// SQLite's PENDING_BYTE: the page holding it is never written by SQLite and
/// is left out of LTX files and database checksums.
pub const PENDING_BYTE: u32 = 0x4000_0000;

// Slice-by-16 tables: decoding speed is bounded by this CRC, which covers
// every byte of every file.
pub(crate) static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_GO_ISO);

pub(crate) type Hasher = Digest<'static, u64, Table<16>>;

pub(crate) fn hasher() -> Hasher {
    CRC64.digest()
}

/// Checksum of one page: `FLAG | crc64(pgno as big-endian u32 ‖ data)`.
pub fn page_checksum(pgno: u32, data: &[u8]) -> u64 {
    let mut h = hasher();
    h.update(&pgno.to_be_bytes());
    h.update(data);
    CHECKSUM_FLAG | h.finalize()
}

/// Number of the page that holds byte offset 0x40000000 for this page size.
///
/// Returns 0 (which is never a page number) for a page size of 0 rather than
/// panicking, so callers with unchecked input get "no lock page".
pub fn lock_pgno(page_size: u32) -> u32 {
    PENDING_BYTE.checked_div(page_size).map_or(0, |q| q + 1)
}

/// Running database checksum: the XOR of all page checksums with the flag set.
///
/// XOR is its own inverse, so replacing a page is `xor(old); xor(new)`, and
/// removing one is `xor(old)`. The flag is OR-ed back on read because an even
/// number of flagged values XOR to a value without it; an empty database is
/// therefore `CHECKSUM_FLAG` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbChecksum {
    acc: u64,
}

impl DbChecksum {
    /// The checksum of an empty database.
    pub fn new() -> Self {
        DbChecksum { acc: 0 }
    }

    /// Resumes from a stored database checksum (e.g. a post-apply checksum).
    pub fn from_value(v: u64) -> Self {
        DbChecksum { acc: v }
    }

    /// Adds or removes one page checksum.
    pub fn xor(&mut self, page_checksum: u64) {
        self.acc ^= page_checksum;
    }

    /// The database checksum, flag set.
    pub fn value(&self) -> u64 {
        CHECKSUM_FLAG | self.acc
    }
}

impl Default for DbChecksum {
    fn default() -> Self {
        Self::new()
    }
}

/// Page size recorded in a SQLite database header (bytes 16..18, big-endian;
/// the value 1 means 65536).
pub fn sqlite_page_size(db_header: &[u8]) -> Result<u32, Error> {
    let b = db_header.get(16..18).ok_or(Error::Truncated {
        at: "SQLite database header",
    })?;
    let raw = u32::from(u16::from_be_bytes([b[0], b[1]]));
    let size = if raw == 1 { 65536 } else { raw };
    if !is_valid_page_size(size) {
        return Err(Error::InvalidPageSize(size));
    }
    Ok(size)
}

/// Checksum of a whole database file read from `r`, the lock page excluded.
///
/// A final partial page is [`Error::Truncated`]: a database file is always a
/// whole number of pages, so a short one is being written or is damaged.
pub fn database_checksum<R: Read>(r: R, page_size: u32) -> Result<u64, Error> {
    if !is_valid_page_size(page_size) {
        return Err(Error::InvalidPageSize(page_size));
    }
    checksum_pages(r, page_size, lock_pgno(page_size))
}

fn checksum_pages<R: Read>(mut r: R, page_size: u32, lock: u32) -> Result<u64, Error> {
    let mut buf = vec![0u8; page_size as usize];
    let mut sum = DbChecksum::new();
    let mut pgno: u32 = 0;
    loop {
        let n = read_up_to(&mut r, &mut buf)?;
        if n == 0 {
            return Ok(sum.value());
        }
        if n < buf.len() {
            return Err(Error::Truncated {
                at: "database page",
            });
        }
        pgno = pgno.checked_add(1).ok_or(Error::InvalidDatabaseSize {
            len: u64::from(u32::MAX) * u64::from(page_size),
            page_size,
        })?;
        if pgno != lock {
            sum.xor(page_checksum(pgno, &buf));
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_go_iso_check_value() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO))
        assert_eq!(CRC64.checksum(b"123456789"), 0xb90956c775a41001);
    }

    #[test]
    fn database_checksum_test_vector() {
        let mut db = Vec::new();
        for fill in 1u8..=3 {
            db.extend(std::iter::repeat_n(fill, 512));
        }
        assert_eq!(database_checksum(&db[..], 512).unwrap(), 0xefffffffecd99000);

        let mut sum = DbChecksum::new();
        for (i, page) in db.chunks(512).enumerate() {
            sum.xor(page_checksum(i as u32 + 1, page));
        }
        assert_eq!(sum.value(), 0xefffffffecd99000);
    }

    #[test]
    fn empty_database_is_flag_alone() {
        assert_eq!(database_checksum(&[][..], 4096).unwrap(), CHECKSUM_FLAG);
        assert_eq!(DbChecksum::new().value(), CHECKSUM_FLAG);
    }

    #[test]
    fn even_page_count_keeps_flag() {
        let a = page_checksum(1, &[1u8; 512]);
        let b = page_checksum(2, &[2u8; 512]);
        let mut sum = DbChecksum::new();
        sum.xor(a);
        sum.xor(b);
        assert_ne!(sum.value() & CHECKSUM_FLAG, 0);
        assert_eq!(sum.value(), CHECKSUM_FLAG | (a ^ b));
        // Removing a page restores the previous value exactly.
        sum.xor(b);
        assert_eq!(sum.value(), a);
        let mut resumed = DbChecksum::from_value(sum.value());
        resumed.xor(b);
        assert_eq!(resumed.value(), CHECKSUM_FLAG | (a ^ b));
    }

    #[test]
    fn partial_page_is_truncated() {
        let db = vec![0u8; 1024 + 10];
        assert!(matches!(
            database_checksum(&db[..], 512),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn lock_page_numbers() {
        assert_eq!(lock_pgno(4096), 262145);
        assert_eq!(lock_pgno(512), 2097153);
        assert_eq!(lock_pgno(65536), 16385);
        assert_eq!(lock_pgno(0), 0);
    }

    #[test]
    fn lock_page_excluded_from_database_checksum() {
        // A real lock page sits at 1 GiB; the rule is the same at any position.
        let db: Vec<u8> = (1u8..=4)
            .flat_map(|b| std::iter::repeat_n(b, 512))
            .collect();
        let got = checksum_pages(&db[..], 512, 3).unwrap();
        let mut want = DbChecksum::new();
        for pgno in [1u32, 2, 4] {
            want.xor(page_checksum(pgno, &db[(pgno as usize - 1) * 512..][..512]));
        }
        assert_eq!(got, want.value());
    }

    #[test]
    fn sqlite_page_size_reads_header() {
        let mut h = [0u8; 100];
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        assert_eq!(sqlite_page_size(&h).unwrap(), 4096);
        h[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(sqlite_page_size(&h).unwrap(), 65536);
        h[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert!(matches!(
            sqlite_page_size(&h),
            Err(Error::InvalidPageSize(1000))
        ));
        assert!(matches!(
            sqlite_page_size(&h[..10]),
            Err(Error::Truncated { .. })
        ));
    }
}
