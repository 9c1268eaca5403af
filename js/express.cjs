'use strict'
// `litefs-rs/express`: everything in `litefs-rs/http` plus Express (connect
// style) middleware. Unlike litefs-js's, a failure reaches `next(error)`
// instead of becoming an unhandled rejection that leaves the request hanging.

const http = require('./http.cjs')
const { getInstanceInfo, getTxNumberSync, getTxSetCookieHeader } = require('./index.cjs')

const MUTATION_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE']

/**
 * Waits for this replica to reach the TXID in the request's `txnum`
 * cookie, replaying to the primary if it does not in time. Use it before
 * any route that reads the database.
 */
function getTransactionalConsistencyMiddleware() {
  return async (req, res, next) => {
    let replayed
    try {
      replayed = await http.handleTransactionalConsistency(req, res)
    } catch (error) {
      return next(error)
    }
    if (!replayed) next()
  }
}

/**
 * On the primary, gives mutation responses the `txnum` cookie. The TXID is
 * read when the response headers go out, i.e. after the route's writes;
 * litefs-js read it before the route ran, so the cookie missed the very
 * write it was meant to cover.
 */
function getSetTxNumberMiddleware() {
  return async (req, res, next) => {
    try {
      if (MUTATION_METHODS.includes(req.method)) {
        const { currentIsPrimary } = await getInstanceInfo()
        if (currentIsPrimary) setTxCookieWithHeaders(res)
      }
    } catch (error) {
      return next(error)
    }
    next()
  }
}

function setTxCookieWithHeaders(res) {
  const writeHead = res.writeHead
  // Node sends implicit headers through writeHead too (res.end() without
  // it), so this sees every response exactly once.
  res.writeHead = function (...args) {
    res.writeHead = writeHead
    try {
      http.appendHeader(res, 'Set-Cookie', getTxSetCookieHeader(getTxNumberSync()))
    } catch (error) {
      console.error('litefs-rs: cannot set the txnum cookie', error)
    }
    return writeHead.apply(this, args)
  }
}

/** Replays POST, PUT, PATCH and DELETE requests to the primary from a replica. */
function getEnsurePrimaryMiddleware() {
  return async (req, res, next) => {
    if (MUTATION_METHODS.includes(req.method)) {
      let replayed
      try {
        replayed = await http.ensurePrimary(res)
      } catch (error) {
        return next(error)
      }
      if (replayed) return
    }
    next()
  }
}

module.exports = {
  ...http,
  getTransactionalConsistencyMiddleware,
  getSetTxNumberMiddleware,
  getEnsurePrimaryMiddleware,
}
