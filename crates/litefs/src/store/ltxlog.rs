//! The transaction log of one database: `dbs/<db>/ltx/<min>-<max>.ltx`.
//!
//! `write` makes a file durable under its final name before it returns:
//! written under a temp name, renamed, fdatasynced, and, where the file
//! system needs it (`dir_sync.rs`: everywhere but ext4, xfs and btrfs), the
//! directory fsynced. The log is the source of truth for every replica: a
//! lost file would leave a database ahead of its log, or a log whose chain
//! is broken. Renaming before the fdatasync is what lets one fdatasync make
//! the final name durable on those file systems. The price is that a power
//! cut between the rename and the fdatasync can leave the newest file torn
//! under its final name: that file's transaction never committed (SQLite
//! is told only once `write` returns), so startup after an unclean stop
//! sets it aside (`set_aside_torn_newest`) and removes it once the database
//! proves it. Any other final-named file that does not verify is
//! corruption.
//!
//! A crash can also leave `.tmp` files: unfinished, removed at startup,
//! except a complete one that continues the log (`remove_temp_files`),
//! which older versions could leave when their rename was lost.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::error::{IoContext, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtxEntry {
    pub min_txid: u64,
    pub max_txid: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LtxLog {
    dir: PathBuf,
    /// fsync/fdatasync calls made by `write` (file and directory), for the
    /// benchmark's fsyncs-per-commit figure.
    fsyncs: Arc<AtomicU64>,
    /// Whether `write` must fsync the directory (`dir_sync.rs`), learned at
    /// the first write, once the directory exists.
    dir_sync: Arc<std::sync::OnceLock<bool>>,
}

impl LtxLog {
    pub fn new(dir: PathBuf) -> LtxLog {
        LtxLog {
            dir,
            fsyncs: Arc::default(),
            dir_sync: Arc::default(),
        }
    }

    /// Whether a new name in this log (or beside it, in the database's
    /// directory) needs a directory fsync to survive a power cut.
    pub(crate) fn needs_dir_sync(&self) -> bool {
        *self
            .dir_sync
            .get_or_init(|| !crate::store::dir_sync::names_durable_with_file_sync(&self.dir))
    }

