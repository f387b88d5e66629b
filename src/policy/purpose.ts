// What counts as a purpose. A reason or ticket made only of whitespace (any Unicode White_Space),
// invisible characters (zero-width space/joiners, word joiner, BOM, soft hyphen, Hangul fillers —
// Unicode Default_Ignorable_Code_Point), control or format characters, or the blank Braille
// pattern says nothing: the server treats it as absent everywhere (decision context, credential
// issue, access requests, break-glass). See docs/policy.md.
import type { Purpose } from './decision-point.ts';

const INVISIBLE = /[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\u2800]/gu;

/** Something said: at least one letter or digit, in any script. */
const SAYS = /[\p{L}\p{N}]/u;

/**
 * The trimmed text when it says something, else undefined. Saying something takes at least one
 * visible letter or digit: whitespace, invisible characters, combining marks on nothing,
 * punctuation (`-`, `...`) and emoji alone are no purpose.
 */
export function meaningful(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  if (!SAYS.test(text.replace(INVISIBLE, ''))) return undefined;
  return text.trim();
}

/** A purpose with blank fields dropped (never an empty string in `context.purpose`). */
export function cleanPurpose(p: Purpose | undefined): Purpose {
  const out: Purpose = {};
  const reason = meaningful(p?.reason);
  const ticket = meaningful(p?.ticket);
  if (reason !== undefined) out.reason = reason;
  if (ticket !== undefined) out.ticket = ticket;
  return out;
}
