// Logins and sessions: the one path from a verified proof to a session token (audited either
// way), the check of a bearer token on each call, and revoking sessions (one's own freely,
// anyone else's under `session.revoke`).
import { AuthenticationFailed, InvalidInput } from '../common/errors.ts';
import type { Metrics } from '../common/metrics.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Proof, VerifiedProof } from '../identity/types.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import { checkIdentityId } from '../inventory/identities.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { AccessService } from '../access/index.ts';
import type { Caller, LoginResult, SessionContext } from './types.ts';
import type { Authorization } from './authorization.ts';
import { recordAdminEvent } from './admin-event.ts';
import type { IdentityBinding } from './identity-binding.ts';

/** Proves a login: the verified proof and, for a human sign-in, the teams the provider says. */
export type VerifyLogin = () => Promise<{ proof: VerifiedProof; parents?: EntityUid[] }>;

export interface AuthenticationDeps {
  /** Configured boundaries; an identity registered on first login without one gets the first. */
  boundaries: readonly string[];
  identities: IdentityRegistry;
  sessions: SessionService;
  authenticator: Authenticator;
  access: AccessService;
  audit: AuditLog;
  metrics: Metrics;
  /** Which trust may prove which identity (issue 8.1). */
  binding: IdentityBinding;
  authz: Pick<Authorization, 'requireAllowed'>;
}

export class Authentication {
  readonly #d: AuthenticationDeps;

  constructor(deps: AuthenticationDeps) {
    this.#d = deps;
  }

  /** Verifies a proof, checks the identity may authenticate, issues a session token; audits either way. */
  login(proof: Proof, sourceIp: string): Promise<LoginResult> {
    return this.establish(proof.type, async () => ({ proof: await this.#d.authenticator.authenticate(proof) }), sourceIp);
  }

  /** The one login path: verify, admit (register on first login), issue, audit success or failure. */
  async establish(proofType: string, verify: VerifyLogin, sourceIp: string): Promise<LoginResult> {
    const { identities, sessions, audit, metrics } = this.#d;
    let verified: VerifiedProof | undefined;
    try {
      const { proof: v, parents } = await verify();
      verified = v;
      let identity = await this.#admit(v);
      if (parents) identity = await this.#syncGroups(identity, parents, v.facts.trust);
      const session = await sessions.issue({ identityId: identity.id, facts: v.facts, attributes: v.attributes });
      await identities.touchAuthenticated(identity.id);
      await audit.append({
        stream: 'authn',
        type: 'authn.success',
        actor: identity.id,
        boundary: identity.boundary,
        payload: { method: v.facts.method, trust: v.facts.trust, jti: session.jti, expires_at: new Date(session.expiresAt).toISOString(), source_ip: sourceIp, ...v.evidence },
      });
      metrics.authn.inc({ result: 'success', reason: 'ok', trust: v.facts.trust });
      return { session_token: session.token, token_type: 'Bearer', expires_at: new Date(session.expiresAt).toISOString(), identity: identities.require(identity.id) };
    } catch (err) {
      if (!(err instanceof AuthenticationFailed)) throw err;
      await audit.append({
        stream: 'authn',
        type: 'authn.failure',
        actor: verified?.identityId ?? 'anonymous',
        payload: { reason: err.reason, detail: err.detail, proof: proofType, source_ip: sourceIp, ...(verified && { trust: verified.facts.trust, ...verified.evidence }) },
      });
      metrics.authn.inc({ result: 'failure', reason: err.reason, trust: verified?.facts.trust ?? 'unknown' });
      throw err;
    }
  }

  /** Registers an unknown identity on first federated login; refuses suspended and offboarded ones. */
  async #admit(v: VerifiedProof): Promise<Identity> {
    this.#d.binding.checkProof(v);
    // As stored now: another replica may have suspended it a moment ago.
    let identity = await this.#d.identities.current(v.identityId);
    if (identity) this.#d.binding.checkIdentity(v, identity);
    if (!identity) {
      const boundary = v.defaults.boundary ?? this.#d.boundaries[0]!;
      const r = await this.#d.identities.register(
        {
          id: v.identityId,
          kind: v.kind,
          boundary,
          environment: v.defaults.environment ?? 'default',
          ...(v.defaults.owner !== undefined && { owner: v.defaults.owner }),
        },
        v.facts.trust,
      );
      identity = r.identity;
      // Another login (on this replica or another) registered it first: it is bound to whoever did.
      if (!r.created) this.#d.binding.checkIdentity(v, identity);
      else await this.#d.audit.append({ stream: 'admin', type: 'identity.registered', actor: 'system', subject: identity.id, boundary, payload: { trust: v.facts.trust, owner: identity.owner } });
    }
    if (identity.status !== 'active') throw new AuthenticationFailed(`identity_${identity.status}`, `identity ${identity.id} is ${identity.status}`);
    return identity;
  }

  /**
   * The identity provider is the source of truth for a human's teams: each sign-in replaces the
   * `Team` parents with the groups in the ID token (roles and other parents stay).
   */
  async #syncGroups(identity: Identity, teams: EntityUid[], trust: string): Promise<Identity> {
    const parents = [...identity.parents.filter((p) => p.type !== 'Team'), ...teams];
    if (JSON.stringify(parents) === JSON.stringify(identity.parents)) return identity;
    await this.#d.audit.append({ stream: 'admin', type: 'identity.updated', actor: `trust:${trust}`, subject: identity.id, boundary: identity.boundary, payload: { changed: { parents: { from: identity.parents, to: parents } }, source: 'identity provider groups' } });
    return this.#d.identities.update(identity.id, { parents });
  }

