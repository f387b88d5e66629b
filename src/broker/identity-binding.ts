// Binding (issue 8.1, docs/identity.md): every identity is bound to the trust(s) allowed to prove
// it. This part checks each federated login against the binding, binds identities stored before
// binding existed (at start, from the audit trail), and lets an administrator (re)bind one.
import { InvalidInput } from '../common/errors.ts';
import type { AuditLog } from '../audit/log.ts';
import type { TrustConfig } from '../config/types.ts';
import { PORTCULLIS_BUNDLE } from '../config/load.ts';
import type { VerifiedProof } from '../identity/types.ts';
import type { Producer } from '../identity/binding.ts';
import { checkProducedId, implicitBinding, producerOf, producersOf } from '../identity/binding.ts';
import { fail } from '../identity/reasons.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import { checkIdentityId } from '../inventory/identities.ts';
import type { SessionContext } from './types.ts';
import { recordAdminEvent } from './admin-event.ts';
import { checkActingAs } from './identities.ts';

export interface IdentityBindingDeps {
  trusts: readonly TrustConfig[];
  identities: IdentityRegistry;
  audit: AuditLog;
  log: (msg: string) => void;
  /** May this session write policy (then acting as another identity gains it nothing)? */
  policyWriter?: (s: SessionContext) => Promise<boolean>;
}

export class IdentityBinding {
  readonly #d: IdentityBindingDeps;
  readonly producers: readonly Producer[];

  constructor(deps: IdentityBindingDeps) {
    this.#d = deps;
    this.producers = deps.trusts.map((t) => producerOf(t, PORTCULLIS_BUNDLE)).filter((p) => p !== undefined);
  }

  /** Before lookup: a federated proof never yields a reserved id or an id of another kind. */
  checkProof(v: VerifiedProof): void {
    if (v.issued) return;
    checkProducedId(v);
    // The id must be one its trust's template can yield under the value rules (no ":", "/" only
    // in the last placeholder): what makes "which trust can produce this id" decidable.
    const p = this.producers.find((x) => x.trust === v.facts.trust);
    if (p && producersOf(v.identityId, [p]).length === 0) throw fail('bad_identity_claim', `identity ${v.identityId} is not one trust ${p.trust} can yield (no ":" in a claim; "/" only in the last one)`);
  }

  /** After lookup: the identity must be of the proof's kind and bound to the proving trust. */
  checkIdentity(v: VerifiedProof, identity: Identity): void {
    if (identity.kind !== v.kind) throw fail('identity_kind_mismatch', `identity ${identity.id} is a ${identity.kind}; trust ${v.facts.trust} proves ${v.kind} identities`);
    if (v.issued) return; // the credential was issued for exactly this identity
    if (identity.bound_trusts === null) {
      throw fail('identity_unbound', `identity ${identity.id} is not bound to any trust yet; an administrator must bind it (portcullis identities bind)`);
    }
    if (!identity.bound_trusts.includes(v.facts.trust)) {
      throw fail('identity_trust_mismatch', `identity ${identity.id} is bound to ${identity.bound_trusts.length > 0 ? `trust(s) ${identity.bound_trusts.join(', ')}` : 'no trust (Portcullis-issued credentials only)'}, not ${v.facts.trust}`);
    }
  }

  /** The binding of an identity declared through the API (same rules as `identities:` in the config). */
  resolve(id: string, trusts: string[] | undefined): string[] {
    if (trusts === undefined) {
      const b = implicitBinding(id, this.producers);
      if ('ambiguous' in b) throw new InvalidInput(`trusts ${b.ambiguous.join(' and ')} can both produce identity ${id}: name the trust(s) allowed to prove it in "trusts"`, 'trusts');
      return b.trusts;
    }
    trusts.forEach((name, i) => {
      const p = this.producers.find((x) => x.trust === name);
      if (!this.#d.trusts.some((t) => t.name === name)) throw new InvalidInput(`trusts[${i}]: no trust named "${name}"`, `trusts[${i}]`);
      if (!p || producersOf(id, [p]).length === 0) throw new InvalidInput(`trusts[${i}]: trust ${name} cannot produce identity ${id}`, `trusts[${i}]`);
    });
    return [...new Set(trusts)].sort();
  }

  /** An administrator binds an identity (audited; the caller was authorized by Cedar). */
  async bind(by: SessionContext, id: string, trusts: string[]): Promise<Identity> {
    checkIdentityId(id);
    const before = this.#d.identities.require(id);
    await checkActingAs(this.#d.identities, by, before, 'bind to trusts', this.#d.policyWriter);
    const resolved = this.resolve(id, trusts);
    const after = await this.#d.identities.bind(id, resolved);
    await recordAdminEvent(this.#d.audit, by, 'identity.bound', { from: before.bound_trusts, to: after.bound_trusts }, id, after.boundary);
    return after;
  }

  /**
   * Binds every identity stored before binding existed (bound_trusts NULL): a registered one to
   * the trust of its first login (the registry's `trust`, else the audit trail: `identity.registered`
   * in the admin stream, the first `authn.success` in the authn stream), a declared one to the one
   * trust that can produce it. Those it cannot bind stay refused and are listed. Returns their ids.
   */
  async migrate(): Promise<string[]> {
    const unbound: string[] = [];
    for (const identity of this.#d.identities.list()) {
      if (identity.bound_trusts !== null) continue;
      const trust = await this.#infer(identity);
      if (trust === undefined) {
        unbound.push(identity.id);
        continue;
      }
      await this.#d.identities.bind(identity.id, trust.trusts);
      await this.#d.audit.append({ stream: 'admin', type: 'identity.bound', actor: 'system', subject: identity.id, boundary: identity.boundary, payload: { from: null, to: trust.trusts, source: trust.source } });
    }
    if (unbound.length > 0) {
      this.#d.log(`warning: ${unbound.length} identit${unbound.length === 1 ? 'y is' : 'ies are'} not bound to a trust and cannot log in through one until an administrator binds them (portcullis identities bind <id> --trust <name>): ${unbound.join(', ')}`);
    }
    return unbound;
  }

  async #infer(identity: Identity): Promise<{ trusts: string[]; source: string } | undefined> {
    const producers = this.producers.map((p) => p.trust);
    if (identity.trust !== null) return { trusts: [identity.trust], source: 'registering trust' };
    const history = await this.#firstTrust(identity.id);
    if (identity.source === 'trust') return history !== undefined ? { trusts: [history], source: 'audit trail' } : undefined;
    const b = implicitBinding(identity.id, this.producers);
    if (!('ambiguous' in b)) return { trusts: b.trusts, source: b.trusts.length > 0 ? 'the one trust that can produce it' : 'no trust can produce it' };
    // Several can: the one that proved it first, if the audit trail knows.
    if (history !== undefined && producers.includes(history) && b.ambiguous.includes(history)) return { trusts: [history], source: 'audit trail' };
    return undefined;
  }

  /** The trust of the first registration or successful federated login of an id, from the audit streams. */
  async #firstTrust(id: string): Promise<string | undefined> {
    const registered = (await this.#d.audit.query({ stream: 'admin', type: 'identity.registered', subject: id, order: 'asc', limit: 1 }))[0];
    const t = registered?.payload.trust;
    if (typeof t === 'string') return t;
    for (const e of await this.#d.audit.query({ stream: 'authn', type: 'authn.success', actor: id, order: 'asc', limit: 1000 })) {
      const trust = e.payload.trust;
      if (typeof trust === 'string' && e.payload.method !== 'api-key' && e.payload.method !== 'bootstrap') return trust;
    }
    return undefined;
  }
}
