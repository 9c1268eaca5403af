//! `litefs import` and `litefs export`: a whole database in or out through
//! the running mount, as one SQLite transaction. Going through the mount
//! means the import is captured like any other commit (one LTX file, sent
//! to replicas) and the export is a consistent read, with SQLite's own
//! locking against the app.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{backup::Backup, Connection, OpenFlags};

pub fn import(mount_dir: &Path, name: &str, src: &Path) -> Result<String> {
    litefs::store::validate_name(name)?;
    if !src.is_file() {
        bail!("{}: no such file", src.display());
    }
    let source = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("{}: cannot open as SQLite database", src.display()))?;
    let check: String = source
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{}: not a SQLite database", src.display()))?;
    if check != "ok" {
        bail!("{}: failed SQLite's quick_check: {check}", src.display());
    }
    let dest_path = mount_dir.join(name);
    let mut dest = Connection::open(&dest_path)
        .with_context(|| format!("{}: cannot open", dest_path.display()))?;
    dest.busy_timeout(std::time::Duration::from_secs(10))?;
    Backup::new(&source, &mut dest)
        .and_then(|b| b.step(-1).map(|_| ()))
        .with_context(|| format!("importing {} into {}", src.display(), dest_path.display()))?;
    drop(dest);
    read_pos(mount_dir, name)
}

pub fn export(mount_dir: &Path, name: &str, dst: &Path) -> Result<String> {
    litefs::store::validate_name(name)?;
    let src_path = mount_dir.join(name);
    if !src_path.exists() {
        bail!("database {name} does not exist in {}", mount_dir.display());
    }
    let source = Connection::open_with_flags(&src_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("{}: cannot open", src_path.display()))?;
    let pos = read_pos(mount_dir, name)?;
    let mut dest =
        Connection::open(dst).with_context(|| format!("{}: cannot create", dst.display()))?;
    Backup::new(&source, &mut dest)
        .and_then(|b| b.step(-1).map(|_| ()))
        .with_context(|| format!("exporting {} to {}", src_path.display(), dst.display()))?;
    Ok(pos)
}

fn read_pos(mount_dir: &Path, name: &str) -> Result<String> {
    let path = mount_dir.join(format!("{name}-pos"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(text.trim().to_string())
}
