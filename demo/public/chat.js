// The example app's chat. It sends the conversation to Gemini through the gateway, on the
// page's own origin with the session cookie, and shows the answer as its server-sent events
// arrive. No framework, no build step.
const form = document.getElementById('chat')
const prompt = document.getElementById('prompt')
const send = form.querySelector('button')
const messages = document.getElementById('messages')
const history = []

function addMessage (role, text) {
  const item = document.createElement('li')
  item.className = `message ${role}`
  const body = document.createElement('p')
  body.textContent = text
  item.append(body)
  messages.append(item)
  item.scrollIntoView({ block: 'end' })
  return item
}

// Yields the JSON of each `data:` event of an SSE response as it arrives.
async function * serverSentEvents (response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer = (buffer + value).replace(/\r\n?/g, '\n')
    let end
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const data = buffer.slice(0, end).split('\n')
        .filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n')
      buffer = buffer.slice(end + 2)
      if (data !== '') yield JSON.parse(data)
    }
  }
}

async function failure (response) {
  if (response.status === 401) return 'Your session has ended: reload the page to sign in again.'
  const body = await response.json().catch(() => null)
  return `Gemini answered ${response.status}: ${body?.error?.message ?? response.statusText}`
}

async function ask (text) {
  history.push({ role: 'user', parts: [{ text }] })
  addMessage('user', text)
  const reply = addMessage('model', '')
  const body = reply.querySelector('p')
  reply.dataset.state = 'streaming'
  try {
    const response = await fetch(`/v1beta/models/${encodeURIComponent(form.dataset.model)}:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ contents: history }),
    })
    if (!response.ok) throw new Error(await failure(response))
    for await (const event of serverSentEvents(response)) {
      const parts = event.candidates?.[0]?.content?.parts ?? []
      body.textContent += parts.map((part) => part.text ?? '').join('')
    }
    history.push({ role: 'model', parts: [{ text: body.textContent }] })
    reply.dataset.state = 'done'
  } catch (error) {
    history.pop()
    body.textContent = error.message
    reply.dataset.state = 'error'
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = prompt.value.trim()
  if (text === '' || send.disabled) return
  prompt.value = ''
  send.disabled = true
  ask(text).finally(() => {
    send.disabled = false
    prompt.focus()
  })
})

prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault()
    form.requestSubmit()
  }
})

// Signing out with a plain form would follow the gateway's redirects back to the sign-in page;
// end the session with fetch and show the gateway's signed-out page instead.
document.getElementById('sign-out').addEventListener('submit', (event) => {
  event.preventDefault()
  fetch('/auth/logout', { method: 'POST' }).then(() => location.assign('/auth/status'))
})
