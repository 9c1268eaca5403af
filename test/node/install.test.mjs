// An app installs litefs-rs without the registry, the three ways the README
// gives: from a checkout (`npm install /path`), from a git URL
// (`git+file://`, as `github:` would be) and from `npm pack`'s tarball.
// Each builds the addon from the Rust sources the package ships, with no
// devDependency, prints no npm warning when the app allows the package's
// install script (npm 11 lists any unapproved one), and then works through
// `require` and `import`.
//
// The checkout is a fresh copy of this one: `git clone` when the tree is
// clean (CI), else the tracked and untracked files committed into a new
// repository, so the test checks what would be committed. All builds share
// CARGO_TARGET_DIR with this checkout (`npm test` has just built the addon
// there), so only the litefs-node crate itself is compiled again.

import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { it } from 'node:test'

import { hostname, makeMount, root } from './helpers.mjs'

function git(cwd, ...args) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function snapshot(dest) {
  if (git(root, 'status', '--porcelain').trim() === '') {
    git(root, 'clone', '--quiet', root, dest)
    return
  }
  fs.mkdirSync(dest)
  const files = git(root, 'ls-files', '-z', '-co', '--exclude-standard').split('\0').filter(Boolean)
  for (const file of files) {
    const from = path.join(root, file)
    if (!fs.existsSync(from)) continue // deleted but not yet committed
    fs.mkdirSync(path.dirname(path.join(dest, file)), { recursive: true })
    fs.cpSync(from, path.join(dest, file), { verbatimSymlinks: true })
  }
  git(dest, 'init', '--quiet')
  git(dest, 'add', '-A')
  git(dest, '-c', 'user.name=test', '-c', 'user.email=test@localhost', 'commit', '-qm', 'snapshot')
}

// A plain `npm install`: none of the settings `npm test` exports to its
// scripts (npm_config_*, npm_lifecycle_*, ...) reach the nested npm.
const plain = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
const env = {
  ...plain,
  CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target'),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
}
for (const k of [
  'LITEFS_RS_SKIP_BUILD',
  'LITEFS_DIR',
  'LITEFS_HOSTNAME',
  'PORT',
  'INTERNAL_PORT',
]) {
  delete env[k]
}

/** `npm install spec` in a new app allowing `allowKey`'s scripts; npm's output. */
function installInto(app, spec, allowKey) {
  fs.mkdirSync(app)
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({
      name: 'app',
      version: '1.0.0',
      private: true,
      allowScripts: { [allowKey]: true },
    }),
  )
  const out = spawnSync('npm', ['install', spec], {
    cwd: app,
    env,
    encoding: 'utf8',
    timeout: 240_000,
  })
  const output = `${out.stdout}\n${out.stderr}`
  assert.equal(out.status, 0, `npm install ${spec} failed:\n${output}`)
  return output
}

/** What the installed package says, from CommonJS and from ESM. */
function use(app) {
  const mount = makeMount({ primary: 'the-primary\n' })
  const run = (args, input) =>
    JSON.parse(
      execFileSync(process.execPath, args, {
        cwd: app,
        env: { ...env, LITEFS_DIR: mount },
        encoding: 'utf8',
        input,
      }),
    )
  const cjs = run(['-e', "console.log(JSON.stringify(require('litefs-rs').getInstanceInfoSync()))"])
  const esm = run(
    ['--input-type=module'],
    "import { getInstanceInfo } from 'litefs-rs'; console.log(JSON.stringify(await getInstanceInfo()))",
  )
  return { cjs, esm }
}

it(
  'installs from a checkout, a git URL and a tarball, building the addon',
  { timeout: 900_000 },
  () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-rs-install-'))
    try {
      const repo = path.join(tmp, 'litefs-rs')
      snapshot(repo)
      assert.ok(!fs.readdirSync(path.join(repo, 'js')).some(f => f.endsWith('.node')))
      execFileSync('npm', ['pack', '--pack-destination', tmp], { cwd: repo, env, stdio: 'pipe' })
      const tarball = path.join(
        tmp,
        fs.readdirSync(tmp).find(f => f.endsWith('.tgz')),
      )

      const want = {
        primaryInstance: 'the-primary',
        currentInstance: hostname,
        currentIsPrimary: false,
        primaryUrl: null,
      }
      // The git install is the slow one: npm prepares a git dependency that
      // has an install script by running `npm install --include dev` in a
      // temporary clone (compiling better-sqlite3, a test devDependency).
      const ways = [
        ['checkout', repo, `file:${repo}`],
        ['git', `git+file://${repo}`, `git+file://${repo}`],
        ['tarball', tarball, `file:${tarball}`],
      ]
      for (const [name, spec, allowKey] of ways) {
        const app = path.join(tmp, `app-${name}`)
        const started = Date.now()
        const output = installInto(app, spec, allowKey)
        console.log(`# ${name}: npm install took ${((Date.now() - started) / 1000).toFixed(0)} s`)
        const warnings = output.split('\n').filter(l => /\bwarn/i.test(l))
        assert.deepEqual(warnings, [], `${name}: npm warned:\n${output}`)
        assert.deepEqual(use(app), { cjs: want, esm: want }, name)
        // Nothing but the package itself: it has no runtime dependencies.
        const installed = fs
          .readdirSync(path.join(app, 'node_modules'))
          .filter(f => !f.startsWith('.'))
        assert.deepEqual(installed, ['litefs-rs'], name)
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  },
)
