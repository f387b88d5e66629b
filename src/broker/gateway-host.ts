// The broker's side of the session gateways (docs/gateways.md): the GatewayHost a gateway is
// given — proofs, decisions, the upstream lease, the session stream — and the runner that builds
// the configured gateways, starts and stops them with the server, and feeds the live-session
// registry its revocation events (this replica's admin records, other replicas' notices).
import { X509Certificate } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose';
import { ASSIGNMENT_CLAIM, ASSIGNMENT_ID_RE, type Assignment, type AssignmentCalls, type AssignmentReader } from '../agents/types.ts';
import { AuthenticationFailed, Forbidden, NotFound } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { Metrics } from '../common/metrics.ts';
import type { PortcullisConfig } from '../config/types.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuditEventInput, AuditRecord } from '../audit/types.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import { looksLikeApiKey } from '../identity/apikey-format.ts';
import type { CredentialService } from '../credentials/index.ts';
import { actorsOf, storedFacts, verifyAccessToken } from '../credentials/index.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { SshCa } from '../credentials/issuers/ssh/ssh.ts';
import { parseUserCertificate } from '../credentials/issuers/ssh/ssh-cert.ts';
import type { AccessService } from '../access/index.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { ChangeFeed } from '../store/ports.ts';
import type { Gateway, GatewayApprovalRequest, GatewayHost, GatewayDecision, GatewayDecisionRequest, GatewayLease, GatewayLeaseRequest, GatewayPrincipal, GatewayProof } from '../gateways/index.ts';
import { SessionRegistry, gatewayKind, type SessionHangs } from '../gateways/index.ts';
import type { GrantsFor } from './authorization.ts';
import { svidLease } from './trusts.ts';
import type { Authentication } from './authentication.ts';
import type { CredentialIssuance } from './credential-issuance.ts';
import type { SessionContext } from './types.ts';

export interface GatewayHostDeps {
  config: PortcullisConfig;
  clock: Clock;
  audit: AuditLog;
  identities: IdentityRegistry;
  sessions: SessionService;
  apikeys: ApiKeyService;
  credentials: CredentialService;
  access: AccessService;
  decisions: DecisionPoint;
  grantsFor: GrantsFor;
  metrics: Metrics;
  sshCa: SshCa;
  spiffeCa: { trustPem(): string };
  changes: ChangeFeed;
  authn: Authentication;
  issuance: CredentialIssuance;
  log: (msg: string) => void;
  /** `iss` of access tokens, and the keys they are verified with (the MCP gateway's bearer proofs). */
  issuer: string;
  publicJwks(): { keys: unknown[] };
  agents: AssignmentReader & AssignmentCalls;
}

/** Who the broker proved, kept beside the principal handed to the gateway (which cannot forge one). */
interface Proved {
  session: SessionContext;
  sourceIp: string;
  /** `iat` of the login session (s), when there is one. */
  issuedAt?: number;
}

/** The system actor that revokes a gateway's lease when its session ends. */
const GATEWAY_ACTOR = 'system:gateway';

export class BrokerGatewayHost implements GatewayHost {
  readonly #d: GatewayHostDeps;
  readonly #proved = new WeakMap<GatewayPrincipal, Proved>();
  readonly sessions: SessionRegistry;
  #jwks: { json: string; keys: JWTVerifyGetKey } | undefined;
  #approvals: { version: number; index: Map<string, string> } | undefined;

  constructor(deps: GatewayHostDeps) {
    this.#d = deps;
    this.sessions = new SessionRegistry({
      revalidate: (h) => this.#revalidate(h),
      changes: deps.changes,
      beforePass: () => deps.sessions.refresh(),
      now: () => deps.clock.now(),
      log: deps.log,
    });
  }

