// The composition root: opens the store, keys, audit log, inventory and policy engine for one
// configuration, and runs the core loop — prove, decide, record. server/ and cli/ are thin
// adapters over it; the domains never import them. The Broker is the facade and the authorizing
// layer: its domain services are private, and every administrative operation is a method of one
// of its admin APIs (`broker.admin.*`) that takes the caller and decides with Cedar before acting
// (like Teleport's ServerWithRoles). The logic lives in the files beside it, each given what it needs.
import type { PortcullisConfig } from '../config/types.ts';
import { systemClock } from '../common/clock.ts';
import type { Metrics } from '../common/metrics.ts';
import type { Proof } from '../identity/types.ts';
import type { StepUpAsk } from '../identity/trusts/oidc-human/oidc-human.ts';
import type { Decision } from '../policy/decision-point.ts';
import type { Issued } from '../credentials/index.ts';
import type { BrokerOptions, LoginResult, SessionContext } from './types.ts';
import { ensureSshKrl, openStorage, sshKrlPath, type Opened } from './open.ts';
import { createServices } from './services.ts';
import { loadDeclaredState } from './declared-state.ts';
import { Authentication } from './authentication.ts';
import { HumanSignIn } from './human-sign-in.ts';
import { Authorization, type AuthorizeRequest } from './authorization.ts';
import { IdentityAdmin } from './identities.ts';
import { ApiKeyAdmin } from './api-keys.ts';
import { PolicyAdmin } from './policies.ts';
import { AccessAdmin } from './access-admin.ts';
import { LeaseAdmin } from './leases.ts';
import { AuditAdmin } from './audit-admin.ts';
import { KeyAdmin } from './keys.ts';
import { CredentialIssuance, type IssueCredentialRequest } from './credential-issuance.ts';
import { exchangeDelegated, exchangeForAssignment, type AssignmentExchangeRequest, type DelegationRequest } from './delegation.ts';
import { Bootstrap } from './bootstrap.ts';
import { IdentityBinding } from './identity-binding.ts';
import { exposeInternals, type BrokerServices } from './internals.ts';
import { Pdp } from './pdp.ts';
import { authorizationServerMetadata } from './discovery.ts';
import { GatewayRunner } from './gateway-host.ts';
import { GatewaySessionAdmin } from './gateway-sessions.ts';
import { Governance } from './governance.ts';
import { GovernanceAdmin } from './governance-admin.ts';
import { PermissionsAdmin } from './permissions-admin.ts';
import { Signals } from './signals.ts';
import type { PushResult } from '../signals/receiver.ts';
import { AgentAdmin, AgentLifecycle } from './agents.ts';
import { introspectToken, type Introspection } from './introspection.ts';

export type { BrokerOptions, Caller, LoginResult, SessionContext } from './types.ts';
export type { AuthorizeRequest } from './authorization.ts';
export type { IssueCredentialRequest } from './credential-issuance.ts';
export type { MintApiKeyRequest } from './api-keys.ts';
export type { WritePoliciesRequest } from './policies.ts';
export type { GrantPage, RequestPage, RequestView } from './access-admin.ts';
export type { LeaseQuery } from './leases.ts';
export type { StreamQuery } from './audit-admin.ts';
export type { WindowQuery } from './permissions-admin.ts';
export type { ReplayReport } from '../governance/replay.ts';
export type { GatewaySessionQuery, GatewaySessionView, SessionVerification } from './gateway-sessions.ts';
export type { AgentView, AssignRequest, AssignmentQuery } from './agents.ts';
export type { AssignmentExchangeRequest } from './delegation.ts';
export { principalFacts } from './authorization.ts';
export type { AzEvaluation, AzEvaluationsRequest, AzDecision, AzSubjectSearch, AzResourceSearch, AzActionSearch, AzSearchResult, EvaluationsSemantic } from './pdp.ts';
export { MAX_EVALUATIONS } from './pdp.ts';
export { MAX_SET_BYTES } from '../signals/receiver.ts';
export type { Pdp } from './pdp.ts';

/**
 * The authorizing layer, one admin API per domain. Every method takes the caller first and
 * decides with Cedar before it acts (a deny is a 403 with the decision id, audited); a by-id call
 * about something the caller may not see answers like an unknown id (404).
 */
