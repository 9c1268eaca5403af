//! Header rewriting between client, proxy and target: hop-by-hop headers
//! are dropped (RFC 9110 7.6.1), `X-Forwarded-*` added, and the marker
//! headers litefs-rs proxies use among themselves and towards the app.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Added to every request the proxy passes to the app, so the app (and the
/// Node helpers) know a litefs-rs proxy stands in front of it and will act
/// on a `fly-replay` answer even off Fly.io. Value: this node's hostname.
pub const PROXIED_BY: &str = "litefs-proxy";
/// Set on a request one proxy forwards to the primary's proxy; a proxy
/// never forwards such a request again (no loops during a failover).
pub const FORWARDED_FROM: &str = "litefs-forwarded-from";

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
    h.remove("proxy-connection");
}

/// Appends the client to `X-Forwarded-For` and sets `-Proto`/`-Host`
/// unless an earlier proxy set them.
pub fn add_forwarded(h: &mut HeaderMap, client: IpAddr) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let chain = match h.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        h.insert(xff, v);
    }
    let proto = HeaderName::from_static("x-forwarded-proto");
    if !h.contains_key(&proto) {
        h.insert(proto, HeaderValue::from_static("http"));
    }
    let fhost = HeaderName::from_static("x-forwarded-host");
    if !h.contains_key(&fhost) {
        if let Some(host) = h.get(header::HOST).cloned() {
            h.insert(fhost, host);
        }
    }
}

/// Whether the request asks to switch protocols (WebSocket and others).
pub fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_forwarded_headers_come() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(header::HOST, "example.com".parse().unwrap());
        h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.insert("x-keep", "yes".parse().unwrap());
        strip_hop_by_hop(&mut h);
        add_forwarded(&mut h, "127.0.0.9".parse().unwrap());
        for gone in ["connection", "x-secret", "keep-alive", "transfer-encoding"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(h["x-keep"], "yes");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!is_upgrade(&h));
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(is_upgrade(&h));
    }
}
