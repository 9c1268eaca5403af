import type * as http from 'node:http'

export * from './http.js'

/** Connect/Express middleware; assignable to Express's RequestHandler. */
export type Middleware = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next: (error?: unknown) => void,
) => Promise<void>

export declare function getTransactionalConsistencyMiddleware(): Middleware
export declare function getSetTxNumberMiddleware(): Middleware
export declare function getEnsurePrimaryMiddleware(): Middleware