export interface AdminApi {
  readonly identities: IdentityAdmin;
  readonly apiKeys: ApiKeyAdmin;
  readonly policies: PolicyAdmin;
  readonly access: AccessAdmin;
  readonly leases: LeaseAdmin;
  readonly audit: AuditAdmin;
  readonly keys: KeyAdmin;
  readonly sessions: { revoke: Authentication['revokeSessions'] };
  /** Gateway sessions (docs/gateways.md): list, read recordings, verify, terminate. */
  readonly gatewaySessions: GatewaySessionAdmin;
  /** Access reviews, lifecycle (offboarding, rotation), evidence reports (docs/governance.md). */
  readonly governance: GovernanceAdmin;
  /** Governance analysis (docs/governance.md): effective permissions, observed use, suggested policy, what-if replay. */
  readonly permissions: PermissionsAdmin;
  /** AI agents (docs/agents.md): profiles (sponsor, model, tools) and assignments. */
  readonly agents: AgentAdmin;
}

export class Broker {
  readonly config: PortcullisConfig;
  /** Prometheus metrics: the transports count their requests here too. */
  readonly metrics: Metrics;
  /** The URL the broker is reached at: `iss` of its session and access tokens. */
  readonly issuer: string;
  readonly admin: AdminApi;
  /** The decision point for applications (AuthZEN): an app allowed `pdp.query` asks about its own subjects and resources. */
  readonly pdp: Pdp;
  readonly #s: BrokerServices;
  /** Identities from before binding that could not be bound at start (refused until an administrator binds them). */
  #unboundIdentities: string[] = [];
  readonly #resources = new Map<string, string>(); // "Type::id" → boundary
  readonly #log: (msg: string) => void;
  readonly #authn: Authentication;
  readonly #humanSignIn: HumanSignIn;
  readonly #authz: Authorization;
  readonly #issuance: CredentialIssuance;
  readonly #bootstrap: Bootstrap;
  readonly #binding: IdentityBinding;
  readonly #gateways: GatewayRunner;
  readonly #signals: Signals;

