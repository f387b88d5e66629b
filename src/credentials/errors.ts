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
    super('lease_not_active', 409, `lease ${leaseId} is ${status}`, { lease: leaseId, status });
  }
}
