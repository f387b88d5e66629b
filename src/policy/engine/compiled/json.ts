// JSON.parse that keeps Cedar Longs exact: an integer literal beyond 2^53 becomes a bigint
// (Node 24's reviver sees the literal's source text). Use it for entity and context JSON.

export function parseCedarJson(text: string): unknown {
  return JSON.parse(text, (_k, v: unknown, ctx?: { source?: string }) => {
    if (typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source !== undefined && /^-?[0-9]+$/.test(ctx.source)) return BigInt(ctx.source);
    return v;
  });
}
