// "export default" appears only in this comment and in a string below.
const note = "export default is for modules";
addEventListener("fetch", (event) => {
  event.respondWith(Response.redirect(TARGET + new URL(event.request.url).pathname, CODES[0]));
});
