"""Drives the Consul test server with a third-party client, PyPI's
py-consul, the way applications use real Consul: sessions, lock acquire and
release, cas and flags, blocking-query wake-up and timeout, TTL expiry with
lock-delay. Exits non-zero on the first difference from Consul's behaviour.

usage: python3 py_consul_check.py HOST:PORT
"""

import sys
import threading
import time
import urllib.error
import urllib.request

import consul


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = consul.Consul(host=host, port=int(port))

    # Sessions: create, info, renew, destroy; out-of-range TTLs refused.
    s1 = c.session.create(name="a", behavior="delete", ttl=10, lock_delay=1)
    s2 = c.session.create(name="b", behavior="release", ttl=10, lock_delay=0)
    _, info = c.session.info(s1)
    assert info["Name"] == "a" and info["Behavior"] == "delete", info
    assert info["TTL"] == "10s" and info["LockDelay"] == 1_000_000_000, info
    assert c.session.renew(s2)["ID"] == s2
    # py-consul checks TTLs itself: ask the server directly.
    req = urllib.request.Request(
        f"http://{host}:{port}/v1/session/create", data=b'{"TTL":"5s"}', method="PUT"
    )
    try:
        urllib.request.urlopen(req)
        raise AssertionError("a 5s TTL was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 400, err

    # Locks: one holder; release only by the holder; LockIndex counts.
    assert c.kv.put("lock", b"a", acquire=s1) is True
    assert c.kv.put("lock", b"b", acquire=s2) is False
    _, e = c.kv.get("lock")
    assert e["Session"] == s1 and e["LockIndex"] == 1 and e["Value"] == b"a", e
    assert c.kv.put("lock", b"a2", acquire=s1) is True
    _, e = c.kv.get("lock")
    assert e["LockIndex"] == 1 and e["Value"] == b"a2", e
    assert c.kv.put("lock", b"", release=s2) is False
    assert c.kv.put("lock", b"", release=s1) is True
    _, e = c.kv.get("lock")
    assert "Session" not in e and e["Value"] is None, e
    # No lock-delay after an explicit release.
    assert c.kv.put("lock", b"b", acquire=s2) is True

    # cas and flags.
    assert c.kv.put("cfg", "1", cas=0, flags=7) is True
    assert c.kv.put("cfg", "2", cas=0) is False
    _, e = c.kv.get("cfg")
    assert e["Flags"] == 7
    assert c.kv.put("cfg", "2", cas=e["ModifyIndex"] + 1000) is False
    assert c.kv.put("cfg", "2", cas=e["ModifyIndex"]) is True
    assert c.kv.get("missing")[1] is None

    # Blocking queries: a change wakes the waiter; no change waits `wait`.
    index, _ = c.kv.get("lock")
    got = {}

    def watch():
        t = time.monotonic()
        got["index"], got["entry"] = c.kv.get("lock", index=index, wait="30s")
        got["took"] = time.monotonic() - t

    th = threading.Thread(target=watch)
    th.start()
    time.sleep(0.5)
    assert c.kv.put("lock", b"b2", acquire=s2) is True
    th.join(10)
    assert 0.4 < got["took"] < 5, got
    assert got["entry"]["Value"] == b"b2" and int(got["index"]) > int(index), got
    index, _ = c.kv.get("lock")
    t = time.monotonic()
    c.kv.get("lock", index=index, wait="1s")
    took = time.monotonic() - t
    assert 0.9 < took < 2.5, took

    # TTL expiry: a session not renewed is invalidated between TTL and
    # 2xTTL; its key (behavior delete) goes, and the lock-delay holds the
    # key for 1 s after.
    s3 = c.session.create(name="ttl", behavior="delete", ttl=10, lock_delay=1)
    assert c.kv.put("ttl-lock", b"x", acquire=s3) is True
    start = time.monotonic()
    while c.session.info(s3)[1] is not None:
        assert time.monotonic() - start < 25, "session never expired"
        time.sleep(0.1)
    expired = time.monotonic() - start
    assert 10 <= expired <= 21, expired
    assert c.kv.get("ttl-lock")[1] is None
    try:
        c.session.renew(s3)
        raise AssertionError("renewed an expired session")
    except consul.NotFound:
        pass
    s4 = c.session.create(name="next", ttl=10)
    assert c.kv.put("ttl-lock", b"y", acquire=s4) is False, "lock-delay ignored"
    time.sleep(1.1)
    assert c.kv.put("ttl-lock", b"y", acquire=s4) is True

    assert c.session.destroy(s4) is True
    print(f"py-consul: all checks passed (session expired after {expired:.1f} s)")


if __name__ == "__main__":
    main()
