import type * as http from 'node:http'

/** On a replica: 409 + `fly-replay: instance=<primary>`, response ended, resolves true. */
export declare function ensurePrimary(res: http.ServerResponse): Promise<boolean>
export declare function setTxCookie(res: http.ServerResponse): Promise<void>
export declare function deleteTxCookie(res: http.ServerResponse): Promise<void>
export declare function appendHeader(res: http.ServerResponse, name: string, value: string): void
/** Resolves whether the request was replayed to the primary. */
export declare function handleTransactionalConsistency(
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<boolean>
