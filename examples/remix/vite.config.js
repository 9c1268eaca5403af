import { reactRouter } from '@react-router/dev/vite'
import { defineConfig } from 'vite'

export default defineConfig({
  plugins: [reactRouter()],
  // Native addons stay out of the server bundle and load at run time.
  // litefs-rs needs saying: installed from a checkout it is a linked
  // package, which Vite would otherwise bundle as source.
  ssr: { external: ['litefs-rs', 'better-sqlite3'] },
})
