// The seed's example: the upload request binds the global `myNamespace` to a KV namespace id.
addEventListener('fetch', event => {
  event.respondWith(handleRequest(event.request))
})

async function handleRequest(request) {
  const value = await myNamespace.get('some-key')
  return new Response(value === null ? 'some-key is not set' : value)
}
// v2
