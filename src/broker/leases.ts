// The leases' admin API: list, renew, revoke by selector. A caller acts on its own leases freely;
// another's need `lease.read` / `lease.renew` / `lease.revoke`, and a lease it may not see
// answers like an unknown one.
import type { AuditLog } from '../audit/log.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { CredentialService, Issued, Lease } from '../credentials/index.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import { opaqueId } from './opaque.ts';
import { revokeBySelector, type RevocationResult } from './revocation.ts';

export interface LeaseAdminDeps {
  authz: Pick<Authorization, 'requireAllowed' | 'allows'>;
  credentials: CredentialService;
  identities: IdentityRegistry;
  sessions: SessionService;
  audit: AuditLog;
}

export interface LeaseQuery {
  /** Only the caller's own leases (no permission needed); `identity` is then ignored. */
  mine?: boolean;
  identity?: string;
  target?: string;
  status?: Lease['status'];
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };

export class LeaseAdmin {
  readonly #d: LeaseAdminDeps;

  constructor(deps: LeaseAdminDeps) {
    this.#d = deps;
  }

  async #mine(c: Caller, id: string): Promise<boolean> {
    return (await this.#d.credentials.get(id)).identityId === c.identity.id;
  }

  /** Who may see that a lease exists: its holder, and whoever may read leases. */
  async #readable(c: Caller, id: string): Promise<boolean> {
    return (await this.#mine(c, id)) || this.#d.authz.allows(c, 'lease.read', CONTROL_PLANE);
  }

  /** The caller's own leases (`mine`), or by identity / target / status (`lease.read`). */
  async list(c: Caller, q: LeaseQuery = {}): Promise<Lease[]> {
    if (q.mine !== true) await this.#d.authz.requireAllowed(c, 'lease.read', CONTROL_PLANE);
    const identity = q.mine === true ? c.identity.id : q.identity;
    return this.#d.credentials.list({
      ...(identity !== undefined && { identityId: identity }),
      ...(q.target !== undefined && { target: q.target }),
      ...(q.status !== undefined && { status: q.status }),
    });
  }

  /** Renews a lease, decided again against current policy; another's needs `lease.renew`. */
  async renew(c: Caller, id: string, ttl?: string): Promise<Issued> {
    return opaqueId('lease', id, () => this.#readable(c, id), async () => {
      if (!(await this.#mine(c, id))) await this.#d.authz.requireAllowed(c, 'lease.renew', CONTROL_PLANE);
      return this.#d.credentials.renew(id, { ...(ttl !== undefined && { ttl }), actor: c.identity.id });
    });
  }

  /**
   * Revokes the leases and session tokens a selector matches (see revocation.ts). The caller's
   * own lease needs no permission; anything else needs `lease.revoke`.
   */
  async revoke(c: Caller, selector: Record<string, unknown>, reason: string): Promise<RevocationResult> {
    const lease = selector.lease;
    const own = async () => typeof lease === 'string' && (await this.#mine(c, lease));
    const run = async () => {
      if (!(await own())) await this.#d.authz.requireAllowed(c, 'lease.revoke', CONTROL_PLANE);
      return revokeBySelector(this.#d, c, selector, reason);
    };
    if (typeof lease !== 'string') return run();
    return opaqueId('lease', lease, () => this.#readable(c, lease), run);
  }
}
