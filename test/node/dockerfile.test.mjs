// The Dockerfile, checked without Docker (which cannot pull images here):
// every COPY source is in the build context, the paths copied from the
// Rust stage are what its cargo command builds, the runtime installs the
// packages the README names, and the Node stage's layout works when its
// commands are run by hand (the app resolves litefs-rs through "file:../.."
// and loads the addon under the name the Dockerfile gives it).

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { it } from 'node:test'

import { root } from './helpers.mjs'

const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8')

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text) {
  const out = []
  let cur = ''
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) || (!cur && !line.trim())) continue
    cur += line.replace(/\\$/, ' ')
    if (!line.endsWith('\\')) {
      const [op, ...rest] = cur.trim().split(/\s+/)
      out.push({ op: op.toUpperCase(), args: rest.join(' ') })
      cur = ''
    }
  }
  return out
}

/** The stages: { name, base, instructions }. */
function stages() {
  const list = []
  for (const ins of instructions(dockerfile)) {
    if (ins.op === 'FROM') {
      const [base, as, name] = ins.args.split(/\s+/)
      list.push({ base, name: as?.toUpperCase() === 'AS' ? name : null, ins: [] })
    } else {
      list.at(-1).ins.push(ins)
    }
  }
  return list
}

/** .dockerignore's patterns as predicates over context-relative paths. */
function ignored() {
  const pats = fs
    .readFileSync(path.join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map(l => l.trim())
    .filter(l => l && !l.startsWith('#'))
  const res = pats.map(p => {
    const re = p
      .replace(/[.+^${}()|[\]]/g, '\\$&')
      .replace(/\*\*\//g, '(?:.*/)?')
      .replace(/\*/g, '[^/]*')
    return new RegExp(`^${re}(?:/.*)?$`)
  })
  return rel => res.some(re => re.test(rel))
}

function copies(stage) {
  return stage.ins
    .filter(i => i.op === 'COPY')
    .map(i => {
      const parts = i.args.split(/\s+/)
      const from = parts.find(p => p.startsWith('--from='))?.slice('--from='.length) ?? null
      const paths = parts.filter(p => !p.startsWith('--'))
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1) }
    })
}

it('has the three stages and runs litefs mount', () => {
  const s = stages()
  assert.deepEqual(
    s.map(x => x.name),
    ['rust', 'node', null],
  )
  assert.match(s[0].base, /^rust:/)
  assert.match(s[1].base, /^node:20/)
  assert.match(s[2].base, /^node:20-.*slim$/)
  const entry = s[2].ins.filter(i => i.op === 'ENTRYPOINT').at(-1)
  assert.deepEqual(JSON.parse(entry.args), ['litefs', 'mount'])
})

