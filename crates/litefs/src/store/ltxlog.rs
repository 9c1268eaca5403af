//! The transaction log of one database: `dbs/<db>/ltx/<min>-<max>.ltx`.
//! Writes each file durably (temp name, fsync, rename, directory fsync) so a
//! crash leaves either the whole file or only a `.tmp` that startup removes;
//! a final-named file that does not verify is corruption, never a torn write.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
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
}

impl LtxLog {
    pub fn new(dir: PathBuf) -> LtxLog {
        LtxLog { dir }
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
    /// transactions never committed.
    pub fn remove_temp_files(&self) -> Result<usize> {
        let mut n = 0;
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).at(&self.dir),
        };
        for ent in rd {
            let ent = ent.at(&self.dir)?;
            if ent.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(ent.path()).at(ent.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes one LTX file and makes it durable before returning.
    pub fn write<'a>(
        &self,
        header: &ltx::Header,
        pages: impl IntoIterator<Item = (u32, &'a [u8])>,
        post_apply_checksum: u64,
        sync: bool,
    ) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let path = self.path_for(header.min_txid, header.max_txid);
        let tmp = path.with_extension("ltx.tmp");
        let file = File::create(&tmp).at(&tmp)?;
        let ltx_err = |source| StoreError::Ltx {
            path: tmp.clone(),
            source,
        };
        let mut enc = ltx::Encoder::new(BufWriter::with_capacity(256 * 1024, file), header)
            .map_err(ltx_err)?;
        for (pgno, data) in pages {
            enc.encode_page(pgno, data).map_err(ltx_err)?;
        }
        let (w, _trailer) = enc.finish(post_apply_checksum).map_err(ltx_err)?;
        let file = w.into_inner().map_err(|e| e.into_error()).at(&tmp)?;
        if sync {
            file.sync_data().at(&tmp)?;
        }
        drop(file);
        fs::rename(&tmp, &path).at(&path)?;
        if sync {
            sync_dir(&self.dir)?;
        }
        Ok(path)
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

/// Milliseconds since the Unix epoch, as LTX headers carry them.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes `body` to `path` atomically without fsync: for files that are
/// hints (the position cache), never the source of truth.
pub(crate) fn write_hint(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(body).at(&tmp)?;
    drop(f);
    fs::rename(&tmp, path).at(path)
}
