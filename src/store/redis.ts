import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { Config } from '../config/schema.js'
import { guardStore } from './guard.js'
import { checkArguments, RESERVE_SCRIPT, SETTLE_SCRIPT, USED_SCRIPT, type QuotaAnswer, type QuotaCheck, type QuotaRequest, type QuotaSettlement } from './quota.js'
import { StoreStatus } from './status.js'
import type { LogEntry, LogRange, Store } from './store.js'

/** How long one Redis command may take before the request that needs it fails. */
export const DEFAULT_COMMAND_TIMEOUT = 2_000
/** Longest a store verb waits in all (a reconnect attempt included) before it fails with 503. */
export const DEFAULT_STORE_DEADLINE = 3_000
/** What every key of the gateway's starts with in Redis (tests that seed Redis directly need it). */
export const KEY_PREFIX = 'gemgate:'

const DELETE_IF_EQUALS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`
const ADD_TO_SET_IF_BELOW = `if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`

// ARGV[3] is the TTL in ms, or empty for none.
const SET_IF_EQUALS = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`
const EXPIRE_IF_EQUALS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`

type Client = Redis | Cluster

function hostPort (entry: string): { host: string, port: number } {
  const at = entry.lastIndexOf(':')
  return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) }
}

const baseOptions: RedisOptions = {
  keyPrefix: KEY_PREFIX,
  commandTimeout: DEFAULT_COMMAND_TIMEOUT,
  connectTimeout: DEFAULT_COMMAND_TIMEOUT,
  maxRetriesPerRequest: 1,
  // Reconnect forever, but never wait long: a Redis that comes back is used within 2 s.
  retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  lazyConnect: false,
}

/** Opens the Redis client that the settings describe: standalone, Sentinel or Cluster. */
export function createRedisClient (redis: Config['redis']): Client {
  if (redis.clusterNodes !== undefined) {
    return new Cluster(redis.clusterNodes.map(hostPort), { keyPrefix: KEY_PREFIX, redisOptions: baseOptions })
  }
  if (redis.sentinels !== undefined && redis.sentinelName !== undefined) {
    return new Redis({ ...baseOptions, sentinels: redis.sentinels.map(hostPort), name: redis.sentinelName })
  }
  return new Redis(redis.url ?? 'redis://127.0.0.1:6379', baseOptions)
}

/** The scripts of src/store/quota.ts, as ioredis commands (numkeys, keys…, args…). */
interface QuotaCommands {
  gemgateReserve: (...args: Array<string | number>) => Promise<number[]>
  gemgateSettle: (...args: Array<string | number>) => Promise<number>
  gemgateUsed: (...args: Array<string | number>) => Promise<number[]>
}

/** The Store on Redis: what lets several replicas share sessions, tokens and locks. */
export class RedisStore implements Store {
  readonly kind = 'redis'
  readonly status = new StoreStatus()
  #subscriber: Client | undefined
  readonly #listeners = new Map<string, Array<(message: string) => void>>()
  readonly #subscriptions = new Map<string, Promise<unknown>>()
  readonly #gapListeners = new Set<(phase: 'lost' | 'back') => void>()

  constructor (readonly client: Client) {
    // ioredis reconnects by itself; the status reports the outage once, readiness and requests answer 503.
    client.on('error', (error: unknown) => { this.status.lost(error) })
    client.on('close', () => { this.status.lost(new Error('the connection to Redis closed')) })
    client.on('ready', () => { this.status.answered() })
    // EVALSHA with a fallback to EVAL: the scripts cross the wire once per connection.
    client.defineCommand('gemgateReserve', { lua: RESERVE_SCRIPT })
    client.defineCommand('gemgateSettle', { lua: SETTLE_SCRIPT })
    client.defineCommand('gemgateUsed', { lua: USED_SCRIPT })
  }

  async get (key: string): Promise<string | null> {
    return await this.client.get(key)
  }

  async set (key: string, value: string, ttlMs?: number): Promise<void> {
    if (ttlMs === undefined) await this.client.set(key, value)
    else await this.client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)))
  }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.client.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK'
  }

  async take (key: string): Promise<string | null> {
    return await this.client.getdel(key)
  }

  async delete (...keys: string[]): Promise<void> {
    // One DEL per key: under Cluster the keys may live in different slots.
    await Promise.all(keys.map(async (key) => await this.client.del(key)))
  }

  async deleteIfEquals (key: string, value: string): Promise<boolean> {
    return (await this.client.eval(DELETE_IF_EQUALS, 1, key, value)) === 1
  }

  async setIfEquals (key: string, expected: string, value: string, ttlMs?: number): Promise<boolean> {
    const ttl = ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(ttlMs)))
    return (await this.client.eval(SET_IF_EQUALS, 1, key, expected, value, ttl)) === 1
  }

  async expireIfEquals (key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.client.eval(EXPIRE_IF_EQUALS, 1, key, value, Math.max(1, Math.ceil(ttlMs)))) === 1
  }

  async expire (key: string, ttlMs: number): Promise<boolean> {
    return (await this.client.pexpire(key, Math.max(1, Math.ceil(ttlMs)))) === 1
  }

  async addToSet (key: string, member: string): Promise<void> {
    await this.client.sadd(key, member)
  }

  async addToSetIfBelow (key: string, member: string, limit: number): Promise<boolean> {
    return (await this.client.eval(ADD_TO_SET_IF_BELOW, 1, key, member, String(limit))) === 1
  }

  async removeFromSet (key: string, member: string): Promise<void> {
    await this.client.srem(key, member)
  }

  async setMembers (key: string): Promise<string[]> {
    return await this.client.smembers(key)
  }

  async schedule (key: string, member: string, dueAt: number): Promise<void> {
    await this.client.zadd(key, dueAt, member)
  }

  async unschedule (key: string, member: string): Promise<void> {
    await this.client.zrem(key, member)
  }

  async due (key: string, now: number, limit: number): Promise<string[]> {
    return await this.client.zrangebyscore(key, '-inf', now, 'LIMIT', 0, limit)
  }

  async scheduleStats (key: string): Promise<{ size: number, soonest: number | null }> {
    const [size, first] = await Promise.all([this.client.zcard(key), this.client.zrange(key, '0', '0', 'WITHSCORES')])
    return { size, soonest: first.length === 2 ? Number(first[1]) : null }
  }

  async incrementFields (key: string, increments: Record<string, number>): Promise<void> {
    const pipeline = this.client.pipeline()
    for (const [field, amount] of Object.entries(increments)) pipeline.hincrby(key, field, amount)
    await pipeline.exec()
  }

  async getFields (key: string): Promise<Record<string, string>> {
    return await this.client.hgetall(key)
  }

  async getField (key: string, field: string): Promise<string | null> {
    return await this.client.hget(key, field)
  }

  async setFields (key: string, fields: Record<string, string>): Promise<void> {
    await this.client.hset(key, fields)
  }

  async appendToLog (key: string, entry: string, retainMs: number): Promise<void> {
    // Exact MINID: what is older than retainMs is gone at once (each entry is trimmed once).
    await this.client.xadd(key, 'MINID', String(Math.max(0, Date.now() - retainMs)), '*', 'e', entry)
  }

  async readLog (key: string, range: LogRange): Promise<LogEntry[]> {
    const start = range.after === undefined ? String(range.fromMs) : `(${range.after}`
    const rows = await this.client.xrange(key, start, `${range.toMs}`, 'COUNT', range.count)
    return rows
      .filter(([id]) => Number(id.split('-')[0]) >= range.fromMs)
      .map(([id, fields]) => ({ id, entry: fields[1] ?? '' }))
  }

  async reserveQuota (request: QuotaRequest): Promise<QuotaAnswer> {
    const keys = request.checks.map((check) => check.key)
    const answer = await (this.client as unknown as QuotaCommands).gemgateReserve(keys.length, ...keys,
      request.promptTokens, request.maxOutput, request.minOutput, request.inputPrice, request.outputPrice,
      request.lease?.calls ?? 0, request.lease?.divisor ?? 1, ...checkArguments(request.checks))
    if (answer[0] === 1) {
      const [, output, leased] = answer as [number, number, number]
      return { admitted: true, output, remaining: answer.slice(3), ...(leased > 0 ? { leased } : {}) }
    }
    return { admitted: false, blocked: answer[1]! - 1, retryAfterMs: answer[2]! }
  }

  async settleQuota (settlement: QuotaSettlement): Promise<void> {
    const { charges, usage } = settlement
    const checks = charges.map((charge) => charge.check)
    const keys = [...checks.map((check) => check.key), ...(usage === undefined ? [] : [usage.key])]
    const fields = Object.entries(usage?.fields ?? {}).flatMap(([field, amount]) => [field, Math.round(amount)])
    await (this.client as unknown as QuotaCommands).gemgateSettle(keys.length, ...keys,
      usage === undefined ? '' : Math.ceil(usage.ttlMs), checks.length, ...checkArguments(checks), ...charges.map((charge) => Math.round(charge.amount)), ...fields)
  }

  async quotaUsed (checks: QuotaCheck[]): Promise<number[]> {
    if (checks.length === 0) return []
    const keys = checks.map((check) => check.key)
    return await (this.client as unknown as QuotaCommands).gemgateUsed(keys.length, ...keys, ...checkArguments(checks))
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.client.publish(KEY_PREFIX + channel, message)
  }

  async subscribe (channel: string, listener: (message: string) => void, onGap?: (phase: 'lost' | 'back') => void): Promise<void> {
    const name = KEY_PREFIX + channel
    const subscriber = this.#subscriber ??= this.#openSubscriber()
    if (onGap !== undefined) this.#gapListeners.add(onGap)
    // Register before awaiting: two concurrent subscribes to one channel must both be kept,
    // and both wait for the one SUBSCRIBE that Redis confirms.
    this.#listeners.set(name, [...(this.#listeners.get(name) ?? []), listener])
    let subscribed = this.#subscriptions.get(name)
    if (subscribed === undefined) {
      subscribed = subscriber.subscribe(name).catch((error: unknown) => {
        this.#subscriptions.delete(name)
        throw error
      })
      this.#subscriptions.set(name, subscribed)
    }
    try {
      await subscribed
    } catch (error) {
      this.#listeners.set(name, (this.#listeners.get(name) ?? []).filter((handler) => handler !== listener))
      throw error
    }
  }

  #openSubscriber (): Client {
    // A subscribed connection can run nothing else, so pub/sub gets its own. Its SUBSCRIBE waits
    // for Redis however long it takes (no retry limit): a replica started during an outage
    // starts, reports not ready, and hears the others once Redis answers.
    const subscriber: Client = this.client instanceof Cluster
      ? this.client.duplicate([], { redisOptions: { ...baseOptions, maxRetriesPerRequest: null } })
      : this.client.duplicate({ maxRetriesPerRequest: null })
    subscriber.on('error', () => {})
    // Messages published while the connection is down are lost for good (ioredis resubscribes
    // when it is back): tell the listeners both when it drops and when it returns.
    const gap = (phase: 'lost' | 'back') => (): void => { for (const onGap of this.#gapListeners) onGap(phase) }
    subscriber.on('close', gap('lost'))
    subscriber.on('ready', gap('back'))
    subscriber.on('message', (from: string, message: string) => {
      for (const handler of this.#listeners.get(from) ?? []) handler(message)
    })
    return subscriber
  }

  async ping (): Promise<void> {
    await this.client.ping()
  }

  async close (): Promise<void> {
    this.status.close()
    await Promise.all([this.client, this.#subscriber].map(async (client) => {
      // quit() fails while Redis is down; then disconnect. Not after a quit that worked: a Cluster
      // told to disconnect again stays "disconnecting", and later commands wait forever, not fail.
      if (client !== undefined) await client.quit().catch(() => { client.disconnect() })
    }))
  }
}

/** The store the settings ask for: Redis when any Redis setting is given, else memory. */
export async function createStore (redis: Config['redis']): Promise<Store> {
  if (redis.url === undefined && redis.sentinels === undefined && redis.clusterNodes === undefined) {
    const { MemoryStore } = await import('./memory.js')
    return new MemoryStore()
  }
  const store = new RedisStore(createRedisClient(redis))
  return guardStore(store, store.status, DEFAULT_STORE_DEADLINE)
}
