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
/** Verbs that wait for Redis on purpose, however long it takes. */
const UNBOUNDED = new Set<PropertyKey>(['subscribe'])

/** The error a verb gets when it has no answer by the deadline. */
export class StoreDeadlineError extends Error {
  constructor (deadlineMs: number) {
    super(`no answer from the store within ${deadlineMs} ms`)
  }
}

async function within<T> (promise: Promise<T>, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new StoreDeadlineError(deadlineMs)) }, deadlineMs)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The store with every verb's failure for want of Redis turned into {@link StoreUnavailableError}
 * (503 UNAVAILABLE) and reported to `status`, once per outage. Done for every method the store
 * has, so a verb added later is covered without a line here. A verb that has no answer within
 * `deadlineMs` fails too: an ioredis Cluster that lost every node queues commands for good.
 */
export function guardStore<S extends Store> (store: S, status: StoreStatus, deadlineMs: number): S {
  const guarded = new Map<PropertyKey, (...args: unknown[]) => Promise<unknown>>()
  const guard = (property: PropertyKey, method: (...args: unknown[]) => Promise<unknown>) => async (...args: unknown[]): Promise<unknown> => {
    try {
      const pending = method.apply(store, args)
      const result = UNBOUNDED.has(property) ? await pending : await within(pending, deadlineMs)
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
      if (method === undefined) guarded.set(property, method = guard(property, value as (...args: unknown[]) => Promise<unknown>))
      return method
    },
  })
}
