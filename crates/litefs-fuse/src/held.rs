//! Zero-loss mode in the mount: a call that may be a commit point is
//! answered only once enough candidates hold the transaction. The answer is
//! sent from whichever thread sees the acknowledgement, so the one FUSE
//! thread keeps serving every other call (readers, other databases)
//! meanwhile, and commits of several databases wait together.

use libc::{c_int, EIO};
use litefs::store::{Db, Store};

/// Calls `answer` with Ok once `db`'s commits so far are held (see
/// `Db::when_held`), or with EIO when zero-loss mode fails the commit.
pub(crate) fn answer_when_held(
    store: &Store,
    db: &Db,
    answer: impl FnOnce(Result<(), c_int>) + Send + 'static,
) {
    db.when_held(
        store.zero_loss(),
        Box::new(move |held| match held {
            Ok(()) => answer(Ok(())),
            Err(e) => {
                tracing::error!("commit not acknowledged: {e}");
                answer(Err(EIO))
            }
        }),
    );
}
