//! Checks that a stopped node's data dir is what a clean recovery leaves:
//! the LTX log describes the database file exactly, `-pos` names its last
//! file, and no file of an interrupted transaction or recovery is left.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::node::Node;

/// `dbs/<db>` in the node's data dir.
pub fn db_dir(n: &Node, db: &str) -> PathBuf {
    n.data().join("dbs").join(db)
}

/// The database's LTX files in log order.
pub fn ltx_files(n: &Node, db: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(db_dir(n, db).join("ltx"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ltx"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn txids(path: &Path) -> (u64, u64) {
    ltx::parse_filename(path.file_name().unwrap().to_str().unwrap()).unwrap()
}

/// The LTX log applied in order to an empty file.
pub fn replay(files: &[PathBuf]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut checksum = 0;
    for f in files {
        let r = BufReader::new(fs::File::open(f).unwrap());
        let (_, t) = ltx::apply_verified(r, &mut out, checksum)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        checksum = t.post_apply_checksum;
    }
    out.into_inner()
}

/// The log describes the database: replayed from TXID 1 it gives its
/// bytes; once retention removed the start, the remaining files chain and
/// the last one's checksum and page count are the database's.
pub fn assert_log_is_database(files: &[PathBuf], db: &[u8]) {
    let Some(first) = files.first() else {
        assert!(
            db.is_empty(),
            "no LTX file for a {}-byte database",
            db.len()
        );
        return;
    };
    if txids(first).0 == 1 {
        assert!(
            replay(files) == db,
            "replaying the log does not give the database"
        );
        return;
    }
    let mut last = None;
    for f in files {
        let (h, t) = ltx::verify(BufReader::new(fs::File::open(f).unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Some((_, post)) = last {
            assert_eq!(
                h.pre_apply_checksum,
                post,
                "{}: breaks the chain",
                f.display()
            );
        }
        last = Some((h, t.post_apply_checksum));
    }
    let (h, post) = last.unwrap();
    assert_eq!(
        db.len() as u64,
        h.commit as u64 * h.page_size as u64,
        "database size is not the last LTX file's"
    );
    let sum = ltx::database_checksum(db, h.page_size).unwrap();
    assert_eq!(sum, post, "database checksum is not the last LTX file's");
}

/// For a stopped node whose `-pos` read `pos` while it ran: the position
/// is the last LTX file's, the log is the database, and nothing of a
/// transaction or recovery is left in `dbs/<db>`.
pub fn assert_clean_log(n: &Node, db: &str, pos: &str) {
    let files = ltx_files(n, db);
    let pos_txid = u64::from_str_radix(pos.split('/').next().unwrap(), 16).unwrap();
    let last = files.last().map(|f| txids(f).1).unwrap_or(0);
    assert_eq!(pos_txid, last, "position {pos} is not the last LTX file");
    let dir = db_dir(n, db);
    assert_log_is_database(&files, &fs::read(dir.join("database")).unwrap());
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| {
            f.starts_with("database-")
                || ["journal", "wal", "undo", "applying"].contains(&f.as_str())
        })
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
