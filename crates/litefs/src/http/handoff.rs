//! `POST /promote` and `POST /handoff?nodeID=`, as LiteFS does them: a
//! candidate asks the primary to hand it the lease; the primary, once
//! asked, passes its lease to that connected replica on its stream (the
//! HANDOFF frame, after every transaction so far) and steps down. Also the
//! registry of which replicas are connected, so a handoff never goes to a
//! node that cannot receive it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioExecutor;

use super::{query_param, text, Body, NodeMeta};
use crate::lease::machine::HANDOFF_TIMEOUT;
use crate::store::Store;

/// Node IDs of the replicas streaming from this node, with how many
/// streams each has open.
#[derive(Debug, Default, Clone)]
pub struct Peers(Arc<Mutex<HashMap<u64, usize>>>);

impl Peers {
    pub(super) fn connect(&self, node: u64) -> PeerGuard {
        *self.0.lock().expect("peers").entry(node).or_default() += 1;
        PeerGuard(self.clone(), node)
    }

    fn is_connected(&self, node: u64) -> bool {
        self.0.lock().expect("peers").contains_key(&node)
    }
}

pub(super) struct PeerGuard(Peers, u64);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().expect("peers");
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// `POST /handoff?nodeID=<16 hex>` on the primary.
pub(super) async fn handoff(
    req: &Request<hyper::body::Incoming>,
    store: &Store,
    meta: &NodeMeta,
) -> hyper::Response<Body> {
    let Some(control) = &meta.lease_control else {
        return text(
            StatusCode::BAD_REQUEST,
            "this node's lease (static) cannot be handed off\n".into(),
        );
    };
    let Some(node) = query_param(req, "nodeID").and_then(|v| u64::from_str_radix(v, 16).ok())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "nodeID (16 hex digits) required\n".into(),
        );
    };
    if !store.is_primary() {
        return text(
            StatusCode::CONFLICT,
            "this node is not the primary\n".into(),
        );
    }
    if !meta.peers.is_connected(node) {
        return text(
            StatusCode::CONFLICT,
            format!("node {node:016X} is not connected to this primary\n"),
        );
    }
    match control.handoff(node).await {
        Ok(()) => text(StatusCode::OK, "OK\n".into()),
        Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
    }
}

/// `POST /promote` on a candidate replica: asks the primary to hand this
/// node the lease and waits (5 s at most) until it holds it.
pub(super) async fn promote(store: &Store, meta: &NodeMeta) -> hyper::Response<Body> {
    if !meta.candidate {
        return text(StatusCode::CONFLICT, "node is not a candidate\n".into());
    }
    if store.is_primary() {
        return text(StatusCode::OK, "already primary\n".into());
    }
    let Some(watch) = &meta.lease else {
        return text(
            StatusCode::BAD_REQUEST,
            "this node's lease (static) cannot be handed off\n".into(),
        );
    };
    let Some(primary) = watch.borrow().primary.clone() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no primary known to hand off from\n".into(),
        );
    };
    let url = format!(
        "{}/handoff?nodeID={:016X}",
        primary.advertise_url.trim_end_matches('/'),
        store.node_id()
    );
    match post(&url).await {
        Ok((200, _)) => {}
        Ok((status, body)) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "primary {} refused the handoff ({status}): {body}",
                    primary.hostname
                ),
            )
        }
        Err(e) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("asking primary {} to hand off: {e}\n", primary.hostname),
            )
        }
    }
    let mut w = watch.clone();
    let promoted = tokio::time::timeout(HANDOFF_TIMEOUT, w.wait_for(|s| s.is_primary))
        .await
        .is_ok_and(|r| r.is_ok());
    match promoted {
        true => text(StatusCode::OK, "OK\n".into()),
        false => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the handoff did not complete within {HANDOFF_TIMEOUT:?}\n"),
        ),
    }
}

/// An empty POST; the status and body.
pub async fn post(url: &str) -> Result<(u16, String), String> {
    request(hyper::Method::POST, url).await
}

/// A GET; the status and body.
pub async fn get(url: &str) -> Result<(u16, String), String> {
    request(hyper::Method::GET, url).await
}

async fn request(method: hyper::Method, url: &str) -> Result<(u16, String), String> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{url}: {e}"))?;
    let wait = HANDOFF_TIMEOUT + Duration::from_secs(1);
    let resp = tokio::time::timeout(wait, client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer in {wait:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
