// Audit failures. Writing is fail-closed: the caller's operation must fail with these.
import { Unavailable } from '../common/errors.ts';

/** The event could not be made durable (store down, disk full, signer failed, log closed). */
export class AuditWriteFailed extends Unavailable {
  constructor(message = 'audit record could not be written', cause?: unknown) {
    super(message);
    if (cause !== undefined) this.cause = cause;
  }
}
