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

/// What this node's log says about its position right after a TXID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionAt {
    At(Pos),
    /// Inside a multi-transaction file written here: the node has the
    /// transaction, but no position between the file's ends exists.
    Inside {
        min_txid: u64,
        max_txid: u64,
    },
    /// Pruned, covered by a snapshot, or never reached.
    Unknown,
}

impl Db {
    /// This node's position right after `txid`, from its log.
    pub fn position_at(&self, txid: u64) -> Result<PositionAt> {
        let pos = self.log_pos();
        if txid == pos.txid {
            return Ok(PositionAt::At(pos));
        }
        let files = self.log.list()?;
        if let Some(entry) = files.iter().find(|e| e.max_txid == txid) {
            let (_, t) = self.log.read_file(entry)?;
            return Ok(PositionAt::At(Pos::new(txid, t.post_apply_checksum)));
        }
        // A group commit: transactions this node committed itself, several
        // to a file, so no position is known between them. (A snapshot
        // covers history this node did not keep: unknown, not inside.)
        Ok(
            match files
                .iter()
                .find(|e| e.min_txid > 1 && e.min_txid <= txid && txid < e.max_txid)
            {
                Some(e) => PositionAt::Inside {
                    min_txid: e.min_txid,
                    max_txid: e.max_txid,
                },
                None => PositionAt::Unknown,
            },
        )
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
