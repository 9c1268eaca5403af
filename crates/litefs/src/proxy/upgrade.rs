//! WebSocket and other `Upgrade` requests: always tunnelled to the local
//! app (LiteFS refuses them, superfly/litefs#427). Once both sides switched
//! protocols the proxy copies bytes both ways until either closes. Writes
//! made over such a connection are the app's business: they must go through
//! an HTTP request (or `ensurePrimary`) to reach the primary.

use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::headers::{add_forwarded, strip_hop_by_hop};
use super::{empty, origin_form, text, Body, BoxError, Proxy};

pub async fn tunnel(proxy: &Proxy, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
    let (mut parts, body) = req.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(p) = protocol {
        parts.headers.insert(header::UPGRADE, p);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    add_forwarded(&mut parts.headers, peer.ip());
    proxy.mark(&mut parts.headers);
    parts.uri = origin_form(&parts.uri);
    let up = Request::from_parts(parts, body.map_err(BoxError::from).boxed());
    let mut resp = match proxy.local.send_upgrade(up).await {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("Proxy error: {e}\n")),
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, body.map_err(BoxError::from).boxed());
    }
    let target_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (client, target) = match tokio::join!(client_side, target_side) {
            (Ok(c), Ok(t)) => (c, t),
            (c, t) => {
                tracing::debug!(
                    client_ok = c.is_ok(),
                    target_ok = t.is_ok(),
                    "proxy upgrade did not complete"
                );
                return;
            }
        };
        let (mut client, mut target) = (TokioIo::new(client), TokioIo::new(target));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut target).await {
            tracing::debug!("proxy tunnel ended: {e}");
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, empty())
}
