//! Rebuilding, at startup, the LTX files of WAL transactions that SQLite
//! committed but the log did not get before a crash. In WAL mode the log
//! writer makes a transaction's LTX file durable after SQLite's commit
//! (`log_writer.rs`); until then the WAL is the only durable copy, so
//! recovery reads the transactions a fresh SQLite connection would see
//! (`walscan`) past the log's last WAL position and logs each one, with
//! its checksums computed the way capture computes them.
//!
//! Old page versions come from earlier frames of the same WAL or from the
//! database file. That is exact because the store never lets a checkpoint
//! write into the database file while a transaction's LTX file is pending:
//! the database file only holds states the log already has.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::store::db::{read_full_at, FileKind};
use crate::store::error::{IoContext, Result, StoreError};
use crate::store::ltxlog::{now_ms, sync_dir, LtxLog};
use crate::store::sqlite::{WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE};
use crate::store::wal::remove_replaced_pages;
use crate::store::walscan::{scan_wal, WalScan};

/// Where the committed part of the WAL ends, as SQLite will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalEnd {
    pub salt1: u32,
    pub salt2: u32,
    pub end: u64,
}

pub(crate) struct Rebuilt {
    /// Transactions logged from the WAL.
    pub count: u64,
    /// None when SQLite will not read the WAL.
    pub wal_end: Option<WalEnd>,
}

/// Logs the committed WAL transactions past `last` (the newest LTX file's
/// header and post-apply checksum).
pub(crate) fn rebuild_from_wal(
    name: &str,
    dir: &Path,
    log: &LtxLog,
    last: Option<(&ltx::Header, u64)>,
    node_id: u64,
    compress: bool,
    sync: bool,
) -> Result<Rebuilt> {
    let db_path = dir.join(FileKind::Database.data_file_name());
    let wal_path = dir.join(FileKind::Wal.data_file_name());
    let mut none = Rebuilt {
        count: 0,
        wal_end: None,
    };
    // SQLite reads a WAL only for a database in WAL mode (or one with no
    // header yet); a WAL beside a rollback-mode database is ignored.
    let db = File::open(&db_path).at(&db_path)?;
    let mut hdr = [0u8; 20];
    let n = read_full_at(&db, 0, &mut hdr).at(&db_path)?;
    if n == hdr.len() && !crate::store::sqlite::db_header_is_wal(&hdr) {
        return Ok(none);
    }
    let Some(scan) = scan_wal(&wal_path)? else {
        return Ok(none);
    };
    let wh = scan.header;
    none.wal_end = Some(WalEnd {
        salt1: wh.salt1,
        salt2: wh.salt2,
        end: scan.txs.last().map_or(WAL_HEADER_SIZE, |t| t.end),
    });
    let corrupt = |reason: String| StoreError::Corrupt {
        db: name.to_string(),
        reason,
    };
    if let Some((h, _)) = last {
        if h.page_size != wh.page_size {
            return Err(corrupt(format!(
                "the WAL has page size {} but the log {}",
                wh.page_size, h.page_size
            )));
        }
    }
    // Where the log stops in this WAL: after the newest file's frames when
    // they are of this WAL generation, else before the first frame (frames
    // the database already holds then rebuild as transactions that change
    // nothing, which are not logged).
    let known_end = match last {
        Some((h, _)) if (h.wal_salt1, h.wal_salt2) == (wh.salt1, wh.salt2) && h.wal_size > 0 => {
            (h.wal_offset + h.wal_size) as u64
        }
        _ => WAL_HEADER_SIZE,
    };
    if let Some(t) = scan
        .txs
        .iter()
        .find(|t| t.start < known_end && known_end < t.end)
    {
        // Not a layout this store writes (another writer's WAL fields?):
        // rebuild nothing, and let the checksum comparison after SQLite's
        // own recovery decide whether the database matches the log.
        tracing::warn!(
            db = name,
            "the log ends at WAL offset {known_end}, inside the WAL transaction at {}..{}; \
             not rebuilding LTX files from the WAL",
            t.start,
            t.end
        );
        return Ok(none);
    }
    let first_new = scan.txs.iter().position(|t| t.start >= known_end);
    let Some(first_new) = first_new else {
        return Ok(none);
    };
    let count = log_transactions(
        &scan, first_new, &db, &db_path, &wal_path, log, last, node_id, compress, sync,
    )?;
    if count > 0 {
        if sync {
            sync_dir(log.dir())?;
        }
        tracing::info!(
            db = name,
            transactions = count,
            "rebuilt LTX files of WAL transactions committed before the crash"
        );
    }
    none.count = count;
    Ok(none)
}

