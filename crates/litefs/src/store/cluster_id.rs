//! LiteFS's cluster ID, `<data.dir>/clusterid` (`LFSC` + 16 upper-case hex
//! digits), with LiteFS 0.5's rules: a node that becomes primary without
//! one generates it; a replica without one adopts its primary's (the
//! `Litefs-Cluster-Id` header of the stream); a replica whose ID differs
//! from its primary's, an absent one included, refuses the stream; a lease
//! that stores one (Consul's `<key>/clusterid`) keeps out a node with
//! another. So a node from another cluster never mixes its data in.

use std::path::{Path, PathBuf};

/// The response header LiteFS's primary sends with a stream (and every
/// other answer of its API).
pub const HEADER_CLUSTER_ID: &str = "Litefs-Cluster-Id";

/// The file's name in the data directory.
pub const FILE: &str = "clusterid";

const PREFIX: &str = "LFSC";
const LEN: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterIdError {
    #[error("{}: invalid cluster ID {id:?} (LiteFS's form is LFSC and 16 hex digits); remove the file to have one adopted from the primary or generated", path.display())]
    Invalid { path: PathBuf, id: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    /// The lease (`kind`: consul, etcd) stores another cluster's ID.
    #[error(
        "cannot connect, {kind:?} lease already initialized with different ID: {theirs} \
         (key {key}; this node's is {mine}, in {}): this data dir belongs to another cluster; \
         use that cluster's lease.{kind}.key, or, to join this cluster, stop the node and \
         remove {} (its databases are then replaced by the primary's)",
        path.display(), path.display()
    )]
    LeaseMismatch {
        path: PathBuf,
        kind: &'static str,
        key: String,
        mine: String,
        theirs: String,
    },
    /// The primary's ID (None: it sent none) is not this node's.
    #[error(
        "cannot stream from primary with a different cluster id: this node has {mine} ({}), the primary {}; \
         this data dir belongs to another cluster: point the node at its own cluster's primary, or, to make it \
         part of this one, stop it and remove {} (its databases are then replaced by the primary's)",
        path.display(), theirs.as_deref().unwrap_or("none"), path.display()
    )]
    Mismatch {
        path: PathBuf,
        mine: String,
        theirs: Option<String>,
    },
}

/// Whether `id` has LiteFS's form. LiteFS checks the prefix and the length
/// only; so does this, so a data dir it accepts is accepted here.
pub fn is_valid(id: &str) -> bool {
    id.len() == LEN && id.starts_with(PREFIX)
}

/// The cluster ID recorded in `data_dir`: None when there is no file; an
/// error naming the file when it cannot be read or is not one (LiteFS
/// refuses to start then too).
pub fn load(data_dir: &Path) -> Result<Option<String>, ClusterIdError> {
    let path = data_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ClusterIdError::Io {
                path,
                reason: e.to_string(),
            })
        }
    };
    let id = text.trim();
    if !is_valid(id) {
        return Err(ClusterIdError::Invalid {
            path,
            id: id.to_string(),
        });
    }
    Ok(Some(id.to_string()))
}

/// The ID when there is a well-formed one (the file was checked at startup).
pub fn read(data_dir: &Path) -> Option<String> {
    load(data_dir).ok().flatten()
}

