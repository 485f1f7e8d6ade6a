import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorPage, html, layout, sendPage, type Html } from '../auth/pages.js'
import type { ModelUsage } from '../policy/usage.js'
import { PERSON_ACTIONS, type PersonAction } from './actions.js'
import { reauthUrl, requireAdmin, signedInRecently } from './guard.js'
import { PEOPLE_SORTS, type PeopleSort } from './people.js'
import { personView, usageToday, type PersonView } from './views.js'

const ID = { type: 'object', properties: { personId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } as const
const CHART_WIDTH = 600
const CHART_HEIGHT = 120
/** Bar colours per model, in order of first appearance; the rest share the last. */
const MODEL_COLOURS = ['#1a66d6', '#137333', '#9a5b00', '#c5221f', '#7b1fa2', '#586174']

const ACTION_TEXT: Record<PersonAction, { title: string, explain: string, button: string }> = {
  'sign-out': { title: 'Sign this person out everywhere?', explain: 'Ends their sessions, gateway keys and open streams, and revokes their tokens at the provider. They can sign in again.', button: 'Sign out everywhere' },
  suspend: { title: 'Suspend this person?', explain: 'Signs them out everywhere and refuses their sign-in until the suspension is lifted.', button: 'Suspend' },
  unsuspend: { title: 'Lift the suspension?', explain: 'They may sign in again (their sessions and keys do not come back).', button: 'Lift suspension' },
}

const when = (iso: string | null | undefined): string => iso === null || iso === undefined ? '—' : iso.replace('T', ' ').slice(0, 16)
const date = (ms: number): string => when(new Date(ms).toISOString())
const tokens = (usage: ModelUsage): number => usage.prompt + usage.cached + usage.output + usage.thinking

function peopleLink (query: string, sort: PeopleSort, cursor?: string): string {
  const parameters = new URLSearchParams({ ...(query === '' ? {} : { query }), sort, ...(cursor === undefined ? {} : { cursor }) })
  return `/auth/admin?${parameters.toString()}`
}

async function peoplePage (app: FastifyInstance, query: string, sort: PeopleSort, cursor: string | undefined): Promise<Html> {
  const page = await app.people.list({ query, sort, ...(cursor === undefined ? {} : { cursor }) })
  const sortLinks = PEOPLE_SORTS.map((option) => option === sort ? html`<strong>${option}</strong>` : html`<a href="${peopleLink(query, option)}">${option}</a>`)
  const today = await usageToday(app, page.people.map((person) => person.personId))
  const rows = page.people.map((person) => {
    const usage = today.get(person.personId)!
    return html`<tr><td><a href="/auth/admin/people/${person.personId}">${person.email}</a>${person.suspended === true ? html` <span class="badge warn">suspended</span>` : ''}</td><td>${person.name}</td><td>${date(person.lastSeen)}</td><td>${usage.requests}</td><td>$${usage.usd.toFixed(4)}</td></tr>`
  })
  return layout('Administration', html`<section class="card"><h1>People</h1>
<form method="get" action="/auth/admin" class="row"><input type="search" name="query" value="${query}" aria-label="Email or name contains" placeholder="Email or name contains"><input type="hidden" name="sort" value="${sort}"><button type="submit">Search</button></form>
<p class="muted">${page.total} people · sort: ${sortLinks.map((link, index) => html`${index === 0 ? '' : ' · '}${link}`)}</p>
<table><thead><tr><th>Email</th><th>Name</th><th>Last sign-in</th><th>Requests today</th><th>Cost today</th></tr></thead><tbody>${rows}</tbody></table>
${page.nextCursor === undefined ? '' : html`<p class="row"><a class="button secondary" href="${peopleLink(query, sort, page.nextCursor)}">Next page</a></p>`}</section>
<section class="card"><h2>Exports</h2><p>Usage per day, person and model (the last 30 days; add <code>?from=2026-01-01&amp;to=2026-01-31</code>):
<a href="/auth/admin/api/usage.csv">usage.csv</a> · <a href="/auth/admin/api/usage.jsonl">usage.jsonl</a> · audit log: <a href="/auth/admin/api/audit.jsonl">audit.jsonl</a></p></section>`)
}

/** Usage by day as stacked bars per model: people would rather look than read. */
function usageChart (usage: PersonView['usage']): Html {
  const models = [...new Set(usage.flatMap((day) => Object.keys(day.models)))]
  const max = Math.max(1, ...usage.map((day) => Object.values(day.models).reduce((sum, model) => sum + tokens(model), 0)))
  const width = CHART_WIDTH / usage.length
  const bars = usage.flatMap((day, index) => {
    let y = CHART_HEIGHT
    return models.filter((model) => day.models[model] !== undefined).map((model) => {
      const height = tokens(day.models[model]!) / max * CHART_HEIGHT
      y -= height
      const colour = MODEL_COLOURS[Math.min(models.indexOf(model), MODEL_COLOURS.length - 1)]!
      return html`<rect x="${(index * width + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(width - 2).toFixed(1)}" height="${height.toFixed(1)}" fill="${colour}"><title>${day.day} ${model}: ${tokens(day.models[model]!)} tokens, ${day.models[model]!.requests} requests, $${day.models[model]!.usd.toFixed(4)}</title></rect>`
    })
  })
  const legend = models.map((model, index) => html`<span style="color:${MODEL_COLOURS[Math.min(index, MODEL_COLOURS.length - 1)]!}">■</span> ${model} `)
  return html`<svg role="img" aria-label="Tokens per day, last ${usage.length} days" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" width="100%" height="${CHART_HEIGHT}" preserveAspectRatio="none">${bars}</svg>
<p class="muted">${usage[0]!.day} – ${usage.at(-1)!.day} · tokens per day${models.length === 0 ? ' · no usage' : html` · ${legend}`}</p>`
}

function usageTable (usage: PersonView['usage']): Html {
  const rows = usage.flatMap((day) => Object.entries(day.models).map(([model, value]) => html`<tr><td>${day.day}</td><td>${model}</td><td>${value.requests}</td><td>${tokens(value)}</td><td>$${value.usd.toFixed(4)}</td></tr>`)).reverse()
  return rows.length === 0 ? html`` : html`<table><thead><tr><th>Day</th><th>Model</th><th>Requests</th><th>Tokens</th><th>Cost</th></tr></thead><tbody>${rows}</tbody></table>`
}

function personPage (view: PersonView): Html {
  const { person, personId } = view
  const actions = PERSON_ACTIONS.filter((action) => action === 'sign-out' || (action === 'suspend') !== (person.suspended === true))
    .map((action) => html`<a class="button secondary" href="/auth/admin/people/${personId}/confirm/${action}">${ACTION_TEXT[action].button}</a>`)
  return layout(person.email, html`<p><a href="/auth/admin">← People</a></p>
<section class="card"><h1>${person.name}</h1><dl><dt>Email</dt><dd>${person.email}</dd><dt>Person id</dt><dd><code>${personId}</code></dd>
<dt>Groups</dt><dd>${view.groups.join(', ') || '—'}</dd><dt>First sign-in</dt><dd>${date(person.firstSeen)}</dd><dt>Last sign-in</dt><dd>${date(person.lastSeen)}</dd>
<dt>Tokens</dt><dd>${view.tokenState}</dd><dt>Policy rule</dt><dd>${view.rule ?? '—'}</dd>
<dt>State</dt><dd>${person.suspended === true ? html`<span class="badge warn">suspended</span>` : html`<span class="badge ok">active</span>`}</dd></dl>
<div class="row">${actions}</div></section>
<section class="card"><h2>Usage</h2>${usageChart(view.usage)}${usageTable(view.usage)}</section>
<section class="card"><h2>Sessions</h2>${view.sessions.length === 0 ? html`<p class="muted">No live sessions.</p>` : html`<table><thead><tr><th>Signed in</th><th>User agent</th><th>IP</th></tr></thead><tbody>${view.sessions.map((session) => html`<tr><td>${when(session.createdAt)}</td><td>${session.userAgent ?? '—'}</td><td>${session.ip ?? '—'}</td></tr>`)}</tbody></table>`}</section>
<section class="card" id="keys"><h2>Keys</h2>${view.keys.length === 0 ? html`<p class="muted">No live keys.</p>` : html`<table><thead><tr><th>Name</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead><tbody>${view.keys.map((key) => html`<tr><td>${key.name}</td><td>${when(key.createdAt)}</td><td>${when(key.lastUsedAt)}</td><td>${when(key.expiresAt)}</td><td><a href="/auth/admin/keys/${key.id}/confirm">Revoke…</a></td></tr>`)}</tbody></table>`}</section>
<section class="card"><h2>Recent audit events</h2>${view.events.length === 0 ? html`<p class="muted">None in the last days.</p>` : html`<table><thead><tr><th>Time</th><th>Event</th><th>Outcome</th><th>By</th><th>Detail</th></tr></thead><tbody>${view.events.map((event) => html`<tr><td>${when(event.time)}</td><td>${event.event}</td><td>${event.outcome}</td><td>${event.actorEmail ?? event.actor}</td><td>${event.reason ?? Object.values(event.detail ?? {}).join(' ')}</td></tr>`)}</tbody></table>`}</section>`)
}

function confirmPage (title: string, explain: string, button: string, action: string, back: string): Html {
  return layout(title, html`<section class="card"><h1>${title}</h1><p>${explain}</p>
<form method="post" action="${action}" class="row"><button class="danger" type="submit">${button}</button><a class="button secondary" href="${back}">Cancel</a></form></section>`)
}

/** A confirmation page is shown only to a recent sign-in; otherwise a fresh sign-in comes first, and returns here. */
async function confirm (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, page: () => Promise<Html>): Promise<FastifyReply> {
  if (!await signedInRecently(app, request.identity!)) return await reply.redirect(reauthUrl(request.url), 303)
  return sendPage(reply, 200, await page())
}

/** Refusals and errors of the pages as pages, in the gateway's look. */
function pageErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
  if (status >= 500) request.log.error({ err: error }, 'admin page failed')
  const message = status >= 500 ? `Internal error (request id ${request.id}).` : error.message
  return sendPage(reply, status, status === 403 ? errorPage('Administrators only', message) : errorPage(status === 404 ? 'Not found' : 'Something went wrong', message))
}

