// Errors specific to the credentials domain; the common ones (InvalidInput, Forbidden, NotFound,
// Conflict, Unavailable) come from common/errors.ts.
import { PortcullisError } from '../common/errors.ts';

/** The target (database, CA…) could not complete the operation. Message never holds a secret. */
export class TargetError extends PortcullisError {
  readonly target: string;
  constructor(target: string, message: string) {
    super('target_error', 502, `target ${target}: ${message}`, { target });
    this.target = target;
  }
}

/** The lease is not in a state that allows the operation (e.g. renewing a revoked lease). */
export class LeaseNotActive extends PortcullisError {
  constructor(leaseId: string, status: string) {
    super('lease_not_active', 409, `lease ${leaseId} is ${status}`, { lease: leaseId, state: status });
  }
}

/** RFC 8693 token exchange refused, with its RFC 6749 §5.2 error code (sent as-is to the client). */
export class TokenExchangeRefused extends PortcullisError {
  readonly oauthError: 'invalid_request' | 'invalid_grant' | 'invalid_scope' | 'invalid_target';
  constructor(oauthError: TokenExchangeRefused['oauthError'], message: string, extra: Record<string, unknown> = {}) {
    super(oauthError, 400, message, extra);
    this.oauthError = oauthError;
  }
}
