// Started by litefs (`exec` in litefs.yml): `prisma migrate deploy` runs on
// the primary only, as the course does, then the server starts on every node.
import { getInstanceInfo } from 'litefs-rs'
import { applyWithoutEngine, migrateDeploy } from './migrate.js'

const { currentInstance, currentIsPrimary, primaryInstance } = await getInstanceInfo()
const region = process.env.FLY_REGION ?? 'local'
if (currentIsPrimary) {
  console.log(`Instance (${currentInstance}) in ${region} is primary, deploying migrations.`)
  const r = migrateDeploy()
  process.stdout.write(r.output.endsWith('\n') ? r.output : `${r.output}\n`)
  if (!r.ok) {
    if (!r.engineMissing) {
      console.error('\nprisma migrate deploy failed')
      process.exit(1)
    }
    console.log(
      'prisma migrate deploy cannot run here: Prisma downloads its schema engine from binaries.prisma.sh, ' +
        'which this machine cannot reach; applying prisma/migrations with better-sqlite3 instead',
    )
    console.log(`${applyWithoutEngine()} migration(s) applied`)
  }
} else {
  console.log(
    `Instance (${currentInstance}) in ${region} is not primary, skipping migrations (the primary is ${primaryInstance}).`,
  )
}

await import('./server.js')
