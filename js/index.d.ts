/** The options of the `cookie` package's serialize(), which builds the header. */
export type CookieSerializeOptions = {
  domain?: string
  encode?: (value: string) => string
  expires?: Date
  httpOnly?: boolean
  maxAge?: number
  partitioned?: boolean
  path?: string
  priority?: 'low' | 'medium' | 'high'
  sameSite?: true | false | 'lax' | 'strict' | 'none'
  secure?: boolean
}

export type InstanceInfo = {
  /** Hostname of the primary: `LITEFS_DIR/.primary` if present, else `os.hostname()`. */
  primaryInstance: string
  /** Hostname of this instance (`os.hostname()`). */
  currentInstance: string
  /** `primaryInstance === currentInstance` */
  currentIsPrimary: boolean
  /**
   * Base URL of the primary's app for forwarding requests: Fly's internal
   * domain on Fly, `http://<primary>:<INTERNAL_PORT ?? PORT>` elsewhere, or
   * LITEFS_PRIMARY_URL_TEMPLATE with `{hostname}` replaced; null without a port.
   */
  primaryUrl: string | null
}

/** The mount directory (litefs.yml `fuse.dir`); defaults to `process.env.LITEFS_DIR`. */
export type LiteFSDir = string | undefined
/** The database file name; defaults to `process.env.DATABASE_FILENAME`. */
export type DatabaseFilename = string | undefined
/**
 * The sidecar's HTTP API, used for `/events` and `/info` only when given:
 * a URL, or `true` for http://localhost:20202. Defaults to `process.env.LITEFS_HTTP_URL`.
 */
export type HttpUrl = string | boolean | undefined

export declare const TXID_NUM_COOKIE_NAME = 'txnum'

export declare function getInstanceInfo(litefsDir?: LiteFSDir): Promise<InstanceInfo>
export declare function getInstanceInfoSync(litefsDir?: LiteFSDir): InstanceInfo

/** The local TXID; 0 when the `-pos` file does not exist, an Error when it is unreadable. */
export declare function getTxNumber(
  litefsDir?: LiteFSDir,
  databaseFilename?: DatabaseFilename,
): Promise<number>
export declare function getTxNumberSync(
  litefsDir?: LiteFSDir,
  databaseFilename?: DatabaseFilename,
): number

export type WaitForUpToDateTxNumberOptions = {
  litefsDir?: LiteFSDir
  databaseFilename?: DatabaseFilename
  /** How long to wait for the TXID. Defaults to 500. */
  timeoutMs?: number
  /** Backstop re-check interval for changes nothing signals. Defaults to 30. */
  intervalMs?: number
  httpUrl?: HttpUrl
}

/** Resolves true once the local TXID reaches `clientTxNumber`, false after `timeoutMs`. */
export declare function waitForUpToDateTxNumber(
  clientTxNumber: number,
  options?: WaitForUpToDateTxNumberOptions,
): Promise<boolean>

export declare function getTxSetCookieHeader(
  value: number | string,
  options?: CookieSerializeOptions,
): string

export type ConsistencyResult =
  | { type: 'ok' }
  | { type: 'delete-cookie'; setCookieHeader: string }
  | { type: 'replay'; flyReplayHeader: string; instance: string }

export declare function checkCookieForTransactionalConsistency(
  cookieHeader: string | null | undefined,
): Promise<ConsistencyResult>

/** `http://<instance>.vm.<FLY_APP_NAME>.internal:<port>` on Fly, `http://<instance>:<port>` elsewhere. */
export declare function getInternalInstanceDomain(instance: string, port?: string | number): string

/** Instance ids mapped to their region. */
export declare function getAllInstances(options?: {
  httpUrl?: HttpUrl
}): Promise<Record<string, string>>

export type OnTxNumberOptions = {
  litefsDir?: LiteFSDir
  databaseFilename?: DatabaseFilename
  /** Reject with code ETIMEDOUT after this long. Default: wait indefinitely. */
  timeoutMs?: number
  /** Backstop re-check interval. Defaults to 30 (1000 with an httpUrl). */
  intervalMs?: number
  httpUrl?: HttpUrl
  signal?: AbortSignal
}

/** Resolves with the local TXID once it reaches `txNumber`, woken by changes rather than polling. */
export declare function onTxNumber(txNumber: number, options?: OnTxNumberOptions): Promise<number>

export type WatchPrimaryOptions = {
  litefsDir?: LiteFSDir
  intervalMs?: number
  httpUrl?: HttpUrl
  /** Read errors; the watch carries on. Default: console.error. */
  onError?: (error: unknown) => void
}

export type Watcher = {
  /** Stops watching; resolves once the watcher has stopped. */
  close(): Promise<void>
}

/** Calls `callback` with the new instance info each time the primary changes. */
export declare function watchPrimary(
  callback: (info: InstanceInfo) => void,
  options?: WatchPrimaryOptions,
): Watcher

export type Position = {
  txNumber: number
  /** 16 lower-case hex digits. */
  txid: string
  checksum: string
}

/** Parses a `-pos` file's text; throws on anything LiteFS never wrote. */
export declare function parsePos(text: string): Position
