//! LiteFS's halt-lock endpoints on the primary, same paths, parameters and
//! JSON: `POST /halt?name=&id=` answers `{"id","pos":{"TXID",
//! "PostApplyChecksum"},"expires"}`, `DELETE /halt?name=&id=` releases,
//! `POST /tx?name=&lockID=` applies the LTX file in the body. Calls whose
//! `Litefs-Id` header is this node's own ID are refused, as in LiteFS.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::{query_param, text, Body, NodeMeta};
use crate::halt::HaltError;
use crate::replication::client::HEADER_NODE_ID;
use crate::store::Store;

/// Largest transaction (LTX file) a replica may send.
const MAX_TX_BYTES: usize = 1 << 30;

/// The lock ID parameter `key`; the error message when it is not one.
fn lock_id(req: &Request<Incoming>, key: &str) -> Result<i64, String> {
    let raw = query_param(req, key).unwrap_or("");
    raw.parse().map_err(|_| format!("invalid {key}: {raw:?}\n"))
}

fn from_self(req: &Request<Incoming>, store: &Store) -> bool {
    req.headers()
        .get(HEADER_NODE_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        == Some(store.node_id())
}

fn status(e: &HaltError) -> StatusCode {
    match e {
        HaltError::NotPrimary => StatusCode::SERVICE_UNAVAILABLE,
        HaltError::NoDatabase(_) => StatusCode::NOT_FOUND,
        HaltError::Wal(_) => StatusCode::NOT_IMPLEMENTED,
        HaltError::Timeout { .. } | HaltError::NotHeld { .. } => StatusCode::CONFLICT,
        HaltError::NoMount | HaltError::Store(_) | HaltError::Io(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// `POST /halt?name=&id=`.
pub(super) async fn acquire(
    req: &Request<Incoming>,
    store: Arc<Store>,
    meta: Arc<NodeMeta>,
) -> Response<Body> {
    let id = match lock_id(req, "id") {
        Ok(id) => id,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    if from_self(req, &store) {
        return text(
            StatusCode::BAD_REQUEST,
            "cannot remotely halt self\n".into(),
        );
    }
    let name = query_param(req, "name").unwrap_or("").to_string();
    let res = tokio::task::spawn_blocking(move || {
        meta.halts
            .acquire(&store, meta.mount_dir.as_deref(), &name, id)
    })
    .await;
    match res {
        Ok(Ok(lock)) => {
            let ms = lock
                .expires
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            super::json(
                StatusCode::OK,
                &serde_json::json!({
                    "id": lock.id,
                    "pos": {
                        "TXID": format!("{:016x}", lock.pos.txid),
                        "PostApplyChecksum": format!("{:016x}", lock.pos.post_apply_checksum),
                    },
                    "expires": super::info::rfc3339_ms(ms),
                }),
            )
        }
        Ok(Err(e)) => text(status(&e), format!("acquire halt lock: {e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// `DELETE /halt?name=&id=`: 200 whether or not it was still held.
pub(super) async fn release(
    req: &Request<Incoming>,
    store: &Store,
    meta: Arc<NodeMeta>,
) -> Response<Body> {
    let id = match lock_id(req, "id") {
        Ok(id) => id,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    if from_self(req, store) {
        return text(
            StatusCode::BAD_REQUEST,
            "cannot remotely unhalt self\n".into(),
        );
    }
    let name = query_param(req, "name").unwrap_or("").to_string();
    // Waits for a transaction being applied under the lock.
    let _ = tokio::task::spawn_blocking(move || meta.halts.release(&name, id)).await;
    text(StatusCode::OK, String::new())
}

/// `POST /tx?name=&lockID=`: the body is one LTX file.
pub(super) async fn tx(
    req: Request<Incoming>,
    store: Arc<Store>,
    meta: Arc<NodeMeta>,
) -> Response<Body> {
    let id = match lock_id(&req, "lockID") {
        Ok(id) => id,
        Err(m) => return text(StatusCode::BAD_REQUEST, m),
    };
    if from_self(&req, &store) {
        return text(
            StatusCode::BAD_REQUEST,
            "cannot remotely halt self\n".into(),
        );
    }
    let name = query_param(&req, "name").unwrap_or("").to_string();
    let Some(db) = store.db(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("database not found: {name:?}\n"),
        );
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_TX_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("reading the LTX file: {e}\n"),
            )
        }
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = db
        .ltx_log()
        .dir()
        .join(format!("halt-tx-{}-{nanos}.ltx.tmp", std::process::id()));
    let res = tokio::task::spawn_blocking(move || {
        std::fs::write(&tmp, &body)?;
        let applied = meta.halts.apply(&store, &name, id, &tmp);
        if applied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        applied
    })
    .await;
    match res {
        Ok(Ok(_)) => text(StatusCode::OK, String::new()),
        Ok(Err(e)) => text(status(&e), format!("cannot apply ltx: {e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}
