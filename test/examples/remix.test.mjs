// examples/remix (React Router 7, built by scripts/test with `npm run
// build`) on a two-node cluster: migrations on the primary only, a form
// post through the replica's proxy runs the action on the primary (which
// sets litefs-rs's txnum cookie), the next read on the replica sees it;
// ensurePrimary on the replica itself answers fly-replay; a txnum cookie the
// replica cannot reach makes handleTransactionalConsistency replay the read
// on the primary, which litefs's proxy does off Fly.io.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { Cluster } from '../../scripts/lib/cluster.mjs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-remix-'))
const cluster = new Cluster({
  dir,
  app: 'remix',
  nodes: 2,
  candidates: 1,
  profile: 'debug',
  // The page renders once the migrated count can be read.
  ready: async url => /id="count"[^>]*>\d+</.test(await (await fetch(url)).text()),
})

after(async () => {
  await cluster.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** fetch with a cookie jar, as a browser keeps one per site. */
function browserLike(base) {
  const jar = new Map()
  const go = async (method, p, { body, cookies } = {}) => {
    const headers = {
      cookie: [...jar, ...Object.entries(cookies ?? {})].map(([k, v]) => `${k}=${v}`).join('; '),
    }
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded'
    const res = await fetch(new URL(p, base), {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(15000),
    })
    for (const c of res.headers.getSetCookie()) {
      const [kv] = c.split(';')
      const [k, v] = kv.split('=')
      jar.set(k.trim(), v)
    }
    return { res, text: await res.text() }
  }
  return { go, jar }
}

function shown(html) {
  const count = /id="count"[^>]*>([^<]*)</.exec(html)?.[1]
  const instance = /id="instance">([^<]*)</.exec(html)?.[1]
  return { count, instance }
}

test('React Router app: actions on the primary, txnum cookie, replays', async () => {
  await cluster.start()
  const [primary, replica] = cluster.nodes
  assert.match(
    fs.readFileSync(cluster.logPath(primary), 'utf8'),
    /Instance \(node-1\) in sjc is primary, deploying migrations\./,
  )
  assert.match(
    fs.readFileSync(cluster.logPath(replica), 'utf8'),
    /Instance \(node-2\) in ams is not primary, skipping migrations/,
  )

  // The page, server-rendered by the replica.
  const b = browserLike(cluster.url(replica))
  let r = await b.go('GET', '/')
  assert.equal(r.res.status, 200)
  assert.deepEqual(shown(r.text), { count: '0', instance: 'node-2' })
  // The client bundle it loads, through the proxy's passthrough.
  const entry = /\/assets\/entry\.client-[\w-]+\.js/.exec(r.text)
  assert.ok(entry, 'the page loads the built client bundle')
  const js = await fetch(new URL(entry[0], cluster.url(replica)))
  assert.equal(js.status, 200)
  assert.equal(js.headers.get('content-type'), 'text/javascript')

  // Two form posts (no JavaScript) through the replica's proxy: the action
  // runs on the primary and redirects to the page, with its txnum cookie
  // and the proxy's __txid.
  for (const intent of ['increment', 'increment']) {
    r = await b.go('POST', '/?index', { body: `intent=${intent}` })
    assert.equal(r.res.status, 302, r.text)
    assert.equal(r.res.headers.get('location'), '/')
  }
  assert.ok(Number(b.jar.get('txnum')) > 0, `txnum cookie: ${[...b.jar]}`)
  assert.match(b.jar.get('__txid') ?? '', /^[0-9a-f]{16}$/)
  r = await b.go('GET', '/')
  assert.deepEqual(shown(r.text), { count: '2', instance: 'node-2' })

  // ensurePrimary on the replica's app itself (no proxy in between).
  const direct = await fetch(`http://127.0.0.1:${replica.appPort}/?index`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'intent=increment',
    redirect: 'manual',
  })
  assert.equal(direct.headers.get('fly-replay'), 'instance=node-1')

  // A txnum this replica never reaches: the loader's consistency check
  // replays the read on the primary, and the proxy follows the replay.
  const fresh = browserLike(cluster.url(replica))
  r = await fresh.go('GET', '/', { cookies: { txnum: '999999' } })
  assert.equal(r.res.status, 200, r.text)
  assert.deepEqual(shown(r.text), { count: '2', instance: 'node-1' })
})
