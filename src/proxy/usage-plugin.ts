import fp from 'fastify-plugin'
import { UsageRecorder } from './usage.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The one place metered usage goes, whatever surface reported it (REST, Live, OpenAI):
     * where per-person limits settle what a call spent.
     */
    usage: UsageRecorder
  }
}

/** Shares one usage recorder between the Gemini proxy, the Live relay and the OpenAI endpoint. */
export default fp(async function usagePlugin (app) {
  const usage = new UsageRecorder(app.store, app.metrics, (error) => app.log.warn({ err: error }, 'usage not recorded'))
  app.decorate('usage', usage)
  // Before the store closes: the last interval's usage is written too.
  app.addHook('preClose', async () => { await usage.flush() })
}, { name: 'gemgate-usage' })
