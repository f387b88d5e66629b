// Input validation and hygiene, done in the caller's tick before an event joins a batch, so a bad
// event is refused on its own and never fails the batch it would have joined.
import { InvalidInput } from '../common/errors.ts';
import { canonicalJson } from './canonical.ts';
import { SECRET_REDACTOR, scrubString } from './scrub.ts';
import { AUDIT_STREAMS, type AuditEventInput, type AuditStreamName } from './types.ts';

const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_ID = 512;
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface PreparedEvent {
  stream: AuditStreamName;
  time: string;
  type: string;
  actor: string;
  boundary: string | null;
  subject: string | null;
  decision: 'allow' | 'deny' | null;
  /** Canonical JSON of the scrubbed payload: what is stored and hashed. */
  payload: string;
}

function optionalId(v: unknown, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID) {
    throw new InvalidInput(`${field} must be a non-empty string of at most ${MAX_ID} characters`, field);
  }
  // Stored as UTF-8, where a lone surrogate cannot exist: normalise first, or the hash computed
  // now would not match the text read back. PostgreSQL text cannot hold U+0000 at all: it becomes
  // U+FFFD too, or one such event would fail its whole batch there.
  const wf = v.toWellFormed();
  return scrubString(wf.includes('\0') ? wf.replaceAll('\0', '\ufffd') : wf);
}

export function prepareEvent(e: AuditEventInput, time: string): PreparedEvent {
  if (e === null || typeof e !== 'object') throw new InvalidInput('audit event must be an object');
  if (!AUDIT_STREAMS.includes(e.stream)) throw new InvalidInput(`stream must be one of ${AUDIT_STREAMS.join(', ')}`, 'stream');
  if (typeof e.type !== 'string' || !TYPE_RE.test(e.type)) {
    throw new InvalidInput('type must be 1-128 characters of letters, digits, ".", "_", ":" or "-"', 'type');
  }
  const actor = optionalId(e.actor, 'actor');
  if (actor === null) throw new InvalidInput('actor is required', 'actor');
  if (e.decision !== undefined && e.decision !== 'allow' && e.decision !== 'deny') {
    throw new InvalidInput('decision must be "allow" or "deny"', 'decision');
  }
  const p: unknown = e.payload;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new InvalidInput('payload must be an object', 'payload');
  const payload = canonicalJson(p, SECRET_REDACTOR);
  if (payload.length > MAX_PAYLOAD_BYTES / 3 && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
    throw new InvalidInput(`payload exceeds ${MAX_PAYLOAD_BYTES} bytes`, 'payload');
  }
  return {
    stream: e.stream,
    time,
    type: e.type,
    actor,
    boundary: optionalId(e.boundary, 'boundary'),
    subject: optionalId(e.subject, 'subject'),
    decision: e.decision ?? null,
    payload,
  };
}
