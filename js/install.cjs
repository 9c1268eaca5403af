'use strict'
// Makes sure a native binding exists for this machine. From the registry the
// matching `litefs-rs-<platform>` package provides it and this exits at
// once; from a git checkout (or a platform without a prebuilt package) it
// compiles crates/litefs-node with `napi build --platform --release`.
// `--force` always runs the build (cargo itself skips it when up to date),
// which is what `npm test` and `npm run build` want after Rust changes.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const force = process.argv.includes('--force')

function fail(message) {
  console.error(`litefs-rs: ${message}`)
  process.exit(1)
}

if (process.env.LITEFS_RS_SKIP_BUILD === '1') process.exit(0)

if (!force) {
  try {
    require('./native.cjs')
    process.exit(0)
  } catch {
    // No usable binding: build one below.
  }
}

const manifest = path.join(root, 'crates', 'litefs-node', 'Cargo.toml')
if (!fs.existsSync(manifest)) {
  fail(
    `no prebuilt binary for ${process.platform}-${process.arch} and no Rust ` +
      'sources to build one from; install from a git checkout with cargo on PATH',
  )
}

let cli
try {
  const pkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
  cli = path.join(path.dirname(pkg), require(pkg).bin.napi)
} catch {
  fail(
    'building from source needs the devDependency @napi-rs/cli; run `npm install` in the checkout',
  )
}

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail('building from source needs a Rust toolchain (cargo) on PATH')
}

const build = spawnSync(
  process.execPath,
  [
    cli,
    'build',
    '--platform',
    '--release',
    '--package',
    'litefs-node',
    '--output-dir',
    'js',
    '--js',
    'native.cjs',
    '--dts',
    'native.d.ts',
  ],
  {
    cwd: root,
    stdio: 'inherit',
    // The workspace's own target dir, unless the caller shares another one
    // (the fresh-clone test points it at the main checkout's to skip a
    // from-scratch build).
    env: {
      ...process.env,
      CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target'),
    },
  },
)
if (build.status !== 0) fail(`napi build failed (exit ${build.status ?? build.signal})`)
