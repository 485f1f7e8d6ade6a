import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import type { FastifyBaseLogger } from 'fastify'
import type { PersonChanges } from '../store/cache.js'

/** The reason given to a connection whose credential no longer holds. */
export const ENDED_CREDENTIAL_GONE = 'signed out or credential revoked'

/** A long-lived connection held for a person: a WebSocket, an SSE stream, a Live session. */
export interface LiveConnection {
  personId: string
  /** Re-checks the credential that opened it (session still there, key not revoked, person signed in). */
  stillValid: () => Promise<boolean>
  /** Ends the connection, giving the reason (WebSocket close reason / end of stream). Idempotent. */
  end: (reason: string) => void
}

/**
 * The long-lived connections open on this replica, by person. A request is checked once, when
 * it starts; a connection outlives that check, so whenever something about its person changes
 * (announced on this replica or another) its credential is checked again, and it ends when the
 * credential no longer holds: a sign-out that leaves a stream running is not a sign-out.
 */
export class LiveConnections {
  readonly #byPerson = new Map<string, Set<LiveConnection>>()
  #size = 0

  constructor (private readonly log: FastifyBaseLogger) {}

  /** Tracks a connection until the returned function is called (call it when it closes). */
  add (connection: LiveConnection): () => void {
    let held = this.#byPerson.get(connection.personId)
    if (held === undefined) this.#byPerson.set(connection.personId, held = new Set())
    held.add(connection)
    this.#size++
    return () => { this.#remove(connection) }
  }

  /** Ends every tracked connection of this person now, whatever stillValid says (suspension, budget). */
  endPerson (personId: string, reason: string): void {
    for (const connection of [...this.#byPerson.get(personId) ?? []]) this.#end(connection, reason)
  }

  /** Open connections (metrics, tests). */
  get size (): number {
    return this.#size
  }

  /** Re-checks one person's connections, or everyone's for null (announcements may have been missed). */
  recheck (personId: string | null): void {
    const people = personId === null ? [...this.#byPerson.keys()] : [personId]
    for (const person of people) {
      for (const connection of [...this.#byPerson.get(person) ?? []]) void this.#recheckOne(connection)
    }
  }

  async #recheckOne (connection: LiveConnection): Promise<void> {
    try {
      if (!await connection.stillValid()) this.#end(connection, ENDED_CREDENTIAL_GONE)
    } catch (error) {
      // The store cannot tell now: the connection stays until the next announcement answers.
      // Failing closed here would cut every stream of every person on a Redis blip.
      this.log.warn({ person: connection.personId, reason: String(error) }, 'could not re-check a live connection')
    }
  }

  #end (connection: LiveConnection, reason: string): void {
    this.#remove(connection)
    try {
      connection.end(reason)
    } catch (error) {
      this.log.warn({ person: connection.personId, reason: String(error) }, 'ending a live connection failed')
    }
  }

  #remove (connection: LiveConnection): void {
    const held = this.#byPerson.get(connection.personId)
    if (held?.delete(connection) !== true) return
    this.#size--
    if (held.size === 0) this.#byPerson.delete(connection.personId)
  }
}

/** Ties a registry to the announcements: any change about a person re-checks their connections. */
export function watchChanges (connections: LiveConnections, changes: PersonChanges): void {
  changes.listen((personId) => { connections.recheck(personId) })
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Long-lived connections (app WebSockets, SSE streams, Live sessions), ended when their credential goes. */
    liveConnections: LiveConnections
  }
}

/** The registry of live connections, re-checked on every person-change announcement. */
export default fp(async function connectionsPlugin (app) {
  const connections = new LiveConnections(app.log.child({ component: 'connections' }))
  watchChanges(connections, app.personChanges)
  app.decorate('liveConnections', connections)
  if (app.hasDecorator('metrics')) {
    new Gauge({
      name: 'gemgate_live_connections',
      help: 'Long-lived connections open on this replica (app WebSockets, streamed answers).',
      registers: [app.metrics],
      collect () { this.set(connections.size) },
    })
  }
}, { name: 'gemgate-connections', dependencies: ['gemgate-identity'] })
