// Started by litefs (`exec` in litefs.yml): migrations on the primary only,
// then the built app (npm run build) on PORT.
import { getInstanceInfo } from 'litefs-rs'
import { migrate } from './migrate.js'

// React and React Router (imported by server.js) pick their production
// builds from this.
process.env.NODE_ENV ??= 'production'

const { currentInstance, currentIsPrimary, primaryInstance } = await getInstanceInfo()
const region = process.env.FLY_REGION ?? 'local'
if (currentIsPrimary) {
  console.log(`Instance (${currentInstance}) in ${region} is primary, deploying migrations.`)
  console.log(`${migrate()} migration(s) applied`)
} else {
  console.log(
    `Instance (${currentInstance}) in ${region} is not primary, skipping migrations (the primary is ${primaryInstance}).`,
  )
}

await import('./server.js')
