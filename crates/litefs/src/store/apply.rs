//! Applying a transaction received from the primary: the replica side of
//! commit capture. The LTX file is verified, made durable in this node's
//! own log, and only then written into the database; an `applying` marker
//! lets recovery finish an apply that a crash interrupted (applying the
//! whole file again over a partly applied one gives exactly the result).
//!
//! The caller excludes SQLite readers (it holds SQLite's EXCLUSIVE lock
//! through the mount) and drops the kernel's cached pages afterwards.

use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::path::Path;

use crate::store::db::{Db, FileKind};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::events::Event;
use crate::store::ltxlog::sync_dir;
use crate::store::pos::Pos;

pub(crate) const APPLYING_MARKER: &str = "applying";

impl Db {
    /// Applies the LTX file at `path` (which is moved into the log) and
    /// returns the new position. A snapshot replaces the database and the
    /// log before it; any other file must follow the current position.
    pub fn apply_ltx(&self, path: &Path) -> Result<Pos> {
        let ltx_err = |source| StoreError::Ltx {
            path: path.to_path_buf(),
            source,
        };
        let (h, t) = ltx::verify(BufReader::new(File::open(path).at(path)?)).map_err(ltx_err)?;
        // A follower re-fetches from the primary whatever a power loss
        // takes (see StoreOptions::follower); a process crash keeps the page
        // cache, which the applying marker covers.
        let sync = !self.shared.no_fsync && !self.shared.follower;
        if sync {
            File::open(path).and_then(|f| f.sync_all()).at(path)?;
        }
        let mut st = self.lock();
        if !h.is_snapshot()
            && (h.min_txid != st.pos.txid + 1 || h.pre_apply_checksum != st.checksum.value())
        {
            return Err(StoreError::Corrupt {
                db: self.name().to_string(),
                reason: format!(
                    "LTX {:016x}-{:016x} (pre-apply checksum {:016x}) does not follow position {}",
                    h.min_txid, h.max_txid, h.pre_apply_checksum, st.pos
                ),
            });
        }

        let dest = self.log.path_for(h.min_txid, h.max_txid);
        fs::create_dir_all(self.log.dir()).at(self.log.dir())?;
        let marker = self.dir().join(APPLYING_MARKER);
        fs::write(
            &marker,
            dest.file_name().unwrap_or_default().as_encoded_bytes(),
        )
        .at(&marker)?;
        fs::rename(path, &dest).at(&dest)?;
        if sync {
            sync_dir(self.log.dir())?;
            sync_dir(self.dir())?;
        }

        // Handles are dropped so the database is written through one fresh
        // handle; the mount reopens lazily.
        st.close_all();
        let db_path = self.path(FileKind::Database);
        let mut db = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&db_path)
            .at(&db_path)?;
        let current = st.checksum.value();
        let src = BufReader::new(File::open(&dest).at(&dest)?);
        let res = ltx::apply_verified(src, &mut db, current);
        let (h, t2) = res.map_err(|source| StoreError::Ltx {
            path: dest.clone(),
            source,
        })?;
        debug_assert_eq!(t.post_apply_checksum, t2.post_apply_checksum);
        if sync {
            db.sync_all().at(&db_path)?;
        }
        fs::remove_file(&marker).at(&marker)?;

        st.pos = Pos::new(h.max_txid, t.post_apply_checksum);
        st.commit = h.commit;
        st.page_size = h.page_size;
        st.checksum = ltx::DbChecksum::from_value(t.post_apply_checksum);
        let pos = st.pos;
        drop(st);

        if h.is_snapshot() {
            // History before a snapshot no longer chains onto this database.
            for e in self.log.list()? {
                if e.path != dest {
                    fs::remove_file(&e.path).at(&e.path)?;
                }
            }
        }
        self.shared.set_primary_timestamp(h.timestamp);
        self.shared.emit(Event::Tx {
            db: self.name().to_string(),
            pos,
            page_size: h.page_size,
            commit: h.commit,
            timestamp: h.timestamp,
        });
        Ok(pos)
    }
}
