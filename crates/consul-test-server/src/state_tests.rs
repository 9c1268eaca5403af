//! Consul's rules, checked on the model with explicit time.

use super::*;

fn session(s: &mut State, ttl: u64, lock_delay: u64, behavior: Behavior, now: Instant) -> String {
    s.create_session(
        NewSession {
            name: "litefs".into(),
            node: None,
            lock_delay: Duration::from_secs(lock_delay),
            behavior,
            ttl: Some(Duration::from_secs(ttl)),
        },
        42,
        now,
    )
    .unwrap()
}

#[test]
fn acquire_release_and_lock_index() {
    let t = Instant::now();
    let mut s = State::new();
    let a = session(&mut s, 10, 1, Behavior::Delete, t);
    let b = session(&mut s, 10, 1, Behavior::Delete, t);
    assert!(s
        .put("k", b"a".to_vec(), None, Put::Acquire(a.clone()), t)
        .unwrap());
    assert_eq!(s.kv["k"].lock_index, 1);
    // Held by another: false. By the same: the value changes, LockIndex stays.
    assert!(!s
        .put("k", b"b".to_vec(), None, Put::Acquire(b.clone()), t)
        .unwrap());
    assert!(s
        .put("k", b"a2".to_vec(), None, Put::Acquire(a.clone()), t)
        .unwrap());
    assert_eq!(
        (s.kv["k"].lock_index, s.kv["k"].value.as_deref()),
        (1, Some(&b"a2"[..]))
    );
    // Release by a non-holder: false; by the holder: no lock-delay after.
    assert!(!s
        .put("k", vec![], None, Put::Release(b.clone()), t)
        .unwrap());
    assert!(s
        .put("k", vec![], None, Put::Release(a.clone()), t)
        .unwrap());
    assert_eq!(s.kv["k"].session, None);
    assert!(s
        .put("k", b"b".to_vec(), None, Put::Acquire(b.clone()), t)
        .unwrap());
    assert_eq!(s.kv["k"].lock_index, 2);
    // An unknown session is an error (HTTP 500), not false.
    assert_eq!(
        s.put("k", vec![], None, Put::Acquire("nope".into()), t),
        Err(StateError::UnknownSession("nope".into()))
    );
}

#[test]
fn invalidation_applies_behavior_and_lock_delay() {
    let t = Instant::now();
    let mut s = State::new();
    let a = session(&mut s, 10, 1, Behavior::Delete, t);
    let r = session(&mut s, 10, 1, Behavior::Release, t);
    let b = session(&mut s, 100, 0, Behavior::Release, t);
    assert!(s
        .put("del", b"x".to_vec(), None, Put::Acquire(a.clone()), t)
        .unwrap());
    assert!(s
        .put("rel", b"y".to_vec(), None, Put::Acquire(r.clone()), t)
        .unwrap());
    // Renewed at 5 s: still there at 24 s, gone at 25 s (2 x TTL).
    let t5 = t + Duration::from_secs(5);
    s.renew(&a, t5).unwrap();
    s.renew(&r, t5).unwrap();
    assert_eq!(s.expire(t + Duration::from_secs(24)), 0);
    let t25 = t + Duration::from_secs(25);
    assert_eq!(s.expire(t25), 2);
    assert!(s.renew(&a, t25).is_none());
    assert!(!s.kv.contains_key("del"));
    assert_eq!(s.kv["rel"].session, None);
    assert_eq!(s.kv["rel"].value.as_deref(), Some(&b"y"[..]));
    // The lock-delay: no acquire for 1 s after the invalidation.
    assert!(!s
        .put("del", vec![], None, Put::Acquire(b.clone()), t25)
        .unwrap());
    let later = t25 + Duration::from_millis(1001);
    assert!(s
        .put("del", vec![], None, Put::Acquire(b.clone()), later)
        .unwrap());
}

#[test]
fn cas_and_indexes() {
    let t = Instant::now();
    let mut s = State::new();
    assert!(s.put("k", b"1".to_vec(), Some(7), Put::Cas(0), t).unwrap());
    assert!(!s.put("k", b"2".to_vec(), None, Put::Cas(0), t).unwrap());
    let m = s.kv["k"].modify_index;
    assert!(!s.put("k", b"2".to_vec(), None, Put::Cas(m + 1), t).unwrap());
    assert!(s.put("k", b"2".to_vec(), None, Put::Cas(m), t).unwrap());
    let e = &s.kv["k"];
    assert_eq!((e.flags, e.create_index < e.modify_index), (7, true));
    let (hits, index) = s.get("k", false);
    assert_eq!((hits.len(), index), (1, e.modify_index));
    // A deletion moves the key's index (tombstone) so watchers wake.
    assert!(s.delete("k", false, None));
    let (hits, after) = s.get("k", false);
    assert!(hits.is_empty() && after > index);
}