it('copies only files that exist in the build context', () => {
  const skip = ignored()
  const missing = []
  for (const stage of stages()) {
    for (const c of copies(stage)) {
      if (c.from) continue
      for (const src of c.sources) {
        const rel = src.replace(/^\.\//, '').replace(/\/$/, '')
        if (!fs.existsSync(path.join(root, rel))) missing.push(`${src}: not in the repository`)
        else if (skip(rel)) missing.push(`${src}: excluded by .dockerignore`)
      }
    }
  }
  assert.deepEqual(missing, [])
})

it('copies from the Rust stage what its cargo command builds', () => {
  const [rust, node, runtime] = stages()
  const workdir = rust.ins.find(i => i.op === 'WORKDIR').args
  const build = rust.ins.find(i => i.op === 'RUN' && /cargo build/.test(i.args)).args
  assert.match(build, /--release/)
  assert.match(build, /--locked/)
  // Each file copied out of the stage, and the package whose build makes it.
  const made = {
    [`${workdir}/target/release/litefs`]: 'litefs-cli',
    [`${workdir}/target/release/liblitefs_node.so`]: 'litefs-node',
  }
  const fromRust = [...copies(node), ...copies(runtime)].filter(c => c.from === 'rust')
  assert.equal(fromRust.length, 2)
  for (const c of fromRust) {
    for (const src of c.sources) {
      assert.ok(made[src], `${src} is not a file the Rust stage builds`)
      assert.match(build, new RegExp(`-p ${made[src]}\\b`))
    }
  }
  // The names cargo gives them: the binary target `litefs`, the cdylib `litefs_node`.
  const cli = fs.readFileSync(path.join(root, 'crates/litefs-cli/Cargo.toml'), 'utf8')
  assert.match(cli, /\[\[bin\]\]\s*\nname = "litefs"/)
  const addon = fs.readFileSync(path.join(root, 'crates/litefs-node/Cargo.toml'), 'utf8')
  assert.match(addon, /crate-type = \["cdylib"\]/)
  assert.match(addon, /^name = "litefs-node"/m)
  // The litefs.yml the image runs is the Fly.io one, exec-ing the app.
  const yml = copies(runtime).find(c => c.dest === '/etc/litefs.yml')
  assert.deepEqual(yml.sources, ['examples/counter/fly/litefs.yml'])
})

it("the Rust stage's context is a whole workspace: cargo resolves it from the lock file", t => {
  // COPY Cargo.toml Cargo.lock ./ ; COPY crates ./crates: nothing else of the
  // repository is in the stage, so the workspace must resolve from these.
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-dockerfile-rust-'))
  t.after(() => fs.rmSync(src, { recursive: true, force: true }))
  for (const f of ['Cargo.toml', 'Cargo.lock'])
    fs.copyFileSync(path.join(root, f), path.join(src, f))
  fs.cpSync(path.join(root, 'crates'), path.join(src, 'crates'), { recursive: true })
  const meta = JSON.parse(
    execFileSync('cargo', ['metadata', '--locked', '--offline', '--format-version', '1'], {
      cwd: src,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }),
  )
  const names = meta.packages.filter(p => meta.workspace_members.includes(p.id)).map(p => p.name)
  assert.ok(names.includes('litefs-cli') && names.includes('litefs-node'), names.join(' '))
})

it('installs the runtime packages the README names', () => {
  const runtime = stages()[2]
  const apt = runtime.ins.find(i => i.op === 'RUN' && /apt-get install/.test(i.args)).args
  const pkgs = apt
    .split('apt-get install')[1]
    .split('&&')[0]
    .split(/\s+/)
    .filter(w => w && !w.startsWith('-'))
  assert.deepEqual(pkgs.sort(), ['ca-certificates', 'fuse3', 'sqlite3'])
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  assert.match(readme, /`fuse3 ca-certificates sqlite3`/)
})

it("the Node stage's commands, run by hand, give an app that loads the addon", t => {
  const lib = path.join(root, 'target', 'release', 'liblitefs_node.so')
  // npm test's pretest builds it (node js/install.cjs --force).
  assert.ok(fs.existsSync(lib), `${lib} not built`)
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'litefs-dockerfile-'))
  t.after(() => fs.rmSync(app, { recursive: true, force: true }))
  // COPY package.json LICENSE ./ ; COPY js ./js ; the addon under its platform name.
  for (const f of ['package.json', 'LICENSE'])
    fs.copyFileSync(path.join(root, f), path.join(app, f))
  fs.cpSync(path.join(root, 'js'), path.join(app, 'js'), {
    recursive: true,
    filter: src => !src.endsWith('.node'),
  })
  const arch = execFileSync('node', ['-p', 'process.arch'], { encoding: 'utf8' }).trim()
  fs.copyFileSync(lib, path.join(app, 'js', `litefs-rs.linux-${arch}-gnu.node`))
  // COPY the examples workspace's lock and package.json files, then npm ci
  // as the stage runs it. --ignore-scripts leaves out better-sqlite3's
  // compile (minutes, and the registry's own package); litefs-rs's install
  // script would exit at once with LITEFS_RS_SKIP_BUILD=1 anyway.
  const examples = path.join(app, 'examples')
  const counter = path.join(examples, 'counter')
  for (const f of [
    'package.json',
    'package-lock.json',
    'counter/package.json',
    'counter-prisma/package.json',
    'remix/package.json',
  ]) {
    fs.mkdirSync(path.dirname(path.join(examples, f)), { recursive: true })
    fs.copyFileSync(path.join(root, 'examples', f), path.join(examples, f))
  }
  const ci = dockerfile
    .match(/npm ci [^\n]*/)[0]
    .split(/\s+/)
    .slice(1)
  assert.deepEqual(ci, [
    'ci',
    '--omit=dev',
    '--workspace',
    'litefs-counter',
    '--no-audit',
    '--no-fund',
  ])
  execFileSync('npm', [...ci, '--ignore-scripts'], {
    cwd: examples,
    env: { ...process.env, LITEFS_RS_SKIP_BUILD: '1' },
    stdio: 'pipe',
  })
  // The app's import of litefs-rs, as start.js does it, on a mount-less dir.
  const out = execFileSync(
    'node',
    [
      '--input-type=module',
      '-e',
      "import { getInstanceInfo } from 'litefs-rs'; console.log(JSON.stringify(await getInstanceInfo()))",
    ],
    {
      cwd: counter,
      env: { ...process.env, LITEFS_DIR: app, LITEFS_HOSTNAME: 'img' },
      encoding: 'utf8',
    },
  )
  const info = JSON.parse(out)
  assert.equal(info.currentInstance, 'img')
  assert.equal(fs.realpathSync(path.join(examples, 'node_modules', 'litefs-rs')), app)
  // Only the counter's packages: none of Prisma's or React Router's.
  assert.ok(fs.existsSync(path.join(examples, 'node_modules', 'better-sqlite3')))
  assert.ok(!fs.existsSync(path.join(examples, 'node_modules', 'prisma')))
  assert.ok(!fs.existsSync(path.join(examples, 'node_modules', 'react-router')))
})
