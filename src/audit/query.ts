// Reading events back: query validation, and JSON-lines export page by page. Over the reader
// port, so the CLI can use them offline on a read-only store as well.
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { InvalidInput } from '../common/errors.ts';
import { canonicalJson } from './canonical.ts';
import type { AuditReader, AuditSearch } from './ports.ts';
import { AUDIT_STREAMS, type AuditQuery, type AuditRecord } from './types.ts';

const AUDIT_QUERY_DEFAULT_LIMIT = 100;
export const AUDIT_QUERY_MAX_LIMIT = 1000;

function isoBound(v: string | number, field: string): string {
  const ms = typeof v === 'number' ? v : Date.parse(v);
  if (!Number.isFinite(ms)) throw new InvalidInput(`${field} must be an ISO-8601 time or epoch milliseconds`, field);
  return new Date(ms).toISOString();
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new InvalidInput(`${field} must be a non-empty string`, field);
  return v;
}

/** Validates a query and puts it in the form the store answers. `maxSeq` bounds seq (used by follow). */
export function normalizeQuery(q: AuditQuery, maxSeq?: number): AuditSearch {
  const s: AuditSearch = { limit: AUDIT_QUERY_DEFAULT_LIMIT, order: 'asc' };
  if (q.stream !== undefined) {
    if (!AUDIT_STREAMS.includes(q.stream)) throw new InvalidInput(`stream must be one of ${AUDIT_STREAMS.join(', ')}`, 'stream');
    s.stream = q.stream;
  }
  if (q.afterSeq !== undefined) {
    if (q.stream === undefined) throw new InvalidInput('afterSeq needs a stream', 'afterSeq');
    if (!Number.isSafeInteger(q.afterSeq) || q.afterSeq < 0) throw new InvalidInput('afterSeq must be a non-negative integer', 'afterSeq');
    s.afterSeq = q.afterSeq;
  }
  if (maxSeq !== undefined) s.maxSeq = maxSeq;
  if (q.since !== undefined) s.since = isoBound(q.since, 'since');
  if (q.until !== undefined) s.until = isoBound(q.until, 'until');
  for (const f of ['identity', 'actor', 'subject', 'boundary', 'type'] as const) {
    if (q[f] !== undefined) s[f] = str(q[f], f);
  }
  if (q.decision !== undefined) {
    if (q.decision !== 'allow' && q.decision !== 'deny') throw new InvalidInput('decision must be "allow" or "deny"', 'decision');
    s.decision = q.decision;
  }
  if (q.limit !== undefined) {
    if (!Number.isSafeInteger(q.limit) || q.limit < 1) throw new InvalidInput('limit must be a positive integer', 'limit');
    s.limit = Math.min(q.limit, AUDIT_QUERY_MAX_LIMIT);
  }
  if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') throw new InvalidInput('order must be "asc" or "desc"', 'order');
  if (q.order === 'desc') s.order = 'desc';
  return s;
}

/** Validates `q` and reads the matching events. */
export async function queryEvents(reader: AuditReader, q: AuditQuery = {}, maxSeq?: number): Promise<AuditRecord[]> {
  return reader.query(normalizeQuery(q, maxSeq));
}

export type ExportQuery = Omit<AuditQuery, 'limit' | 'order'>;

/** One canonical JSON line per record (hash = sha256 of the line without its `hash` member). */
function recordLine(r: AuditRecord): string {
  return canonicalJson(r) + '\n';
}

/** Every matching event as JSON lines, stream by stream in seq order, read page by page. */
export async function* exportJsonLines(reader: AuditReader, q: ExportQuery = {}): AsyncGenerator<string> {
  const streams = q.stream !== undefined ? [q.stream] : AUDIT_STREAMS;
  for (const stream of streams) {
    let after = q.afterSeq ?? 0;
    for (;;) {
      const page = await queryEvents(reader, { ...q, stream, afterSeq: after, limit: AUDIT_QUERY_MAX_LIMIT, order: 'asc' });
      for (const r of page) yield recordLine(r);
      if (page.length < AUDIT_QUERY_MAX_LIMIT) break;
      after = page[page.length - 1].seq;
    }
  }
}

/** Writes the export to a stream, honouring backpressure. Returns the number of lines. */
export async function writeJsonLines(reader: AuditReader, out: Writable, q: ExportQuery = {}): Promise<number> {
  let n = 0;
  for await (const line of exportJsonLines(reader, q)) {
    n++;
    if (!out.write(line)) await once(out, 'drain');
  }
  return n;
}
