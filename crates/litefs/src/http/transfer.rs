//! `POST /import?name=DB` and `GET /export?name=DB`: a whole SQLite
//! database in or out over HTTP, as LiteFS offers. Both go through the
//! mount with SQLite's backup API, so an import is one transaction captured
//! like any other (one LTX file, replicated) and an export is a consistent
//! read under SQLite's own locks.

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

/// Imports `body` (a SQLite file) as database `name`; blocking.
pub fn import(
    data_dir: &Path,
    mount: &Path,
    name: &str,
    body: &Bytes,
) -> Result<(), TransferError> {
    crate::store::validate_name(name)?;
    let tmp = temp_path(data_dir, "import");
    std::fs::write(&tmp, body)?;
    let res = (|| {
        let src = Connection::open_with_flags(&tmp, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = src
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        if check != "ok" {
            return Err(TransferError::Invalid(check));
        }
        let mut dst = Connection::open(mount.join(name))?;
        dst.busy_timeout(std::time::Duration::from_secs(10))?;
        Backup::new(&src, &mut dst)?.step(-1)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    res
}

/// A consistent copy of database `name` as SQLite file bytes; blocking.
pub fn export(data_dir: &Path, mount: &Path, name: &str) -> Result<Vec<u8>, TransferError> {
    crate::store::validate_name(name)?;
    let path = mount.join(name);
    if !path.exists() {
        return Err(TransferError::NoDatabase(name.to_string()));
    }
    let tmp = temp_path(data_dir, "export");
    let res = (|| {
        let src = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut dst = Connection::open(&tmp)?;
        Backup::new(&src, &mut dst)?.step(-1)?;
        drop(dst);
        Ok(std::fs::read(&tmp)?)
    })();
    let _ = std::fs::remove_file(&tmp);
    res
}
