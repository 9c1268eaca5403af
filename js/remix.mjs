// ESM face of remix.cjs: one implementation, so code that mixes import and
// require shares one module instance and one set of pending waits.
import cjs from './remix.cjs'

export const {
  getTxSetCookieHeader,
  ensurePrimary,
  ensureInstance,
  getReplayResponse,
  handleTransactionalConsistency,
  appendTxNumberCookie,
} = cjs
