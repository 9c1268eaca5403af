// The Consul test server (crates/consul-test-server) as npm's `consul`
// client sees it, as py-consul already does in
// crates/consul-test-server/tests: sessions, lock acquire and release, cas
// and flags, a blocking query woken by a change, and TTL expiry with the
// lock-delay after it.

import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import Consul from 'consul'

import { root } from './helpers.mjs'
import { freePort } from './mount-helpers.mjs'

/** target/debug/consul-test-server, built so it is never stale. */
function serverBinary() {
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target')
  const bin = path.join(target, 'debug', 'consul-test-server')
  const cargo = spawnSync('cargo', ['build', '-p', 'consul-test-server', '--quiet'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 20 * 60_000,
  })
  if (cargo.error?.code === 'ENOENT' && fs.existsSync(bin)) return bin
  if (cargo.error || cargo.status !== 0) {
    throw new Error(`cargo build -p consul-test-server failed:\n${cargo.stderr}`)
  }
  return bin
}

async function waitListening(consul) {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      await consul.kv.get('probe')
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
}

describe('consul-test-server with the npm consul client', () => {
  let server
  let consul

  before(async () => {
    const port = await freePort()
    server = spawn(serverBinary(), ['--addr', `127.0.0.1:${port}`], {
      stdio: 'ignore',
    })
    consul = new Consul({ host: '127.0.0.1', port })
    await waitListening(consul)
  })

  after(() => server?.kill())

  // consul@2 resolves a `false` body (as real Consul sends it) to
  // undefined: compare with `true` only.
  const set = async opts => (await consul.kv.set(opts)) === true

  it('sessions, locks, cas and flags behave as in Consul', async () => {
    const { ID: s1 } = await consul.session.create({
      name: 'a',
      behavior: 'delete',
      ttl: '10s',
      lockdelay: '1s',
    })
    const { ID: s2 } = await consul.session.create({ name: 'b', ttl: '10s', lockdelay: '0s' })
    const info = await consul.session.info(s1)
    assert.equal(info.Name, 'a')
    assert.equal(info.Behavior, 'delete')
    assert.equal(info.TTL, '10s')
    assert.equal((await consul.session.renew(s2))[0].ID, s2)
    await assert.rejects(consul.session.create({ ttl: '5s' }), /TTL|ttl/)

    assert.equal(await set({ key: 'lock', value: 'a', acquire: s1 }), true)
    assert.equal(await set({ key: 'lock', value: 'b', acquire: s2 }), false)
    let e = await consul.kv.get('lock')
    assert.equal(e.Session, s1)
    assert.equal(e.LockIndex, 1)
    assert.equal(e.Value, 'a')
    assert.equal(await set({ key: 'lock', value: 'a2', acquire: s1 }), true)
    e = await consul.kv.get('lock')
    assert.equal(e.LockIndex, 1, 're-acquiring by the holder keeps LockIndex')
    assert.equal(e.Value, 'a2')
    assert.equal(await set({ key: 'lock', value: '', release: s2 }), false)
    assert.equal(await set({ key: 'lock', value: '', release: s1 }), true)
    e = await consul.kv.get('lock')
    assert.equal(e.Session, undefined)
    // No lock-delay after an explicit release.
    assert.equal(await set({ key: 'lock', value: 'b', acquire: s2 }), true)

    assert.equal(await set({ key: 'cfg', value: '1', cas: 0, flags: 7 }), true)
    assert.equal(await set({ key: 'cfg', value: '2', cas: 0 }), false)
    e = await consul.kv.get('cfg')
    assert.equal(e.Flags, 7)
    assert.equal(await set({ key: 'cfg', value: '2', cas: e.ModifyIndex + 1000 }), false)
    assert.equal(await set({ key: 'cfg', value: '2', cas: e.ModifyIndex }), true)
    assert.equal(await consul.kv.get('missing'), undefined)
    await consul.session.destroy(s1)
    assert.ok(!(await consul.session.info(s1)), 'a destroyed session is gone')
  })

  it('a blocking query wakes on a change and times out without one', async () => {
    const { ID: s } = await consul.session.create({ ttl: '10s', lockdelay: '0s' })
    await consul.kv.set({ key: 'watched', value: 'v1' })
    const { ModifyIndex: index } = await consul.kv.get('watched')
    const started = Date.now()
    const waiting = consul.kv.get({ key: 'watched', index, wait: '30s' })
    setTimeout(() => set({ key: 'watched', value: 'v2', acquire: s }), 500)
    const woke = await waiting
    const took = Date.now() - started
    assert.equal(woke.Value, 'v2')
    assert.ok(woke.ModifyIndex > index)
    assert.ok(took >= 400 && took < 5000, `woke after ${took} ms`)

    const t = Date.now()
    await consul.kv.get({ key: 'watched', index: woke.ModifyIndex, wait: '1s' })
    const idle = Date.now() - t
    assert.ok(idle >= 900 && idle < 2500, `an idle wait of 1s took ${idle} ms`)
  })

  it('an unrenewed session expires between TTL and 2xTTL, then the lock-delay holds', async () => {
    const { ID: s } = await consul.session.create({
      name: 'ttl',
      behavior: 'delete',
      ttl: '10s',
      lockdelay: '1s',
    })
    assert.equal(await set({ key: 'ttl-lock', value: 'x', acquire: s }), true)
    const started = Date.now()
    while (await consul.session.info(s)) {
      assert.ok(Date.now() - started < 25_000, 'the session never expired')
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    const expired = (Date.now() - started) / 1000
    assert.ok(expired >= 10 && expired <= 21, `expired after ${expired} s`)
    assert.equal(await consul.kv.get('ttl-lock'), undefined, 'behavior delete removes the key')
    await assert.rejects(consul.session.renew(s), /not found/)
    const { ID: next } = await consul.session.create({ ttl: '10s' })
    assert.equal(await set({ key: 'ttl-lock', value: 'y', acquire: next }), false)
    await new Promise(resolve => setTimeout(resolve, 1100))
    assert.equal(await set({ key: 'ttl-lock', value: 'y', acquire: next }), true)
  })
})
