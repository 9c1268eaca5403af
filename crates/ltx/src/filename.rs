//! LTX file names: `<min TXID>-<max TXID>.ltx`, 16 lower-case hex digits each.

use crate::Error;

/// `%016x-%016x.ltx`, lower case, as LiteFS names files in `ltx/`.
pub fn format_filename(min_txid: u64, max_txid: u64) -> String {
    format!("{min_txid:016x}-{max_txid:016x}.ltx")
}

/// Parses a name made by [`format_filename`]; anything else (upper case, a
/// path, other lengths) is [`Error::InvalidFilename`], as Go's
/// `^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$` rejects it.
pub fn parse_filename(name: &str) -> Result<(u64, u64), Error> {
    let invalid = || Error::InvalidFilename(name.to_string());
    let b = name.as_bytes();
    if b.len() != 37 || b[16] != b'-' || &b[33..] != b".ltx" {
        return Err(invalid());
    }
    let hex = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |acc, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            Some(acc << 4 | u64::from(d))
        })
    };
    match (hex(&b[..16]), hex(&b[17..33])) {
        (Some(min), Some(max)) => Ok((min, max)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse() {
        let name = format_filename(1, 0xabcdef);
        assert_eq!(name, "0000000000000001-0000000000abcdef.ltx");
        assert_eq!(parse_filename(&name).unwrap(), (1, 0xabcdef));
        assert_eq!(
            parse_filename("ffffffffffffffff-ffffffffffffffff.ltx").unwrap(),
            (u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn rejects_other_names() {
        for bad in [
            "",
            "0000000000000001-0000000000000002",
            "0000000000000001-0000000000000002.LTX",
            "000000000000000A-0000000000000002.ltx",
            "000000000000001-0000000000000002.ltx",
            "0000000000000001_0000000000000002.ltx",
            "0000000000000001-0000000000000002.ltx.tmp",
            "x/0000000000000001-0000000000000002.ltx",
            "+000000000000001-0000000000000002.ltx",
            "00000000000000é-0000000000000002.ltx",
        ] {
            assert!(
                matches!(parse_filename(bad), Err(Error::InvalidFilename(ref n)) if n == bad),
                "{bad:?}"
            );
        }
    }
}
