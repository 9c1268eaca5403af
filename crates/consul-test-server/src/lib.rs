//! An in-memory server for the part of Consul's HTTP API that litefs
//! leases and their tests use: sessions (create, renew, destroy, info,
//! list), KV (get, put with `acquire`/`release`/`cas`/`flags`, delete),
//! blocking queries (`index`, `wait`, `X-Consul-Index`), ACL tokens
//! (`X-Consul-Token`) and `/v1/catalog/register`, with Consul's rules (see
//! `state.rs`). Only for tests and the local demo: one process, no Raft, no
//! persistence.

mod state;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use state::{Behavior, NewSession, Put, State};

/// Default and longest wait of a blocking query (Consul's).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);
/// How often session TTLs are checked.
const EXPIRY_TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct Options {
    pub addr: String,
    /// With a token every request must carry it (`X-Consul-Token` or
    /// `?token=`), as with ACLs on and a default policy of deny.
    pub token: Option<String>,
}

impl Options {
    pub fn from_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut addr = None;
        let mut token = None;
        while let Some(a) = args.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "--addr" | "-addr" => addr = Some(value()?),
                "--token" | "-token" => token = Some(value()?),
                _ => return Err(format!("unknown argument {a:?}")),
            }
        }
        Ok(Options {
            addr: addr.ok_or("--addr HOST:PORT is required")?,
            token,
        })
    }
}

struct Server {
    state: Mutex<State>,
    /// The store's index, for blocking queries to wait on.
    changed: watch::Sender<u64>,
    token: Option<String>,
    seed: u64,
}

impl Server {
    /// Runs `f` on the state and wakes blocking queries if it changed.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().expect("state lock");
        let before = s.index;
        let out = f(&mut s);
        let after = s.index;
        drop(s);
        if after != before {
            self.changed.send_replace(after);
        }
        out
    }
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, opts: Options) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        ^ u64::from(std::process::id()) << 32;
    let server = Arc::new(Server {
        state: Mutex::new(State::new()),
        changed: watch::channel(1).0,
        token: opts.token,
        seed,
    });
    let ticker = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPIRY_TICK).await;
                server.with(|s| s.expire(Instant::now()));
            }
        })
    };
    let _ticker = AbortOnDrop(ticker);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(route(&server, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, index: Option<u64>, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::builder().status(status);
    if let Some(i) = index {
        r = r.header("X-Consul-Index", i.to_string());
    }
    // Consul's errors are plain text; a client that trusts the header (npm
    // `consul`) fails to parse a text body labelled JSON.
    let kind = if status.is_success() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    r.header("Content-Type", kind)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

fn json_reply(v: &Value, index: Option<u64>) -> Resp {
    reply(StatusCode::OK, index, v.to_string())
}

fn error(status: StatusCode, msg: impl Into<String>) -> Resp {
    let msg: String = msg.into();
    reply(status, None, msg)
}

fn query<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if kv == name => Some(""),
            _ => None,
        })
}

async fn route(server: &Server, req: Request<Incoming>) -> Resp {
    if let Some(want) = &server.token {
        let given = req
            .headers()
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| query(&req, "token"));
        if given != Some(want.as_str()) {
            return error(StatusCode::FORBIDDEN, "Permission denied");
        }
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        let key = key.to_string();
        return match method {
            Method::GET => kv_get(server, &req, &key).await,
            Method::PUT => kv_put(server, req, &key).await,
            Method::DELETE => {
                let cas = query(&req, "cas").and_then(|c| c.parse().ok());
                let recurse = query(&req, "recurse").is_some();
                let ok = server.with(|s| s.delete(&key, recurse, cas));
                json_reply(&json!(ok), None)
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    let now = Instant::now();
    match (method, path.as_str()) {
        (Method::PUT, "/v1/session/create") => session_create(server, req).await,
        (Method::PUT, p) if p.starts_with("/v1/session/renew/") => {
            let id = &p["/v1/session/renew/".len()..];
            match server.with(|s| s.renew(id, now).map(|s| s.to_json())) {
                Some(v) => json_reply(&json!([v]), None),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("Session id '{id}' not found"),
                ),
            }
        }
        (Method::PUT, p) if p.starts_with("/v1/session/destroy/") => {
            let id = &p["/v1/session/destroy/".len()..];
            server.with(|s| s.invalidate(id, now));
            json_reply(&json!(true), None)
        }
        (Method::GET, p) if p.starts_with("/v1/session/info/") => {
            let id = &p["/v1/session/info/".len()..];
            server.with(|s| {
                let v: Vec<Value> = s
                    .sessions
                    .get(id)
                    .map(|s| s.to_json())
                    .into_iter()
                    .collect();
                json_reply(&json!(v), Some(s.index))
            })
        }
        (Method::GET, "/v1/session/list") => server.with(|s| {
            let v: Vec<Value> = s.sessions.values().map(|s| s.to_json()).collect();
            json_reply(&json!(v), Some(s.index))
        }),
        (Method::PUT, "/v1/catalog/register") => {
            let body = match read_json(req).await {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let Some(node) = field(&body, "Node").and_then(Value::as_str) else {
                return error(StatusCode::BAD_REQUEST, "Must provide node");
            };
            let addr = field(&body, "Address")
                .and_then(Value::as_str)
                .unwrap_or("");
            server.with(|s| s.register(node, addr));
            json_reply(&json!(true), None)
        }
        (Method::GET, "/v1/status/leader") => json_reply(&json!("127.0.0.1:8300"), None),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("unsupported by the test server: {path}"),
        ),
    }
}

/// The request body; a failure is the message of a 400.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, String> {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("reading body: {e}"))
}

