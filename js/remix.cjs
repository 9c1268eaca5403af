'use strict'
// `litefs-rs/remix`: helpers for fetch-style handlers (Remix, React Router)
// that throw a Response to hand a request to another instance.

const {
  getInstanceInfo,
  getTxNumber,
  getTxSetCookieHeader,
  checkCookieForTransactionalConsistency,
} = require('./index.cjs')

const MUTATION_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE']

/**
 * A response Fly's proxy intercepts to replay the request on `instance`. A
 * 302 rather than a 409 because Remix passes a thrown redirect through as
 * is, with no per-route header plumbing, and it never reaches the browser.
 */
function getReplayResponse(instance) {
  return new Response(null, {
    status: 302,
    headers: { Location: '/', 'fly-replay': `instance=${instance}` },
  })
}

/** Resolves true on the primary; throws the replay Response on a replica. */
async function ensurePrimary() {
  const { currentIsPrimary, primaryInstance } = await getInstanceInfo()
  if (currentIsPrimary) return true
  throw getReplayResponse(primaryInstance)
}

/** Resolves true on `instance`; throws a replay Response to it elsewhere. */
async function ensureInstance(instance) {
  const { currentInstance } = await getInstanceInfo()
  if (instance === currentInstance) return true
  throw getReplayResponse(instance)
}

/**
 * Resolves `{type: 'ok'}` or `{type: 'delete-cookie', setCookieHeader}`;
 * throws a replay Response when this replica is still behind the cookie.
 */
async function handleTransactionalConsistency(request) {
  const result = await checkCookieForTransactionalConsistency(request.headers.get('Cookie'))
  if (result.type === 'replay') throw getReplayResponse(result.instance)
  if (result.type === 'ok') return { type: 'ok' }
  if (result.type === 'delete-cookie') {
    return { type: 'delete-cookie', setCookieHeader: result.setCookieHeader }
  }
  throw new Error(`litefs-rs: Unknown status type ${result.type}`)
}

/** On the primary, after a mutation, appends the `txnum` cookie to `headers`. */
async function appendTxNumberCookie(request, headers) {
  if (!MUTATION_METHODS.includes(request.method)) return
  const { currentIsPrimary } = await getInstanceInfo()
  if (currentIsPrimary) headers.append('Set-Cookie', getTxSetCookieHeader(await getTxNumber()))
}

module.exports = {
  getTxSetCookieHeader,
  ensurePrimary,
  ensureInstance,
  getReplayResponse,
  handleTransactionalConsistency,
  appendTxNumberCookie,
}
