import { count } from "./lib/count.mjs";

export default {
  async fetch(request, env) {
    return new Response(`${env.GREETING}: ${await count(env.COUNTS)}`);
  },
};
