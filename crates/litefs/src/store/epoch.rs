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

/// The file: the epoch, then ` own` when this node held that term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Epoch {
    pub epoch: u64,
    pub own: bool,
}

pub(crate) fn load(data_dir: &Path) -> Result<Epoch> {
    let path = data_dir.join(EPOCH_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Epoch::default()),
        Err(e) => return Err(e).at(path),
    };
    let mut words = text.split_whitespace();
    let bad = || StoreError::Corrupt {
        db: "-".into(),
        reason: format!("{}: not an epoch: {:?}", path.display(), text.trim()),
    };
    let epoch = words.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let own = match words.next() {
        None => false,
        Some("own") => true,
        Some(_) => return Err(bad()),
    };
    Ok(Epoch { epoch, own })
}

pub(crate) fn store(data_dir: &Path, e: Epoch, sync: bool) -> Result<()> {
    let path = data_dir.join(EPOCH_FILE);
    let body = if e.own {
        format!("{} own\n", e.epoch)
    } else {
        format!("{}\n", e.epoch)
    };
    if sync {
        crate::store::ltxlog::write_durable(&path, body.as_bytes())
    } else {
        crate::store::ltxlog::write_hint(&path, body.as_bytes())
    }
}
