export async function count(kv) {
  const next = Number((await kv.get("n")) ?? 0) + 1;
  await kv.put("n", String(next));
  return next;
}
