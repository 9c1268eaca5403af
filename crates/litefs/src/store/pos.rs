//! A database's replication position: the TXID of its last transaction and
//! the database checksum after it. Formats it the way LiteFS writes `-pos`
//! and parses what any LiteFS version wrote.

use std::fmt;

/// Where a database stands: the last applied TXID and the checksum of the
/// whole database after it. TXID 0 is the empty database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub txid: u64,
    pub post_apply_checksum: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid position {text:?}: {reason}")]
pub struct ParsePosError {
    pub text: String,
    pub reason: &'static str,
}

impl Pos {
    pub fn new(txid: u64, post_apply_checksum: u64) -> Pos {
        Pos {
            txid,
            post_apply_checksum,
        }
    }

    /// The `-pos` file body: `%016x/%016x\n`.
    pub fn to_pos_file(&self) -> String {
        format!("{self}\n")
    }

    /// Parses `TXID/CHECKSUM` in hex, padded or not, with or without a
    /// trailing newline, because older writers produced both.
    pub fn parse(text: &str) -> Result<Pos, ParsePosError> {
        let err = |reason| ParsePosError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim_end_matches(['\n', '\r']);
        let (txid, checksum) = trimmed.split_once('/').ok_or_else(|| err("missing '/'"))?;
        let hex = |s: &str, what| {
            if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(what));
            }
            u64::from_str_radix(s, 16).map_err(|_| err(what))
        };
        Ok(Pos {
            txid: hex(txid, "TXID is not 1-16 hex digits")?,
            post_apply_checksum: hex(checksum, "checksum is not 1-16 hex digits")?,
        })
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}/{:016x}", self.txid, self.post_apply_checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_litefs() {
        let p = Pos::new(2, 0x8000_0000_0000_00ff);
        assert_eq!(p.to_pos_file(), "0000000000000002/80000000000000ff\n");
    }

    #[test]
    fn parses_padded_unpadded_and_without_newline() {
        for text in [
            "0000000000000002/80000000000000ff\n",
            "2/80000000000000ff",
            "2/80000000000000FF\r\n",
        ] {
            assert_eq!(
                Pos::parse(text).unwrap(),
                Pos::new(2, 0x8000_0000_0000_00ff),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "2",
            "/1",
            "2/",
            "x/1",
            "1/12345678901234567",
            "-1/2",
            "1/2/3",
        ] {
            assert!(Pos::parse(text).is_err(), "{text:?} parsed");
        }
    }
}
