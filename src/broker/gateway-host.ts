// The broker's side of the session gateways (docs/gateways.md): the GatewayHost a gateway is
// given — proofs, decisions, the upstream lease, the session stream — and the runner that builds
// the configured gateways, starts and stops them with the server, and feeds the live-session
// registry its revocation events (this replica's admin records, other replicas' notices).
import { X509Certificate } from 'node:crypto';
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
import type { SshCa } from '../credentials/issuers/ssh/ssh.ts';
import { parseUserCertificate } from '../credentials/issuers/ssh/ssh-cert.ts';
import type { AccessService } from '../access/index.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { ChangeFeed } from '../store/ports.ts';
import type { Gateway, GatewayHost, GatewayDecision, GatewayDecisionRequest, GatewayLease, GatewayLeaseRequest, GatewayPrincipal, GatewayProof } from '../gateways/index.ts';
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
    return { decision: d, decision_id: decision.decision_id, reasons: decision.reasons, policy_version: decision.policy_version, recorded, record };
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
    for (const g of this.#gateways) this.#addresses.set(g.name, await g.start());
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
