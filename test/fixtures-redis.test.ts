import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startRedis } from './fixtures/redis.js'

t.test('a private redis-server answers on its own loopback port', async (t) => {
  const redis = await startRedis(t)
  t.not(redis.port, 6379)
  t.equal(redis.url, `redis://127.0.0.1:${redis.port}`)
  const client = redis.client()
  await client.set('greeting', 'hello')
  t.equal(await client.get('greeting'), 'hello')
  t.same(await client.config('GET', 'save'), ['save', ''], 'persistence is off')
})

t.test('two fixtures do not share data', async (t) => {
  const [first, second] = await Promise.all([startRedis(t), startRedis(t)])
  t.not(first.port, second.port)
  await first.client().set('owner', 'first')
  t.equal(await second.client().get('owner'), null)
})

t.test('extra arguments reach redis-server', async (t) => {
  const redis = await startRedis(t, { args: ['--notify-keyspace-events', 'Ex'] })
  const [, events] = await redis.client().config('GET', 'notify-keyspace-events') as [string, string]
  t.same([...events].sort(), ['E', 'x'])
})

t.test('stop() takes the server down and start() brings an empty one back on the same port', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client({ lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 })
  await client.connect()
  await client.set('survives', 'no')

  await redis.stop()
  t.equal(redis.running, false)
  await t.rejects(client.get('survives'), 'commands fail while the server is down')

  // Not events.once(): that rejects on the connection errors of the outage.
  const reconnected = new Promise((resolve) => client.once('ready', resolve))
  await redis.start()
  t.equal(redis.running, true)
  await reconnected
  t.equal(await client.ping(), 'PONG', 'a client from before the outage reconnects')
  t.equal(await client.get('survives'), null, 'nothing was persisted')
})

t.test('a redis-server does not outlive a test process that dies without teardown', async (t) => {
  const fixture = new URL('./fixtures/redis.ts', import.meta.url).href
  const script = `
    import { startRedis } from ${JSON.stringify(fixture)}
    const redis = await startRedis({ teardown() {} })
    console.log(redis.port)
    process.kill(process.pid, 'SIGKILL')
  `
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  })
  let output = ''
  child.stdout.on('data', (data: Buffer) => { output += data.toString() })
  await once(child, 'exit')
  const port = Number(output.trim())
  t.ok(port > 0, 'the child started a server')

  let alive = true
  for (let attempt = 0; attempt < 100 && alive; attempt++) {
    alive = await accepts(port)
    if (alive) await sleep(20)
  }
  t.notOk(alive, 'the orphaned server went away')
})

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
