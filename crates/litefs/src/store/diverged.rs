//! Nothing silently discarded: when this node's history has parted from
//! the primary's (a former primary with transactions nobody received), the
//! LTX files after the parting point are copied to
//! `<data.dir>/diverged/<db>/` before the snapshot from the primary
//! replaces the database and its log.

use std::fs;

use crate::store::db::Db;
use crate::store::error::{IoContext, Result};
use crate::store::ltxlog::LtxEntry;
use crate::store::pos::Pos;

impl Db {
    /// This node's position right after `txid`, from its log: None when
    /// no file ends there.
    pub fn position_at(&self, txid: u64) -> Result<Option<Pos>> {
        let pos = self.log_pos();
        if txid == pos.txid {
            return Ok(Some(pos));
        }
        let Some(entry) = self.log.list()?.into_iter().find(|e| e.max_txid == txid) else {
            return Ok(None);
        };
        let (_, t) = self.log.read_file(&entry)?;
        Ok(Some(Pos::new(txid, t.post_apply_checksum)))
    }

    /// Local LTX files newest first with their end positions, for finding
    /// where this history and another part.
    pub fn log_positions(&self) -> Result<Vec<(LtxEntry, Pos, u64)>> {
        let mut out = Vec::new();
        for e in self.log.list()?.into_iter().rev() {
            let (h, t) = self.log.read_file(&e)?;
            out.push((
                e.clone(),
                Pos::new(e.max_txid, t.post_apply_checksum),
                h.node_id,
            ));
        }
        Ok(out)
    }

    /// Copies `files` to `<data_dir>/diverged/<db>/`; the originals stay
    /// until the snapshot replaces the log, so a crash in between leaves a
    /// consistent database. Returns the directory.
    pub fn keep_diverged(
        &self,
        data_dir: &std::path::Path,
        files: &[LtxEntry],
    ) -> Result<std::path::PathBuf> {
        let dir = data_dir.join("diverged").join(self.name());
        fs::create_dir_all(&dir).at(&dir)?;
        for e in files {
            let name = e.path.file_name().unwrap_or_default();
            let dest = dir.join(name);
            fs::copy(&e.path, &dest).at(&dest)?;
            fs::File::open(&dest).and_then(|f| f.sync_all()).at(&dest)?;
        }
        crate::store::ltxlog::sync_dir(&dir)?;
        Ok(dir)
    }
}
