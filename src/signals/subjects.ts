// RFC 9493 subject identifiers (and SSF 1.0 complex subjects) resolved to a Portcullis identity —
// only among the identities bound to the one trust the transmitter is configured with. A subject
// that names nothing there (an unknown identity, or one of another trust) is refused alike.
import { SetRefused } from './set.ts';

/** What resolution needs to know about the transmitter's trust. */
export interface SubjectTrust {
  name: string;
  /** `iss` of the trust's own tokens (oidc, oidc-human), for `iss_sub` subjects. */
  issuer?: string;
  /** Its identity template (`workload:github/{repository}`, `user:{email}`, `spiffe://td/{path}`), when it has one. */
  template?: string;
}

/** The identities the resolver may see: bound trusts per id. */
export interface SubjectDirectory {
  /** The identity with this id and the trusts bound to it (`trust` = the one that registered it), or undefined. */
  get(id: string): { id: string; trust: string | null; bound_trusts: string[] | null } | undefined;
}

export interface ResolvedSubject {
  identityId: string;
  /** The format the identity was named by (for the audit record). */
  format: string;
  /** A `session` member of a complex subject, as sent (recorded; Portcullis' own sessions are ended by identity). */
  session?: Record<string, unknown>;
}

const MAX_DEPTH = 3;
const str = (v: unknown, max = 1024): string | undefined => (typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined);

/** The id a template yields when its only placeholder is `name`, filled with `value`. */
function fill(template: string | undefined, name: string, value: string): string | undefined {
  if (template === undefined) return undefined;
  const placeholders = [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
  if (placeholders.length !== 1 || placeholders[0] !== name) return undefined;
  if (/[\s"\\]/.test(value)) return undefined;
  return template.replace(`{${name}}`, value);
}

/** Candidate identity ids a simple subject names, within the trust (no directory look-up yet). */
function candidates(s: Record<string, unknown>, trust: SubjectTrust): string[] {
  switch (s.format) {
    case 'opaque': {
      const id = str(s.id, 300);
      return id === undefined ? [] : [id];
    }
    case 'iss_sub': {
      const iss = str(s.iss, 2048);
      const sub = str(s.sub, 300);
      if (iss === undefined || sub === undefined) return [];
      // Only the trust's own issuer's subjects: a subject of another issuer is not this trust's.
      if (trust.issuer === undefined || iss !== trust.issuer) return [];
      const id = fill(trust.template, 'sub', sub);
      return id === undefined ? [] : [id];
    }
    case 'email': {
      const email = str(s.email, 320)?.toLowerCase();
      if (email === undefined || !/^[^@\s]+@[^@\s]+$/.test(email)) return [];
      const id = fill(trust.template, 'email', email);
      return id === undefined ? [] : [id];
    }
    case 'uri': {
      const uri = str(s.uri, 2048);
      return uri?.startsWith('spiffe://') ? [uri] : [];
    }
    default:
      return [];
  }
}

const SIMPLE = new Set(['opaque', 'iss_sub', 'email', 'uri', 'account', 'phone_number', 'did']);

/**
 * Resolves a subject within `trust`; throws SetRefused: `invalid_request` for a subject that is
 * not one (shape), `access_denied` for one that names no identity bound to `trust`.
 */
export function resolveSubject(subject: unknown, trust: SubjectTrust, dir: SubjectDirectory, depth = 0): ResolvedSubject {
  if (subject === null || typeof subject !== 'object' || Array.isArray(subject)) throw new SetRefused('invalid_request', 'the event has no subject (sub_id) object');
  const s = subject as Record<string, unknown>;
  const format = typeof s.format === 'string' ? s.format.slice(0, 40) : undefined;
  if (format === undefined) throw new SetRefused('invalid_request', 'the subject has no format');
  if (depth >= MAX_DEPTH) throw new SetRefused('invalid_request', 'the subject is nested too deeply');
  if (format === 'complex') {
    // SSF 1.0 §3.3: the user is what Portcullis can name; a session alone names no identity here.
    if (s.user === undefined) throw new SetRefused('access_denied', 'a complex subject without a user member names no identity this receiver holds');
    const user = resolveSubject(s.user, trust, dir, depth + 1);
    const session = s.session !== null && typeof s.session === 'object' && !Array.isArray(s.session) ? (s.session as Record<string, unknown>) : undefined;
    return { ...user, format: `complex/${user.format}`, ...(session && { session: boundedCopy(session) }) };
  }
  if (format === 'aliases') {
    const ids = Array.isArray(s.identifiers) ? s.identifiers.slice(0, 10) : [];
    if (ids.length === 0) throw new SetRefused('invalid_request', 'an aliases subject needs identifiers');
    const found = new Set<string>();
    for (const i of ids) {
      try {
        found.add(resolveSubject(i, trust, dir, depth + 1).identityId);
      } catch (e) {
        if (!(e instanceof SetRefused && e.err === 'access_denied')) throw e;
      }
    }
    if (found.size !== 1) throw new SetRefused('access_denied', found.size === 0 ? `no alias names an identity of trust ${trust.name}` : 'the aliases name different identities');
    return { identityId: [...found][0]!, format: 'aliases' };
  }
  if (!SIMPLE.has(format)) throw new SetRefused('invalid_request', `subject format ${format} is not supported (opaque, iss_sub, email, uri, complex, aliases)`);
  for (const id of candidates(s, trust)) {
    const identity = dir.get(id);
    if (identity && (identity.trust === trust.name || (identity.bound_trusts ?? []).includes(trust.name))) return { identityId: identity.id, format };
  }
  throw new SetRefused('access_denied', `the subject names no identity of trust ${trust.name}, the trust this transmitter is bound to`);
}

/** A session member as recorded: strings only, bounded. */
function boundedCopy(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).slice(0, 8).filter(([, v]) => typeof v === 'string').map(([k, v]) => [k.slice(0, 40), (v as string).slice(0, 256)]));
}
