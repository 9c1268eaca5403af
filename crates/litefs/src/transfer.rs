//! A whole SQLite database in or out of a running mount, for `litefs
//! import`/`export` and for `POST /import` / `GET /export`. Both go through
//! the mount with SQLite's backup API, so an import is one transaction
//! captured like any other (one LTX file, replicated) and an export is a
//! consistent read under SQLite's own locks.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::{backup::Backup, Connection, OpenFlags};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("name required")]
    NoName,
    #[error("{0}")]
    Name(#[from] crate::store::StoreError),
    #[error("this node has no mount")]
    NoMount,
    #[error("this node is not the primary")]
    NotPrimary,
    #[error("database {0} does not exist")]
    NoDatabase(String),
    #[error("not a valid SQLite database: {0}")]
    Invalid(String),
    #[error("{0}: no such file")]
    NoFile(PathBuf),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn temp_path(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(
        ".{what}-{}-{:x}.tmp",
        std::process::id(),
        crate::store::ltxlog::now_ms()
    ))
}

/// Imports the SQLite file `src` as database `name` of the mount, as one
/// transaction; blocking.
pub fn import_file(mount: &Path, name: &str, src: &Path) -> Result<(), TransferError> {
    crate::store::validate_name(name)?;
    if !src.is_file() {
        return Err(TransferError::NoFile(src.to_path_buf()));
    }
    let source = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = source
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
    if check != "ok" {
        return Err(TransferError::Invalid(check));
    }
    let mut dst = Connection::open(mount.join(name))?;
    dst.busy_timeout(std::time::Duration::from_secs(10))?;
    Backup::new(&source, &mut dst)?.step(-1)?;
    Ok(())
}

/// Writes a consistent copy of database `name` to the new file `dst`;
/// blocking.
pub fn export_file(mount: &Path, name: &str, dst: &Path) -> Result<(), TransferError> {
    crate::store::validate_name(name)?;
    let path = mount.join(name);
    if !path.exists() {
        return Err(TransferError::NoDatabase(name.to_string()));
    }
    let source = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut out = Connection::open(dst)?;
    Backup::new(&source, &mut out)?.step(-1)?;
    Ok(())
}

/// [`import_file`] for a request body, staged in the data directory.
pub fn import(
    data_dir: &Path,
    mount: &Path,
    name: &str,
    body: &Bytes,
) -> Result<(), TransferError> {
    let tmp = temp_path(data_dir, "import");
    std::fs::write(&tmp, body)?;
    let res = import_file(mount, name, &tmp);
    let _ = std::fs::remove_file(&tmp);
    res
}

/// [`export_file`] into memory, for a response body.
pub fn export(data_dir: &Path, mount: &Path, name: &str) -> Result<Vec<u8>, TransferError> {
    let tmp = temp_path(data_dir, "export");
    let res = export_file(mount, name, &tmp).and_then(|()| Ok(std::fs::read(&tmp)?));
    let _ = std::fs::remove_file(&tmp);
    res
}
