// Inventory changes made through the API: each is audited, and taking an identity out of service
// ends what it holds.
import type { AuditLog } from '../audit/log.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import type { Identity, IdentityInput, IdentityPatch, IdentityRegistry, IdentityStatus } from '../inventory/identities.ts';
import { checkIdentityId } from '../inventory/identities.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { SessionContext } from './types.ts';
import { recordAdminEvent } from './admin-event.ts';
import type { IdentityBinding } from './identity-binding.ts';

export interface IdentityAdminDeps {
  identities: IdentityRegistry;
  sessions: SessionService;
  credentials: CredentialService;
  apikeys: ApiKeyService;
  audit: AuditLog;
  binding: IdentityBinding;
}

export class IdentityAdmin {
  readonly #d: IdentityAdminDeps;

  constructor(deps: IdentityAdminDeps) {
    this.#d = deps;
  }

  async declare(by: SessionContext, input: IdentityInput & { trusts?: string[] }): Promise<Identity> {
    checkIdentityId(input.id);
    const { trusts, ...rest } = input;
    const identity = this.#d.identities.declare({ ...rest, bound_trusts: this.#d.binding.resolve(input.id, trusts) }, 'api');
    await recordAdminEvent(this.#d.audit, by, 'identity.declared', { owner: identity.owner, kind: identity.kind, environment: identity.environment, trusts: identity.bound_trusts }, identity.id, identity.boundary);
    return identity;
  }

  async update(by: SessionContext, id: string, patch: IdentityPatch): Promise<Identity> {
    const before = this.#d.identities.require(id);
    const after = this.#d.identities.update(id, patch);
    const changed = Object.fromEntries(Object.keys(patch).map((k) => [k, { from: before[k as keyof Identity], to: after[k as keyof Identity] }]));
    await recordAdminEvent(this.#d.audit, by, 'identity.updated', { changed }, id, after.boundary);
    return after;
  }

  /** Suspending or offboarding ends every live session of the identity at once. */
  async setStatus(by: SessionContext, id: string, status: IdentityStatus, reason: string): Promise<Identity> {
    const identity = this.#d.identities.setStatus(id, status);
    if (status !== 'active') {
      this.#d.sessions.revokeIdentity(id);
      await this.#d.credentials.revoke({ identity: id }, { by: by.identity.id, reason: `identity ${status}: ${reason}` });
    }
    if (status === 'offboarded') this.#d.apikeys.revokeAllFor(id, 'identity offboarded');
    await recordAdminEvent(this.#d.audit, by, `identity.${status}`, { reason }, id, identity.boundary);
    return identity;
  }
}
