// A module worker using what round two added: an R2 bucket, a D1 database, a queue it sends to and
// consumes, another worker of this project (a service binding) and a Durable Object class.
export class Cart {
  constructor(state) {
    this.state = state;
  }

  async fetch() {
    const items = (await this.state.storage.get("items")) || 0;
    await this.state.storage.put("items", items + 1);
    return new Response(`items in cart: ${items + 1}\n`);
  }
}

export default {
  async fetch(request, env) {
    const cart = env.CARTS.get(env.CARTS.idFromName("demo"));
    await env.JOBS.send({ url: request.url });
    const logo = await env.ASSETS.head("logo.png");
    const { results } = await env.DB.prepare("SELECT 1 AS ok").all();
    const visits = await env.COUNTER.fetch(request);
    return new Response(
      `${await (await cart.fetch(request)).text()}logo stored: ${logo !== null}\n` +
        `db ok: ${results.length === 1}\n${await visits.text()}`,
    );
  },

  async queue(batch) {
    for (const message of batch.messages) {
      message.ack();
    }
  },
};
