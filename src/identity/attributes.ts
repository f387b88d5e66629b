// Claims copied into a principal's attributes: scalars only, bounded, so a token cannot stuff
// structures or megabytes into every decision context.
import type { JWTPayload } from 'jose';

const MAX_STRING = 1024;

export function copyAttributes(claims: JWTPayload, names: readonly string[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const name of names) {
    const v = claims[name];
    if (typeof v === 'string' ? v.length <= MAX_STRING : typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) {
      out[name] = v as string | number | boolean;
    }
  }
  return out;
}
