//! The 100-byte LTX header and its validation.

use crate::checksum::{lock_pgno, CHECKSUM_FLAG};
use crate::Error;

/// Size of the encoded header.
pub const HEADER_SIZE: usize = 100;

/// Header flag: the page block is one LZ4 frame.
pub const HEADER_FLAG_COMPRESS_LZ4: u32 = 1;

/// All flags this version understands.
pub const HEADER_FLAG_MASK: u32 = HEADER_FLAG_COMPRESS_LZ4;

/// First four bytes of every LTX v1 file.
pub const MAGIC: [u8; 4] = *b"LTX1";

/// Largest SQLite page size.
pub const MAX_PAGE_SIZE: u32 = 65536;

/// The header of an LTX file. All fields are stored big-endian; bytes 80..100
/// are reserved and written as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Only [`HEADER_FLAG_COMPRESS_LZ4`] is defined.
    pub flags: u32,
    /// Database page size in bytes.
    pub page_size: u32,
    /// Database size in pages after this file is applied.
    pub commit: u32,
    /// First transaction in the file; 1 makes the file a snapshot.
    pub min_txid: u64,
    /// Last transaction in the file.
    pub max_txid: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Database checksum before applying; 0 for snapshots.
    pub pre_apply_checksum: u64,
    /// Offset of the source WAL segment, 0 when it came from a rollback journal.
    pub wal_offset: i64,
    /// Size of the source WAL segment.
    pub wal_size: i64,
    /// WAL header salt-1 of the source segment.
    pub wal_salt1: u32,
    /// WAL header salt-2 of the source segment.
    pub wal_salt2: u32,
    /// Node that created the file, 0 if unset.
    pub node_id: u64,
}

impl Header {
    /// Encodes the header; reserved bytes are zero.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.commit.to_be_bytes());
        b[16..24].copy_from_slice(&self.min_txid.to_be_bytes());
        b[24..32].copy_from_slice(&self.max_txid.to_be_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_be_bytes());
        b[40..48].copy_from_slice(&self.pre_apply_checksum.to_be_bytes());
        b[48..56].copy_from_slice(&self.wal_offset.to_be_bytes());
        b[56..64].copy_from_slice(&self.wal_size.to_be_bytes());
        b[64..68].copy_from_slice(&self.wal_salt1.to_be_bytes());
        b[68..72].copy_from_slice(&self.wal_salt2.to_be_bytes());
        b[72..80].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    /// Parses a header from the first [`HEADER_SIZE`] bytes of `b`.
    ///
    /// Checks only the magic, like Go's `UnmarshalBinary`; call
    /// [`Header::validate`] for the field rules. Reserved bytes are ignored, as
    /// Go ignores them; in a whole file they are covered by the file checksum.
    pub fn from_bytes(b: &[u8]) -> Result<Header, Error> {
        let b: &[u8; HEADER_SIZE] = b
            .get(..HEADER_SIZE)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated { at: "header" })?;
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(Error::InvalidMagic { found: magic });
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        Ok(Header {
            flags: u32_at(4),
            page_size: u32_at(8),
            commit: u32_at(12),
            min_txid: u64_at(16),
            max_txid: u64_at(24),
            timestamp: u64_at(32) as i64,
            pre_apply_checksum: u64_at(40),
            wal_offset: u64_at(48) as i64,
            wal_size: u64_at(56) as i64,
            wal_salt1: u32_at(64),
            wal_salt2: u32_at(68),
            node_id: u64_at(72),
        })
    }

    /// Checks the field rules of Go's `Header.Validate` (ltx v0.3.14), in the
    /// same order so the first error reported matches.
    pub fn validate(&self) -> Result<(), Error> {
        if self.flags & !HEADER_FLAG_MASK != 0 {
            return Err(Error::UnsupportedFlags(self.flags));
        }
        if !is_valid_page_size(self.page_size) {
            return Err(Error::InvalidPageSize(self.page_size));
        }
        if self.min_txid == 0 || self.max_txid == 0 {
            return Err(Error::ZeroTxid {
                min: self.min_txid,
                max: self.max_txid,
            });
        }
        if self.min_txid > self.max_txid {
            return Err(Error::InvalidTxidRange {
                min: self.min_txid,
                max: self.max_txid,
            });
        }
        if self.wal_offset < 0 {
            return Err(Error::InvalidWalFields("WAL offset is negative"));
        }
        if self.wal_size < 0 {
            return Err(Error::InvalidWalFields("WAL size is negative"));
        }
        if self.wal_salt1 != 0 || self.wal_salt2 != 0 {
            if self.wal_offset == 0 {
                return Err(Error::InvalidWalFields(
                    "WAL offset required when a salt is set",
                ));
            }
            if self.wal_size == 0 {
                return Err(Error::InvalidWalFields(
                    "WAL size required when a salt is set",
                ));
            }
        }
        if self.wal_offset != 0 && self.wal_size == 0 {
            return Err(Error::InvalidWalFields(
                "WAL size required when WAL offset is set",
            ));
        }
        if self.wal_offset == 0 && self.wal_size != 0 {
            return Err(Error::InvalidWalFields(
                "WAL offset required when WAL size is set",
            ));
        }
        let pre = self.pre_apply_checksum;
        let ok = if self.is_snapshot() {
            pre == 0
        } else {
            pre & CHECKSUM_FLAG != 0
        };
        if !ok {
            return Err(Error::InvalidPreApplyChecksum {
                checksum: pre,
                snapshot: self.is_snapshot(),
            });
        }
        Ok(())
    }

    /// A snapshot starts at TXID 1 and holds every page of the database.
    pub fn is_snapshot(&self) -> bool {
        self.min_txid == 1
    }

    /// Whether the page block is one LZ4 frame.
    pub fn is_compressed(&self) -> bool {
        self.flags & HEADER_FLAG_COMPRESS_LZ4 != 0
    }

    /// The lock page for this header's page size.
    pub fn lock_pgno(&self) -> u32 {
        lock_pgno(self.page_size)
    }
}

