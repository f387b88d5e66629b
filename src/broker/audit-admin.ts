// The audit trail's admin API: query, export, follow and online verification, each `audit.read`
// on the streams it reads, decided with Cedar before anything is read.
import type { AuditLog, FollowOptions } from '../audit/log.ts';
import { AUDIT_STREAMS } from '../audit/types.ts';
import type { AuditQuery, AuditRecord, AuditStreamName, AuditVerification } from '../audit/types.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';

export interface AuditAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  audit: AuditLog;
  keyring: Keyring;
}

/** A query on one stream. */
export type StreamQuery = AuditQuery & { stream: AuditStreamName };

export class AuditAdmin {
  readonly #d: AuditAdminDeps;

  constructor(deps: AuditAdminDeps) {
    this.#d = deps;
  }

  #read(c: Caller, stream: AuditStreamName) {
    return this.#d.authz.requireAllowed(c, 'audit.read', { type: 'AuditStream', id: stream });
  }

  /** Every stream: hash chain, checkpoints, head; in worker threads (the event loop keeps answering), against the witness when one is configured. */
  async verify(c: Caller): Promise<AuditVerification> {
    for (const s of AUDIT_STREAMS) await this.#read(c, s);
    await this.#d.audit.flush();
    return this.#d.audit.verifyAsync(this.#d.keyring.publicKeyResolver);
  }

  /** Events of one stream, everything appended so far included. */
  async query(c: Caller, q: StreamQuery): Promise<AuditRecord[]> {
    await this.#read(c, q.stream);
    await this.#d.audit.flush();
    return this.#d.audit.query(q);
  }

  /**
   * One stream as NDJSON lines (an export), decided before the first line: the lines come as they
   * are read, so an export of a whole stream is never held in memory at once.
   */
  async exportJsonLines(c: Caller, q: Omit<StreamQuery, 'limit' | 'order'>): Promise<AsyncIterable<string>> {
    await this.#read(c, q.stream);
    await this.#d.audit.flush();
    return this.#d.audit.exportJsonLines(q);
  }

  /** New events of one stream as they are appended, until `signal` aborts. */
  async follow(c: Caller, q: FollowOptions & { stream: AuditStreamName }): Promise<AsyncIterable<AuditRecord>> {
    await this.#read(c, q.stream);
    return this.#d.audit.follow(q);
  }
}
