// ESM face of express.cjs: one implementation, so code that mixes import and
// require shares one module instance and one set of pending waits.
import cjs from './express.cjs'

export const {
  ensurePrimary,
  setTxCookie,
  deleteTxCookie,
  appendHeader,
  handleTransactionalConsistency,
  getTransactionalConsistencyMiddleware,
  getSetTxNumberMiddleware,
  getEnsurePrimaryMiddleware,
} = cjs