  async authenticate(proof: GatewayProof, sourceIp: string): Promise<GatewayPrincipal> {
    if (proof.type === 'ssh-certificate') return this.#sshCertificate(proof.certificate, sourceIp);
    if (proof.type === 'x509') return this.#svid(proof.chain, sourceIp);
    if (proof.type === 'bearer') return this.#bearer(proof.token, proof.audience, sourceIp);
    const secret = proof.secret;
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > 8192) throw new AuthenticationFailed('malformed', 'the secret is empty or too long');
    let token = secret;
    if (looksLikeApiKey(secret)) {
      // An API key logs in like POST /v1/login (audited); the gateway session hangs on that login.
      token = (await this.#d.authn.login({ type: 'api_key', key: secret }, sourceIp)).session_token;
    }
    const session = await this.#d.authn.sessionFromToken(token, sourceIp);
    const apiKeyId = token !== secret && typeof session.claims.api_key_id === 'string' ? session.claims.api_key_id : undefined;
    // Its issue time, for identity-wide revocations (cached: the token was just verified).
    const issuedAt = (await this.#d.sessions.verify(token)).claims.iat;
    const p: GatewayPrincipal = Object.freeze({
      identityId: session.identity.id,
      kind: session.identity.kind,
      boundary: session.identity.boundary,
      method: session.authn.method,
      trust: session.authn.trust,
      jti: session.jti,
      ...(apiKeyId !== undefined && { apiKeyId }),
      sourceIp,
    });
    this.#proved.set(p, { session, sourceIp, issuedAt });
    return p;
  }

  /**
   * An X.509-SVID presented over TLS: logged in like mTLS to the API (the spiffe trusts verify it,
   * audited); a session on it also hangs on the SVID's lease when Portcullis issued it.
   */
  async #svid(chain: Uint8Array[], sourceIp: string): Promise<GatewayPrincipal> {
    if (!Array.isArray(chain) || chain.length === 0 || chain.length > 10) throw new AuthenticationFailed('malformed', 'no usable certificate chain');
    const token = (await this.#d.authn.login({ type: 'x509', chain }, sourceIp)).session_token;
    const session = await this.#d.authn.sessionFromToken(token, sourceIp);
    const issuedAt = (await this.#d.sessions.verify(token)).claims.iat;
    let leaseId: string | undefined;
    try {
      const lease = await svidLease(this.#d.credentials, new X509Certificate(chain[0]!).serialNumber);
      if (lease && lease.identityId === session.identity.id) leaseId = lease.id;
    } catch {}
    const p: GatewayPrincipal = Object.freeze({
      identityId: session.identity.id,
      kind: session.identity.kind,
      boundary: session.identity.boundary,
      method: session.authn.method,
      trust: session.authn.trust,
      jti: session.jti,
      ...(leaseId !== undefined && { proofLeaseId: leaseId }),
      sourceIp,
    });
    this.#proved.set(p, { session, sourceIp, issuedAt });
    return p;
  }

  /**
   * An access token Portcullis issued (RFC 9068), for `audience` only: signature, issuer, expiry,
   * its lease still active, its subject and every actor of its `act` chain active (authn audited).
   * The principal is the subject; the chain, the acting agent's boundary and the assignment ride along.
   */
  async #bearer(token: string, audience: string, sourceIp: string): Promise<GatewayPrincipal> {
    const { audit, credentials, identities, clock } = this.#d;
    const fail = async (reason: string, detail: string): Promise<never> => {
      await audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason, detail: detail.slice(0, 300), proof: 'access-token', audience: audience.slice(0, 300), source_ip: sourceIp } });
      throw new AuthenticationFailed(reason, detail);
    };
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192) return fail('malformed', 'the access token is empty or too long');
    let v: Awaited<ReturnType<typeof verifyAccessToken>>;
    try {
      v = await verifyAccessToken(token, this.#keys(), { issuer: this.#d.issuer, audience, currentDate: new Date(clock.now()) });
    } catch (err) {
      return fail('invalid_token', (err as Error).message);
    }
    const { active, lease } = await credentials.introspect('api', v.jti);
    if (!active || !lease || lease.identityId !== v.sub) return fail('revoked', 'the access token has been revoked or has expired');
    const identity = await identities.current(v.sub);
    if (!identity || identity.status !== 'active') return fail(`identity_${identity?.status ?? 'unknown'}`, `identity ${v.sub} is not active`);
    const actors = actorsOf(v.act);
    for (const a of actors) {
      const actor = await identities.current(a);
      if (!actor || actor.status !== 'active') return fail(`actor_${actor?.status ?? 'unknown'}`, `actor ${a} is not active`);
    }
    const asg = v.claims[ASSIGNMENT_CLAIM];
    if (asg !== undefined && (typeof asg !== 'string' || !ASSIGNMENT_ID_RE.test(asg))) return fail('invalid_token', `claim ${ASSIGNMENT_CLAIM} is not an assignment id`);
    const stored = storedFacts(lease).session.authn as AuthnFacts | undefined;
    const authn: AuthnFacts = stored ?? { method: 'api-key', trust: 'access-token', mfa: false, assurance: 'low', auth_time: Number(v.claims.iat) };
    await audit.append({
      stream: 'authn',
      type: 'authn.success',
      actor: identity.id,
      boundary: identity.boundary,
      payload: { method: 'access-token', trust: authn.trust, lease: lease.id, audience, actors, ...(asg !== undefined && { assignment: asg }), source_ip: sourceIp },
    });
    const session: SessionContext = { identity, authn, claims: {}, jti: `at:${v.jti}`, expiresAt: Number(v.claims.exp) * 1000 };
    const actorBoundary = actors.length > 0 ? identities.get(actors[0]!)?.boundary : undefined;
    const p: GatewayPrincipal = Object.freeze({
      identityId: identity.id,
      kind: identity.kind,
      boundary: identity.boundary,
      method: 'access-token',
      trust: authn.trust,
      proofLeaseId: lease.id,
      ...(actors.length > 0 && { actors: Object.freeze(actors) }),
      ...(actorBoundary !== undefined && { actorBoundary }),
      ...(asg !== undefined && { assignmentId: asg }),
      sourceIp,
    });
    this.#proved.set(p, { session, sourceIp });
    return p;
  }

  /** The broker's public JWKS as a key resolver, rebuilt when the keys change (rotation). */
  #keys(): JWTVerifyGetKey {
    const jwks = this.#d.publicJwks();
    const json = JSON.stringify(jwks.keys);
    if (this.#jwks?.json !== json) this.#jwks = { json, keys: createLocalJWKSet(jwks as { keys: JWK[] }) };
    return this.#jwks.keys;
  }

  issuer(): string {
    return this.#d.issuer;
  }

  /** `@approval("…")` of each active policy, by id (read once per policy version). */
  #approvalIndex(): Map<string, string> {
    const v = this.#d.decisions.version?.version ?? -1;
    if (this.#approvals?.version === v) return this.#approvals.index;
    const index = new Map<string, string>();
    for (const p of this.#d.decisions.policies) {
      const r = cedar.policyToJson(p.text);
      if (r.type !== 'success') continue;
      const a = (r.json as { annotations?: Record<string, string | null> }).annotations?.approval;
      if (typeof a === 'string' && a.trim() !== '') index.set(p.id, a.trim());
    }
    this.#approvals = { version: v, index };
    return index;
  }

  /** An allow any of whose permits asks approval; a deny all of whose forbids do. */
  #approvalFor(d: { decision: 'allow' | 'deny'; reasons: readonly string[] }): string | undefined {
    if (d.reasons.length === 0) return undefined;
    const index = this.#approvalIndex();
    if (index.size === 0) return undefined;
    if (d.decision === 'allow') return d.reasons.map((r) => index.get(r)).find((a) => a !== undefined);
    const named = d.reasons.map((r) => index.get(r));
    return named.every((a) => a !== undefined) ? named[0] : undefined;
  }

  async requestApproval(who: GatewayPrincipal, req: GatewayApprovalRequest): Promise<{ id: string }> {
    const { session, sourceIp } = this.#who(who);
    const r = await this.#d.access.createRequest(
      { id: session.identity.id, authn: session.authn, sessionId: session.jti, sourceIp },
      { target: { kind: 'resource', resource: req.resource, actions: [req.action] }, duration_ms: 60_000, reason: req.reason },
    );
    return { id: r.id };
  }

  async approvalStatus(id: string, approver: string): Promise<'pending' | 'approved' | 'denied' | 'expired'> {
    const r = await this.#d.access.requests.get(id);
    if (r.status === 'pending') return 'pending';
    if (r.status === 'expired') return 'expired';
    if (r.status !== 'approved') return 'denied';
    // Approved by someone allowed to, but the policy named this human.
    return r.reviews.some((v) => v.reviewer === approver && v.verdict === 'approve') ? 'approved' : 'denied';
  }

  async cancelApproval(who: GatewayPrincipal, id: string, reason: string): Promise<void> {
    const { session, sourceIp } = this.#who(who);
    await this.#d.access.requests.cancel({ id: session.identity.id, authn: session.authn, sessionId: session.jti, sourceIp }, id, reason);
  }

  clientCaPem(): string {
    return this.#d.spiffeCa.trustPem();
  }

  /** A Portcullis-issued user certificate: our CA's signature, in its validity window, its lease active. */
  async #sshCertificate(line: string, sourceIp: string): Promise<GatewayPrincipal> {
    const { audit, credentials, identities, clock } = this.#d;
    const fail = async (reason: string, detail: string): Promise<never> => {
      await audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason, detail, proof: 'ssh-certificate', source_ip: sourceIp } });
      throw new AuthenticationFailed(reason, detail);
    };
    if (typeof line !== 'string' || line.length > 16_384) return fail('malformed', 'not an OpenSSH certificate line');
    let cert: ReturnType<typeof parseUserCertificate>;
    try {
      // parseUserCertificate derives the public key itself (createPublicKey of a public KeyObject throws).
      cert = parseUserCertificate(line, this.#d.sshCa.privateKey);
    } catch {
      return fail('malformed', 'not an OpenSSH certificate');
    }
    if (!cert.signatureValid) return fail('bad_signature', 'the certificate is not signed by the Portcullis SSH CA');
    if (cert.certType !== 1) return fail('not_user_certificate', 'a host certificate is no user proof');
    const now = Math.floor(clock.now() / 1000);
    if (now < cert.validAfter || now >= cert.validBefore) return fail('expired', `valid from ${cert.validAfter} to ${cert.validBefore}, now ${now}`);
    const { active, lease } = await credentials.introspect('ssh', cert.serial.toString());
    if (!active || !lease) return fail('revoked', `the lease of certificate serial ${cert.serial} is not active`);
    const identity = await identities.current(lease.identityId);
    if (!identity || identity.status !== 'active') return fail(`identity_${identity?.status ?? 'unknown'}`, `identity ${lease.identityId} is not active`);
    const authn = { method: 'ssh-certificate' as const, trust: 'portcullis-ssh-ca', mfa: false, assurance: 'high' as const, auth_time: cert.validAfter };
    await audit.append({
      stream: 'authn',
      type: 'authn.success',
      actor: identity.id,
      boundary: identity.boundary,
      payload: { method: authn.method, trust: authn.trust, lease: lease.id, serial: cert.serial.toString(), source_ip: sourceIp },
    });
    const session: SessionContext = { identity, authn, claims: {}, jti: `ssh-cert:${cert.serial}`, expiresAt: cert.validBefore * 1000 };
    const p: GatewayPrincipal = Object.freeze({
      identityId: identity.id,
      kind: identity.kind,
      boundary: identity.boundary,
      method: authn.method,
      trust: authn.trust,
      proofLeaseId: lease.id,
      principals: Object.freeze([...cert.principals]),
      sourceIp,
    });
    this.#proved.set(p, { session, sourceIp });
    return p;
  }

  #who(p: GatewayPrincipal): Proved {
    const w = this.#proved.get(p);
    if (!w) throw new Forbidden('not a principal this broker proved');
    return w;
  }

  async decide(who: GatewayPrincipal, req: GatewayDecisionRequest): Promise<GatewayDecision> {
    const { session, sourceIp } = this.#who(who);
    // The identity as this replica knows it now (a suspension reaches it through the registry's notice).
    const identity = this.#d.identities.get(session.identity.id) ?? session.identity;
    const started = performance.now();
    const input = {
      ...(await this.#d.grantsFor(identity, req.resource, req.action)),
      claims: session.claims,
      authn: session.authn,
      sessionId: session.jti,
      sourceIp,
      action: req.action,
      resource: req.resource,
      purpose: req.purpose ?? {},
      ...(who.actors !== undefined && { delegation: { depth: who.actors.length, actors: [...who.actors] } }),
      ...(req.context !== undefined && { extra: req.context }),
      ...(req.entities !== undefined && { resourceEntities: req.entities }),
    };
    let decision: Awaited<ReturnType<DecisionPoint['decide']>>;
    let recorded: Promise<void>;
    let record: () => Promise<void>;
    if (req.deferRecord) {
      // The authz record is appended when the gateway asks (with its own record: one group commit).
      const later = this.#d.decisions.decideLater(input);
      decision = later.decision;
      const { promise, resolve } = Promise.withResolvers<void>();
      recorded = promise;
      record = () => {
        resolve(later.append());
        return recorded;
      };
    } else {
      ({ decision, recorded } = this.#d.decisions.decideDeferred(input));
      record = () => recorded;
    }
    recorded.catch(() => {}); // handled by the gateway (fail closed); never an unhandled rejection
    this.#d.metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    this.#d.metrics.decisions.inc({ decision: decision.decision });
    const d = identity.status === 'active' ? decision.decision : 'deny';
    const approval = this.#approvalFor(decision);
    return { decision: d, decision_id: decision.decision_id, reasons: decision.reasons, policy_version: decision.policy_version, recorded, record, ...(approval !== undefined && d === decision.decision && { approval }) };
  }

  policyVersion(): number | undefined {
    return this.#d.decisions.version?.version;
  }

  async issueLease(who: GatewayPrincipal, req: GatewayLeaseRequest): Promise<GatewayLease> {
    const { session, sourceIp } = this.#who(who);
    const issued = await this.#d.issuance.issue(
      session,
      { ...req.fields, target: req.target, reason: req.reason, ...(req.permission !== undefined && { permission: req.permission }), ...(req.ttlMs !== undefined && { ttl: `${Math.max(1, Math.floor(req.ttlMs / 1000))}s` }) },
      sourceIp,
    );
    const l = issued.lease;
    return { id: l.id, expiresAt: l.expiresAt, ...(l.grantId !== null && { grantId: l.grantId }), credential: issued.credential };
  }

  async refused(proof: GatewayProof['type'], reason: string, detail: string, sourceIp: string): Promise<void> {
    await this.#d.audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason: reason.slice(0, 64), detail: detail.slice(0, 300), proof, source_ip: sourceIp } });
  }

  async revokeLease(leaseId: string, reason: string): Promise<void> {
    const out = await this.#d.credentials.revokeLease(leaseId, { by: GATEWAY_ACTOR, reason });
    if (out.error !== undefined) this.#d.log(`gateway: revoking lease ${leaseId} failed: ${out.error}`);
  }

  record(event: Omit<AuditEventInput, 'stream'>): Promise<AuditRecord> {
    return this.#d.audit.append({ ...event, stream: 'session' });
  }

  expectRecord(): () => void {
    return this.#d.audit.expect();
  }

  /** An agent assignment (docs/agents.md), its status as of now (`expired` past its end). */
  assignment(id: string): Promise<Assignment | undefined> {
    return this.#d.agents.get(id);
  }

  /** Calls counted per assignment (docs/agents.md "Budgets and taint"): the agents domain, on the store. */
  get calls(): AssignmentCalls {
    return this.#d.agents;
  }

  resource(uid: EntityUid) {
    return this.#d.config.resources.find((r) => r.type === uid.type && r.id === uid.id);
  }

  /** Why a live session must end now, or undefined: every check reads the store (or what its notices keep current). */
  async #revalidate(h: Readonly<SessionHangs>): Promise<string | undefined> {
    const { identities, sessions, apikeys, credentials, access, clock } = this.#d;
    const identity = await identities.current(h.identityId);
    if (!identity) return `identity ${h.identityId} no longer exists`;
    if (identity.status !== 'active') return `identity ${h.identityId} is ${identity.status}`;
    if (h.jti !== undefined && sessions.isRevoked(h.jti, h.identityId, h.jtiIssuedAt ?? 0)) return 'the login session was revoked';
    if (h.apiKeyId !== undefined) {
      const k = await apikeys.get(h.apiKeyId);
      if (!k || k.revoked_at !== undefined) return `API key ${h.apiKeyId} was revoked`;
    }
    for (const id of h.leaseIds) {
      if (!(await credentials.isActive(id))) return `lease ${id} ended`;
    }
    const now = clock.now();
    for (const id of h.grantIds) {
      const g = await access.grants.get(id).catch((err: unknown) => {
        if (err instanceof NotFound) return undefined;
        throw err;
      });
      if (!g || g.status !== 'active' || Date.parse(g.end_at) <= now) return `grant ${id} ended`;
    }
    if (h.assignmentId !== undefined) {
      const a = await this.#d.agents.get(h.assignmentId);
      if (!a || a.status !== 'active') return `assignment ${h.assignmentId} ${a?.status ?? 'ended'}`;
    }
    return undefined;
  }

  /** What the registry needs to know about a principal's login to hang a session on it. */
  hangsOf(who: GatewayPrincipal): SessionHangs {
    const { issuedAt } = this.#who(who);
    return {
      identityId: who.identityId,
      ...(who.jti !== undefined && { jti: who.jti, jtiIssuedAt: issuedAt ?? Math.floor(this.#d.clock.now() / 1000) }),
      ...(who.apiKeyId !== undefined && { apiKeyId: who.apiKeyId }),
      leaseIds: who.proofLeaseId !== undefined ? [who.proofLeaseId] : [],
      grantIds: [],
      ...(who.assignmentId !== undefined && { assignmentId: who.assignmentId }),
    };
  }
}

/** The configured gateways of one broker: built at open, listening from `start`, ended at close. */
export class GatewayRunner {
  readonly host: BrokerGatewayHost;
  readonly #gateways: Gateway[];
  readonly #addresses = new Map<string, { host: string; port: number }>();
  #unsubscribe: (() => void) | undefined;
  #started = false;

  constructor(deps: GatewayHostDeps) {
    this.host = new BrokerGatewayHost(deps);
    this.#gateways = (deps.config.gateways ?? []).map((g) => gatewayKind(g.kind)!.create(g, { host: this.host, baseDir: deps.config.baseDir, log: deps.log }));
    // This replica's own revocations reach its sessions at once: every committed admin record
    // (lease revoked, grant ended, identity suspended, session revoked …) re-validates them.
    this.#unsubscribe = deps.audit.onAppend((records) => {
      if (this.host.sessions.size > 0 && records.some((r) => r.stream === 'admin')) void this.host.sessions.check();
    });
  }

  get configured(): number {
    return this.#gateways.length;
  }

  /** Where each gateway listens (after `start`), by name. */
  addresses(): ReadonlyMap<string, { host: string; port: number }> {
    return this.#addresses;
  }

  /** The public host key of each gateway that has one (ssh), by name: what clients pin. */
  hostKeys(): ReadonlyMap<string, string> {
    return new Map(this.#gateways.flatMap((g) => (g.hostKey !== undefined ? [[g.name, g.hostKey] as const] : [])));
  }

  async start(): Promise<void> {
    if (this.#started || this.#gateways.length === 0) return;
    this.#started = true;
    this.host.sessions.start();
    for (const g of this.#gateways) {
      try {
        this.#addresses.set(g.name, await g.start());
      } catch (err) {
        // A listen error (port taken, no permission) names the gateway, so the message can say which setting to change.
        if (err !== null && typeof err === 'object' && 'code' in err) Object.assign(err, { gateway: g.name });
        throw err;
      }
    }
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (!this.#started) return;
    this.#started = false;
    await this.host.sessions.terminateAll('the server is shutting down');
    await Promise.all(this.#gateways.map((g) => g.stop()));
    await this.host.sessions.stop();
  }
}
