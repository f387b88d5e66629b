// Field schemas shared by the access config and the access API bodies (zod, common/validation.ts).
import { text } from '../common/validation.ts';

export const IDENTITY_ID_RE = /^[a-z][a-z0-9-]*:[^\s]{1,300}$/;
export const ACTION_RE = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** `Type::"id"` or `Type::id` → an entity uid. */
export const entityRef = text({ max: 512 }).transform((s, ctx) => {
  const m = /^([A-Z][A-Za-z0-9_]*)::(?:"((?:[^"\\]|\\.)*)"|([^"]+))$/.exec(s);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'expected an entity like Database::"orders"' });
    return { type: '', id: '' };
  }
  return { type: m[1]!, id: m[2] ?? m[3]! };
});