  /** Resolves a bearer session token to the caller; refuses revoked tokens and inactive identities. */
  async sessionFromToken(token: string, sourceIp: string): Promise<SessionContext> {
    try {
      const s = await this.#d.sessions.verify(token);
      // Not in memory: on a shared store another replica may have registered it a moment ago
      // (its notice still on the way), so read it through before calling it unknown.
      const identity = this.#d.identities.get(s.identityId) ?? (await this.#d.identities.current(s.identityId));
      if (!identity) throw new AuthenticationFailed('unknown_identity', `identity ${s.identityId} no longer exists`);
      if (identity.status !== 'active') throw new AuthenticationFailed(`identity_${identity.status}`, `identity ${identity.id} is ${identity.status}`);
      return { identity, authn: s.facts, claims: s.claims.attrs ?? {}, jti: s.jti, expiresAt: s.claims.exp * 1000 };
    } catch (err) {
      if (err instanceof AuthenticationFailed) {
        await this.#d.audit.append({ stream: 'authn', type: 'session.rejected', actor: 'anonymous', payload: { reason: err.reason, detail: err.detail, source_ip: sourceIp } });
        this.#d.metrics.authn.inc({ result: 'failure', reason: err.reason, trust: 'session' });
      }
      throw err;
    }
  }

  /**
   * An API key presented directly as the bearer (AuthZEN PEPs, docs/authzen.md): verified on each
   * call (a revoked or expired key is refused at once), no session issued and no authn.success per
   * call — the decisions it asks for name the key (`session: apikey:<id>`). A refusal is audited
   * like a failed login.
   */
  async callerFromApiKey(key: string, sourceIp: string): Promise<SessionContext> {
    let verified: VerifiedProof | undefined;
    try {
      const v = await this.#d.authenticator.authenticate({ type: 'api_key', key });
      verified = v;
      this.#d.binding.checkProof(v);
      const identity = this.#d.identities.get(v.identityId) ?? (await this.#d.identities.current(v.identityId));
      if (!identity) throw new AuthenticationFailed('unknown_identity', `identity ${v.identityId} no longer exists`);
      this.#d.binding.checkIdentity(v, identity);
      if (identity.status !== 'active') throw new AuthenticationFailed(`identity_${identity.status}`, `identity ${identity.id} is ${identity.status}`);
      return { identity, authn: v.facts, claims: v.attributes, jti: `apikey:${String(v.attributes.api_key_id)}`, expiresAt: Date.now() + 60_000 };
    } catch (err) {
      if (err instanceof AuthenticationFailed) {
        await this.#d.audit.append({
          stream: 'authn',
          type: 'authn.failure',
          actor: verified?.identityId ?? 'anonymous',
          payload: { reason: err.reason, detail: err.detail, proof: 'api_key', bearer: true, source_ip: sourceIp, ...(verified && { trust: verified.facts.trust, ...verified.evidence }) },
        });
        this.#d.metrics.authn.inc({ result: 'failure', reason: err.reason, trust: verified?.facts.trust ?? 'unknown' });
      }
      throw err;
    }
  }

  /** One session (by jti) or every live session of an identity; anything but the caller's own session is `session.revoke` on the identity. */
  async revokeSessions(by: Caller, what: { jti?: string; identity?: string; reason?: string }): Promise<{ revoked: string }> {
    if ((what.jti === undefined) === (what.identity === undefined)) throw new InvalidInput('send exactly one of "jti" or "identity"', 'body');
    if (!(what.jti !== undefined && what.jti === by.jti)) {
      await this.#d.authz.requireAllowed(by, 'session.revoke', { type: 'Identity', id: what.identity ?? by.identity.id });
    }
    if (what.jti !== undefined) {
      await this.#d.sessions.revokeJti(what.jti, { identityId: by.identity.id });
      // Logging out ends the caller's session-bound grants (and the leases under them).
      if (what.jti === by.jti) await this.#d.access.onLogout(by.identity.id);
    } else {
      checkIdentityId(what.identity, 'identity');
      await this.#d.sessions.revokeIdentity(what.identity!);
    }
    const revoked = what.jti !== undefined ? `session ${what.jti}` : `every session of ${what.identity}`;
    await recordAdminEvent(this.#d.audit, by, 'session.revoked', { ...(what.jti !== undefined ? { jti: what.jti } : { identity: what.identity }), reason: what.reason ?? '' }, what.identity);
    return { revoked };
  }
}
