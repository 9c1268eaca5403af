//! Fencing epochs. Every primary term has an epoch higher than every
//! earlier one this node has seen; it is persisted in `<data.dir>/epoch`
//! before the term starts. The primary announces it on each replication
//! stream and a replica refuses a primary whose epoch is older than one it
//! has already followed, so a demoted primary that comes back with its old
//! term cannot feed replicas again.

use std::fs;
use std::path::Path;

use crate::store::error::{IoContext, Result, StoreError};

pub(crate) const EPOCH_FILE: &str = "epoch";

pub(crate) fn load(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join(EPOCH_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| StoreError::Corrupt {
            db: "-".into(),
            reason: format!(
                "{}: epoch is not a number: {:?}",
                path.display(),
                text.trim()
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).at(path),
    }
}

pub(crate) fn store(data_dir: &Path, epoch: u64, sync: bool) -> Result<()> {
    let path = data_dir.join(EPOCH_FILE);
    crate::store::ltxlog::write_hint(&path, format!("{epoch}\n").as_bytes())?;
    if sync {
        fs::File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
        crate::store::ltxlog::sync_dir(data_dir)?;
    }
    Ok(())
}
