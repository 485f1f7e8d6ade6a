/**
 * Quota counters: the check-and-reserve and settle steps of the policy, as one algorithm with two
 * implementations that must agree: {@link LocalQuota} in this process (the memory store, and a
 * replica's own share while Redis is down) and the Lua scripts below, run atomically by Redis so
 * that replicas together admit no more than one would.
 */

/** What a check counts: calls, tokens (prompt + output + thinking), or cost in nano-USD. */
export type QuotaResource = 'requests' | 'tokens' | 'nanoUsd'

/** One limit to check and charge. */
export interface QuotaCheck {
  /** Store key of its counter; every key of one call shares a `{…}` hash tag (one Cluster slot). */
  key: string
  /** `bucket`: refills `limit` per `windowMs` (per-minute rates); `total`: a counter for a calendar period. */
  kind: 'bucket' | 'total'
  resource: QuotaResource
  limit: number
  /** bucket: the refill window; total: how long the counter is kept. */
  windowMs: number
  /** total: when the period ends (ms since the epoch), for Retry-After. */
  resetAt?: number
}

/** One call to admit. */
export interface QuotaRequest {
  checks: QuotaCheck[]
  /** The estimate of the prompt's tokens. */
  promptTokens: number
  /** The most output tokens the call asked for (0 for calls without output). */
  maxOutput: number
  /** The fewest output tokens worth admitting the call for. */
  minOutput: number
  /** Prices of the asked-for model, nano-USD per token. */
  inputPrice: number
  outputPrice: number
  /**
   * Also reserve a lease: up to `calls` more calls like this one, held by the caller in process.
   * Granted (all checks or none) only for a call admitted whole, and only as many calls as fit in
   * 1/`divisor` of every check's headroom left after this call, so near a limit calls are exact.
   */
  lease?: { calls: number, divisor: number }
}

/**
 * The verdict: admitted with `output` tokens reserved (and, when `leased` is set, that many more
 * calls' amounts reserved as a lease; `remaining` is after both), or refused by check `blocked`.
 */
export type QuotaAnswer =
  | { admitted: true, output: number, remaining: number[], leased?: number }
  | { admitted: false, blocked: number, retryAfterMs: number }

/** Corrections once calls' real usage is known: an amount (real minus reserved) for each counter. */
export interface QuotaSettlement {
  charges: Array<{ check: QuotaCheck, amount: number }>
  /** Usage counters to add to (a hash), kept `ttlMs`. */
  usage?: { key: string, ttlMs: number, fields: Record<string, number> }
}

/** The amount of each resource a call reserves for `output` tokens. */
export function reservedAmounts (request: Pick<QuotaRequest, 'promptTokens' | 'inputPrice' | 'outputPrice'>, output: number): Record<QuotaResource, number> {
  return {
    requests: 1,
    tokens: request.promptTokens + output,
    nanoUsd: Math.ceil(request.promptTokens * request.inputPrice + output * request.outputPrice),
  }
}

interface Counter { value: number, at: number, expiresAt: number }

/** The quota algorithm in this process: what the memory store runs, and the fallback while Redis is down. */
export class LocalQuota {
  readonly #counters = new Map<string, Counter>()

