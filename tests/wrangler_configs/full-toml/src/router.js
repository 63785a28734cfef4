import { render } from "./views/render.mjs";
// import "./not-this.js" is a comment, not an import
export function route(request, env) {
  return new Response(render(env.GREETING));
}
