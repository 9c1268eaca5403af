//! The data model: sessions and KV entries under one Raft-like index, with
//! Consul's rules for TTLs, invalidation, lock-delay, acquire/release/cas.
//! Time is passed in so the rules can be tested without waiting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const MIN_TTL: Duration = Duration::from_secs(10);
pub const MAX_TTL: Duration = Duration::from_secs(86400);
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul invalidates a session this many TTLs after its last renewal.
pub const TTL_MULTIPLIER: u32 = 2;
/// The node every agent has; sessions without a `Node` go on it.
pub const AGENT_NODE: &str = "consul-test-server";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    Release,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: Duration,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
    pub create_index: u64,
    pub modify_index: u64,
    /// When it is invalidated unless renewed.
    pub expires: Option<Instant>,
}

impl Session {
    pub fn to_json(&self) -> Value {
        json!({
            "ID": self.id,
            "Name": self.name,
            "Node": self.node,
            "LockDelay": self.lock_delay.as_nanos() as u64,
            "Behavior": match self.behavior { Behavior::Release => "release", Behavior::Delete => "delete" },
            "TTL": self.ttl.map(|t| format!("{}s", t.as_secs())).unwrap_or_default(),
            "NodeChecks": [],
            "ServiceChecks": null,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
    pub flags: u64,
    pub value: Option<Vec<u8>>,
    pub session: Option<String>,
}

/// What a session create asks for, already checked.
pub struct NewSession {
    pub name: String,
    pub node: Option<String>,
    pub lock_delay: Duration,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
}

/// A KV write and its conditions.
pub enum Put {
    Plain,
    Cas(u64),
    Acquire(String),
    Release(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("Missing node registration")]
    MissingNode,
    #[error("invalid session {0:?}")]
    UnknownSession(String),
}

#[derive(Default)]
pub struct State {
    pub index: u64,
    pub sessions: BTreeMap<String, Session>,
    pub kv: BTreeMap<String, Entry>,
    /// Index of each key's last deletion (Consul's tombstones).
    tombstones: HashMap<String, u64>,
    /// Keys an invalidated session held, and until when they cannot be
    /// acquired.
    lock_delays: HashMap<String, Instant>,
    nodes: BTreeMap<String, String>,
    next_id: u64,
}

impl State {
    pub fn new() -> State {
        let mut s = State {
            index: 1,
            ..State::default()
        };
        s.nodes.insert(AGENT_NODE.into(), "127.0.0.1".into());
        s
    }

    fn bump(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    pub fn register(&mut self, node: &str, address: &str) {
        self.nodes.insert(node.to_string(), address.to_string());
        self.bump();
    }

    pub fn create_session(
        &mut self,
        req: NewSession,
        seed: u64,
        now: Instant,
    ) -> Result<String, StateError> {
        let node = req.node.unwrap_or_else(|| AGENT_NODE.to_string());
        if !self.nodes.contains_key(&node) {
            return Err(StateError::MissingNode);
        }
        self.next_id += 1;
        let id = uuid(seed, self.next_id);
        let index = self.bump();
        self.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                name: req.name,
                node,
                lock_delay: req.lock_delay,
                behavior: req.behavior,
                ttl: req.ttl,
                create_index: index,
                modify_index: index,
                expires: req.ttl.map(|t| now + t * TTL_MULTIPLIER),
            },
        );
        Ok(id)
    }

    pub fn renew(&mut self, id: &str, now: Instant) -> Option<&Session> {
        let s = self.sessions.get_mut(id)?;
        s.expires = s.ttl.map(|t| now + t * TTL_MULTIPLIER);
        Some(s)
    }

    /// Destroys or expires a session: every key it holds is released or
    /// deleted per its behavior and gets the session's lock-delay.
    pub fn invalidate(&mut self, id: &str, now: Instant) -> bool {
        let Some(s) = self.sessions.remove(id) else {
            return false;
        };
        let held: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, e)| e.session.as_deref() == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        let index = self.bump();
        for key in held {
            if !s.lock_delay.is_zero() {
                self.lock_delays.insert(key.clone(), now + s.lock_delay);
            }
            match s.behavior {
                Behavior::Delete => {
                    self.kv.remove(&key);
                    self.tombstones.insert(key, index);
                }
                Behavior::Release => {
                    let e = self.kv.get_mut(&key).expect("held key exists");
                    e.session = None;
                    e.modify_index = index;
                }
            }
        }
        true
    }

    /// Invalidates every session whose TTL ran out; how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.expires.is_some_and(|e| e <= now))
            .map(|s| s.id.clone())
            .collect();
        for id in &due {
            tracing::info!(session = %id, "session TTL expired; invalidating");
            self.invalidate(id, now);
        }
        due.len()
    }

