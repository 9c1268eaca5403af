//! SQLite's on-disk structures that commit capture needs to read: the
//! database header, the rollback journal header and WAL frames. Only the
//! fields the store acts on are decoded.

/// Every rollback journal header starts with these bytes; a zeroed header
/// is how PERSIST mode commits.
pub const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

pub const WAL_HEADER_SIZE: u64 = 32;
pub const WAL_FRAME_HEADER_SIZE: u64 = 24;
const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_MAGIC_BE: u32 = 0x377f_0683;

/// Page size from a database header (offset 16, big-endian u16, 1 = 65536).
pub fn db_header_page_size(header: &[u8]) -> Option<u32> {
    if header.len() < 18 {
        return None;
    }
    let raw = u16::from_be_bytes([header[16], header[17]]) as u32;
    let size = if raw == 1 { 65536 } else { raw };
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

/// Whether a database header says WAL mode (read and write versions 2).
pub fn db_header_is_wal(header: &[u8]) -> bool {
    header.len() >= 20 && header[18] == 2 && header[19] == 2
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    pub page_size: u32,
    pub salt1: u32,
    pub salt2: u32,
}

impl WalHeader {
    pub fn parse(b: &[u8]) -> Option<WalHeader> {
        if b.len() < WAL_HEADER_SIZE as usize {
            return None;
        }
        let magic = be32(&b[0..4]);
        if magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE {
            return None;
        }
        let page_size = be32(&b[8..12]);
        if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
            return None;
        }
        Some(WalHeader {
            page_size,
            salt1: be32(&b[16..20]),
            salt2: be32(&b[20..24]),
        })
    }

    pub fn frame_size(&self) -> u64 {
        WAL_FRAME_HEADER_SIZE + self.page_size as u64
    }
}

/// The part of a WAL frame header the store needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalFrameHeader {
    pub pgno: u32,
    /// Database size in pages after this frame; non-zero only on the last
    /// frame of a transaction, which is what makes it a commit.
    pub commit: u32,
    pub salt1: u32,
    pub salt2: u32,
}

impl WalFrameHeader {
    pub fn parse(b: &[u8]) -> WalFrameHeader {
        WalFrameHeader {
            pgno: be32(&b[0..4]),
            commit: be32(&b[4..8]),
            salt1: be32(&b[8..12]),
            salt2: be32(&b[12..16]),
        }
    }

    /// Whether the frame belongs to the WAL generation of `hdr`. A frame of
    /// the transaction being written may carry zero salts: when a
    /// transaction rewrites a page it had already spilled to the WAL,
    /// SQLite writes its frames with salts and checksums zeroed and fills
    /// them in (`walRewriteChecksums`) after the commit frame is written.
    pub fn matches(&self, hdr: &WalHeader) -> bool {
        (self.salt1 == hdr.salt1 && self.salt2 == hdr.salt2) || (self.salt1 == 0 && self.salt2 == 0)
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_from_header() {
        let mut h = [0u8; 100];
        h[16] = 0x10;
        assert_eq!(db_header_page_size(&h), Some(4096));
        h[16] = 0;
        h[17] = 1;
        assert_eq!(db_header_page_size(&h), Some(65536));
        h[17] = 3;
        assert_eq!(db_header_page_size(&h), None);
    }

    #[test]
    fn wal_header() {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
        h[8..12].copy_from_slice(&4096u32.to_be_bytes());
        h[16..20].copy_from_slice(&7u32.to_be_bytes());
        h[20..24].copy_from_slice(&9u32.to_be_bytes());
        let w = WalHeader::parse(&h).unwrap();
        assert_eq!((w.page_size, w.salt1, w.salt2), (4096, 7, 9));
        assert_eq!(w.frame_size(), 4120);
        h[0] = 0;
        assert!(WalHeader::parse(&h).is_none());
    }
}