  #available (check: QuotaCheck, now: number): number {
    const counter = this.#live(check.key, now)
    if (check.kind === 'total') return check.limit - (counter?.value ?? 0)
    if (counter === undefined) return check.limit
    return Math.min(check.limit, counter.value + (now - counter.at) * check.limit / check.windowMs)
  }

  #live (key: string, now: number): Counter | undefined {
    const counter = this.#counters.get(key)
    if (counter !== undefined && counter.expiresAt <= now) {
      this.#counters.delete(key)
      return undefined
    }
    return counter
  }

  #charge (check: QuotaCheck, amount: number, now: number): void {
    if (check.kind === 'total') {
      const counter = this.#live(check.key, now)
      this.#counters.set(check.key, { value: (counter?.value ?? 0) + amount, at: now, expiresAt: now + check.windowMs })
      return
    }
    const level = Math.min(check.limit, this.#available(check, now) - amount)
    this.#counters.set(check.key, { value: level, at: now, expiresAt: now + 2 * check.windowMs })
  }

  /** Checks every limit and reserves on all of them, or on none. */
  reserve (request: QuotaRequest, now = Date.now()): QuotaAnswer {
    const available = request.checks.map((check) => this.#available(check, now))
    const answer = decide(request, available, now)
    if (answer.admitted) {
      const amounts = reservedAmounts(request, answer.output)
      const calls = 1 + (answer.leased ?? 0)
      for (const check of request.checks) this.#charge(check, amounts[check.resource] * calls, now)
    }
    return answer
  }

  /** Applies the corrections of a settled call. */
  settle (settlement: QuotaSettlement, now = Date.now()): void {
    for (const { check, amount } of settlement.charges) {
      if (amount !== 0) this.#charge(check, amount, now)
    }
  }

  /** What each check has used so far (a bucket: what has not refilled yet). */
  used (checks: QuotaCheck[], now = Date.now()): number[] {
    return checks.map((check) => Math.max(0, check.limit - Math.floor(this.#available(check, now))))
  }
}

/** How long until a check has `needed` available again. */
function waitFor (check: QuotaCheck, available: number, needed: number, now: number): number {
  if (check.kind === 'total') return Math.max(0, (check.resetAt ?? now + check.windowMs) - now)
  if (needed > check.limit) return check.windowMs
  return Math.ceil((needed - available) * check.windowMs / check.limit)
}

/** The decision both implementations make; the Lua script below is this function, line for line. */
export function decide (request: QuotaRequest, available: number[], now: number): QuotaAnswer {
  const minOutput = Math.min(request.minOutput, request.maxOutput)
  let output = request.maxOutput
  let binding = -1
  for (const [index, check] of request.checks.entries()) {
    const free = available[index]!
    let cap = Infinity
    if (check.resource === 'requests') {
      if (free < 1) return { admitted: false, blocked: index, retryAfterMs: waitFor(check, free, 1, now) }
    } else if (check.resource === 'tokens') {
      cap = free - request.promptTokens
    } else if (request.outputPrice > 0) {
      cap = (free - request.promptTokens * request.inputPrice) / request.outputPrice
    } else if (free < request.promptTokens * request.inputPrice) {
      cap = -1
    }
    if (cap < output) {
      output = Math.floor(cap)
      binding = index
    }
  }
  if (output < minOutput || output < 0) {
    const check = request.checks[binding]!
    const needed = reservedAmounts(request, minOutput)[check.resource]
    return { admitted: false, blocked: binding, retryAfterMs: waitFor(check, available[binding]!, needed, now) }
  }
  const amounts = reservedAmounts(request, output)
  const leased = output === request.maxOutput ? leasedCalls(request, available, amounts) : 0
  const remaining = request.checks.map((check, index) => Math.floor(available[index]! - amounts[check.resource] * (1 + leased)))
  return leased > 0 ? { admitted: true, output, remaining, leased } : { admitted: true, output, remaining }
}

/** How many more calls like this one a lease may hold: what fits in 1/divisor of every check's headroom after the call. */
function leasedCalls (request: QuotaRequest, available: number[], amounts: Record<QuotaResource, number>): number {
  if (request.lease === undefined) return 0
  let calls = request.lease.calls
  for (const [index, check] of request.checks.entries()) {
    const amount = amounts[check.resource]
    if (amount > 0) calls = Math.min(calls, Math.floor((available[index]! - amount) / request.lease.divisor / amount))
  }
  return Math.max(0, calls)
}

/** ARGV layout shared by the scripts: per check kind, resource, limit, windowMs, resetAt. */
export function checkArguments (checks: QuotaCheck[]): Array<string | number> {
  return checks.flatMap((check) => [check.kind, check.resource, check.limit, check.windowMs, check.resetAt ?? 0])
}

const LUA_COMMON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function check(i, base)
  return { kind = ARGV[base + (i - 1) * 5], resource = ARGV[base + (i - 1) * 5 + 1], limit = tonumber(ARGV[base + (i - 1) * 5 + 2]),
    window = tonumber(ARGV[base + (i - 1) * 5 + 3]), reset = tonumber(ARGV[base + (i - 1) * 5 + 4]) }
end
local function available(c, key)
  if c.kind == 'total' then return c.limit - tonumber(redis.call('GET', key) or '0') end
  local b = redis.call('HMGET', key, 'v', 't')
  if not b[1] then return c.limit end
  return math.min(c.limit, tonumber(b[1]) + (now - tonumber(b[2])) * c.limit / c.window)
end
-- free: what available() said of a bucket in this script. A period's counter gets its expiry
-- when it is created (the increment returns the amount): one command per call after that.
local function charge(c, key, amount, free)
  if c.kind == 'total' then
    if redis.call('INCRBY', key, amount) == amount then redis.call('PEXPIRE', key, c.window) end
    return
  end
  redis.call('HSET', key, 'v', tostring(math.min(c.limit, free - amount)), 't', tostring(now))
  redis.call('PEXPIRE', key, 2 * c.window)
end
`

/**
 * KEYS: the checks' keys. ARGV: promptTokens, maxOutput, minOutput, inputPrice, outputPrice,
 * leaseCalls, leaseDivisor, then five per check. Returns {1, output, leased, remaining…} or
 * {0, blocked index (1-based), retryAfterMs}.
 */
export const RESERVE_SCRIPT = `${LUA_COMMON}
local prompt, maxOutput, minOutput = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local inPrice, outPrice = tonumber(ARGV[4]), tonumber(ARGV[5])
local leaseCalls, leaseDivisor = tonumber(ARGV[6]), tonumber(ARGV[7])
minOutput = math.min(minOutput, maxOutput)
local function amounts(output)
  return { requests = 1, tokens = prompt + output, nanoUsd = math.ceil(prompt * inPrice + output * outPrice) }
end
local function wait(c, free, needed)
  if c.kind == 'total' then return math.max(0, (c.reset > 0 and c.reset or now + c.window) - now) end
  if needed > c.limit then return c.window end
  return math.ceil((needed - free) * c.window / c.limit)
end
local checks, free = {}, {}
local output, binding = maxOutput, 0
for i = 1, #KEYS do
  local c = check(i, 8)
  checks[i] = c
  free[i] = available(c, KEYS[i])
  local cap = math.huge
  if c.resource == 'requests' then
    if free[i] < 1 then return {0, i, wait(c, free[i], 1)} end
  elseif c.resource == 'tokens' then
    cap = free[i] - prompt
  elseif outPrice > 0 then
    cap = (free[i] - prompt * inPrice) / outPrice
  elseif free[i] < prompt * inPrice then
    cap = -1
  end
  if cap < output then
    output = math.floor(cap)
    binding = i
  end
end
if output < minOutput or output < 0 then
  local c = checks[binding]
  return {0, binding, wait(c, free[binding], amounts(minOutput)[c.resource])}
end
local reserved = amounts(output)
local leased = 0
if leaseCalls > 0 and output == maxOutput then
  leased = leaseCalls
  for i = 1, #KEYS do
    local amount = reserved[checks[i].resource]
    if amount > 0 then leased = math.min(leased, math.floor((free[i] - amount) / leaseDivisor / amount)) end
  end
  leased = math.max(0, leased)
end
local answer = {1, output, leased}
for i = 1, #KEYS do
  local amount = reserved[checks[i].resource] * (1 + leased)
  charge(checks[i], KEYS[i], amount, free[i])
  answer[i + 3] = math.floor(free[i] - amount)
end
return answer
`

/**
 * KEYS: the counters' keys, then the usage hash (when ARGV[1] is not empty). ARGV: usage TTL ms
 * (or ''), number of counters, five per counter, their amounts, then field/amount pairs for the
 * usage hash.
 */
export const SETTLE_SCRIPT = `${LUA_COMMON}
local count = tonumber(ARGV[2])
for i = 1, count do
  local c = check(i, 3)
  local amount = tonumber(ARGV[2 + count * 5 + i])
  if amount ~= 0 then charge(c, KEYS[i], amount, c.kind == 'bucket' and available(c, KEYS[i]) or 0) end
end
if ARGV[1] ~= '' then
  local usage = KEYS[count + 1]
  for j = 3 + count * 6, #ARGV, 2 do redis.call('HINCRBY', usage, ARGV[j], ARGV[j + 1]) end
  redis.call('PEXPIRE', usage, ARGV[1])
end
return 1
`

/** KEYS: the checks' keys. ARGV: five per check. Returns what each has used: its limit less the whole units still available (a bucket refilling counts a unit back only once it is whole). */
export const USED_SCRIPT = `${LUA_COMMON}
local used = {}
for i = 1, #KEYS do
  local c = check(i, 1)
  used[i] = math.max(0, c.limit - math.floor(available(c, KEYS[i])))
end
return used
`
