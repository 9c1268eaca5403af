// Type-checked by exports.test.mjs with `tsc --noEmit`: the shapes an app
// written for litefs-js relies on, plus the additions.
import * as http from 'node:http'
import {
  TXID_NUM_COOKIE_NAME,
  checkCookieForTransactionalConsistency,
  getAllInstances,
  getInstanceInfo,
  getInstanceInfoSync,
  getInternalInstanceDomain,
  getTxNumber,
  getTxSetCookieHeader,
  onTxNumber,
  parsePos,
  waitForUpToDateTxNumber,
  watchPrimary,
  type InstanceInfo,
} from 'litefs-rs'
import { ensurePrimary as ensurePrimaryHttp, handleTransactionalConsistency } from 'litefs-rs/http'
import {
  appendTxNumberCookie,
  ensureInstance,
  ensurePrimary,
  getReplayResponse,
} from 'litefs-rs/remix'
import {
  getEnsurePrimaryMiddleware,
  getSetTxNumberMiddleware,
  getTransactionalConsistencyMiddleware,
} from 'litefs-rs/express'

export async function usage(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const info: InstanceInfo = await getInstanceInfo()
  const sync: boolean = getInstanceInfoSync('/litefs').currentIsPrimary
  const url: string | null = info.primaryUrl
  const tx: number = await getTxNumber(undefined, 'sqlite.db')
  const ok: boolean = await waitForUpToDateTxNumber(tx, { timeoutMs: 100 })
  const cookie: string = getTxSetCookieHeader(tx, { maxAge: 10, sameSite: 'strict' })
  const name: 'txnum' = TXID_NUM_COOKIE_NAME
  const result = await checkCookieForTransactionalConsistency(req.headers.cookie)
  if (result.type === 'replay') console.log(result.flyReplayHeader, result.instance)
  const domain: string = getInternalInstanceDomain('abc', '8080')
  const all: Record<string, string> = await getAllInstances()
  const reached: number = await onTxNumber(tx + 1, { signal: AbortSignal.timeout(10) })
  const watcher = watchPrimary(i => console.log(i.primaryInstance))
  await watcher.close()
  const pos: string = parsePos('1/2').txid
  if (await ensurePrimaryHttp(res)) return
  if (await handleTransactionalConsistency(req, res)) return
  await ensurePrimary()
  await ensureInstance('abc')
  const replay: Response = getReplayResponse('abc')
  await appendTxNumberCookie(new Request('http://x/'), new Headers())
  const mw = [
    getEnsurePrimaryMiddleware(),
    getSetTxNumberMiddleware(),
    getTransactionalConsistencyMiddleware(),
  ]
  await mw[0](req, res, () => {})
  console.log(sync, url, ok, cookie, name, domain, all, reached, pos, replay)
}