    /// fsync/fdatasync calls `write` has made through this log.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_for(&self, min_txid: u64, max_txid: u64) -> PathBuf {
        self.dir.join(ltx::format_filename(min_txid, max_txid))
    }

    /// Every LTX file, ordered by TXID. Unrelated names are ignored, but a
    /// name that looks like an LTX file and does not parse is reported.
    pub fn list(&self) -> Result<Vec<LtxEntry>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at(&self.dir),
        };
        for ent in rd {
            let ent = ent.at(&self.dir)?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(".ltx") {
                continue;
            }
            let (min_txid, max_txid) =
                ltx::parse_filename(name).map_err(|source| StoreError::Ltx {
                    path: ent.path(),
                    source,
                })?;
            out.push(LtxEntry {
                min_txid,
                max_txid,
                path: ent.path(),
            });
        }
        out.sort_by_key(|e| (e.max_txid, e.min_txid));
        Ok(out)
    }

    pub fn last(&self) -> Result<Option<LtxEntry>> {
        Ok(self.list()?.pop())
    }

    /// Removes temp files left by a crash in the middle of `write`: their
    /// transactions never committed. Except one kind: a complete temp file
    /// (it verifies) that continues the log (next TXID, pre-apply checksum
    /// equal to the last file's post-apply one) is a commit whose rename
    /// a crash lost (versions before the directory sync); it is
    /// renamed to its final name, as `write` would have, and kept. Returns
    /// how many were removed.
    pub fn remove_temp_files(&self) -> Result<usize> {
        let mut n = 0;
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).at(&self.dir),
        };
        let mut temps = Vec::new();
        for ent in rd {
            let ent = ent.at(&self.dir)?;
            if ent.file_name().to_string_lossy().ends_with(".tmp") {
                temps.push(ent.path());
            }
        }
        // In TXID order, so a chain of unrenamed commits is restored whole.
        temps.sort();
        let mut promoted = false;
        for tmp in temps {
            if self.promote_temp(&tmp)? {
                promoted = true;
            } else {
                fs::remove_file(&tmp).at(&tmp)?;
                n += 1;
            }
        }
        if promoted {
            sync_dir(&self.dir)?;
        }
        Ok(n)
    }

    /// Renames the newest file to `<name>.torn`, out of the log, when it
    /// does not verify: a power cut between its rename and its fdatasync
    /// (see the module comment). Returns the new path.
    pub fn set_aside_torn_newest(&self) -> Result<Option<PathBuf>> {
        let Some(last) = self.last()? else {
            return Ok(None);
        };
        let f = File::open(&last.path).at(&last.path)?;
        if ltx::verify(std::io::BufReader::new(f)).is_ok() {
            return Ok(None);
        }
        let aside = last.path.with_extension("ltx.torn");
        fs::rename(&last.path, &aside).at(&aside)?;
        sync_dir(&self.dir)?;
        Ok(Some(aside))
    }

    /// Removes every file but the newest; returns how many.
    pub fn remove_all_but_newest(&self) -> Result<usize> {
        let mut files = self.list()?;
        files.pop();
        for f in &files {
            fs::remove_file(&f.path).at(&f.path)?;
        }
        Ok(files.len())
    }

    /// Removes the files before the newest break in the TXID chain and
    /// returns how many. Retention removes the oldest files first, but a
    /// power cut may keep only some of those removals (POSIX orders no
    /// unsynced directory change), leaving an old file beyond a gap: no
    /// replica can catch up across it, and retention meant it to go.
    pub fn remove_before_gap(&self) -> Result<usize> {
        let files = self.list()?;
        let Some(cut) = files
            .windows(2)
            .rposition(|w| w[1].min_txid != w[0].max_txid + 1)
        else {
            return Ok(0);
        };
        for f in &files[..=cut] {
            fs::remove_file(&f.path).at(&f.path)?;
        }
        Ok(cut + 1)
    }

    /// Renames `tmp` (`<min>-<max>.ltx.tmp`) to its final name when it is a
    /// complete LTX file that continues the log; false when it is not.
    fn promote_temp(&self, tmp: &Path) -> Result<bool> {
        let Some(name) = tmp.file_name().and_then(|n| n.to_str()) else {
            return Ok(false);
        };
        let Some(Ok((min_txid, max_txid))) = name.strip_suffix(".tmp").map(ltx::parse_filename)
        else {
            return Ok(false);
        };
        let verify = |p: &Path| {
            File::open(p)
                .ok()
                .and_then(|f| ltx::verify(std::io::BufReader::new(f)).ok())
        };
        let Some((h, _)) = verify(tmp) else {
            return Ok(false);
        };
        let path = self.path_for(min_txid, max_txid);
        let continues = match self.last()? {
            Some(last) => {
                last.max_txid + 1 == min_txid
                    && verify(&last.path)
                        .is_some_and(|(_, t)| t.post_apply_checksum == h.pre_apply_checksum)
            }
            None => min_txid == 1,
        };
        if !continues || h.min_txid != min_txid || h.max_txid != max_txid || path.exists() {
            return Ok(false);
        }
        fs::rename(tmp, &path).at(&path)?;
        tracing::info!(path = %path.display(), "kept a complete LTX file whose rename a crash interrupted");
        Ok(true)
    }

    /// Writes one LTX file and makes it durable under its final name before
    /// returning (with `sync`; see the module comment).
    /// On an error the temp file is removed, so startup cannot roll
    /// forward a transaction whose commit SQLite saw fail.
    pub fn write<'a>(
        &self,
        header: &ltx::Header,
        pages: impl IntoIterator<Item = (u32, &'a [u8])>,
        post_apply_checksum: u64,
        sync: bool,
    ) -> Result<PathBuf> {
        let path = self.path_for(header.min_txid, header.max_txid);
        let tmp = path.with_extension("ltx.tmp");
        let file = match self.write_temp(&tmp, header, pages, post_apply_checksum) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        fs::rename(&tmp, &path).at(&path)?;
        if sync {
            let dir_sync = self.needs_dir_sync();
            let synced = file.sync_data().at(&path).and_then(|()| {
                if dir_sync {
                    sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = synced {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
            self.fsyncs
                .fetch_add(1 + dir_sync as u64, Ordering::Relaxed);
        }
        Ok(path)
    }

    fn write_temp<'a>(
        &self,
        tmp: &Path,
        header: &ltx::Header,
        pages: impl IntoIterator<Item = (u32, &'a [u8])>,
        post_apply_checksum: u64,
    ) -> Result<File> {
        let file = match File::create(tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_dirs_durably(&self.dir)?;
                File::create(tmp)
            }
            r => r,
        }
        .at(tmp)?;
        let ltx_err = |source| StoreError::Ltx {
            path: tmp.to_path_buf(),
            source,
        };
        let mut enc = ltx::Encoder::new(BufWriter::with_capacity(256 * 1024, file), header)
            .map_err(ltx_err)?;
        for (pgno, data) in pages {
            enc.encode_page(pgno, data).map_err(ltx_err)?;
        }
        let (w, _trailer) = enc.finish(post_apply_checksum).map_err(ltx_err)?;
        w.into_inner().map_err(|e| e.into_error()).at(tmp)
    }

    /// Deletes files whose transactions are all older than `retention`,
    /// always keeping the newest file: it carries the current position.
    pub fn enforce_retention(&self, retention: Duration, now: SystemTime) -> Result<usize> {
        let mut files = self.list()?;
        files.pop();
        let mut removed = 0;
        for f in files {
            let modified = fs::metadata(&f.path)
                .and_then(|m| m.modified())
                .at(&f.path)?;
            if now.duration_since(modified).unwrap_or_default() > retention {
                fs::remove_file(&f.path).at(&f.path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// `create_dir_all`, then an fsync of the parent of each directory it
/// created, so that a power cut cannot take a database's directories (and
/// every acknowledged transaction in them) away: POSIX makes a new entry
/// durable only at an fsync of its directory.
pub(crate) fn create_dirs_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir).at(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// LTX header flags for this store's `data.compress` setting.
pub(crate) fn header_flags(compress: bool) -> u32 {
    if compress {
        ltx::HEADER_FLAG_COMPRESS_LZ4
    } else {
        0
    }
}

/// Milliseconds since the Unix epoch, as LTX headers carry them.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes `body` to `path` atomically (a temp file renamed over it), and
/// with `sync` durably: a power cut leaves either the old file or the whole
/// new one. Without the fsync before the rename, ext4 (delayed allocation)
/// can commit the new name before the data and leave an empty file: a node
/// whose `id` came back empty could not start. A crash leaves `<path>.tmp`,
/// which startup removes.
pub(crate) fn write_hint(path: &Path, body: &[u8], sync: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(body).at(&tmp)?;
    if sync {
        f.sync_all().at(&tmp)?;
    }
    drop(f);
    fs::rename(&tmp, path).at(path)?;
    if sync {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

impl LtxLog {
    /// Header and trailer of one file, fully verified.
    pub fn read_file(&self, entry: &LtxEntry) -> Result<(ltx::Header, ltx::Trailer)> {
        let f = File::open(&entry.path).at(&entry.path)?;
        ltx::verify(std::io::BufReader::new(f)).map_err(|source| StoreError::Ltx {
            path: entry.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod durability_tests {
    use super::*;

    fn header(txid: u64, pre: u64) -> ltx::Header {
        ltx::Header {
            flags: 0,
            page_size: 4096,
            commit: 1,
            min_txid: txid,
            max_txid: txid,
            timestamp: 0,
            pre_apply_checksum: pre,
            wal_offset: 0,
            wal_size: 0,
            wal_salt1: 0,
            wal_salt2: 0,
            node_id: 1,
        }
    }

    /// Writes transactions 1..=n, each replacing page 1; returns the
    /// post-apply checksum of each.
    fn write_chain(log: &LtxLog, n: u64) -> Vec<u64> {
        let mut sums = Vec::new();
        let mut checksum = ltx::DbChecksum::new();
        let mut old: Option<Vec<u8>> = None;
        for txid in 1..=n {
            let page = vec![txid as u8; 4096];
            let pre = if txid == 1 { 0 } else { checksum.value() };
            if let Some(o) = &old {
                checksum.xor(ltx::page_checksum(1, o));
            }
            checksum.xor(ltx::page_checksum(1, &page));
            log.write(
                &header(txid, pre),
                [(1, page.as_slice())],
                checksum.value(),
                false,
            )
            .unwrap();
            sums.push(checksum.value());
            old = Some(page);
        }
        sums
    }

    fn txids(log: &LtxLog) -> Vec<u64> {
        log.list().unwrap().iter().map(|e| e.max_txid).collect()
    }

    #[test]
    fn a_complete_temp_file_that_continues_the_log_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = LtxLog::new(dir.path().join("ltx"));
        write_chain(&log, 3);
        // A crash lost the renames of 2 and 3: both are temp files again.
        for txid in [2, 3] {
            let p = log.path_for(txid, txid);
            fs::rename(&p, p.with_extension("ltx.tmp")).unwrap();
        }
        // A torn write of 4 and a stray receive file are removed.
        let torn = log.path_for(4, 4).with_extension("ltx.tmp");
        fs::write(&torn, b"LTX1 partial").unwrap();
        fs::write(log.dir().join("recv-1.ltx.tmp"), b"x").unwrap();
        assert_eq!(log.remove_temp_files().unwrap(), 2);
        assert_eq!(txids(&log), vec![1, 2, 3]);
        assert!(!torn.exists());
    }

    #[test]
    fn a_temp_file_that_does_not_chain_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = LtxLog::new(dir.path().join("ltx"));
        write_chain(&log, 2);
        let other = tempfile::tempdir().unwrap();
        let other_log = LtxLog::new(other.path().join("ltx"));
        // Transaction 3 of another history: right TXID, wrong checksum.
        let mut pre = ltx::DbChecksum::new();
        pre.xor(99);
        let mut c = ltx::DbChecksum::new();
        c.xor(7);
        let page = vec![9u8; 4096];
        other_log
            .write(
                &header(3, pre.value()),
                [(1, page.as_slice())],
                c.value(),
                false,
            )
            .unwrap();
        fs::copy(
            other_log.path_for(3, 3),
            log.path_for(3, 3).with_extension("ltx.tmp"),
        )
        .unwrap();
        // A complete file that skips a TXID.
        fs::copy(
            other_log.path_for(3, 3),
            log.path_for(5, 5).with_extension("ltx.tmp"),
        )
        .unwrap();
        assert_eq!(log.remove_temp_files().unwrap(), 2);
        assert_eq!(txids(&log), vec![1, 2]);
    }

    #[test]
    fn files_cut_off_by_an_interrupted_retention_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = LtxLog::new(dir.path().join("ltx"));
        write_chain(&log, 6);
        assert_eq!(log.remove_before_gap().unwrap(), 0);
        // Retention removed 1-4, and a power cut kept only the removals of
        // 2 and 4.
        for txid in [2, 4] {
            fs::remove_file(log.path_for(txid, txid)).unwrap();
        }
        assert_eq!(log.remove_before_gap().unwrap(), 2);
        assert_eq!(txids(&log), vec![5, 6]);
    }

    #[test]
    fn a_newest_file_torn_between_its_rename_and_its_fdatasync_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let log = LtxLog::new(dir.path().join("ltx"));
        write_chain(&log, 3);
        assert_eq!(log.set_aside_torn_newest().unwrap(), None);
        let newest = log.path_for(3, 3);
        let len = fs::metadata(&newest).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&newest)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let aside = newest.with_extension("ltx.torn");
        assert_eq!(log.set_aside_torn_newest().unwrap(), Some(aside.clone()));
        assert_eq!(txids(&log), vec![1, 2]);
        assert!(aside.exists());
    }
}
