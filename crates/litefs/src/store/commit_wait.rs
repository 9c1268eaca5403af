//! Zero-loss mode at the commit point: the mount answers a call that may
//! have committed a transaction only once enough candidates hold
//! everything the database committed (see `replication/acks.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::replication::acks::{Done, ZeroLoss};
use crate::store::db::Db;

impl Db {
    /// Calls `done` once everything this database has committed is held
    /// by the candidates zero-loss mode requires; at once when it is off,
    /// on a replica, or when they already hold it. The mount calls it
    /// after every write, truncation, deletion and fsync of a database's
    /// files: the commit points of every journal mode are among them, and
    /// for the others the answer is immediate.
    pub fn when_held(&self, zl: &Arc<ZeroLoss>, done: Done) {
        if zl.required() == 0 || !self.shared.is_primary() {
            return done(Ok(()));
        }
        let txid = self.pos().txid;
        if self.log_pos().txid < txid {
            // Nothing leaves the node before its LTX file is durable.
            self.writer.hurry();
        }
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        zl.after_acks(epoch, self.name(), txid, done);
    }
}