/// True for powers of two from 512 to 65536.
pub fn is_valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (512..=MAX_PAGE_SIZE).contains(&size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            flags: HEADER_FLAG_COMPRESS_LZ4,
            page_size: 4096,
            commit: 10,
            min_txid: 5,
            max_txid: 7,
            timestamp: -1_700_000_000_123,
            pre_apply_checksum: CHECKSUM_FLAG | 0x1234,
            wal_offset: 32,
            wal_size: 4152,
            wal_salt1: 0xdead_beef,
            wal_salt2: 0x0102_0304,
            node_id: 0x0a0b_0c0d_0e0f_1011,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"LTX1");
        assert_eq!(&b[72..80], &0x0a0b_0c0d_0e0f_1011u64.to_be_bytes());
        assert!(b[80..].iter().all(|&x| x == 0));
        assert_eq!(Header::from_bytes(&b).unwrap(), h);
        h.validate().unwrap();
    }

    #[test]
    fn field_offsets_are_big_endian() {
        let b = sample().to_bytes();
        assert_eq!(&b[4..8], &[0, 0, 0, 1]);
        assert_eq!(&b[8..12], &[0, 0, 0x10, 0]);
        assert_eq!(&b[12..16], &[0, 0, 0, 10]);
        assert_eq!(&b[16..24], &[0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&b[24..32], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&b[40..48], &[0x80, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(&b[64..68], &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn short_and_bad_magic() {
        let b = sample().to_bytes();
        assert!(matches!(
            Header::from_bytes(&b[..99]),
            Err(Error::Truncated { at: "header" })
        ));
        let mut bad = b;
        bad[3] = b'2';
        assert!(matches!(
            Header::from_bytes(&bad),
            Err(Error::InvalidMagic { found }) if &found == b"LTX2"
        ));
    }

    #[test]
    fn validation_errors() {
        let ok = sample();
        let check = |h: Header| h.validate().unwrap_err();

        assert!(matches!(
            check(Header { flags: 2, ..ok }),
            Error::UnsupportedFlags(2)
        ));
        assert!(matches!(
            check(Header {
                flags: 0x8000_0001,
                ..ok
            }),
            Error::UnsupportedFlags(0x8000_0001)
        ));
        for bad in [0, 256, 1000, 4097, 131072] {
            assert!(matches!(
                check(Header { page_size: bad, ..ok }),
                Error::InvalidPageSize(p) if p == bad
            ));
        }
        assert!(matches!(
            check(Header { min_txid: 0, ..ok }),
            Error::ZeroTxid { .. }
        ));
        assert!(matches!(
            check(Header { max_txid: 0, ..ok }),
            Error::ZeroTxid { .. }
        ));
        assert!(matches!(
            check(Header {
                min_txid: 8,
                max_txid: 7,
                ..ok
            }),
            Error::InvalidTxidRange { min: 8, max: 7 }
        ));
        assert!(matches!(
            check(Header {
                wal_offset: -1,
                ..ok
            }),
            Error::InvalidWalFields(_)
        ));
        assert!(matches!(
            check(Header { wal_size: -1, ..ok }),
            Error::InvalidWalFields(_)
        ));
        assert!(matches!(
            check(Header {
                wal_offset: 0,
                ..ok
            }),
            Error::InvalidWalFields(_)
        ));
        assert!(matches!(
            check(Header { wal_size: 0, ..ok }),
            Error::InvalidWalFields(_)
        ));
        let no_salt = Header {
            wal_salt1: 0,
            wal_salt2: 0,
            ..ok
        };
        no_salt.validate().unwrap();
        assert!(matches!(
            check(Header {
                wal_offset: 0,
                ..no_salt
            }),
            Error::InvalidWalFields(_)
        ));
        assert!(matches!(
            check(Header {
                wal_size: 0,
                ..no_salt
            }),
            Error::InvalidWalFields(_)
        ));
        Header {
            wal_offset: 0,
            wal_size: 0,
            ..no_salt
        }
        .validate()
        .unwrap();

        assert!(matches!(
            check(Header {
                pre_apply_checksum: 0,
                ..ok
            }),
            Error::InvalidPreApplyChecksum {
                checksum: 0,
                snapshot: false
            }
        ));
        assert!(matches!(
            check(Header {
                pre_apply_checksum: 1,
                ..ok
            }),
            Error::InvalidPreApplyChecksum {
                checksum: 1,
                snapshot: false
            }
        ));
        let snap = Header { min_txid: 1, ..ok };
        assert!(snap.is_snapshot());
        assert!(matches!(
            check(snap),
            Error::InvalidPreApplyChecksum { snapshot: true, .. }
        ));
        Header {
            pre_apply_checksum: 0,
            ..snap
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn page_sizes() {
        let valid: Vec<u32> = (0..=20)
            .map(|s| 1u32 << s)
            .filter(|&s| is_valid_page_size(s))
            .collect();
        assert_eq!(
            valid,
            vec![512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
        );
    }
}
