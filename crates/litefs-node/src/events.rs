//! Client for the sidecar's `GET /events`: an NDJSON stream with one line per
//! event (`init`, `tx`, `primaryChange`). Each line wakes the waiters, who
//! then re-read the mount's files; the stream is a doorbell, the files stay
//! the single source of truth. Plain HTTP/1.1 over TCP: the sidecar listens
//! on the same host, and this keeps the addon free of an HTTP stack.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::signal::{shared_source, Registry, Signal, Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash ("" for the root).
    pub base: String,
}

pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported sidecar URL {url:?}: only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in sidecar URL {url:?}"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("no host in sidecar URL {url:?}"));
    }
    Ok(HttpUrl {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        base: path.trim_end_matches('/').to_owned(),
    })
}

static URLS: OnceLock<Registry> = OnceLock::new();

/// A shared `/events` subscription that reconnects with backoff for as long
/// as anyone listens. A (re)connect also wakes waiters: whatever happened
/// while the stream was down is only visible in the files.
pub fn watch_events(url: &str) -> io::Result<Arc<Source>> {
    let parsed = parse_http_url(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    shared_source(&URLS, url, move |signal| {
        Ok(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if stream_events(&parsed, &signal).await {
                    backoff = Duration::from_millis(100);
                }
                signal.wake();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }))
    })
}

/// Streams until the connection ends. Returns whether the sidecar answered
/// 200, i.e. whether the next failure deserves a fresh backoff.
async fn stream_events(url: &HttpUrl, signal: &Signal) -> bool {
    let Ok(stream) = TcpStream::connect((url.host.as_str(), url.port)).await else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    let request = format!(
        "GET {}/events HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/x-ndjson\r\n\r\n",
        url.base, url.host, url.port
    );
    if reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let Ok(head) = read_head(&mut reader).await else {
        return false;
    };
    if head.status != 200 {
        return false;
    }
    signal.wake();
    let _ = read_lines(&mut reader, head.chunked, |_line| signal.wake()).await;
    true
}

#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
}

pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Head> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP status line"))?;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Head { status, chunked });
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
}

/// Calls `on_line` for every non-empty line of the body until it ends.
pub async fn read_lines<R: AsyncBufRead + Unpin>(
    r: &mut R,
    chunked: bool,
    mut on_line: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut pending = Vec::new();
    let mut emit = |pending: &mut Vec<u8>, data: &[u8]| {
        pending.extend_from_slice(data);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let line = line.trim_ascii();
            if !line.is_empty() {
                on_line(line);
            }
        }
    };
    if !chunked {
        let mut buf = [0u8; 4096];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            emit(&mut pending, &buf[..n]);
        }
    }
    let mut size_line = String::new();
    loop {
        size_line.clear();
        if r.read_line(&mut size_line).await? == 0 {
            return Ok(());
        }
        let hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(hex, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            return Ok(());
        }
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).await?;
        emit(&mut pending, &chunk[..size]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_http_url("http://localhost:20202").unwrap(),
            HttpUrl {
                host: "localhost".into(),
                port: 20202,
                base: "".into()
            }
        );
        assert_eq!(
            parse_http_url("http://127.0.0.1/litefs/").unwrap(),
            HttpUrl {
                host: "127.0.0.1".into(),
                port: 80,
                base: "/litefs".into()
            }
        );
        assert_eq!(parse_http_url("http://[::1]:9").unwrap().host, "::1");
        assert!(parse_http_url("https://x").is_err());
        assert!(parse_http_url("http://x:notaport").is_err());
    }

    #[tokio::test]
    async fn chunked_ndjson_split_across_chunks() {
        let body: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            8\r\n{\"a\":1}\n\r\n5\r\n{\"b\":\r\n3\r\n2}\n\r\n0\r\n\r\n";
        let mut r = body;
        let head = read_head(&mut r).await.unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                chunked: true
            }
        );
        let mut lines = Vec::new();
        read_lines(&mut r, head.chunked, |l| lines.push(l.to_vec()))
            .await
            .unwrap();
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }

    #[tokio::test]
    async fn identity_body_until_eof() {
        let body: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\n{}\n\n{\"x\":1}";
        let mut r = body;
        let head = read_head(&mut r).await.unwrap();
        assert!(!head.chunked);
        let mut n = 0;
        read_lines(&mut r, false, |_| n += 1).await.unwrap();
        // The last line has no newline: the stream ended mid-line, so it is
        // not an event.
        assert_eq!(n, 1);
    }
}
