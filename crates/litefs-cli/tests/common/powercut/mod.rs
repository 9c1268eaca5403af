//! A power-cut simulating file system: an in-memory FUSE file system for a
//! node's data dir, so that the real `litefs` binary (commit capture, the
//! WAL log writer, retention, recovery, SQLite's own recovery inside it)
//! does its real I/O through it unchanged, and the test can cut the power
//! at any mutating operation and keep only what a disk would have kept.
//!
//! What survives a cut:
//! * file data: a file's content at its last fsync/fdatasync, plus a random
//!   subset of the page-sized pieces of the writes and truncates made since
//!   (the kernel writes dirty pages back whenever it likes);
//! * names: [`Model::Posix`] makes a directory's entries durable only at an
//!   fsync of that directory, and keeps a random subset of the later
//!   namespace operations that still apply; [`Model::Ext4`] (data=ordered,
//!   journaled metadata) makes every namespace operation durable, in order,
//!   at the next fsync of any file or directory (a journal commit), keeps a
//!   random prefix of the later ones, and makes a file renamed over another
//!   durable at the rename (auto_da_alloc).
//!
//! Not modelled: hard links, symlinks, xattrs, fallocate, file metadata
//! other than size and mode, and torn writes inside a page.

mod fuse;
pub mod life;
mod sim;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, MountOption};

use sim::Sim;

/// When namespace operations become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Posix,
    Ext4,
}

/// splitmix64: a seeded generator so that a failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// A mounted power-cut file system. Dropping it unmounts it.
pub struct SimFs {
    sim: Arc<Mutex<Sim>>,
    dir: PathBuf,
    session: Option<BackgroundSession>,
}

impl SimFs {
    /// Mounts an empty file system at `dir`, or with `preload` one holding
    /// `dir`'s current content as all durable (the underlying directory is
    /// left as it is, hidden by the mount).
    pub fn mount(dir: &Path, model: Model, preload: bool) -> SimFs {
        let mut sim = Sim::new(model);
        if preload {
            sim.preload(dir, sim::ROOT);
        }
        let sim = Arc::new(Mutex::new(sim));
        let options = [MountOption::FSName("powercut".into())];
        let session = fuser::spawn_mount2(fuse::Fs(sim.clone()), dir, &options)
            .unwrap_or_else(|e| panic!("mounting the power-cut fs at {}: {e}", dir.display()));
        SimFs {
            sim,
            dir: dir.to_path_buf(),
            session: Some(session),
        }
    }

    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap()
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.sim().ops
    }

    /// Cuts the power at mutating operation `k` (counted from 1).
    pub fn cut_at(&self, k: u64) {
        self.sim().cut_at = Some(k);
    }

    /// Cuts the power now, if it is still on.
    pub fn cut_now(&self) {
        let mut s = self.sim();
        if s.cut.is_none() {
            s.cut = Some(format!("after op {} (forced)", s.ops));
        }
    }

    /// Where the power was cut, if it was.
    pub fn cut(&self) -> Option<String> {
        self.sim().cut.clone()
    }

    /// Unmounts (lazily: a dead process's files may still be let go of).
    pub fn unmount(&mut self) {
        if let Some(s) = self.session.take() {
            super::detach(&self.dir);
            drop(s);
        }
    }

    /// Unmounts, empties the directory underneath and writes the durable
    /// image there, choosing what unsynced state survives with `seed`.
    /// Returns a summary of what was kept.
    pub fn materialize(&mut self, seed: u64) -> String {
        self.unmount();
        let _ = fs::remove_dir_all(&self.dir);
        fs::create_dir(&self.dir).unwrap();
        self.sim().materialize(&mut Rng::new(seed), &self.dir)
    }
}

impl Drop for SimFs {
    fn drop(&mut self) {
        self.unmount();
    }
}
