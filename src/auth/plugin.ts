import fp from 'fastify-plugin'
import csrfPlugin from './csrf.js'
import loginPlugin from './login.js'
import logoutPlugin from './logout.js'
import mePlugin from './me.js'
import sessionsPlugin from './sessions.js'
import statusPlugin from './status.js'

/** Sign-in as a backend-for-frontend: sessions, CSRF/CORS, the OIDC flow, and the pages around it. */
export default fp(async function authPlugin (app) {
  await app.register(sessionsPlugin)
  await app.register(csrfPlugin)
  await app.register(loginPlugin)
  await app.register(logoutPlugin)
  await app.register(mePlugin)
  await app.register(statusPlugin)
}, { name: 'gemgate-auth' })
