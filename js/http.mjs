// ESM face of http.cjs: one implementation, so code that mixes import and
// require shares one module instance and one set of pending waits.
import cjs from './http.cjs'

export const {
  ensurePrimary,
  setTxCookie,
  deleteTxCookie,
  appendHeader,
  handleTransactionalConsistency,
} = cjs