/// A new random ID, as LiteFS's `GenerateClusterID`.
pub fn generate() -> String {
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    if random.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        b = (t ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    format!("{PREFIX}{:016X}", u64::from_le_bytes(b))
}

/// Records `id` durably (temporary file, fsync, rename, directory fsync).
pub fn store(data_dir: &Path, id: &str) -> Result<(), ClusterIdError> {
    let path = data_dir.join(FILE);
    if !is_valid(id) {
        return Err(ClusterIdError::Invalid {
            path,
            id: id.to_string(),
        });
    }
    crate::store::ltxlog::write_hint(&path, format!("{id}\n").as_bytes(), true).map_err(|e| {
        ClusterIdError::Io {
            path,
            reason: e.to_string(),
        }
    })
}

/// For a node becoming primary: its ID, generated and recorded if it has
/// none yet.
pub fn ensure(data_dir: &Path) -> Result<String, ClusterIdError> {
    if let Some(id) = load(data_dir)? {
        return Ok(id);
    }
    let id = generate();
    store(data_dir, &id)?;
    tracing::info!(cluster_id = %id, "cluster ID generated");
    Ok(id)
}

/// For a replica given its primary's ID (`theirs`, None when the primary
/// sent none): adopts it when this node has none, else requires the two
/// to be equal, as LiteFS's replica does.
pub fn follow(data_dir: &Path, theirs: Option<&str>) -> Result<(), ClusterIdError> {
    let theirs = theirs.filter(|t| !t.is_empty());
    match (load(data_dir)?, theirs) {
        (None, None) => Ok(()),
        (None, Some(t)) => {
            store(data_dir, t)?;
            tracing::info!(cluster_id = t, "cluster ID adopted from the primary");
            Ok(())
        }
        (Some(m), Some(t)) if m == t => Ok(()),
        (Some(mine), theirs) => Err(ClusterIdError::Mismatch {
            path: data_dir.join(FILE),
            mine,
            theirs: theirs.map(String::from),
        }),
    }
}

/// LiteFS's check before taking a lease that stores the cluster's ID
/// (`theirs`, under `<key>/clusterid`): whether this node may take it. Not
/// while it has no ID of its own and the lease has one: it follows the
/// primary (and adopts the ID from its stream) first, so an empty node
/// never takes over a cluster's data. Another ID keeps it out.
pub fn may_take_lease(
    data_dir: &Path,
    kind: &'static str,
    key: &str,
    theirs: Option<&str>,
) -> Result<bool, ClusterIdError> {
    match (theirs, load(data_dir)?) {
        (Some(t), Some(m)) if t != m => Err(ClusterIdError::LeaseMismatch {
            path: data_dir.join(FILE),
            kind,
            key: key.to_string(),
            mine: m,
            theirs: t.to_string(),
        }),
        (Some(_), None) => Ok(false),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_only_a_well_formed_id_and_names_the_file_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        std::fs::write(dir.path().join(FILE), "LFSCAD0294CCB505FE66\n").unwrap();
        assert_eq!(
            load(dir.path()).unwrap().as_deref(),
            Some("LFSCAD0294CCB505FE66")
        );
        for bad in ["LFSC123", "XXXXAD0294CCB505FE66", ""] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let e = load(dir.path()).unwrap_err();
            assert!(e.to_string().contains("clusterid"), "{e}");
            assert_eq!(read(dir.path()), None);
        }
    }

    #[test]
    fn generated_ids_have_litefs_form_and_differ() {
        let (a, b) = (generate(), generate());
        assert!(is_valid(&a) && is_valid(&b));
        assert!(a[4..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_primary_keeps_its_id_and_a_replica_adopts_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let id = ensure(dir.path()).unwrap();
        assert_eq!(ensure(dir.path()).unwrap(), id, "kept across calls");

        let r = tempfile::tempdir().unwrap();
        follow(r.path(), None).unwrap();
        assert_eq!(load(r.path()), Ok(None), "nothing to adopt");
        follow(r.path(), Some(&id)).unwrap();
        assert_eq!(load(r.path()).unwrap(), Some(id.clone()));
        follow(r.path(), Some(&id)).unwrap();

        let other = generate();
        let e = follow(r.path(), Some(&other)).unwrap_err();
        assert!(matches!(e, ClusterIdError::Mismatch { .. }), "{e}");
        assert!(
            e.to_string().contains(&other) && e.to_string().contains("remove"),
            "{e}"
        );
        let e = follow(r.path(), None).unwrap_err();
        assert!(e.to_string().contains("the primary none"), "{e}");
        assert_eq!(load(r.path()).unwrap(), Some(id), "never overwritten");
    }
}
