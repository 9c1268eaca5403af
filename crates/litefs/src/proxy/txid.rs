//! The `__txid` cookie: the position a client must see before its reads,
//! and the wait for the local databases to reach it.
//!
//! One database (LiteFS's case): 16 lower-case hex digits. Several
//! (`proxy.db` a list): one such group per database, in the order of the
//! list, joined by `.`. A cookie that does not parse is ignored, as LiteFS
//! ignores it: the read goes ahead at once.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::store::{Event, Store};

pub const COOKIE_NAME: &str = "__txid";
/// How long a cookie stays valid in the browser (the issue's `Max-Age`).
pub const COOKIE_MAX_AGE_SECS: u32 = 300;

/// The TXIDs the cookie in `header` (a `Cookie:` value) asks for, if it
/// has a well-formed `__txid`.
pub fn parse_cookie_header(header: &str) -> Option<Vec<u64>> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .and_then(|(_, v)| parse_value(v.trim().trim_matches('"')))
}

/// `%016x` groups joined by `.`; anything else is None.
pub fn parse_value(v: &str) -> Option<Vec<u64>> {
    v.split('.')
        .map(|g| {
            let ok = g.len() == 16 && g.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| u64::from_str_radix(g, 16).ok()).flatten()
        })
        .collect()
}

pub fn format_value(txids: &[u64]) -> String {
    let groups: Vec<String> = txids.iter().map(|t| format!("{t:016x}")).collect();
    groups.join(".")
}

/// The `Set-Cookie` value after a write.
pub fn set_cookie(txids: &[u64]) -> String {
    format!(
        "{COOKIE_NAME}={}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Lax",
        format_value(txids)
    )
}

/// The local TXID of each of `dbs` (0 for one not created yet).
pub fn positions(store: &Store, dbs: &[String]) -> Vec<u64> {
    dbs.iter()
        .map(|name| store.db(name).map(|d| d.pos().txid).unwrap_or(0))
        .collect()
}

/// Whether every database has reached the TXID the cookie gives it.
fn reached(store: &Store, dbs: &[String], want: &[u64]) -> bool {
    let have = positions(store, dbs);
    want.iter().zip(have).all(|(w, h)| h >= *w)
}

/// Waits until every database reaches `want` (extra entries beyond `dbs`
/// are ignored); false after `timeout`. Woken by the store's transaction
/// events: it subscribes before looking again, so no transaction slips
/// between the look and the wait.
pub async fn wait(store: &Store, dbs: &[String], want: &[u64], timeout: Duration) -> bool {
    if reached(store, dbs, want) {
        return true;
    }
    let mut events = store.subscribe();
    if reached(store, dbs, want) {
        return true;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return false,
            Ok(Ok(Event::Tx { db, .. })) if !dbs.contains(&db) => continue,
            // A lagged receiver missed events: the positions are the truth.
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => return reached(store, dbs, want),
        }
        if reached(store, dbs, want) {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_round_trip_and_garbage_is_ignored() {
        assert_eq!(parse_value("00000000000000a3"), Some(vec![0xa3]));
        assert_eq!(
            parse_value("0000000000000001.00000000000000ff"),
            Some(vec![1, 0xff])
        );
        assert_eq!(
            format_value(&[1, 0xff]),
            "0000000000000001.00000000000000ff"
        );
        for bad in [
            "",
            "a3",
            "00000000000000a3.",
            "zz000000000000a3",
            "+000000000000a3",
        ] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_cookie_header("a=b; __txid=0000000000000010; c=d"),
            Some(vec![16])
        );
        assert_eq!(parse_cookie_header("__txid_x=0000000000000010"), None);
        assert_eq!(parse_cookie_header("__txid=12"), None);
        assert_eq!(
            set_cookie(&[16]),
            "__txid=0000000000000010; Path=/; Max-Age=300; HttpOnly; SameSite=Lax"
        );
    }
}
