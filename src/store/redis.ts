import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { Config } from '../config/schema.js'
import { checkArguments, RESERVE_SCRIPT, SETTLE_SCRIPT, USED_SCRIPT, type QuotaAnswer, type QuotaCheck, type QuotaRequest, type QuotaSettlement } from './quota.js'
import type { Store } from './store.js'

/** How long one Redis command may take before the request that needs it fails. */
export const DEFAULT_COMMAND_TIMEOUT = 2_000
const KEY_PREFIX = 'gemgate:'

const DELETE_IF_EQUALS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

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
  #subscriber: Client | undefined
  readonly #listeners = new Map<string, Array<(message: string) => void>>()
  readonly #subscriptions = new Map<string, Promise<unknown>>()
  readonly #gapListeners = new Set<() => void>()

  constructor (readonly client: Client) {
    client.on('error', () => {
      // ioredis reconnects by itself; readiness and the failing requests report the outage.
    })
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

  async expire (key: string, ttlMs: number): Promise<boolean> {
    return (await this.client.pexpire(key, Math.max(1, Math.ceil(ttlMs)))) === 1
  }

  async addToSet (key: string, member: string): Promise<void> {
    await this.client.sadd(key, member)
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

  async reserveQuota (request: QuotaRequest): Promise<QuotaAnswer> {
    const keys = request.checks.map((check) => check.key)
    const answer = await (this.client as unknown as QuotaCommands).gemgateReserve(keys.length, ...keys,
      request.promptTokens, request.maxOutput, request.minOutput, request.inputPrice, request.outputPrice, ...checkArguments(request.checks))
    if (answer[0] === 1) return { admitted: true, output: answer[1]!, remaining: answer.slice(2) }
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

  async subscribe (channel: string, listener: (message: string) => void, onGap?: () => void): Promise<void> {
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
    // A subscribed connection can run nothing else, so pub/sub gets its own.
    const subscriber: Client = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate()
    subscriber.on('error', () => {})
    // Messages published while the connection is down are lost for good (ioredis resubscribes
    // when it is back): tell the listeners both when it drops and when it returns.
    const gap = (): void => { for (const onGap of this.#gapListeners) onGap() }
    subscriber.on('close', gap)
    subscriber.on('ready', gap)
    subscriber.on('message', (from: string, message: string) => {
      for (const handler of this.#listeners.get(from) ?? []) handler(message)
    })
    return subscriber
  }

  async ping (): Promise<void> {
    await this.client.ping()
  }

  async close (): Promise<void> {
    await Promise.allSettled([this.client.quit(), this.#subscriber?.quit()])
    this.client.disconnect()
    this.#subscriber?.disconnect()
  }
}

/** The store the settings ask for: Redis when any Redis setting is given, else memory. */
export async function createStore (redis: Config['redis']): Promise<Store> {
  if (redis.url === undefined && redis.sentinels === undefined && redis.clusterNodes === undefined) {
    const { MemoryStore } = await import('./memory.js')
    return new MemoryStore()
  }
  return new RedisStore(createRedisClient(redis))
}
