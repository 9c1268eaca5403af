'use strict'
// `litefs-rs/http`: litefs-js/http's helpers for Node's http.ServerResponse.

const {
  getInstanceInfo,
  getTxNumber,
  getTxSetCookieHeader,
  checkCookieForTransactionalConsistency,
} = require('./index.cjs')

/**
 * On a replica, answers 409 with `fly-replay: instance=<primary>` and ends
 * the response (Fly's proxy then replays the request on the primary; so
 * does litefs-rs's proxy, off Fly.io too, for GET and HEAD requests, which
 * carry its `litefs-proxy` header). Resolves whether it did.
 */
async function ensurePrimary(res) {
  const { currentIsPrimary, primaryInstance } = await getInstanceInfo()
  if (currentIsPrimary) return false
  res.writeHead(409, { 'fly-replay': `instance=${primaryInstance}` })
  res.end()
  return true
}

/** Appends the `txnum` cookie with the current TXID; call it after writes. */
async function setTxCookie(res) {
  appendHeader(res, 'Set-Cookie', getTxSetCookieHeader(await getTxNumber()))
}

async function deleteTxCookie(res) {
  appendHeader(res, 'Set-Cookie', getTxSetCookieHeader(0, { expires: new Date(0) }))
}

function appendHeader(res, name, value) {
  const header = res.getHeader(name)
  const existing = header ? (Array.isArray(header) ? header : [header]) : []
  res.setHeader(
    name,
    [...existing, value].map(h => String(h)),
  )
}

/**
 * Applies checkCookieForTransactionalConsistency to a request: replays it
 * (409 + fly-replay) when this replica is still behind the cookie's TXID,
 * otherwise deletes the cookie if there was one. Resolves whether it replayed.
 */
async function handleTransactionalConsistency(req, res) {
  const result = await checkCookieForTransactionalConsistency(req.headers.cookie)
  if (result.type === 'replay') {
    res.writeHead(409, { 'fly-replay': result.flyReplayHeader })
    res.end()
    return true
  }
  if (result.type === 'ok') return false
  if (result.type === 'delete-cookie') {
    await deleteTxCookie(res)
    return false
  }
  throw new Error(`litefs-rs: Unknown status type ${result.type}`)
}

module.exports = {
  ensurePrimary,
  setTxCookie,
  deleteTxCookie,
  appendHeader,
  handleTransactionalConsistency,
}
