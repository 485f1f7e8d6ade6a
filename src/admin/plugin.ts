import fp from 'fastify-plugin'
import { adminApi } from './api.js'
import { adminPages } from './pages.js'
import { PeopleIndex } from './people.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The people who signed in (last seen, suspension): the administrator's list. */
    people: PeopleIndex
  }
}

/** The text a suspended person's sign-in ends on. */
export const SUSPENDED_MESSAGE = 'An administrator has suspended your access to this gateway. Ask them to lift the suspension.'

/**
 * The administration room: the people index (kept at each sign-in), suspension (checked at each
 * sign-in), the JSON API at /auth/admin/api and the pages at /auth/admin, for administrators only.
 */
export default fp(async function adminPlugin (app) {
  const people = new PeopleIndex(app.store)
  app.decorate('people', people)
  app.signedInHooks.push(async (personId, profile) => { await people.signedIn(personId, profile) })
  app.signInChecks.push(async (personId) => await people.isSuspended(personId)
    ? { title: 'Access suspended', message: SUSPENDED_MESSAGE, reason: 'suspended' }
    : null)
  await app.register(adminApi)
  await app.register(adminPages)
}, { name: 'gemgate-admin', dependencies: ['gemgate-login', 'gemgate-logout', 'gemgate-keys', 'gemgate-audit', 'gemgate-connections'] })
