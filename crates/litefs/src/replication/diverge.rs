//! Before following a primary, a node checks that its own history is a
//! prefix of the primary's. A former primary coming back may hold
//! transactions nobody received; LiteFS silently drops them with the
//! snapshot it then gets. Here the parting point is found (binary search
//! over the local log, asking the primary `GET /pos` for its checksum at a
//! TXID) and the files after it are kept under `diverged/<db>/`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::Request;

use crate::store::{Db, Pos, Store};

/// What the primary says about one of our positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Same,
    Different,
    /// Older than the primary's log reaches: cannot be checked.
    Pruned,
    /// The primary never got this far.
    Beyond,
    /// The primary has no `GET /pos` (LiteFS): nothing can be checked.
    Unsupported,
}

pub(crate) async fn check(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    store: &Arc<Store>,
) -> Result<(), super::client::ClientError> {
    for db in store.dbs() {
        let pos = db.pos();
        if pos.txid == 0 {
            continue;
        }
        match ask(sender, addr, db.name(), pos).await? {
            Answer::Same => continue,
            Answer::Unsupported => {
                tracing::info!(
                    db = db.name(),
                    "primary cannot report past positions (LiteFS?); history not checked"
                );
                continue;
            }
            _ => {}
        }
        let d = db.clone();
        let mut history = tokio::task::spawn_blocking(move || d.log_positions())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        history.reverse(); // oldest first
        let (mut left, mut right) = (0, history.len());
        let mut agree: Option<usize> = None;
        let mut pruned = false;
        while left < right {
            let mid = (left + right) / 2;
            match ask(sender, addr, db.name(), history[mid].1).await? {
                Answer::Same => {
                    agree = Some(mid);
                    left = mid + 1;
                }
                Answer::Different | Answer::Beyond | Answer::Unsupported => right = mid,
                Answer::Pruned => {
                    pruned = true;
                    left = mid + 1;
                }
            }
        }
        let (diverged, verified): (Vec<_>, bool) = match agree {
            Some(i) => (history[i + 1..].iter().map(|h| h.0.clone()).collect(), true),
            None if pruned => {
                // Only our own transactions can be ours alone; keep those
                // after the last one another primary sent us.
                let others = history
                    .iter()
                    .filter(|h| h.2 != store.node_id())
                    .map(|h| h.1.txid)
                    .max()
                    .unwrap_or(0);
                let mine = history
                    .iter()
                    .filter(|h| h.2 == store.node_id() && h.1.txid > others);
                (mine.map(|h| h.0.clone()).collect(), false)
            }
            None => (history.iter().map(|h| h.0.clone()).collect(), true),
        };
        keep(store, &db, diverged, verified).await?;
    }
    Ok(())
}

async fn keep(
    store: &Arc<Store>,
    db: &Arc<Db>,
    files: Vec<crate::store::ltxlog::LtxEntry>,
    verified: bool,
) -> Result<(), super::client::ClientError> {
    if files.is_empty() {
        return Ok(());
    }
    let (d, data) = (db.clone(), store.data_dir().to_path_buf());
    let n = files.len();
    let (first, last) = (files[0].min_txid, files[n - 1].max_txid);
    let dir = tokio::task::spawn_blocking(move || d.keep_diverged(&data, &files))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    if verified {
        tracing::warn!(db = db.name(), files = n, first = %format!("{first:016x}"), last = %format!("{last:016x}"), dir = %dir.display(),
            "this node has transactions the primary never received; kept them before taking the primary's snapshot");
    } else {
        tracing::warn!(db = db.name(), files = n, dir = %dir.display(),
            "this node's history could not be checked against the primary's (its log was pruned); kept this node's own transactions as a precaution");
    }
    Ok(())
}

async fn ask(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    db: &str,
    pos: Pos,
) -> Result<Answer, super::client::ClientError> {
    let req = Request::get(format!("http://{addr}/pos?db={db}&txid={:x}", pos.txid))
        .body(Full::new(Bytes::new()))
        .expect("static request parts are valid");
    let http = |source| super::client::ClientError::Http {
        url: addr.to_string(),
        source,
    };
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(http)?.to_bytes();
    classify(status, &String::from_utf8_lossy(&body), pos)
}

/// What the primary's answer to `GET /pos` for our `pos` means.
fn classify(status: u16, body: &str, pos: Pos) -> Result<Answer, super::client::ClientError> {
    if (200..300).contains(&status) {
        let theirs = Pos::parse(body.trim()).map_err(|e| super::client::ClientError::Status {
            status,
            body: e.to_string(),
        })?;
        return Ok(if theirs == pos {
            Answer::Same
        } else {
            Answer::Different
        });
    }
    if status != 404 {
        return Err(super::client::ClientError::Status {
            status,
            body: body.trim().to_string(),
        });
    }
    // Ours says "... not in the log; current TXID/CHECKSUM", "... inside
    // group-commit file ...; current ..." or "no database ..."; anything
    // else is a server without this endpoint.
    if body.starts_with("no database") {
        return Ok(Answer::Beyond);
    }
    // The primary committed that TXID itself, in a group commit: our
    // transaction of that number never reached it (the files it got from
    // us keep our boundaries), so the histories part at or before it.
    if body.contains("inside group-commit file") {
        return Ok(Answer::Different);
    }
    if !body.contains("not in the log") {
        return Ok(Answer::Unsupported);
    }
    let current = body
        .rsplit("current ")
        .next()
        .and_then(|c| Pos::parse(c.trim()).ok());
    Ok(match current {
        Some(c) if pos.txid <= c.txid => Answer::Pruned,
        _ => Answer::Beyond,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_get_pos() {
        let ours = Pos::new(5, 0xabc);
        let at = |status, body: &str| classify(status, body, ours).unwrap();
        assert_eq!(at(200, &ours.to_pos_file()), Answer::Same);
        assert_eq!(at(200, &Pos::new(5, 1).to_pos_file()), Answer::Different);
        assert_eq!(
            at(
                404,
                "TXID 0000000000000005 is inside group-commit file 0000000000000004-0000000000000007.ltx; \
                 current 0000000000000009/0000000000000001\n"
            ),
            Answer::Different
        );
        assert_eq!(
            at(
                404,
                "TXID 0000000000000005 is not in the log; current 0000000000000009/0000000000000001\n"
            ),
            Answer::Pruned
        );
        assert_eq!(
            at(
                404,
                "TXID 0000000000000005 is not in the log; current 0000000000000003/0000000000000001\n"
            ),
            Answer::Beyond
        );
        assert_eq!(at(404, "no database a.db\n"), Answer::Beyond);
        assert_eq!(at(404, "404 page not found"), Answer::Unsupported);
        assert!(classify(500, "boom", ours).is_err());
        assert!(classify(200, "garbage", ours).is_err());
    }
}
