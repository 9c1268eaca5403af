// The Node helpers behind litefs-rs's proxy, off Fly.io: a primary and a
// replica, each a real `litefs mount` with a proxy in front of its app. The
// replica's app is a separate Node process (LITEFS_DIR is per process) whose
// GET handlers call `ensurePrimary` from litefs-rs/http and litefs-rs/remix;
// their `fly-replay` answer makes the replica's proxy replay the request on
// the primary, so the client gets the primary's answer.
//
// Needs root and /dev/fuse, like mount.test.mjs (LITEFS_SKIP_MOUNT_TESTS=1
// skips it).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { root } from './helpers.mjs'
import {
  freePort,
  litefsBinary,
  mountUnavailableReason,
  startMount,
  until,
} from './mount-helpers.mjs'

const skip =
  process.env.LITEFS_SKIP_MOUNT_TESTS === '1' ? 'LITEFS_SKIP_MOUNT_TESTS=1 is set' : false
const PRIMARY_HOST = 'litefs-rs-proxy-primary'

// The replica's app: ensurePrimary from /http (409 + fly-replay) and from
// /remix (a thrown 302 + fly-replay), and what it saw of the proxy.
const replicaApp = `
const http = require('node:http')
const { ensurePrimary } = require(${JSON.stringify(path.join(root, 'js', 'http.cjs'))})
const remix = require(${JSON.stringify(path.join(root, 'js', 'remix.cjs'))})
http
  .createServer(async (req, res) => {
    res.setHeader('x-app', 'replica')
    if (req.url === '/http-write') {
      if (await ensurePrimary(res)) return
      return res.end('replica wrote')
    }
    if (req.url === '/remix-write') {
      try {
        await remix.ensurePrimary()
      } catch (thrown) {
        res.writeHead(thrown.status, Object.fromEntries(thrown.headers))
        return res.end()
      }
      return res.end('replica wrote')
    }
    res.end('proxied by ' + (req.headers['litefs-proxy'] ?? 'nobody'))
  })
  .listen(Number(process.env.APP_PORT), '127.0.0.1', () => console.log('listening'))
`

describe('Node helpers behind the litefs-rs proxy (off Fly.io)', { skip }, () => {
  let primary
  let replica
  let primaryApp
  let child
  let replicaProxy

  before(async () => {
    const why = mountUnavailableReason()
    if (why) throw new Error(`the proxy tests need a real FUSE mount: ${why}`)
    litefsBinary()
    primaryApp = http.createServer((req, res) => {
      res.setHeader('x-app', 'primary')
      res.end('primary wrote')
    })
    await new Promise(resolve => primaryApp.listen(0, '127.0.0.1', resolve))
    const proxyYaml = (proxyPort, appPort) =>
      `proxy: { addr: "127.0.0.1:${proxyPort}", target: "127.0.0.1:${appPort}", db: "app.db" }`
    primary = await startMount({
      candidate: true,
      hostname: PRIMARY_HOST,
      extraYaml: proxyYaml(await freePort(), primaryApp.address().port),
    })
    const appPort = await freePort()
    replicaProxy = await freePort()
    replica = await startMount({
      candidate: false,
      hostname: PRIMARY_HOST,
      advertiseUrl: primary.httpUrl,
      extraYaml: proxyYaml(replicaProxy, appPort),
    })
    child = spawn(process.execPath, ['-e', replicaApp], {
      env: { ...process.env, LITEFS_DIR: replica.mnt, APP_PORT: String(appPort) },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', chunk => (out += chunk))
    await until(() => out.includes('listening'), 10_000, 'for the replica app')
  })

  after(async () => {
    child?.kill()
    await replica?.stop()
    await primary?.stop()
    primaryApp?.close()
  })

  const get = pathname => fetch(`http://127.0.0.1:${replicaProxy}${pathname}`)

  it('tells the app a litefs-rs proxy is in front of it', async () => {
    const res = await get('/')
    assert.equal(res.headers.get('x-app'), 'replica')
    assert.match(await res.text(), /^proxied by .+/)
  })

  for (const helper of ['http', 'remix']) {
    it(`${helper} ensurePrimary on a replica: the proxy replays the request on the primary`, async () => {
      const res = await get(`/${helper}-write`)
      assert.equal(res.status, 200, replica.log())
      assert.equal(res.headers.get('x-app'), 'primary')
      assert.equal(await res.text(), 'primary wrote')
    })
  }
})
