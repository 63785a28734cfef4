export class Room {}
const handler = { fetch: () => new Response("api") };
export { handler as default };
