// Started by litefs (`exec` in litefs.yml): migrations run on the primary
// only, as the course does, then the server starts on every node.
import { getInstanceInfo } from 'litefs-rs'
import { migrate } from './migrate.js'

const { currentInstance, currentIsPrimary, primaryInstance } = await getInstanceInfo()
const region = process.env.FLY_REGION ?? 'local'
if (currentIsPrimary) {
  console.log(`Instance (${currentInstance}) in ${region} is primary, deploying migrations.`)
  const applied = migrate()
  console.log(`${applied} migration(s) applied`)
} else {
  console.log(
    `Instance (${currentInstance}) in ${region} is not primary, skipping migrations (the primary is ${primaryInstance}).`,
  )
}

await import('./server.js')
