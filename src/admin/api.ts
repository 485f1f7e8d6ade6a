import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { wantsPage } from '../auth/logout.js'
import { BadRequestError } from '../errors.js'
import { actOnPerson, PERSON_ACTIONS, revokeKey, type PersonAction } from './actions.js'
import { auditJsonl, dayRange, usageCsv, usageJsonl, usageRows } from './export.js'
import { reauthUrl, requireAdmin, requireRecentSignIn, signedInRecently } from './guard.js'
import { personView } from './views.js'
import { PEOPLE_SORTS, type PeopleSort } from './people.js'

/** An administrator's form carries nothing worth more than this. */
const FORM_BODY_LIMIT = 1024
const ID = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const
type Range = { Querystring: { from?: string, to?: string } }

function personPath (personId: string): string {
  return `/auth/admin/people/${encodeURIComponent(personId)}`
}

/**
 * An action's answer: 204 for API clients; for a browser's form, the person's page, or (sign-in
 * too old) a fresh sign-in that returns to the action's confirmation page.
 */
async function act (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, confirmPath: string, run: () => Promise<string>): Promise<FastifyReply> {
  const admin = request.identity!
  if (wantsPage(request) && !await signedInRecently(app, admin)) return await reply.redirect(reauthUrl(confirmPath), 303)
  await requireRecentSignIn(app, admin, confirmPath)
  const personId = await run()
  reply.header('cache-control', 'no-store')
  return wantsPage(request) ? await reply.redirect(personPath(personId), 303) : await reply.code(204).send()
}

function stream (reply: FastifyReply, type: string, filename: string, lines: AsyncIterable<string>): FastifyReply {
  return reply.header('content-type', type)
    .header('content-disposition', `attachment; filename="${filename}"`)
    .header('cache-control', 'no-store')
    .send(Readable.from(lines))
}

/** The JSON API at /auth/admin/api: an encapsulated scope whose every route needs an administrator. */
export async function adminApi (app: FastifyInstance): Promise<void> {
  // The pages' forms post urlencoded bodies, which carry nothing the actions need.
  app.addContentTypeParser(['application/x-www-form-urlencoded', 'text/plain'], { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, (_request, _body, done) => { done(null, null) })
  app.addHook('onRequest', async (request) => { await requireAdmin(app, request) })

  app.get<{ Querystring: { query?: string, cursor?: string, sort?: string, limit?: string } }>('/auth/admin/api/people', async (request, reply) => {
    const { query, cursor, sort, limit } = request.query
    if (sort !== undefined && !(PEOPLE_SORTS as readonly string[]).includes(sort)) throw new BadRequestError(`sort must be one of ${PEOPLE_SORTS.join(', ')}.`)
    if (limit !== undefined && !/^\d{1,3}$/.test(limit)) throw new BadRequestError('limit must be a whole number.')
    reply.header('cache-control', 'no-store')
    const page = await app.people.list({ ...(query === undefined ? {} : { query }), ...(cursor === undefined ? {} : { cursor }), ...(sort === undefined ? {} : { sort: sort as PeopleSort }), ...(limit === undefined ? {} : { limit: Number(limit) }) })
    return { ...page, people: page.people.map((person) => ({ ...person, firstSeen: new Date(person.firstSeen).toISOString(), lastSeen: new Date(person.lastSeen).toISOString() })) }
  })

  app.get<{ Params: { personId: string } }>('/auth/admin/api/people/:personId', { schema: { params: { type: 'object', properties: { personId: ID } } } }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    return await personView(app, request.params.personId)
  })

  for (const action of PERSON_ACTIONS) {
    app.post<{ Params: { personId: string } }>(`/auth/admin/api/people/:personId/${action}`, { schema: { params: { type: 'object', properties: { personId: ID } } } }, async (request, reply) => {
      const { personId } = request.params
      return await act(app, request, reply, `${personPath(personId)}/confirm/${action}`, async () => {
        await actOnPerson(app, request, request.identity!, personId, action as PersonAction)
        return personId
      })
    })
  }

  const revoke = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<FastifyReply> =>
    await act(app, request, reply, `/auth/admin/keys/${encodeURIComponent(request.params.id)}/confirm`, async () => await revokeKey(app, request, request.identity!, request.params.id))
  app.delete<{ Params: { id: string } }>('/auth/admin/api/keys/:id', { schema: { params: { type: 'object', properties: { id: ID } } } }, revoke)
  // HTML forms cannot send DELETE: the confirmation page posts here.
  app.post<{ Params: { id: string } }>('/auth/admin/api/keys/:id/revoke', { schema: { params: { type: 'object', properties: { id: ID } } } }, revoke)

  app.get<Range>('/auth/admin/api/usage.csv', async (request, reply) => {
    const range = dayRange(request.query.from, request.query.to)
    return stream(reply, 'text/csv; charset=utf-8', 'gemgate-usage.csv', usageCsv(usageRows(app.store, await app.people.all(), range.days)))
  })
  app.get<Range>('/auth/admin/api/usage.jsonl', async (request, reply) => {
    const range = dayRange(request.query.from, request.query.to)
    return stream(reply, 'application/jsonl; charset=utf-8', 'gemgate-usage.jsonl', usageJsonl(usageRows(app.store, await app.people.all(), range.days)))
  })
  app.get<Range>('/auth/admin/api/audit.jsonl', async (request, reply) => {
    const range = dayRange(request.query.from, request.query.to)
    return stream(reply, 'application/jsonl; charset=utf-8', 'gemgate-audit.jsonl', auditJsonl(app.audit, range))
  })
}
