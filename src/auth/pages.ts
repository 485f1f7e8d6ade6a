import type { FastifyReply } from 'fastify'

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml (text: string): string {
  return text.replace(/[&<>"'`]/g, (character) => `&#${character.charCodeAt(0)};`)
}

/** Tags a template so every interpolated value is escaped unless it is already `Html`. */
export class Html {
  constructor (readonly text: string) {}
  toString (): string { return this.text }
}

/** `html\`<p>${value}</p>\`` escapes `value`; nested `html` fragments pass through. */
export function html (strings: TemplateStringsArray, ...values: unknown[]): Html {
  let text = strings[0]!
  values.forEach((value, index) => {
    const parts = Array.isArray(value) ? value : [value]
    text += parts.map((part) => part instanceof Html ? part.text : escapeHtml(String(part ?? ''))).join('')
    text += strings[index + 1]!
  })
  return new Html(text)
}

/** The gateway's own pages allow nothing but their inline styles, and no framing. */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--text:#1d2330;--muted:#5b6475;--accent:#1a73e8;--danger:#c5221f;--border:#dfe3ea}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1d2129;--text:#e6e9ef;--muted:#9aa3b2;--accent:#8ab4f8;--danger:#f28b82;--border:#2e3440}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--text)}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem}header{display:flex;align-items:center;gap:.5rem;margin-bottom:1rem}
header .logo{font-weight:700;font-size:1.25rem}header .logo span{color:var(--accent)}
.card{background:var(--card);border:1px solid var(--border);border-radius:12px;padding:1.25rem;margin-bottom:1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .75rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.button,button{display:inline-block;font:inherit;border:0;border-radius:8px;padding:.55rem 1rem;background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--border)}button.danger{background:var(--danger)}
.muted{color:var(--muted)}.ok{color:#188038}.warn{color:#b06000}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.45rem .3rem;border-bottom:1px solid var(--border);font-size:.95rem}
input{font:inherit;padding:.45rem .6rem;border:1px solid var(--border);border-radius:8px;background:var(--bg);color:var(--text)}
code,.key{font-family:ui-monospace,monospace;font-size:.9rem;overflow-wrap:anywhere}
form.inline{display:inline}.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
`

/** A whole page in the gateway's look. */
export function layout (title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${title} · Gemgate</title><style>${new Html(STYLE)}</style></head>
<body><main><header><div class="logo">Gem<span>gate</span></div></header>${body}</main></body></html>`
}

/** Sends one of the gateway's pages with its security headers. */
export function sendPage (reply: FastifyReply, status: number, page: Html): FastifyReply {
  return reply.code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .send(page.text)
}

/** A small error page: what went wrong, and a way to sign in again. */
export function errorPage (title: string, message: string): Html {
  return layout(title, html`<section class="card" role="alert"><h1>${title}</h1><p>${message}</p>
<p><a class="button" href="/auth/login">Sign in again</a></p></section>`)
}
