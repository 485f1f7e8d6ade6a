import { ReplyError } from 'ioredis'
import { StoreUnavailableError } from '../errors.js'
import type { StoreStatus } from './status.js'
import type { Store } from './store.js'

/** Replies by which a running Redis says it cannot serve now (loading, failing over, cluster down). */
const UNAVAILABLE_REPLY = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|BUSY)\b/

/** True when `error` means the store could not be reached or cannot serve now, not that a command was wrong. */
export function isUnavailable (error: unknown): boolean {
  return !(error instanceof ReplyError) || UNAVAILABLE_REPLY.test((error as Error).message)
}

const UNGUARDED = new Set<PropertyKey>(['close', 'constructor'])

/**
 * The store with every verb's failure for want of Redis turned into {@link StoreUnavailableError}
 * (503 UNAVAILABLE) and reported to `status`, once per outage. Done for every method the store
 * has, so a verb added later is covered without a line here.
 */
export function guardStore<S extends Store> (store: S, status: StoreStatus): S {
  const guarded = new Map<PropertyKey, (...args: unknown[]) => Promise<unknown>>()
  const guard = (method: (...args: unknown[]) => Promise<unknown>) => async (...args: unknown[]): Promise<unknown> => {
    try {
      const result = await method.apply(store, args)
      status.answered()
      return result
    } catch (error) {
      if (!isUnavailable(error)) throw error
      status.failed(error)
      throw new StoreUnavailableError('The gateway\'s session store is not answering; try again shortly.', { cause: error })
    }
  }
  return new Proxy(store, {
    get (target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function' || UNGUARDED.has(property)) return typeof value === 'function' ? value.bind(target) : value
      let method = guarded.get(property)
      if (method === undefined) guarded.set(property, method = guard(value as (...args: unknown[]) => Promise<unknown>))
      return method
    },
  })
}
