// One mapping from errors to RFC 9457 problem documents. Stable `code`s; no secrets in `detail`.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { PortcullisError } from '../common/errors.ts';
import { StepUpRequired } from '../policy/step-up.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * The members every problem has are the mapping's own: an error's `extra` can add members but
 * never replace these (an access request's `status: "approved"` once became the HTTP status and
 * answered 500 FST_ERR_BAD_STATUS_CODE). Errors name such facts differently (`state`); a
 * colliding extra is dropped here, and a status outside 400–599 becomes 500.
 */
const RESERVED = new Set(['type', 'title', 'status', 'code', 'detail', 'instance']);

export function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): Problem {
  const safe = Object.fromEntries(Object.entries(extra).filter(([k]) => !RESERVED.has(k)));
  const s = Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
  return { ...safe, type: `urn:portcullis:problem:${code}`, title: TITLES[s] ?? 'Error', status: s, code, detail };
}

/**
 * The store cannot write or read: disk full (SQLITE_FULL, ENOSPC, EDQUOT), an I/O error
 * (SQLITE_IOERR_*, EIO), a read-only or vanished file (SQLITE_READONLY_*, SQLITE_CANTOPEN, EROFS),
 * or locked past the busy timeout (SQLITE_BUSY/LOCKED); a PostgreSQL store that is unreachable,
 * shutting down, full or timing out. Looked for along the `cause` chain.
 */
const SQLITE_UNAVAILABLE = new Set([5 /* BUSY */, 6 /* LOCKED */, 8 /* READONLY */, 10 /* IOERR */, 13 /* FULL */, 14 /* CANTOPEN */]);
const ERRNO_UNAVAILABLE = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);
/**
 * PostgreSQL SQLSTATEs of a store that cannot serve now: connection exceptions (08…), insufficient
 * resources (53…: disk full, too many connections), operator intervention (57P01–57P03: shutdown,
 * crash, cannot connect now), a lock or statement timeout (55P03, 57014), read-only (25006).
 */
const PG_UNAVAILABLE = /^(08[0-9A-Z]{3}|53[0-9A-Z]{3}|57P0[1-3]|55P03|57014|25006)$/;
/** node-postgres' own words for a connection it lost or could not get. */
const PG_TEXT = /\b(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)\b/i;
const SQLITE_TEXT = /\b(database or disk is full|disk I\/O error|attempt to write a readonly database|unable to open database file|database is locked)\b/i;

export function isStoreFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as { code?: unknown; errcode?: unknown; message?: unknown };
    if (typeof x.errcode === 'number' && SQLITE_UNAVAILABLE.has(x.errcode & 0xff)) return true;
    if (typeof x.code === 'string' && (ERRNO_UNAVAILABLE.has(x.code) || PG_UNAVAILABLE.test(x.code) || /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED)/.test(x.code))) return true;
    if (typeof x.message === 'string' && PG_TEXT.test(x.message)) return true;
    // Errors that crossed a worker boundary keep only their text.
    if (typeof x.message === 'string' && SQLITE_TEXT.test(x.message)) return true;
  }
  return false;
}

const STORE_UNAVAILABLE = 'store_unavailable';

export function toProblem(err: unknown): Problem {
  // A full or failing disk is the server's condition, not the caller's mistake nor a bug: 503
  // on every path (logins, decisions, issuance, writes), whatever wrapped it.
  // A target's failure (502/504: its own PostgreSQL, say) is the target's, not the store's.
  if ((!(err instanceof PortcullisError) || (err.status >= 500 && err.status !== 502 && err.status !== 504)) && isStoreFailure(err)) {
    return problem(503, STORE_UNAVAILABLE, 'the store cannot be written or read right now (disk full, I/O error or the database unreachable); nothing was done, try again later');
  }
  if (err instanceof PortcullisError) return problem(err.status, err.code, err.message, err.extra);
  const e = err as FastifyError & { validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] };
  if (e.validation && e.validation.length > 0) {
    const v = e.validation[0]!;
    const where = (e.validationContext ?? 'body') as string;
    const extraProp = v.params?.additionalProperty as string | undefined;
    const missing = v.params?.missingProperty as string | undefined;
    const path = `${where}${v.instancePath.replaceAll('/', '.')}${extraProp ? `.${extraProp}` : ''}${missing ? `.${missing}` : ''}`;
    const message = extraProp ? 'is not a known field' : missing ? 'is required' : (v.message ?? 'is invalid');
    return problem(400, 'invalid_input', `${path} ${message}`, { field: path });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'malformed_json', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'body_too_large', 'the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'unsupported_media_type', 'send application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem(400, 'malformed_request', 'content-length does not match the body');
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problem(e.statusCode, 'bad_request', e.message);
  }
  return problem(500, 'internal', 'internal error; see the server log');
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p);
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const p = toProblem(err);
  if (typeof p.decision_id === 'string') req.decisionId = p.decision_id;
  if (p.status >= 500) req.log.error({ err, code: p.code }, 'request failed');
  if (p.code === STORE_UNAVAILABLE) reply.header('retry-after', '5');
  if (err instanceof PortcullisError && typeof err.extra.retry_after_s === 'number') reply.header('retry-after', String(err.extra.retry_after_s));
  // RFC 9470: tell standard clients what a new login must bring.
  if (err instanceof StepUpRequired) reply.header('www-authenticate', err.wwwAuthenticate(typeof err.extra.acr_values === 'string' ? err.extra.acr_values : undefined));
  return sendProblem(reply, p);
}
