// `import` and `require` of every entry point reach the same functions, and
// a TypeScript file using the API type-checks.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { it } from 'node:test'

import { root } from './helpers.mjs'

const require = createRequire(import.meta.url)

for (const entry of ['litefs-rs', 'litefs-rs/http', 'litefs-rs/remix', 'litefs-rs/express']) {
  it(`import and require of ${entry} give the same exports`, async () => {
    const esm = await import(entry)
    const cjs = require(entry)
    assert.deepEqual(Object.keys(esm).sort(), Object.keys(cjs).sort())
    for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name)
    assert.ok(Object.keys(cjs).length >= 5)
  })
}

it('a TypeScript file using the API passes tsc --noEmit', () => {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  execFileSync(process.execPath, [tsc, '--noEmit', '-p', path.join(root, 'test/node/types')], {
    stdio: 'pipe',
  })
})