    /// Consul's answer to a KV PUT.
    pub fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: Option<u64>,
        op: Put,
        now: Instant,
    ) -> Result<bool, StateError> {
        let existing = self.kv.get(key).cloned();
        let mut session = existing.as_ref().and_then(|e| e.session.clone());
        let mut lock_index = existing.as_ref().map_or(0, |e| e.lock_index);
        match op {
            Put::Plain => {}
            Put::Cas(0) if existing.is_some() => return Ok(false),
            Put::Cas(0) => {}
            Put::Cas(n) => {
                if existing.as_ref().map(|e| e.modify_index) != Some(n) {
                    return Ok(false);
                }
            }
            Put::Acquire(id) => {
                if !self.sessions.contains_key(&id) {
                    return Err(StateError::UnknownSession(id));
                }
                match session.as_deref() {
                    Some(s) if s == id => {}
                    Some(_) => return Ok(false),
                    None => {
                        if self.lock_delays.get(key).is_some_and(|&until| until > now) {
                            return Ok(false);
                        }
                        session = Some(id);
                        lock_index += 1;
                    }
                }
            }
            Put::Release(id) => {
                if session.as_deref() != Some(id.as_str()) {
                    return Ok(false);
                }
                session = None;
            }
        }
        let index = self.bump();
        self.kv.insert(
            key.to_string(),
            Entry {
                create_index: existing.as_ref().map_or(index, |e| e.create_index),
                modify_index: index,
                lock_index,
                flags: flags.unwrap_or_else(|| existing.as_ref().map_or(0, |e| e.flags)),
                value: Some(value),
                session,
            },
        );
        Ok(true)
    }

    pub fn delete(&mut self, key: &str, recurse: bool, cas: Option<u64>) -> bool {
        if let Some(n) = cas {
            if self.kv.get(key).map(|e| e.modify_index) != Some(n) {
                return false;
            }
        }
        let keys: Vec<String> = if recurse {
            self.kv
                .keys()
                .filter(|k| k.starts_with(key))
                .cloned()
                .collect()
        } else {
            self.kv
                .contains_key(key)
                .then(|| key.to_string())
                .into_iter()
                .collect()
        };
        let index = self.bump();
        for k in keys {
            self.kv.remove(&k);
            self.tombstones.insert(k, index);
        }
        true
    }

    /// The entries a GET returns and its X-Consul-Index: the newest change
    /// under the key (deletions included), else the store's index.
    pub fn get(&self, key: &str, recurse: bool) -> (Vec<(String, Entry)>, u64) {
        let hits: Vec<(String, Entry)> = if recurse {
            self.kv
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()
        } else {
            self.kv
                .get(key)
                .map(|e| (key.to_string(), e.clone()))
                .into_iter()
                .collect()
        };
        let newest = hits
            .iter()
            .map(|(_, e)| e.modify_index)
            .chain(
                self.tombstones
                    .iter()
                    .filter(|(k, _)| {
                        if recurse {
                            k.starts_with(key)
                        } else {
                            *k == key
                        }
                    })
                    .map(|(_, &i)| i),
            )
            .max();
        (hits, newest.unwrap_or(self.index).max(1))
    }
}

/// A session ID in UUID form, unique within this server.
fn uuid(seed: u64, n: u64) -> String {
    let a = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = n.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ seed.rotate_left(17);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16,
        (b >> 48) as u16,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