/** The server-rendered pages at /auth/admin (no script needed): people, one person, confirmations. */
export async function adminPages (app: FastifyInstance): Promise<void> {
  app.setErrorHandler(pageErrors)
  app.addHook('onRequest', async (request) => { await requireAdmin(app, request) })

  app.get<{ Querystring: { query?: string, sort?: string, cursor?: string } }>('/auth/admin', async (request, reply) => {
    const sort = (PEOPLE_SORTS as readonly string[]).includes(request.query.sort ?? '') ? request.query.sort as PeopleSort : 'last-seen'
    return sendPage(reply, 200, await peoplePage(app, (request.query.query ?? '').slice(0, 200), sort, request.query.cursor))
  })
  app.get<{ Params: { personId: string } }>('/auth/admin/people/:personId', { schema: { params: ID } }, async (request, reply) =>
    sendPage(reply, 200, personPage(await personView(app, request.params.personId))))
  app.get<{ Params: { personId: string, action: string } }>('/auth/admin/people/:personId/confirm/:action', { schema: { params: ID } }, async (request, reply) => {
    const { personId, action } = request.params
    const text = ACTION_TEXT[action as PersonAction]
    if (!(PERSON_ACTIONS as readonly string[]).includes(action) || text === undefined) return sendPage(reply, 404, errorPage('Not found', 'No such action.'))
    return await confirm(app, request, reply, async () => {
      const view = await personView(app, personId)
      return confirmPage(text.title, `${view.person.email}: ${text.explain}`, text.button, `/auth/admin/api/people/${personId}/${action}`, `/auth/admin/people/${personId}`)
    })
  })
  app.get<{ Params: { id: string } }>('/auth/admin/keys/:id/confirm', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } } }, async (request, reply) =>
    await confirm(app, request, reply, async () => {
      const key = await app.keys.find(request.params.id)
      if (key === null) return errorPage('Not found', 'No live key has this id.')
      return confirmPage(`Revoke the key “${key.name}”?`, 'Every program using this key gets 401 from now on. This cannot be undone.', 'Revoke key', `/auth/admin/api/keys/${key.id}/revoke`, `/auth/admin/people/${key.personId}#keys`)
    }))
}
