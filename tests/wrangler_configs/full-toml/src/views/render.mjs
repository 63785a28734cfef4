export const render = (text) => `<p>${text}</p>`;