  static {
    // Tests and benchmarks reach the domain services through broker/internals.ts; nothing in src does.
    exposeInternals((b: Broker) => b.#s);
  }

  private constructor(config: PortcullisConfig, options: BrokerOptions, opened: Opened) {
    this.config = config;
    const clock = options.clock ?? systemClock;
    this.#log = options.log ?? (() => {});
    this.issuer = options.issuer ?? `http://${config.listen.host}:${config.listen.port}`;
    const services = createServices(config, opened, {
      clock,
      issuer: this.issuer,
      env: (options.env ?? process.env) as Record<string, string | undefined>,
      log: this.#log,
      resourceBoundaries: this.#resources,
    });
    const base = { ...services, config, clock, store: opened.store, keyring: opened.keyring, spiffeCa: opened.spiffeCa };
    const sshCas = [{ name: 'ssh-user-ca', publicKey: services.sshCa.publicKeyLine }, { name: 'ssh-host-ca', publicKey: services.sshHostCa.publicKeyLine }];
    // Suspending or offboarding anyone, by an administrator or by governance's lifecycle, also ends
    // what hangs on them in the agents domain (their assignments; a sponsor's agents).
    const lifecycle = new AgentLifecycle(base);
    const onInactive = (by: string, id: string, status: 'suspended' | 'offboarded', reason: string) => lifecycle.identityInactive(by, id, status, reason);
    const s: BrokerServices = { ...base, governance: new Governance({ ...base, sshCas, log: this.#log, onInactive }) };
    this.#s = s;
    this.metrics = s.metrics;
    // Each part below takes what its deps type names, from the services and the configuration.
    const { boundaries } = config;
    const authz = new Authorization({ ...s, schemaExtension: config.schema_extension });
    this.#authz = authz;
    // Acting as another identity (API key, trust binding) is for those who hold its memberships or may write policy.
    const policyWriter = (sess: SessionContext) => authz.requireAllowed({ ...sess, sourceIp: '0.0.0.0' }, 'policy.write', { type: 'Policy', id: 'active' }).then(() => true, () => false);
    this.#binding = new IdentityBinding({ ...s, trusts: config.trusts, log: this.#log, policyWriter });
    this.#authn = new Authentication({ ...s, boundaries, binding: this.#binding, authz });
    this.#humanSignIn = new HumanSignIn(s.humanTrusts, this.#authn);
    this.#issuance = new CredentialIssuance({ ...s, targets: config.targets });
    this.#bootstrap = new Bootstrap({ ...s, secrets: opened.store.bootstrap, unitOfWork: opened.store, boundaries });
    this.#signals = new Signals({ ...s, issuer: this.issuer, replay: opened.store.identity.replay, log: this.#log });
    this.#gateways = new GatewayRunner({ ...s, changes: opened.store.changes, authn: this.#authn, issuance: this.#issuance, log: this.#log, issuer: this.issuer, publicJwks: () => this.publicJwks() });
    const agents = new AgentAdmin({ ...s, authz, lifecycle });
    const admin: AdminApi = {
      identities: new IdentityAdmin({ ...s, authz, binding: this.#binding, onInactive }),
      apiKeys: new ApiKeyAdmin({ ...s, authz, policyWriter }),
      policies: new PolicyAdmin({ ...s, authz, schemaExtension: config.schema_extension }),
      access: new AccessAdmin({ ...s, authz }),
      leases: new LeaseAdmin({ ...s, authz }),
      audit: new AuditAdmin({ ...s, authz }),
      keys: new KeyAdmin({ ...s, authz }),
      sessions: { revoke: (by, what) => this.#authn.revokeSessions(by, what) },
      gatewaySessions: new GatewaySessionAdmin({ ...s, authz, registry: this.#gateways.host.sessions, log: this.#log }),
      governance: new GovernanceAdmin({ ...s, authz }),
      permissions: new PermissionsAdmin({ ...s, authz }),
      agents,
    };
    this.admin = Object.freeze(admin);
    this.pdp = new Pdp({ ...s, resources: config.resources, resourceBoundaries: this.#resources, schemaExtension: config.schema_extension, authzen: config.authzen, issuer: this.issuer });
  }

  /** Opens a broker for a validated configuration and loads declared state (audited). */
  static async open(config: PortcullisConfig, options: BrokerOptions = {}): Promise<Broker> {
    const broker = await openStorage(config, options, (opened) => {
      const b = new Broker(config, options, opened);
      ensureSshKrl(config);
      return b;
    });
    try {
      const { identities, decisions, credentials, audit, access, agents } = broker.#s;
      await broker.#s.signalFacts.load();
      await loadDeclaredState({ config, resourceBoundaries: broker.#resources, identities, decisions, credentials, audit, agents, log: broker.#log });
      broker.#unboundIdentities = await broker.#binding.migrate();
      // Finish what a crash left half-done (orphan roles, half-revoked leases), then keep reaping —
      // on the replica that leads the cluster jobs (the only process, with SQLite), and again on
      // whichever replica takes over.
      const leader = broker.#s.store.leader;
      if (leader.leading) await credentials.reconcile();
      leader.onChange((leading) => {
        if (leading) credentials.reconcile().catch((err: unknown) => broker.#log(`reconcile after taking the lead failed: ${(err as Error).message}`));
      });
      leader.start();
      credentials.startReaper();
      access.start();
      broker.#s.governance.start();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  /** Identities from before binding that could not be bound at start (refused until an administrator binds them). */
  get unboundIdentities(): readonly string[] {
    return this.#unboundIdentities;
  }

  // ── Authentication ────────────────────────────────────────────────────────────────────────

  /** Verifies a proof, checks the identity may authenticate, issues a session token; audits either way. */
  login(proof: Proof, sourceIp: string): Promise<LoginResult> {
    return this.#authn.login(proof, sourceIp);
  }

  /** Resolves a bearer session token to the caller; refuses revoked tokens and inactive identities. */
  sessionFromToken(token: string, sourceIp: string): Promise<SessionContext> {
    return this.#authn.sessionFromToken(token, sourceIp);
  }

  /**
   * The caller behind a bearer credential where applications call (the AuthZEN endpoints): a
   * session token, or an API key sent as it is (verified on each call, no session issued).
   */
  callerFromBearer(credential: string, sourceIp: string): Promise<SessionContext> {
    return credential.startsWith('pcx_') ? this.#authn.callerFromApiKey(credential, sourceIp) : this.#authn.sessionFromToken(credential, sourceIp);
  }

  /** RFC 8414 metadata (also served at the OpenID discovery path): what this server really offers. */
  authorizationServerMetadata(): Record<string, unknown> {
    return authorizationServerMetadata(this.issuer);
  }

  /** OpenSSH KRL of revoked SSH certificates, in the data dir; point sshd's RevokedKeys at it. */
  get sshKrlPath(): string {
    return sshKrlPath(this.config.data_dir);
  }

  /** `/.well-known/jwks.json`: access-token keys only (never session or audit keys). */
  publicJwks(): { keys: unknown[] } {
    return this.#s.keyring.publicJwks();
  }

  /** `GET /v1/ssh/krl`: the KRL remote sshd hosts fetch for `RevokedKeys` (public, like the JWKS); undefined without SSH targets. */
  sshKrl(): Promise<{ bytes: Buffer; version: string }> | undefined {
    return this.#s.credentials.sshKrl();
  }

  /** Audit checkpoint keys, retired ones included, for offline verification (`GET /v1/audit/keys`). */
  auditKeys(): { keys: unknown[] } {
    return this.#s.keyring.auditJwks();
  }

  /** One `authn.rate_limited` event (the HTTP edge refused a login attempt; once per key and window). */
  async recordRateLimited(e: { endpoint: string; scope: 'address' | 'key'; bucket: string; sourceIp: string; limit: number; windowSeconds: number }): Promise<void> {
    await this.#s.audit.append({
      stream: 'authn',
      type: 'authn.rate_limited',
      actor: 'anonymous',
      payload: { endpoint: e.endpoint, scope: e.scope, bucket: e.bucket, source_ip: e.sourceIp, limit: e.limit, window_seconds: e.windowSeconds },
    });
  }

  // ── Human sign-in (oidc-human trusts) ────────────────────────────────────────────────────

  /** Starts a code + PKCE login; the caller opens `url` and brings back `state` and `code`. */
  startHumanLogin(o: { trust?: string; redirectUri: string; stepUp?: StepUpAsk; loginHint?: string }) {
    return this.#humanSignIn.start(o);
  }

  completeHumanLogin(o: { trust?: string; state: string; code?: string; iss?: string; error?: string }, sourceIp: string): Promise<LoginResult> {
    return this.#humanSignIn.complete(o, sourceIp);
  }

  startDeviceLogin(o: { trust?: string; stepUp?: StepUpAsk }) {
    return this.#humanSignIn.startDevice(o);
  }

  /** One poll; `pending` until the user has approved on the provider's page. */
  pollDeviceLogin(o: { trust?: string; handle: string }, sourceIp: string) {
    return this.#humanSignIn.pollDevice(o, sourceIp);
  }

  // ── Authorization ────────────────────────────────────────────────────────────────────────

  authorize(s: SessionContext, body: AuthorizeRequest, sourceIp: string): Promise<Decision> {
    return this.#authz.authorize(s, body, sourceIp);
  }

  authorizeBatch(s: SessionContext, bodies: AuthorizeRequest[], sourceIp: string): Promise<Decision[]> {
    return this.#authz.authorizeBatch(s, bodies, sourceIp);
  }

  // ── Credentials ──────────────────────────────────────────────────────────────────────────

  /** Configured credential targets and the SSH user CA's public key (any caller with a session). */
  targets(): { targets: { name: string; kind: string; resourceType: string }[]; sshUserCa: string; sshHostCa: string } {
    return { targets: this.#s.credentials.targets(), sshUserCa: this.#s.sshCa.publicKeyLine, sshHostCa: this.#s.sshHostCa.publicKeyLine };
  }

  /** Issues a credential for the caller after a request-time decision; the lease records who, what, why. */
  issueCredential(s: SessionContext, body: IssueCredentialRequest, sourceIp: string): Promise<Issued> {
    return this.#issuance.issue(s, body, sourceIp);
  }

  /** RFC 8693 delegation (see delegation.ts); errors are RFC 6749 codes. */
  exchangeDelegated(req: DelegationRequest, sourceIp: string): Promise<Issued> {
    return exchangeDelegated({ ...this.#s, issuer: this.issuer, publicJwks: () => this.publicJwks() }, req, sourceIp);
  }

  /** RFC 8693 for an agent's assignment (delegation.ts): an access token for one of its audiences; errors are RFC 6749 codes. */
  exchangeForAssignment(req: AssignmentExchangeRequest, sourceIp: string): Promise<Issued> {
    return exchangeForAssignment({ ...this.#s, issuer: this.issuer, publicJwks: () => this.publicJwks(), sessionFromToken: (t, ip) => this.#authn.sessionFromToken(t, ip) }, req, sourceIp);
  }

  /**
   * RFC 7662 introspection of a Portcullis access token, for a resource server that holds a
   * session (any identity): whether it is live now — lease, identities, agent assignment — for
   * `resource` when given. An inactive token answers `{ active: false }` and nothing else.
   */
  introspect(_caller: SessionContext, token: string, resource?: string): Promise<Introspection> {
    return introspectToken({ ...this.#s, issuer: this.issuer, publicJwks: () => this.publicJwks() }, token, resource);
  }

  /** Portcullis' SPIFFE trust bundle for a trust domain (public, like the JWKS), if it has a CA there. */
  spiffeBundle(trustDomain: string) {
    return this.#s.spiffeCa.bundle(trustDomain);
  }

  /** PEM of Portcullis' own SPIFFE roots and intermediates (the TLS listener's client-CA list). */
  spiffeTrustPem(): string {
    return this.#s.spiffeCa.trustPem();
  }

  // ── Shared Signals (docs/signals.md) ─────────────────────────────────────────────────────

  /** One RFC 8935 push from a configured transmitter (authenticated by its push secret, not a session): 202 or 400 with `err`. */
  receiveSignal(req: { authorization: string | undefined; contentType: string | undefined; body: unknown; sourceIp: string }): Promise<PushResult> {
    return this.#signals.push(req);
  }

  /** `/.well-known/ssf-configuration`: what this installation transmits and where it receives. */
  ssfConfiguration(): Record<string, unknown> {
    return this.#signals.metadata();
  }

  // ── Health, bootstrap ────────────────────────────────────────────────────────────────────

  /** Ready: a policy is active, the store is open and (replicas) other replicas' notices are heard. */
  readiness(): { ready: boolean; policy_version: number | null; store: 'sqlite' | 'postgres'; leader: boolean } {
    const v = this.#s.decisions.version;
    const store = this.#s.store;
    return { ready: v !== undefined && store.isOpen && store.changes.listening, policy_version: v?.version ?? null, store: store.kind, leader: store.leader.leading };
  }

  /** On the first start only: creates `user:admin` and returns its one-time secret (see bootstrap.ts). */
  bootstrap(): Promise<string | undefined> {
    return this.#bootstrap.create();
  }

  /** `server --reset-bootstrap`: a new one-time admin secret, voiding earlier ones (see bootstrap.ts). */
  resetBootstrap(): Promise<string> {
    return this.#bootstrap.reset();
  }

  /** Exchanges the one-time bootstrap secret for an admin session; it cannot be used twice. */
  loginBootstrap(secret: string, sourceIp: string): Promise<LoginResult> {
    return this.#bootstrap.login(secret, sourceIp);
  }

  // ── Governance job ───────────────────────────────────────────────────────────────────────

  /**
   * One pass of the governance job now — reviews' deadlines and cadence, lifecycle, the daily
   * findings snapshot — as the leader's timer runs it (the dev server's demo history runs it at the
   * end of each day it makes).
   */
  async governanceSweep(): Promise<void> {
    await this.#s.governance.sweep();
  }

  // ── Session gateways ─────────────────────────────────────────────────────────────────────

  /** Starts listening on the configured gateways (docs/gateways.md); the server calls it once it serves. */
  startGateways(): Promise<void> {
    return this.#gateways.start();
  }

  /** The configured gateways and where they listen (any caller with a session: like the targets). */
  gateways(): { name: string; kind: string; target: string; host: string; port: number; tls: boolean; host_key?: string; resource?: string }[] {
    const bound = this.#gateways.addresses();
    const keys = this.#gateways.hostKeys();
    return (this.config.gateways ?? []).map((g) => ({
      name: g.name,
      kind: g.kind,
      target: g.target,
      host: g.listen.host,
      port: bound.get(g.name)?.port ?? g.listen.port,
      tls: (g as { tls?: unknown }).tls !== undefined,
      ...(keys.has(g.name) && { host_key: keys.get(g.name)! }),
      // An MCP gateway's resource identifier (RFC 8707): what clients connect to and name in token exchanges.
      ...(typeof (g as { resource?: unknown }).resource === 'string' && { resource: (g as { resource: string }).resource }),
    }));
  }

  /** Where each configured gateway listens, by name (after `startGateways`). */
  gatewayAddresses(): ReadonlyMap<string, { host: string; port: number }> {
    return this.#gateways.addresses();
  }

  async close(): Promise<void> {
    try {
      // Live sessions end first, with their records and lease revocations, while the store is open.
      await this.#gateways.stop();
      await this.#s.governance.stop();
      await this.#signals.stop();
      await this.#s.access.stop();
      await this.#s.credentials.stop();
      await this.#s.audit.close();
    } finally {
      await this.#s.store.close();
    }
  }
}
