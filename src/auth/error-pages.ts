import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { html, layout, sendPage } from './pages.js'

type ErrorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void
type NotFoundHandler = (request: FastifyRequest, reply: FastifyReply) => void

/**
 * A person's browser rather than a program: a navigation, a form post, or HTML in Accept.
 * SDKs and `fetch` ask for JSON or anything (`*\/*`), never HTML, so they keep Google's shape.
 */
export function isBrowserRequest (request: FastifyRequest): boolean {
  if (request.headers['sec-fetch-mode'] === 'navigate') return true
  if (request.headers['content-type']?.startsWith('application/x-www-form-urlencoded') === true) return true
  return (request.headers.accept ?? '').includes('text/html')
}

const TITLES: Record<number, string> = {
  400: 'That did not work',
  403: 'Not allowed',
  404: 'Page not found',
  503: 'Temporarily unavailable',
}

// Ajv's "body/name must match pattern \"\\S\"" names the schema, not what the person typed.
function formMessage (error: FastifyError): string {
  const fields = [...new Set((error.validation ?? []).map((problem) => problem.instancePath.replace(/^\//, '') || 'the form'))]
  return `Please check the form: ${fields.join(', ')} ${fields.length === 1 ? 'is' : 'are'} missing or not valid.`
}

function pageMessage (error: FastifyError, status: number, requestId: string): string {
  if (error.validation !== undefined) return formMessage(error)
  if (status === 503) return `${error.message} This usually passes within a minute: try again shortly.`
  if (status >= 500 && error.code?.startsWith('GEMGATE_') !== true) return `Something went wrong on the gateway (request id ${requestId}). Try again.`
  return error.message
}

function problemPage (reply: FastifyReply, status: number, message: string): FastifyReply {
  const title = TITLES[status] ?? (status >= 500 ? 'Something went wrong' : 'That did not work')
  return sendPage(reply, status, layout(title, html`<section class="card" role="alert"><h1>${title}</h1><p>${message}</p>
<p class="row"><a class="button" href="/auth/status">Your gateway status</a><a class="button secondary" href="/">Home</a></p></section>`))
}

/** Wraps the JSON error handler: browsers get a page in the gateway's look, programs Google's JSON. */
export function withErrorPages (handler: ErrorHandler): ErrorHandler {
  return (error, request, reply) => {
    if (!isBrowserRequest(request)) {
      handler(error, request, reply)
      return
    }
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
    if (status >= 500) request.log.error({ err: error }, 'request failed')
    problemPage(reply, status, pageMessage(error, status, request.id))
  }
}

/** Wraps the JSON 404 handler the same way. */
export function withNotFoundPage (handler: NotFoundHandler): NotFoundHandler {
  return (request, reply) => {
    if (!isBrowserRequest(request)) {
      handler(request, reply)
      return
    }
    problemPage(reply, 404, 'There is no page at this address. Your gateway status page lists your keys and usage.')
  }
}
