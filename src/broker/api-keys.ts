// The API keys' admin API: every call is `apikey.manage` on the key's identity, decided with Cedar
// before it acts; keys are minted for active identities only, every change audited.
import { InvalidInput, NotFound } from '../common/errors.ts';
import { parseDuration } from '../common/duration.ts';
import type { AuditLog } from '../audit/log.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { Caller, SessionContext } from './types.ts';
import { recordAdminEvent } from './admin-event.ts';
import { checkActingAs } from './identities.ts';
import type { Authorization } from './authorization.ts';
import { opaqueId } from './opaque.ts';

export interface MintApiKeyRequest {
  identity: string;
  ttl: string;
  rotate_after?: string;
  description?: string;
}

export interface ApiKeyAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  apikeys: ApiKeyService;
  identities: IdentityRegistry;
  audit: AuditLog;
  /** May this session write policy (then acting as another identity gains it nothing)? */
  policyWriter?: (s: SessionContext) => Promise<boolean>;
}

export class ApiKeyAdmin {
  readonly #d: ApiKeyAdminDeps;

  constructor(deps: ApiKeyAdminDeps) {
    this.#d = deps;
  }

  #manage(c: Caller, identity: string) {
    return this.#d.authz.requireAllowed(c, 'apikey.manage', { type: 'Identity', id: identity });
  }

  async mint(by: Caller, body: MintApiKeyRequest) {
    await this.#manage(by, body.identity);
    const identity = this.#d.identities.require(body.identity);
    if (identity.status !== 'active') throw new InvalidInput(`identity ${identity.id} is ${identity.status}`, 'identity');
    await checkActingAs(this.#d.identities, by, identity, 'mint an API key for', this.#d.policyWriter);
    const minted = await this.#d.apikeys.mint({
      identityId: identity.id,
      identityKind: identity.kind,
      ttlMs: parseDuration(body.ttl, 'ttl'),
      ...(body.rotate_after !== undefined && { rotationMs: parseDuration(body.rotate_after, 'rotate_after') }),
      ...(body.description !== undefined && { description: body.description }),
    });
    await recordAdminEvent(this.#d.audit, by, 'apikey.minted', { key_id: minted.record.id, expires_at: minted.record.expires_at, rotate_by: minted.record.rotate_by }, identity.id, identity.boundary);
    return { api_key: minted.key, ...minted.record, warning: 'store this key now: it is shown once. API keys are a legacy exception; prefer workload identity federation.' };
  }

  /** Every key (never a secret), or one identity's: `apikey.manage` on that identity, or on `*` for all. */
  async list(c: Caller, identity?: string) {
    await this.#manage(c, identity ?? '*');
    return this.#d.apikeys.list(identity);
  }

  async #owner(id: string): Promise<string> {
    const k = await this.#d.apikeys.get(id);
    if (!k) throw new NotFound(`api key ${id}`);
    return k.identity_id;
  }

  // API keys are listed to apikey.manage only: without it, unknown and forbidden look alike.
  async rotate(by: Caller, id: string) {
    return opaqueId('api key', id, () => false, async () => {
      await this.#manage(by, await this.#owner(id));
      return this.#rotate(by, id);
    });
  }

  async revoke(by: Caller, id: string, reason: string) {
    return opaqueId('api key', id, () => false, async () => {
      await this.#manage(by, await this.#owner(id));
      return this.#revoke(by, id, reason);
    });
  }

  async #rotate(by: SessionContext, id: string) {
    const key = await this.#d.apikeys.get(id);
    const holder = key ? this.#d.identities.get(key.identity_id) : undefined;
    if (holder) await checkActingAs(this.#d.identities, by, holder, 'rotate (and so receive) an API key of', this.#d.policyWriter);
    const rotated = await this.#d.apikeys.rotate(id);
    await recordAdminEvent(this.#d.audit, by, 'apikey.rotated', { key_id: id, new_key_id: rotated.record.id }, rotated.record.identity_id);
    return { api_key: rotated.key, ...rotated.record };
  }

  async #revoke(by: SessionContext, id: string, reason: string) {
    const record = await this.#d.apikeys.revoke(id);
    await recordAdminEvent(this.#d.audit, by, 'apikey.revoked', { key_id: id, reason }, record.identity_id);
    return record;
  }
}
