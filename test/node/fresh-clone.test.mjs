// A fresh checkout installs and loads: `npm ci` builds the addon from source
// (no prebuilt binary exists for a checkout) and require('litefs-rs') works.
// CI runs in a fresh clone of committed main, so `git clone` is exact there;
// with uncommitted work the tree is copied instead (tracked plus untracked,
// not ignored), so the test checks what would be committed.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { it } from 'node:test'

import { hostname, makeMount, root } from './helpers.mjs'

function git(...args) {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8' })
}

function checkout(dest) {
  if (git('status', '--porcelain').trim() === '') {
    execFileSync('git', ['clone', '--quiet', root, dest], { stdio: 'pipe' })
    return
  }
  const files = git('ls-files', '-z', '-co', '--exclude-standard').split('\0').filter(Boolean)
  for (const file of files) {
    const from = path.join(root, file)
    if (!fs.existsSync(from)) continue // deleted but not yet committed
    fs.mkdirSync(path.dirname(path.join(dest, file)), { recursive: true })
    fs.cpSync(from, path.join(dest, file), { verbatimSymlinks: true })
  }
}

it('fresh checkout: npm ci builds the addon and require works', { timeout: 300_000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-clone-'))
  try {
    const repo = path.join(tmp, 'repo')
    fs.mkdirSync(repo)
    checkout(repo)
    assert.ok(!fs.readdirSync(path.join(repo, 'js')).some(f => f.endsWith('.node')))
    const env = {
      ...process.env,
      CI: 'true',
      // Share compiled dependencies with this checkout's build.
      CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target'),
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    }
    for (const k of ['PORT', 'INTERNAL_PORT', 'FLY_APP_NAME', 'LITEFS_PRIMARY_URL_TEMPLATE'])
      delete env[k]
    execFileSync('npm', ['ci', '--prefer-offline'], { cwd: repo, env, stdio: 'pipe' })
    const mount = makeMount({ primary: 'the-primary\n' })
    const out = execFileSync(
      process.execPath,
      ['-e', "console.log(JSON.stringify(require('litefs-rs').getInstanceInfoSync()))"],
      { cwd: repo, env: { ...env, LITEFS_DIR: mount }, encoding: 'utf8' },
    )
    assert.deepEqual(JSON.parse(out), {
      primaryInstance: 'the-primary',
      currentInstance: hostname,
      currentIsPrimary: false,
      primaryUrl: null,
    })
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
})
