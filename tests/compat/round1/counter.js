// Counts visits per path in a KV namespace that this project owns (declared by title in
// workers.yaml), and greets with a plain_text variable; API_KEY is a secret_text binding.
addEventListener('fetch', event => {
  event.respondWith(handleRequest(event.request))
})

async function handleRequest(request) {
  if (request.headers.get('x-api-key') !== API_KEY) {
    return new Response('forbidden', { status: 403 })
  }
  const path = new URL(request.url).pathname
  const count = parseInt((await COUNTS.get(path)) || '0', 10) + 1
  await COUNTS.put(path, String(count))
  return new Response(`${GREETING} (${ENVIRONMENT}): ${path} seen ${count} time(s)\n`)
}
