// The errors the client throws: an answer that is not a success (a problem+json document, or an
// RFC 6749 error from the token endpoint) and a server that could not be reached.
import type { components } from './generated/openapi.ts';

/** An RFC 9457 problem document as Portcullis sends it (stable `code`, `field` on invalid input; the document's `Problem`). */
export type Problem = components['schemas']['Problem'];

/** The server answered with an error. `code` is the problem's stable code, or the RFC 6749 `error`. */
export class PortcullisApiError extends Error {
  override readonly name = 'PortcullisApiError';
  /** The HTTP status. */
  readonly status: number;
  /** The stable error code: `invalid_input`, `unauthenticated`, `forbidden`, `not_found`… or, from `/oauth2/token`, the RFC 6749 error (`invalid_grant`…). */
  readonly code: string;
  /** What is wrong, in words (never a secret). */
  readonly detail: string;
  /** The offending input on `invalid_input`, e.g. `body.ttl`. */
  readonly field: string | undefined;
  /** The problem document as sent (extra members such as `decision_id`, `required`), when it was one. */
  readonly problem: Problem | undefined;
  /** The RFC 6749 §5.2 error of the token endpoint, when it was one. */
  readonly oauthError: { error: string; error_description?: string } | undefined;
  /** The response, for its headers (Retry-After, WWW-Authenticate). Its body has been read. */
  readonly response: Response;

  constructor(response: Response, body: unknown) {
    const o = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
    const problem = typeof o?.code === 'string' && typeof o.status === 'number' ? (o as Problem) : undefined;
    const oauth = !problem && typeof o?.error === 'string' ? { error: o.error, ...(typeof o.error_description === 'string' && { error_description: o.error_description }) } : undefined;
    const text = typeof body === 'string' ? body.slice(0, 200) : '';
    const code = problem?.code ?? oauth?.error ?? `http_${response.status}`;
    const detail = problem?.detail ?? oauth?.error_description ?? (text || response.statusText || `HTTP ${response.status}`);
    super(`${response.status} ${code}: ${detail}`);
    this.status = response.status;
    this.code = code;
    this.detail = detail;
    this.field = typeof problem?.field === 'string' ? problem.field : undefined;
    this.problem = problem;
    this.oauthError = oauth;
    this.response = response;
  }
}

/** No answer: the server is down, the address is wrong, TLS failed. `cause` is fetch's error. */
export class PortcullisConnectionError extends Error {
  override readonly name = 'PortcullisConnectionError';
  readonly baseUrl: string;
  constructor(baseUrl: string, cause: unknown) {
    const why = (cause as { cause?: unknown })?.cause ?? (cause as Error)?.message ?? cause;
    super(`cannot reach Portcullis at ${baseUrl} (${String(why)})`, { cause });
    this.baseUrl = baseUrl;
  }
}
