import fp from 'fastify-plugin'
import type { PersonChanges } from '../store/cache.js'

/** A long-lived connection held for a person: a WebSocket, an SSE stream, a Live session. */
export interface LiveConnection {
  personId: string
  /** Re-checks the credential that opened it (session still there, key not revoked, person signed in). */
  stillValid: () => Promise<boolean>
  /** Ends the connection, giving the reason (WebSocket close reason / end of stream). Idempotent. */
  end: (reason: string) => void
}

/** The reason given to a connection whose credential no longer holds. */
export const CREDENTIAL_ENDED_REASON = 'signed out or credential revoked'

/**
 * The open long-lived connections of this replica, by person. Any change announced about a
 * person (here or on another replica) re-checks theirs; a gap in announcements re-checks all.
 */
export class LiveConnections {
  readonly #byPerson = new Map<string, Set<LiveConnection>>()
  #size = 0

  constructor (changes?: PersonChanges) {
    changes?.listen((personId) => { this.#recheck(personId) })
  }

  /** Tracks a connection until the returned function is called (call it when it closes). */
  add (connection: LiveConnection): () => void {
    let connections = this.#byPerson.get(connection.personId)
    if (connections === undefined) this.#byPerson.set(connection.personId, connections = new Set())
    connections.add(connection)
    this.#size++
    let removed = false
    return () => {
      if (removed) return
      removed = true
      this.#size--
      connections.delete(connection)
      if (connections.size === 0 && this.#byPerson.get(connection.personId) === connections) this.#byPerson.delete(connection.personId)
    }
  }

  /** Ends every tracked connection of this person now, whatever stillValid says (suspension, budget). */
  endPerson (personId: string, reason: string): void {
    for (const connection of [...this.#byPerson.get(personId) ?? []]) connection.end(reason)
  }

  /** Open connections (metrics, tests). */
  get size (): number {
    return this.#size
  }

  #recheck (personId: string | null): void {
    const people = personId === null ? [...this.#byPerson.keys()] : [personId]
    for (const person of people) {
      for (const connection of [...this.#byPerson.get(person) ?? []]) {
        // A store that cannot answer keeps the connection: the next announcement asks again.
        connection.stillValid().then((valid) => { if (!valid) connection.end(CREDENTIAL_ENDED_REASON) }, () => {})
      }
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Long-lived connections, ended when their person's credential no longer holds. */
    liveConnections: LiveConnections
  }
}

/** Decorates `app.liveConnections`, listening to the person-change announcements. */
export default fp(async function connectionsPlugin (app) {
  app.decorate('liveConnections', new LiveConnections(app.personChanges))
}, { name: 'gemgate-connections', dependencies: ['gemgate-identity'] })
