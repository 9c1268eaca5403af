'use strict'
// Makes sure a native binding exists for this machine. From the registry the
// matching `litefs-rs-<platform>` package provides it and this exits at
// once. Installed from a checkout, a git URL or an `npm pack` tarball, the
// package carries the Rust sources instead (see "files" in package.json) and
// this compiles them with plain `cargo build --release -p litefs-node` (no
// npm devDependency needed), then copies the library to the file name the
// loader (native.cjs) looks for. `--force` always runs cargo (a no-op when
// up to date), which `npm test` and `npm run build` want after Rust changes.
//
// CARGO_TARGET_DIR is honoured, so several installs can share one build.
// Without it the build goes to <package>/target, which is removed after a
// build inside node_modules (hundreds of MB an app does not need).

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const force = process.argv.includes('--force')

function say(message) {
  console.error(`litefs-rs: ${message}`)
}

function fail(message) {
  say(message)
  process.exit(1)
}

/** The suffix napi-rs's loader uses for this platform (`linux-x64-gnu`). */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'darwin' || platform === 'freebsd') return `${platform}-${arch}`
  return null
}

/** The file cargo builds for the cdylib on this platform. */
function libraryName() {
  if (process.platform === 'darwin') return 'liblitefs_node.dylib'
  if (process.platform === 'win32') return 'litefs_node.dll'
  return 'liblitefs_node.so'
}

if (process.env.LITEFS_RS_SKIP_BUILD === '1') process.exit(0)

const inNodeModules = root.split(path.sep).includes('node_modules')
// Installing from a git URL, npm first runs `npm install` in a temporary
// clone to "prepare" it, packs that clone, then installs the tarball (which
// never carries a built addon). Building in the clone would only be thrown
// away: the real build comes with the tarball's own install.
if (process.env._PACOTE_NO_PREPARE_ && !inNodeModules && !force) {
  say('preparing a git dependency; the addon is compiled when it is installed')
  process.exit(0)
}

if (!force) {
  try {
    require('./native.cjs')
    process.exit(0)
  } catch {
    // No usable binding: build one below.
  }
}

const suffix = platformSuffix()
if (suffix === null) fail(`building on ${process.platform} is not supported`)

const manifest = path.join(root, 'crates', 'litefs-node', 'Cargo.toml')
if (!fs.existsSync(manifest)) {
  fail(
    `no prebuilt binary for ${suffix} and no Rust sources to build one from; ` +
      'install from a git checkout, a git URL or an `npm pack` tarball of one',
  )
}

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail(
    'building the native addon needs Rust 1.85 or newer (cargo on PATH): ' +
      'install it from https://rustup.rs, then run `npm rebuild litefs-rs`',
  )
}

const sharedTarget = process.env.CARGO_TARGET_DIR
const target = sharedTarget ? path.resolve(sharedTarget) : path.join(root, 'target')
say(
  'compiling the native addon with cargo (a first build takes a few minutes; ' +
    'npm shows cargo progress with --foreground-scripts)',
)
const started = Date.now()
const build = spawnSync(
  'cargo',
  ['build', '--release', '--locked', '-p', 'litefs-node', '--message-format', 'human'],
  {
    cwd: root,
    // cargo's own progress goes to stderr, which npm shows with
    // --foreground-scripts (and always when the build fails).
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CARGO_TARGET_DIR: target },
  },
)
if (build.error) fail(`cannot run cargo: ${build.error.message}`)
if (build.status !== 0) fail(`cargo build failed (exit ${build.status ?? build.signal})`)

const built = path.join(target, 'release', libraryName())
const dest = path.join(__dirname, `litefs-rs.${suffix}.node`)
// Copy to a temp name and rename: a process loading the addon never sees
// half a file.
fs.copyFileSync(built, `${dest}.tmp`)
fs.renameSync(`${dest}.tmp`, dest)
if (!sharedTarget && inNodeModules) fs.rmSync(target, { recursive: true, force: true })
say(`built ${path.relative(root, dest)} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
