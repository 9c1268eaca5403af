//! `POST /ack` (litefs-rs only): a candidate replica tells the primary which
//! positions it holds durably, for zero-loss mode (`replication/acks.rs`).
//! The body is a position map, as in `POST /stream`; the headers name the
//! node and the term it follows. The replica sends it on the HTTP/2
//! connection its stream runs on, only when the stream's response asked
//! for it.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::{text, Body};
use crate::replication::client::{HEADER_EPOCH, HEADER_NODE_ID};
use crate::replication::frame;
use crate::store::Store;

/// Largest acknowledgement body accepted.
const MAX_ACK_BYTES: usize = 1 << 20;

pub async fn ack(req: Request<Incoming>, store: &Store) -> Response<Body> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(node) = header(HEADER_NODE_ID).and_then(|v| u64::from_str_radix(&v, 16).ok()) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{HEADER_NODE_ID} header (16 hex digits) required\n"),
        );
    };
    let Some(epoch) = header(HEADER_EPOCH).and_then(|v| v.parse::<u64>().ok()) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{HEADER_EPOCH} header (a number) required\n"),
        );
    };
    if !store.is_primary() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is not the primary\n".into(),
        );
    }
    if epoch != store.epoch() {
        return text(
            StatusCode::CONFLICT,
            format!(
                "acknowledgement for epoch {epoch}; this primary's is {}\n",
                store.epoch()
            ),
        );
    }
    let body: Bytes = match http_body_util::Limited::new(req.into_body(), MAX_ACK_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading body: {e}\n")),
    };
    let positions = match frame::read_pos_map(&mut &body[..]) {
        Ok(p) => p,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid position map: {e}\n"),
            )
        }
    };
    for (name, pos) in positions {
        // A position this primary's log does not have (another history)
        // holds nothing of ours.
        let Some(db) = store.db(&name) else { continue };
        let ours = db.log_pos();
        if pos.txid > ours.txid || (pos.txid == ours.txid && pos != ours) {
            tracing::warn!(db = %name, node = %format!("{node:016X}"), acked = %pos, ours = %ours,
                "acknowledgement of a position this primary does not have; ignored");
            continue;
        }
        store.zero_loss().ack(epoch, node, &name, pos.txid);
    }
    text(StatusCode::OK, "OK\n".into())
}
