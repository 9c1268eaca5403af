//! The 16-byte LTX trailer.

use crate::checksum::CHECKSUM_FLAG;
use crate::Error;

/// Size of the encoded trailer.
pub const TRAILER_SIZE: usize = 16;

/// The trailer: database checksum after applying the file, then the CRC of
/// everything before the file checksum itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trailer {
    pub post_apply_checksum: u64,
    pub file_checksum: u64,
}

impl Trailer {
    /// Encodes both checksums big-endian.
    pub fn to_bytes(&self) -> [u8; TRAILER_SIZE] {
        let mut b = [0u8; TRAILER_SIZE];
        b[..8].copy_from_slice(&self.post_apply_checksum.to_be_bytes());
        b[8..].copy_from_slice(&self.file_checksum.to_be_bytes());
        b
    }

    /// Parses the first [`TRAILER_SIZE`] bytes of `b`, without validating.
    pub fn from_bytes(b: &[u8]) -> Result<Trailer, Error> {
        let b = b
            .get(..TRAILER_SIZE)
            .ok_or(Error::Truncated { at: "trailer" })?;
        let mut post = [0u8; 8];
        let mut file = [0u8; 8];
        post.copy_from_slice(&b[..8]);
        file.copy_from_slice(&b[8..]);
        Ok(Trailer {
            post_apply_checksum: u64::from_be_bytes(post),
            file_checksum: u64::from_be_bytes(file),
        })
    }

    /// Both checksums must carry the flag (which also makes them non-zero).
    pub fn validate(&self) -> Result<(), Error> {
        if self.post_apply_checksum & CHECKSUM_FLAG == 0 {
            return Err(Error::InvalidPostApplyChecksum(self.post_apply_checksum));
        }
        if self.file_checksum & CHECKSUM_FLAG == 0 {
            return Err(Error::InvalidFileChecksum(self.file_checksum));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validate() {
        let t = Trailer {
            post_apply_checksum: CHECKSUM_FLAG | 1,
            file_checksum: CHECKSUM_FLAG | 2,
        };
        let b = t.to_bytes();
        assert_eq!(b[0], 0x80);
        assert_eq!(b[15], 2);
        assert_eq!(Trailer::from_bytes(&b).unwrap(), t);
        t.validate().unwrap();
        assert!(matches!(
            Trailer::from_bytes(&b[..15]),
            Err(Error::Truncated { at: "trailer" })
        ));
    }

    #[test]
    fn validation_errors() {
        let ok = Trailer {
            post_apply_checksum: CHECKSUM_FLAG,
            file_checksum: CHECKSUM_FLAG | 7,
        };
        for bad in [0, 1] {
            assert!(matches!(
                Trailer { post_apply_checksum: bad, ..ok }.validate(),
                Err(Error::InvalidPostApplyChecksum(v)) if v == bad
            ));
            assert!(matches!(
                Trailer { file_checksum: bad, ..ok }.validate(),
                Err(Error::InvalidFileChecksum(v)) if v == bad
            ));
        }
    }
}
