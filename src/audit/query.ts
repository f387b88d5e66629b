// Reading events back: filtered queries and JSON-lines export. Plain functions over a Db so the
// CLI can use them offline on a read-only connection as well.
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { InvalidInput } from '../common/errors.ts';
import { canonicalJson } from './canonical.ts';
import { toRecord, type ChainFields } from './chain.ts';
import { AUDIT_STREAMS, type AuditQuery, type AuditRecord } from './types.ts';
import type { Db } from '../store/sqlite.ts';

export const AUDIT_QUERY_DEFAULT_LIMIT = 100;
export const AUDIT_QUERY_MAX_LIMIT = 1000;

const COLUMNS = 'stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash';

function isoBound(v: string | number, field: string): string {
  const ms = typeof v === 'number' ? v : Date.parse(v);
  if (!Number.isFinite(ms)) throw new InvalidInput(`${field} must be an ISO-8601 time or epoch milliseconds`, field);
  return new Date(ms).toISOString();
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new InvalidInput(`${field} must be a non-empty string`, field);
  return v;
}

/** Validates a query and builds its SQL. `maxSeq` bounds seq (used by follow). */
export function buildQuery(q: AuditQuery, maxSeq?: number): { sql: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (q.stream !== undefined) {
    if (!AUDIT_STREAMS.includes(q.stream)) throw new InvalidInput(`stream must be one of ${AUDIT_STREAMS.join(', ')}`, 'stream');
    where.push('stream = ?');
    params.push(q.stream);
  }
  if (q.afterSeq !== undefined) {
    if (q.stream === undefined) throw new InvalidInput('afterSeq needs a stream', 'afterSeq');
    if (!Number.isSafeInteger(q.afterSeq) || q.afterSeq < 0) throw new InvalidInput('afterSeq must be a non-negative integer', 'afterSeq');
    where.push('seq > ?');
    params.push(q.afterSeq);
  }
  if (maxSeq !== undefined) {
    where.push('seq <= ?');
    params.push(maxSeq);
  }
  if (q.since !== undefined) {
    where.push('time >= ?');
    params.push(isoBound(q.since, 'since'));
  }
  if (q.until !== undefined) {
    where.push('time < ?');
    params.push(isoBound(q.until, 'until'));
  }
  if (q.identity !== undefined) {
    const id = str(q.identity, 'identity');
    where.push('(actor = ? OR subject = ?)');
    params.push(id, id);
  }
  for (const f of ['actor', 'subject', 'boundary', 'type'] as const) {
    if (q[f] !== undefined) {
      where.push(`${f} = ?`);
      params.push(str(q[f], f));
    }
  }
  if (q.decision !== undefined) {
    if (q.decision !== 'allow' && q.decision !== 'deny') throw new InvalidInput('decision must be "allow" or "deny"', 'decision');
    where.push('decision = ?');
    params.push(q.decision);
  }
  let limit = AUDIT_QUERY_DEFAULT_LIMIT;
  if (q.limit !== undefined) {
    if (!Number.isSafeInteger(q.limit) || q.limit < 1) throw new InvalidInput('limit must be a positive integer', 'limit');
    limit = Math.min(q.limit, AUDIT_QUERY_MAX_LIMIT);
  }
  if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc') throw new InvalidInput('order must be "asc" or "desc"', 'order');
  const dir = q.order === 'desc' ? 'DESC' : 'ASC';
  const orderBy = q.stream !== undefined ? `seq ${dir}` : `time ${dir}, stream ${dir}, seq ${dir}`;
  const sql =
    `SELECT ${COLUMNS} FROM audit_events` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${orderBy} LIMIT ${limit}`;
  return { sql, params };
}

export function queryEvents(db: Db, q: AuditQuery = {}, maxSeq?: number): AuditRecord[] {
  const { sql, params } = buildQuery(q, maxSeq);
  const rows = db.prepare(sql).all(...params) as unknown as (ChainFields & { hash: string })[];
  return rows.map(toRecord);
}

export type ExportQuery = Omit<AuditQuery, 'limit' | 'order'>;

/** One canonical JSON line per record (hash = sha256 of the line without its `hash` member). */
export function recordLine(r: AuditRecord): string {
  return canonicalJson(r) + '\n';
}

/** Every matching event as JSON lines, stream by stream in seq order, read page by page. */
export function* exportJsonLines(db: Db, q: ExportQuery = {}): Generator<string> {
  const streams = q.stream !== undefined ? [q.stream] : AUDIT_STREAMS;
  for (const stream of streams) {
    let after = q.afterSeq ?? 0;
    for (;;) {
      const page = queryEvents(db, { ...q, stream, afterSeq: after, limit: AUDIT_QUERY_MAX_LIMIT, order: 'asc' });
      for (const r of page) yield recordLine(r);
      if (page.length < AUDIT_QUERY_MAX_LIMIT) break;
      after = page[page.length - 1].seq;
    }
  }
}

/** Writes the export to a stream, honouring backpressure. Returns the number of lines. */
export async function writeJsonLines(db: Db, out: Writable, q: ExportQuery = {}): Promise<number> {
  let n = 0;
  for (const line of exportJsonLines(db, q)) {
    n++;
    if (!out.write(line)) await once(out, 'drain');
  }
  return n;
}