async fn read_json(req: Request<Incoming>) -> Result<Value, String> {
    let body = read_body(req).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body).map_err(|e| format!("Request decode failed: {e}"))
}

/// A JSON field matched as Go's encoding/json matches it (Consul's API):
/// any case, null meaning absent.
fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

async fn session_create(server: &Server, req: Request<Incoming>) -> Resp {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let field = |k: &str| field(&body, k);
    let ttl = match field("TTL")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match parse_duration(t) {
            Some(d) if (state::MIN_TTL..=state::MAX_TTL).contains(&d) => Some(d),
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid Session TTL '{t}', must be between [10s=24h0m0s]"),
                )
            }
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Request decode failed: invalid duration {t:?}"),
                )
            }
        },
    };
    let lock_delay = match field("LockDelay") {
        None => state::DEFAULT_LOCK_DELAY,
        // Consul reads a bare number below 1000 as seconds, else as ns.
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n < 1000 => Duration::from_secs(n),
            Some(n) => Duration::from_nanos(n),
            None => return error(StatusCode::BAD_REQUEST, "Request decode failed: LockDelay"),
        },
        Some(Value::String(s)) => match parse_duration(s) {
            Some(d) => d,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Request decode failed: invalid duration {s:?}"),
                )
            }
        },
        Some(_) => return error(StatusCode::BAD_REQUEST, "Request decode failed: LockDelay"),
    };
    if lock_delay > state::MAX_LOCK_DELAY {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Invalid Session LockDelay '{lock_delay:?}', must be at most 60s"),
        );
    }
    let behavior = match field("Behavior")
        .and_then(Value::as_str)
        .unwrap_or("release")
    {
        "release" | "" => Behavior::Release,
        "delete" => Behavior::Delete,
        b => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Invalid Behavior setting '{b}'"),
            )
        }
    };
    let new = NewSession {
        name: field("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        node: field("Node").and_then(Value::as_str).map(String::from),
        lock_delay,
        behavior,
        ttl,
    };
    match server.with(|s| s.create_session(new, server.seed, Instant::now())) {
        Ok(id) => json_reply(&json!({ "ID": id }), None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn kv_put(server: &Server, req: Request<Incoming>, key: &str) -> Resp {
    let num = |name: &str| -> Result<Option<u64>, String> {
        match query(&req, name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("Request decode failed: {name}={v:?}")),
        }
    };
    let flags = match num("flags") {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let op = if let Some(id) = query(&req, "acquire") {
        Put::Acquire(id.to_string())
    } else if let Some(id) = query(&req, "release") {
        Put::Release(id.to_string())
    } else {
        match num("cas") {
            Ok(Some(n)) => Put::Cas(n),
            Ok(None) => Put::Plain,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match server.with(|s| s.put(key, body.to_vec(), flags, op, Instant::now())) {
        Ok(ok) => json_reply(&json!(ok), None),
        // Consul answers an acquire with an unknown session with a 500.
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn kv_get(server: &Server, req: &Request<Incoming>, key: &str) -> Resp {
    let recurse = query(req, "recurse").is_some();
    let raw = query(req, "raw").is_some();
    let index: u64 = query(req, "index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let wait = query(req, "wait")
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let lookup = || server.state.lock().expect("state lock").get(key, recurse);
    let (mut hits, mut at) = lookup();
    if index > 0 && at <= index {
        // Consul adds up to wait/16 of jitter so waiters do not all return
        // at once.
        let jitter = wait / 16 * (server.seed as u32 % 16) / 16;
        let deadline = tokio::time::Instant::now() + wait + jitter;
        let mut changed = server.changed.subscribe();
        while at <= index {
            let woke = tokio::time::timeout_at(deadline, changed.changed()).await;
            (hits, at) = lookup();
            if woke.is_err() {
                break;
            }
        }
    }
    if hits.is_empty() {
        return reply(StatusCode::NOT_FOUND, Some(at), "");
    }
    if raw {
        let v = hits[0].1.value.clone().unwrap_or_default();
        return reply(StatusCode::OK, Some(at), v);
    }
    let v: Vec<Value> = hits
        .iter()
        .map(|(k, e)| {
            let mut j = json!({
                "LockIndex": e.lock_index,
                "Key": k,
                "Flags": e.flags,
                // Consul shows an empty value as null.
                "Value": e.value.as_deref().filter(|v| !v.is_empty()).map(base64_encode),
                "CreateIndex": e.create_index,
                "ModifyIndex": e.modify_index,
            });
            if let Some(s) = &e.session {
                j["Session"] = json!(s);
            }
            j
        })
        .collect();
    json_reply(&json!(v), Some(at))
}

/// Go's duration strings ("10s", "1000ms", "1m30s", "1.5h").
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * unit;
    }
    Some(Duration::from_secs_f64(total))
}

pub fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_base64() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1000ms"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
    }

    #[test]
    fn arguments() {
        let o =
            Options::from_args(["--addr", "127.0.0.1:8500"].map(String::from).into_iter()).unwrap();
        assert_eq!((o.addr.as_str(), o.token), ("127.0.0.1:8500", None));
        let o = Options::from_args(["--addr=h:1", "--token", "t"].map(String::from).into_iter())
            .unwrap();
        assert_eq!(o.token.as_deref(), Some("t"));
        assert!(Options::from_args(std::iter::empty()).is_err());
        assert!(Options::from_args(["--bogus".to_string()].into_iter()).is_err());
    }
}
