// The documents a new user opens: every relative link in README.md and
// docs/*.md points at a file in this repository (the README once linked a
// design note that lived outside it), and LICENSE is the Apache-2.0 text
// Cargo.toml and package.json declare.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { it } from 'node:test'

import { root } from './helpers.mjs'

function markdownFiles() {
  const docs = path.join(root, 'docs')
  return [
    path.join(root, 'README.md'),
    ...fs
      .readdirSync(docs)
      .filter(f => f.endsWith('.md'))
      .map(f => path.join(docs, f)),
  ]
}

it('relative links in README.md and docs/ resolve inside the repository', () => {
  const broken = []
  for (const file of markdownFiles()) {
    const text = fs.readFileSync(file, 'utf8')
    // [text](target) links and `../x.md`-style paths written as code.
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map(m => m[1])
    targets.push(...[...text.matchAll(/`(\.\.?\/[^`\s]+\.md)`/g)].map(m => m[1]))
    for (const target of targets) {
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue
      const resolved = path.resolve(path.dirname(file), target.split('#')[0])
      const inside = resolved.startsWith(root + path.sep)
      if (!inside || !fs.existsSync(resolved)) {
        broken.push(`${path.relative(root, file)}: ${target}`)
      }
    }
  }
  assert.deepEqual(broken, [])
})

it('LICENSE is the Apache License 2.0 the manifests declare', () => {
  const license = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8')
  assert.match(license, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/)
  assert.match(license, /END OF TERMS AND CONDITIONS/)
  assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'package.json'))).license, 'Apache-2.0')
  assert.match(fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8'), /license = "Apache-2.0"/)
})
