// The README's setup, end to end: `litefs mount -- node app.js` with neither
// LITEFS_DIR nor LITEFS_HOSTNAME in the environment. litefs gives the app
// both, so getInstanceInfo() works as is, and a replica on the primary's
// machine (the primary named after the machine, as `lease.hostname`
// defaults to) does not take itself for the primary.
//
// Needs root and /dev/fuse, like mount.test.mjs.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { it } from 'node:test'

import { hostname, root } from './helpers.mjs'
import { freePort, litefsBinary } from './mount-helpers.mjs'

const skip =
  process.env.LITEFS_SKIP_MOUNT_TESTS === '1' ? 'LITEFS_SKIP_MOUNT_TESTS=1 is set' : false

const app = `
const litefs = require(${JSON.stringify(root)})
console.log(JSON.stringify({ sync: litefs.getInstanceInfoSync(), env: process.env.LITEFS_DIR }))
litefs.getInstanceInfo().then(info => console.log(JSON.stringify({ async: info })))
`

/** Runs the app as the exec command of a node; returns its output lines, parsed. */
function runNode(dir, candidate, port) {
  const mnt = path.join(dir, `mnt-${port}`)
  fs.mkdirSync(mnt)
  const config = path.join(dir, `litefs-${port}.yml`)
  fs.writeFileSync(
    config,
    [
      `fuse: { dir: ${JSON.stringify(mnt)} }`,
      `data: { dir: ${JSON.stringify(path.join(dir, `data-${port}`))} }`,
      `http: { addr: "127.0.0.1:${port}" }`,
      'skip-sync: true',
      `lease: { type: "static", candidate: ${candidate}, hostname: ${JSON.stringify(hostname)}, advertise-url: "http://127.0.0.1:1" }`,
      '',
    ].join('\n'),
  )
  const env = { ...process.env }
  delete env.LITEFS_DIR
  delete env.LITEFS_HOSTNAME
  const out = spawnSync(
    litefsBinary(),
    ['mount', '-config', config, '--', process.execPath, '-e', app],
    { env, encoding: 'utf8', timeout: 30_000 },
  )
  spawnSync('fusermount3', ['-uz', mnt])
  assert.equal(out.status, 0, out.stderr)
  return { mnt, lines: out.stdout.trim().split('\n').map(JSON.parse) }
}

it('an exec command gets LITEFS_DIR and knows which node it runs on', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-exec-env-'))
  try {
    const primary = runNode(dir, true, await freePort())
    const want = {
      primaryInstance: hostname,
      currentInstance: hostname,
      currentIsPrimary: true,
      primaryUrl: null,
    }
    assert.deepEqual(primary.lines, [{ sync: want, env: primary.mnt }, { async: want }])

    const port = await freePort()
    const replica = runNode(dir, false, port)
    const wantReplica = {
      primaryInstance: hostname,
      currentInstance: `${hostname}-${port}`,
      currentIsPrimary: false,
      primaryUrl: null,
    }
    assert.deepEqual(replica.lines, [
      { sync: wantReplica, env: replica.mnt },
      { async: wantReplica },
    ])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
