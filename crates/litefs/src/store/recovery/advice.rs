//! The errors recovery stops with: what is wrong, whether the database file
//! passes integrity_check, and the safe way out (`litefs recover`), never a
//! way that restarts the log from a file that fails it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::store::db::FileKind;
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::{LtxEntry, LtxLog};

/// The error for a database that matches no state of its log: what was
/// found, whether the file is a sound database, and the safe way out.
pub(super) fn mismatch_advice(
    name: &str,
    db_path: &Path,
    log: &LtxLog,
    checksum: u64,
    entry: &LtxEntry,
    h: &ltx::Header,
    t: &ltx::Trailer,
) -> Result<String> {
    let mut msg = format!(
        "database checksum {checksum:016x} matches neither TXID {} ({:016x}, from {}) nor a state the log \
         can roll forward from, so something other than litefs changed {}. ",
        h.max_txid,
        t.post_apply_checksum,
        entry.path.display(),
        db_path.display()
    );
    let replayable = crate::store::repair::replayable_log(log)?.is_some();
    let integrity = crate::store::repair::integrity_problem(db_path);
    match &integrity {
        None => msg += "The file passes PRAGMA integrity_check: it is a sound database, just not the one the log describes. ",
        Some(p) => {
            msg += &format!(
                "The file FAILS PRAGMA integrity_check ({p}): do not restart the log from it. "
            )
        }
    }
    msg += "With litefs stopped, choose one: ";
    if replayable {
        msg += &format!(
            "`litefs recover --name {name} --from-log` rebuilds the database from its log (the log starts \
             with a snapshot; nothing is lost); "
        );
    }
    msg += &format!(
        "copy the database from a replica or the primary (`litefs export --name {name} FILE` on that node) \
         and run `litefs recover --name {name} --from-file FILE`, which checks it and restarts the log from it"
    );
    if integrity.is_none() {
        msg += &format!(
            "; or keep this file and restart the log from it with `litefs recover --name {name} --keep-file` \
             (changes after this file's state are lost; replicas resync from a snapshot)"
        );
    }
    msg +=
        ". Whatever is replaced is moved into a replaced-<time> folder beside it, never deleted.";
    Ok(msg)
}

pub(super) fn verify_ltx(
    name: &str,
    entry: &LtxEntry,
) -> Result<(LtxEntry, ltx::Header, ltx::Trailer)> {
    let f = File::open(&entry.path).at(&entry.path)?;
    let (h, t) = ltx::verify(BufReader::new(f)).map_err(|e| {
        let ltx_dir = entry.path.parent().unwrap_or(&entry.path);
        let db_path = ltx_dir
            .parent()
            .unwrap_or(ltx_dir)
            .join(FileKind::Database.data_file_name());
        let way_out = match crate::store::repair::integrity_problem(&db_path) {
            None => format!(
                "The database file passes PRAGMA integrity_check: with litefs stopped, restart the log from it \
                 with `litefs recover --name {name} --keep-file` (or move the directory {} aside and start again): \
                 litefs then writes a snapshot of the database at a new TXID, and replicas resync from it",
                ltx_dir.display()
            ),
            Some(p) => format!(
                "The database file FAILS PRAGMA integrity_check ({p}), so the log must not restart from it: \
                 copy the database from a replica or the primary (`litefs export --name {name} FILE` there) and \
                 run `litefs recover --name {name} --from-file FILE` with litefs stopped"
            ),
        };
        StoreError::Corrupt {
            db: name.to_string(),
            reason: format!("LTX file {} is invalid: {e}. {way_out}", entry.path.display()),
        }
    })?;
    Ok((entry.clone(), h, t))
}