#[allow(clippy::too_many_arguments)]
fn log_transactions(
    scan: &WalScan,
    first_new: usize,
    db: &File,
    db_path: &Path,
    wal_path: &Path,
    log: &LtxLog,
    last: Option<(&ltx::Header, u64)>,
    node_id: u64,
    compress: bool,
    sync: bool,
) -> Result<u64> {
    let wal = File::open(wal_path).at(wal_path)?;
    let ps = scan.header.page_size;
    let lock = ltx::lock_pgno(ps);
    let db_len = db.metadata().at(db_path)?.len();
    let read_frame = |off: u64| -> Result<Vec<u8>> {
        let mut page = vec![0u8; ps as usize];
        wal.read_exact_at(&mut page, off + WAL_FRAME_HEADER_SIZE)
            .at(wal_path)?;
        Ok(page)
    };

    // Newest committed frame of each page before the first new transaction.
    let mut index: HashMap<u32, u64> = HashMap::new();
    for t in &scan.txs[..first_new] {
        index.extend(t.frames.iter().copied());
    }
    let (mut txid, mut commit, mut checksum) = match last {
        Some((h, post)) => (h.max_txid, h.commit, ltx::DbChecksum::from_value(post)),
        None => (0, 0, ltx::DbChecksum::new()),
    };
    let mut count = 0;
    for t in &scan.txs[first_new..] {
        let frames: BTreeMap<u32, u64> = t.frames.iter().copied().collect();
        let mut next = checksum;
        remove_replaced_pages(
            &mut next,
            frames.keys().copied(),
            commit,
            t.commit,
            lock,
            |pgno| match index.get(&pgno) {
                Some(&off) => read_frame(off).map(Some),
                None if (pgno as u64) * ps as u64 <= db_len => {
                    let mut page = vec![0u8; ps as usize];
                    db.read_exact_at(&mut page, (pgno as u64 - 1) * ps as u64)
                        .at(db_path)?;
                    Ok(Some(page))
                }
                None => Ok(None),
            },
        )?;
        let mut pages = Vec::with_capacity(frames.len());
        for (&pgno, &off) in frames.range(..=t.commit) {
            if pgno != lock {
                let page = read_frame(off)?;
                next.xor(ltx::page_checksum(pgno, &page));
                pages.push((pgno, page));
            }
        }
        index.extend(frames);
        if next.value() == checksum.value() && t.commit == commit {
            continue;
        }
        txid += 1;
        let header = ltx::Header {
            flags: crate::store::ltxlog::header_flags(compress),
            page_size: ps,
            commit: t.commit,
            min_txid: txid,
            max_txid: txid,
            timestamp: now_ms(),
            pre_apply_checksum: if txid == 1 { 0 } else { checksum.value() },
            wal_offset: t.start as i64,
            wal_size: (t.end - t.start) as i64,
            wal_salt1: scan.header.salt1,
            wal_salt2: scan.header.salt2,
            node_id,
        };
        log.write(
            &header,
            pages.iter().map(|(p, d)| (*p, d.as_slice())),
            next.value(),
            sync,
        )?;
        checksum = next;
        commit = t.commit;
        count += 1;
    }
    Ok(count)
}
