//! Where the primary's proxy is, seen from a replica: the URL the lease
//! announces (`PrimaryInfo::proxy_url`), else the `proxyURL` the primary's
//! `GET /info` gives (the static lease, and lease values written by nodes
//! that do not announce one). Cached per primary; a failed dial forgets it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{header, Request};

use super::upstream::Upstream;
use crate::lease::PrimaryInfo;

/// Largest `/info` answer read.
const MAX_INFO_BYTES: usize = 1 << 20;
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// A primary as the cache knows it: its advertise URL and announced proxy URL.
type PrimaryKey = (String, Option<String>);

#[derive(Default)]
pub struct PrimaryProxy {
    cached: Mutex<Option<(PrimaryKey, Arc<Upstream>)>>,
}

impl PrimaryProxy {
    pub async fn upstream(&self, primary: &PrimaryInfo) -> Result<Arc<Upstream>, String> {
        let key = (primary.advertise_url.clone(), primary.proxy_url.clone());
        if let Some((k, up)) = &*self.cached.lock().expect("primary cache") {
            if *k == key {
                return Ok(up.clone());
            }
        }
        let url = match &primary.proxy_url {
            Some(u) => u.clone(),
            None => proxy_url_from_info(&primary.advertise_url).await?,
        };
        let up = Upstream::new(authority(&url)?, Duration::ZERO);
        *self.cached.lock().expect("primary cache") = Some((key, up.clone()));
        Ok(up)
    }

    /// Drops the cached address (the primary may have restarted elsewhere).
    pub fn forget(&self) {
        *self.cached.lock().expect("primary cache") = None;
    }
}

/// `host:port` of an `http://` URL (port 80 when absent).
pub fn authority(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("primary proxy URL {url:?} is not an http:// URL"))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("primary proxy URL {url:?} has no host"));
    }
    let has_port = match host.rfind(':') {
        Some(i) => !host[i..].contains(']'),
        None => false,
    };
    Ok(if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

async fn proxy_url_from_info(node_url: &str) -> Result<String, String> {
    let up = Upstream::new(authority(node_url)?, Duration::ZERO);
    let req = Request::get("/info")
        .header(header::HOST, up.addr())
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
        .map_err(|e| e.to_string())?;
    let fetch = async {
        let resp = up.send(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
            }
            if buf.len() > MAX_INFO_BYTES {
                return Err(format!("answer longer than {MAX_INFO_BYTES} bytes"));
            }
        }
        let info: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
        match info.get("proxyURL").and_then(|v| v.as_str()) {
            Some(u) if !u.is_empty() => Ok(u.to_string()),
            _ => Err("it runs no litefs-rs proxy (no proxyURL in /info)".to_string()),
        }
    };
    match tokio::time::timeout(INFO_TIMEOUT, fetch).await {
        Ok(r) => r.map_err(|e| format!("primary {node_url}/info: {e}")),
        Err(_) => Err(format!("primary {node_url}/info: timed out")),
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authorities_of_urls() {
        assert_eq!(authority("http://a:8080/x").unwrap(), "a:8080");
        assert_eq!(authority("http://a").unwrap(), "a:80");
        assert_eq!(authority("http://[::1]:81").unwrap(), "[::1]:81");
        assert_eq!(authority("http://[::1]").unwrap(), "[::1]:80");
        assert!(authority("https://a").is_err());
        assert!(authority("http://").is_err());
    }
}
