// ./scripts/demo as a user who is not root: it stops at once, before
// building anything, and says why.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

test('the demo refuses to start without root, and says why', t => {
  // As nobody: the FUSE mounts need root, so nothing is built or started.
  // The script runs from a copy nobody can reach whatever the checkout's
  // permissions (its root check comes before anything else).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-demo-script-'))
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }))
  fs.mkdirSync(path.join(tmp, 'scripts'))
  fs.copyFileSync(path.join(root, 'scripts', 'demo'), path.join(tmp, 'scripts', 'demo'))
  for (const p of [tmp, path.join(tmp, 'scripts'), path.join(tmp, 'scripts', 'demo')]) {
    fs.chmodSync(p, 0o755)
  }
  const r = spawnSync(
    'setpriv',
    ['--reuid', '65534', '--regid', '65534', '--clear-groups', path.join(tmp, 'scripts', 'demo')],
    { cwd: tmp, encoding: 'utf8' },
  )
  assert.equal(r.status, 1, r.stderr)
  assert.equal(
    r.stderr,
    'demo: the demo mounts FUSE filesystems and must run as root: sudo ./scripts/demo\n',
  )
})
