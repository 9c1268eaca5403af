//! A real mount in a temp dir, for tests that drive SQLite clients
//! through it.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use litefs::store::{Store, StoreOptions};
use litefs_fuse::{Mount, MountOptions};

pub struct TestMount {
    pub data: tempfile::TempDir,
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub mount: Option<Mount>,
}

impl TestMount {
    pub fn new(primary: bool) -> TestMount {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("litefs=trace,litefs_fuse=trace")
            .try_init();
        let data = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(data.path()));
        store.set_primary(primary);
        let mount =
            litefs_fuse::mount(store.clone(), dir.path(), &MountOptions::default()).unwrap();
        TestMount {
            data,
            dir,
            store,
            mount: Some(mount),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Unmounts, closes and reopens the store (recovery runs), mounts again.
    pub fn remount(&mut self, primary: bool) {
        self.mount.take().unwrap().unmount();
        self.remount_unmounted(primary);
    }

    /// [`TestMount::remount`] after the test unmounted (to change the data
    /// dir as a crash would leave it).
    pub fn remount_unmounted(&mut self, primary: bool) {
        self.store.close().unwrap();
        self.store = Arc::new(open_store(self.data.path()));
        self.store.set_primary(primary);
        self.mount = Some(
            litefs_fuse::mount(
                self.store.clone(),
                self.dir.path(),
                &MountOptions::default(),
            )
            .unwrap(),
        );
    }

    pub fn db_file(&self, name: &str) -> PathBuf {
        self.data.path().join("dbs").join(name).join("database")
    }

    /// Replays every LTX file of `name` into an empty file, checking each
    /// chains onto the previous, and returns the bytes.
    pub fn replay(&self, name: &str) -> Vec<u8> {
        let db = self.store.db(name).unwrap();
        db.flush_log().unwrap();
        replay_log(&db)
    }
}

/// Replays every LTX file of `db` into an empty file, checking each chains
/// onto the previous and the last ends at the database's position.
pub fn replay_log(db: &litefs::store::Db) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut checksum = 0;
    let mut txid = 0;
    for e in db.ltx_log().list().unwrap() {
        assert_eq!(e.min_txid, txid + 1, "gap before {}", e.path.display());
        let f = BufReader::new(File::open(&e.path).unwrap());
        let (_, t) = ltx::apply_verified(f, &mut out, checksum).unwrap();
        checksum = t.post_apply_checksum;
        txid = e.max_txid;
    }
    assert_eq!(db.pos().txid, txid);
    assert_eq!(db.pos().post_apply_checksum, checksum);
    out.into_inner()
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            m.unmount();
        }
    }
}

pub fn open_store(data: &Path) -> Store {
    let mut opts = StoreOptions::new(data);
    opts.no_fsync = true;
    Store::open(opts).unwrap_or_else(|e| panic!("open store {}: {e}", data.display()))
}

/// Runs the `sqlite3` CLI on `db` with `sql`; returns (success, stdout, stderr).
pub fn sqlite3_cli(db: &Path, sql: &str) -> (bool, String, String) {
    let out = std::process::Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3 (is the sqlite3 CLI installed?)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `python3 -c script args...`; returns (success, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every LTX file of database `name` in the data dir, in TXID order.
pub fn ltx_files(data: &Path, name: &str) -> Vec<PathBuf> {
    let dir = data.join("dbs").join(name).join("ltx");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ltx"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
