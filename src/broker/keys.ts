// The signing keys' admin API: list and rotate (`key.rotate` on the control plane; the old key
// keeps verifying for an overlap). Rotations are audited.
import type { AuditLog } from '../audit/log.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import { recordAdminEvent } from './admin-event.ts';

export interface KeyAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  keyring: Keyring;
  audit: AuditLog;
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };

export class KeyAdmin {
  readonly #d: KeyAdminDeps;

  constructor(deps: KeyAdminDeps) {
    this.#d = deps;
  }

  /** Every signing key: public parts and status. */
  async list(c: Caller) {
    await this.#d.authz.requireAllowed(c, 'key.rotate', CONTROL_PLANE);
    return this.#d.keyring.list();
  }

  /** Rotates a signing key; live tokens keep verifying until they expire. */
  async rotate(by: Caller, purpose: 'session' | 'audit' | 'token') {
    await this.#d.authz.requireAllowed(by, 'key.rotate', CONTROL_PLANE);
    const r = await this.#d.keyring.rotate(purpose);
    await recordAdminEvent(this.#d.audit, by, 'key.rotated', { purpose, kid: r.active.kid, previous: r.previous?.kid ?? null });
    return r;
  }
}
