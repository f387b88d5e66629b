// Errors with stable codes. Domains throw these; server/ maps them once to RFC 9457 problem
// documents, cli/ to exit codes. `message` must never contain a secret value.

export class PortcullisError extends Error {
  readonly code: string;
  readonly status: number;
  /** Extra, non-secret members for the problem document (e.g. `field`, `required`). */
  readonly extra: Record<string, unknown>;
  constructor(code: string, status: number, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.extra = extra;
  }
}

/** Input that fails validation; `field` is the JSON path of the offending value. */
export class InvalidInput extends PortcullisError {
  constructor(message: string, field?: string, extra: Record<string, unknown> = {}) {
    super('invalid_input', 400, message, field === undefined ? extra : { field, ...extra });
  }
}

/** An action the schema does not declare (a typo, usually): named, with the closest known ones. */
export class UnknownAction extends PortcullisError {
  constructor(action: string, field: string, suggestions: readonly string[]) {
    const hint = suggestions.length > 0 ? `: did you mean ${suggestions.map((s) => `"${s}"`).join(', ')}?` : ': see the actions of the schema (GET /v1/policies, src/policy/schema.ts)';
    super('unknown_action', 400, `unknown action "${action.slice(0, 100)}"${hint}`, { field, action: action.slice(0, 100), suggestions });
  }
}

/** Authentication failed. The caller only ever sees the generic text; `reason` goes to audit. */
export class AuthenticationFailed extends PortcullisError {
  readonly reason: string;
  readonly detail: string;
  constructor(reason: string, detail: string) {
    super('unauthenticated', 401, 'authentication failed');
    this.reason = reason;
    this.detail = detail;
  }
}

export class Forbidden extends PortcullisError {
  constructor(message = 'forbidden', extra: Record<string, unknown> = {}) {
    super('forbidden', 403, message, extra);
  }
}

export class NotFound extends PortcullisError {
  constructor(what: string) {
    super('not_found', 404, `${what} not found`);
  }
}

export class Conflict extends PortcullisError {
  constructor(message: string) {
    super('conflict', 409, message);
  }
}

/** Too many requests from one caller in this window; `retry_after_s` becomes Retry-After. */
export class RateLimited extends PortcullisError {
  constructor(message: string, retryAfterS: number) {
    super('rate_limited', 429, message, { retry_after_s: retryAfterS });
  }
}

/** A dependency the answer relies on (audit store, policy engine) failed: fail closed. */
export class Unavailable extends PortcullisError {
  constructor(message: string) {
    super('unavailable', 503, message);
  }
}

/**
 * The console's session cookie came without the proof that the console's own page sent it (its
 * header and `Sec-Fetch-Site: same-origin`): another site riding the cookie, or a script that
 * should send a bearer token instead (docs/console.md).
 */
export class ConsoleCookieRefused extends PortcullisError {
  constructor(missing: string) {
    super('console_cookie_refused', 403, `the console session cookie is accepted only from the console's own pages (${missing}); scripts send "Authorization: Bearer <session token>" instead`);
  }
}
