//! LiteFS's cluster ID file, `data/clusterid` (`LFSC` + 16 upper-case hex
//! digits), as far as a litefs-rs primary needs it to serve LiteFS
//! replicas: a LiteFS replica that has ever followed a LiteFS primary keeps
//! that primary's cluster ID and refuses a stream whose `Litefs-Cluster-Id`
//! header differs, an absent header included.

use std::path::Path;

/// The response header LiteFS's primary sends with a stream.
pub const HEADER_CLUSTER_ID: &str = "Litefs-Cluster-Id";

/// The file's name in the data directory.
pub const FILE: &str = "clusterid";

/// The cluster ID recorded in `data_dir`, if there is a well-formed one.
pub fn read(data_dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(data_dir.join(FILE)).ok()?;
    let id = s.trim();
    is_valid(id).then(|| id.to_string())
}

/// Whether `id` has LiteFS's form, `LFSC` and 16 upper-case hex digits.
pub fn is_valid(id: &str) -> bool {
    id.strip_prefix("LFSC").is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_a_well_formed_id() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        std::fs::write(dir.path().join(FILE), "LFSCAD0294CCB505FE66\n").unwrap();
        assert_eq!(read(dir.path()).as_deref(), Some("LFSCAD0294CCB505FE66"));
        for bad in [
            "LFSC123",
            "LFSCad0294ccb505fe66",
            "XXXXAD0294CCB505FE66",
            "",
        ] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            assert_eq!(read(dir.path()), None, "{bad:?}");
        }
    }
}
