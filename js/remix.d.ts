export { getTxSetCookieHeader } from './index.js'

/** Resolves true on the primary; throws a replay `Response` (302 + fly-replay) elsewhere. */
export declare function ensurePrimary(): Promise<boolean>
export declare function ensureInstance(instance: string): Promise<true>
export declare function getReplayResponse(instance: string): Response
export declare function handleTransactionalConsistency(
  request: Request,
): Promise<{ type: 'ok' } | { type: 'delete-cookie'; setCookieHeader: string }>
export declare function appendTxNumberCookie(request: Request, headers: Headers): Promise<void>
