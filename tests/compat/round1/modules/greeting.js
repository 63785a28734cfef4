export function greet(greeting, path) {
  return `${greeting}: you asked for ${path}\n`;
}
