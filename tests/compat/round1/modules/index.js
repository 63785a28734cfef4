// An ES module worker: the entry module imports another module of the upload by its part
// name ("greeting.js", its path relative to this file's directory).
import { greet } from "./greeting.js";

export default {
  async fetch(request, env) {
    return new Response(greet(env.GREETING, new URL(request.url).pathname));
  },
};
