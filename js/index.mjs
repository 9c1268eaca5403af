// ESM face of index.cjs: one implementation, so code that mixes import and
// require shares one module instance and one set of pending waits.
import cjs from './index.cjs'

export const {
  TXID_NUM_COOKIE_NAME,
  getInstanceInfo,
  getInstanceInfoSync,
  getTxNumber,
  getTxNumberSync,
  waitForUpToDateTxNumber,
  getTxSetCookieHeader,
  checkCookieForTransactionalConsistency,
  getInternalInstanceDomain,
  getAllInstances,
  onTxNumber,
  watchPrimary,
  parsePos,
} = cjs
