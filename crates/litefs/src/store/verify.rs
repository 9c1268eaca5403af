//! Background verification: the startup fast path trusts the position
//! recorded at a clean shutdown instead of checksumming every page, so the
//! full check runs here once the node is up. Each page is read under the
//! database's lock as committed (WAL frames included, an open rollback
//! transaction waited out), and the scan restarts if a transaction lands
//! meanwhile. A mismatch is logged with the database and page range; on a
//! replica the position is dropped so the primary sends a snapshot.

use std::time::Duration;

use crate::store::db::Db;
use crate::store::error::Result;
use crate::store::pos::Pos;

const MAX_ATTEMPTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Ok(Pos),
    Mismatch {
        pos: Pos,
        actual: u64,
        pages: u32,
    },
    /// Transactions kept landing; not checked this time.
    Busy,
}

impl Db {
    /// Checksums every committed page and compares with the position.
    pub fn verify_checksum(&self) -> Result<Verified> {
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let (pos, commit, page_size) = {
                let st = self.lock();
                (st.pos, st.commit, st.page_size)
            };
            if pos.txid == 0 {
                return Ok(Verified::Ok(pos));
            }
            let lock = ltx::lock_pgno(page_size);
            let mut sum = ltx::DbChecksum::new();
            for pgno in 1..=commit {
                if pgno == lock {
                    continue;
                }
                let page = loop {
                    let mut st = self.lock();
                    if st.pos != pos {
                        continue 'attempt;
                    }
                    if !st.journal_active {
                        break self.committed_page(&mut st, pgno)?;
                    }
                    drop(st);
                    std::thread::sleep(Duration::from_millis(1));
                };
                if let Some(page) = page {
                    sum.xor(ltx::page_checksum(pgno, &page));
                }
            }
            if self.lock().pos != pos {
                continue;
            }
            return Ok(if sum.value() == pos.post_apply_checksum {
                Verified::Ok(pos)
            } else {
                Verified::Mismatch {
                    pos,
                    actual: sum.value(),
                    pages: commit,
                }
            });
        }
        Ok(Verified::Busy)
    }

    /// Forgets the position of a database found not to match it, so that a
    /// replica asks its primary for a snapshot.
    pub fn reset_position(&self) {
        let mut st = self.lock();
        st.pos = Pos::default();
        self.writer.set_durable(st.pos);
        st.checksum = ltx::DbChecksum::new();
    }
}
