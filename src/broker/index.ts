// The composition root: opens the store, keys, audit log, inventory and policy engine for one
// configuration, and runs the core loop — prove, decide, record. server/ and cli/ are thin
// adapters over it; the domains never import them. The Broker is the facade: the logic lives in
// the files beside it, each given what it needs.
import type { PortcullisConfig } from '../config/types.ts';
import { systemClock, type Clock } from '../common/clock.ts';
import type { Metrics } from '../common/metrics.ts';
import type { Db } from '../store/sqlite/db.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuditVerification } from '../audit/types.ts';
import type { Proof } from '../identity/types.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import type { Authenticator } from '../identity/authenticator.ts';
import type { HumanOidcTrust, StepUpAsk } from '../identity/oidc-human.ts';
import type { Identity, IdentityInput, IdentityPatch, IdentityRegistry, IdentityStatus } from '../inventory/identities.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { Decision, DecisionPoint } from '../policy/decision-point.ts';
import type { PolicyStore } from '../policy/store.ts';
import type { CredentialService, Issued, Lease, SpiffeCaStore, SshCa } from '../credentials/index.ts';
import type { AccessService, Actor } from '../access/index.ts';
import type { BrokerOptions, LoginResult, SessionContext } from './types.ts';
import { closeDatabases, ensureSshKrl, openStorage, sshKrlPath, type Opened } from './open.ts';
import { createServices } from './services.ts';
import { loadDeclaredState } from './declared-state.ts';
import { Authentication } from './authentication.ts';
import { HumanSignIn } from './human-sign-in.ts';
import { Authorization, type AuthorizeRequest } from './authorization.ts';
import { IdentityAdmin } from './identities.ts';
import { ApiKeyAdmin, type MintApiKeyRequest } from './api-keys.ts';
import { PolicyAdmin, type WritePoliciesRequest } from './policies.ts';
import { CredentialIssuance, type IssueCredentialRequest } from './credential-issuance.ts';
import { exchangeDelegated, type DelegationRequest } from './delegation.ts';
import { revokeBySelector, type RevocationResult } from './revocation.ts';
import { Bootstrap, migrateBootstrap } from './bootstrap.ts';
import { recordAdminEvent } from './admin-event.ts';
import { IdentityBinding } from './identity-binding.ts';

export type { BrokerOptions, LoginResult, SessionContext } from './types.ts';
export { principalFacts } from './authorization.ts';

export class Broker {
  readonly config: PortcullisConfig;
  readonly clock: Clock;
  readonly db: Db;
  readonly keyring: Keyring;
  readonly audit: AuditLog;
  readonly identities: IdentityRegistry;
  readonly policyStore: PolicyStore;
  readonly decisions: DecisionPoint;
  readonly sessions: SessionService;
  readonly apikeys: ApiKeyService;
  readonly authenticator: Authenticator;
  readonly credentials: CredentialService;
  /** Access requests, approvals, grants, break-glass, webhooks. */
  readonly access: AccessService;
  /** `oidc-human` trusts by name: human sign-in (code + PKCE, device flow). */
  readonly humanTrusts: Map<string, HumanOidcTrust>;
  /** The SSH user CA; hosts trust its public key (sshd TrustedUserCAKeys). */
  readonly sshCa: SshCa;
  /** Portcullis' SPIFFE CAs (one per trust domain of a spiffe-x509 target). */
  readonly spiffeCa: SpiffeCaStore;
  readonly metrics: Metrics;
  /** The broker's URL: `iss` of its session and access tokens. */
  readonly issuer: string;
  /** Identities from before binding that could not be bound at start (refused until an administrator binds them). */
  unboundIdentities: string[] = [];
  readonly #resources = new Map<string, string>(); // "Type::id" → boundary
  readonly #log: (msg: string) => void;
  readonly #auditDb: Db;
  /** Closes the store's writers (the lease writer's worker) before the files. */
  readonly #closeStore: () => Promise<void>;
  readonly #authn: Authentication;
  readonly #humanSignIn: HumanSignIn;
  readonly #authz: Authorization;
  readonly #identityAdmin: IdentityAdmin;
  readonly #apiKeyAdmin: ApiKeyAdmin;
  readonly #policyAdmin: PolicyAdmin;
  readonly #issuance: CredentialIssuance;
  readonly #bootstrap: Bootstrap;
  readonly #binding: IdentityBinding;

  private constructor(config: PortcullisConfig, options: BrokerOptions, opened: Opened) {
    this.config = config;
    this.clock = options.clock ?? systemClock;
    this.#log = options.log ?? (() => {});
    this.db = opened.db;
    this.keyring = opened.keyring;
    this.spiffeCa = opened.spiffeCa;
    this.#auditDb = opened.auditDb;
    this.#closeStore = () => opened.store.close();
    this.issuer = options.issuer ?? `http://${config.listen.host}:${config.listen.port}`;
    const s = createServices(config, opened, {
      clock: this.clock,
      issuer: this.issuer,
      env: (options.env ?? process.env) as Record<string, string | undefined>,
      log: this.#log,
      resourceBoundaries: this.#resources,
    });
    ({ metrics: this.metrics, audit: this.audit, identities: this.identities, policyStore: this.policyStore, decisions: this.decisions } = s);
    ({ sessions: this.sessions, apikeys: this.apikeys, authenticator: this.authenticator, humanTrusts: this.humanTrusts } = s);
    ({ sshCa: this.sshCa, credentials: this.credentials, access: this.access } = s);
    migrateBootstrap(this.db);
    // Each part below takes what its deps type names, from the services and the configuration.
    const { boundaries } = config;
    // Acting as another identity (API key, trust binding) is for those who hold its memberships or may write policy.
    const policyWriter = (sess: SessionContext) => this.#authz.requireAllowed(sess, 'policy.write', { type: 'Policy', id: 'active' }, '0.0.0.0').then(() => true, () => false);
    this.#binding = new IdentityBinding({ ...s, trusts: config.trusts, log: this.#log, policyWriter });
    this.#authn = new Authentication({ ...s, boundaries, binding: this.#binding });
    this.#humanSignIn = new HumanSignIn(this.humanTrusts, this.#authn);
    this.#authz = new Authorization({ ...s, schemaExtension: config.schema_extension });
    this.#identityAdmin = new IdentityAdmin({ ...s, binding: this.#binding });
    this.#apiKeyAdmin = new ApiKeyAdmin({ ...s, policyWriter });
    this.#policyAdmin = new PolicyAdmin({ ...s, schemaExtension: config.schema_extension });
    this.#issuance = new CredentialIssuance({ ...s, clock: this.clock, targets: config.targets });
    this.#bootstrap = new Bootstrap({ ...s, db: this.db, clock: this.clock, boundaries });
  }

  /** Opens a broker for a validated configuration and loads declared state (audited). */
  static async open(config: PortcullisConfig, options: BrokerOptions = {}): Promise<Broker> {
    const broker = await openStorage(config, options, (opened) => {
      const b = new Broker(config, options, opened);
      ensureSshKrl(config);
      return b;
    });
    try {
      const { identities, decisions, credentials, audit } = broker;
      await loadDeclaredState({ config, resourceBoundaries: broker.#resources, identities, decisions, credentials, audit, log: broker.#log });
      broker.unboundIdentities = await broker.#binding.migrate();
      // Finish what a crash left half-done (orphan roles, half-revoked leases), then keep reaping.
      await broker.credentials.reconcile();
      broker.credentials.startReaper();
      broker.access.start();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
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

  revokeSessions(by: SessionContext, what: { jti?: string; identity?: string; reason?: string }, _ip: string): Promise<{ revoked: string }> {
    return this.#authn.revokeSessions(by, what);
  }

  /** OpenSSH KRL of revoked SSH certificates, in the data dir; point sshd's RevokedKeys at it. */
  get sshKrlPath(): string {
    return sshKrlPath(this.config.data_dir);
  }

  /** `/.well-known/jwks.json`: access-token keys only (never session or audit keys). */
  publicJwks(): { keys: unknown[] } {
    return this.keyring.publicJwks();
  }

  /** Audit checkpoint keys, retired ones included, for offline verification (`GET /v1/audit/keys`). */
  auditKeys(): { keys: unknown[] } {
    return this.keyring.auditJwks();
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

  /** What a fresh login would fix for this decision, if anything (policy `@stepUp`/`@maxAuthAge`). */
  stepUpFor(d: Decision) {
    return this.#authz.stepUpFor(d);
  }

  authorizeBatch(s: SessionContext, bodies: AuthorizeRequest[], sourceIp: string): Promise<Decision[]> {
    return this.#authz.authorizeBatch(s, bodies, sourceIp);
  }

  /** Admin calls are Cedar decisions too; a deny is a 403 carrying the decision id. */
  requireAllowed(s: SessionContext, action: string, resource: EntityUid, sourceIp: string): Promise<Decision> {
    return this.#authz.requireAllowed(s, action, resource, sourceIp);
  }

  // ── Inventory ────────────────────────────────────────────────────────────────────────────

  declareIdentity(by: SessionContext, input: IdentityInput & { trusts?: string[] }): Promise<Identity> {
    return this.#identityAdmin.declare(by, input);
  }

  /** Sets the trusts allowed to prove an identity (issue 8.1; `[]`: Portcullis-issued credentials only). */
  bindIdentity(by: SessionContext, id: string, trusts: string[]): Promise<Identity> {
    return this.#binding.bind(by, id, trusts);
  }

  updateIdentity(by: SessionContext, id: string, patch: IdentityPatch): Promise<Identity> {
    return this.#identityAdmin.update(by, id, patch);
  }

  /** Suspending or offboarding ends every live session of the identity at once. */
  async setIdentityStatus(by: SessionContext, id: string, status: IdentityStatus, reason: string): Promise<Identity> {
    const identity = await this.#identityAdmin.setStatus(by, id, status, reason);
    // Suspended or offboarded keeps no grant (reactivation does not bring one back; docs/access.md).
    if (status !== 'active') {
      for (const { grant } of this.access.listGrants({ identityId: id })) {
        if (grant.status === 'active') await this.access.grants.end(grant.id, { by: by.identity.id, reason: `identity ${status}` });
      }
    }
    return identity;
  }

  // ── API keys ─────────────────────────────────────────────────────────────────────────────

  mintApiKey(by: SessionContext, body: MintApiKeyRequest) {
    return this.#apiKeyAdmin.mint(by, body);
  }

  listApiKeys(identity?: string) {
    return this.apikeys.list(identity);
  }

  apiKeyOwner(id: string): string {
    return this.#apiKeyAdmin.owner(id);
  }

  rotateApiKey(by: SessionContext, id: string) {
    return this.#apiKeyAdmin.rotate(by, id);
  }

  revokeApiKey(by: SessionContext, id: string, reason: string) {
    return this.#apiKeyAdmin.revoke(by, id, reason);
  }

  // ── Policies ─────────────────────────────────────────────────────────────────────────────

  activePolicies() {
    return this.#policyAdmin.active();
  }

  /** Replaces the API-managed files (config files stay); validated, versioned, audited. */
  writePolicies(by: SessionContext, body: WritePoliciesRequest) {
    return this.#policyAdmin.write(by, body);
  }

  // ── Credentials and leases ───────────────────────────────────────────────────────────────

  /** The access-domain actor for an API caller. */
  actor(s: SessionContext, sourceIp: string): Actor {
    return { id: s.identity.id, authn: s.authn, sessionId: s.jti, sourceIp };
  }

  /** Issues a credential for the caller after a request-time decision; the lease records who, what, why. */
  issueCredential(s: SessionContext, body: IssueCredentialRequest, sourceIp: string): Promise<Issued> {
    return this.#issuance.issue(s, body, sourceIp);
  }

  /** RFC 8693 delegation (see delegation.ts); errors are RFC 6749 codes. */
  exchangeDelegated(req: DelegationRequest, sourceIp: string): Promise<Issued> {
    return exchangeDelegated(this, req, sourceIp);
  }

  async leaseOwner(id: string): Promise<string> {
    return (await this.credentials.get(id)).identityId;
  }

  /** Revokes the leases and session tokens a selector matches (see revocation.ts). */
  revoke(by: SessionContext | 'system', raw: unknown, reason: string): Promise<RevocationResult> {
    return revokeBySelector(this, by, raw, reason);
  }

  listLeases(filter: { identity?: string; target?: string; status?: string }): Promise<Lease[]> {
    return this.credentials.list({
      ...(filter.identity !== undefined && { identityId: filter.identity }),
      ...(filter.target !== undefined && { target: filter.target }),
      ...(filter.status !== undefined && { status: filter.status as Lease['status'] }),
    });
  }

  // ── Audit, keys, health ──────────────────────────────────────────────────────────────────

  /** In worker threads (the event loop keeps answering), against the witness when one is configured. */
  verifyAudit(): Promise<AuditVerification> {
    return this.audit.verifyAsync(this.keyring.publicKeyResolver);
  }

  async rotateKeys(by: SessionContext, purpose: 'session' | 'audit' | 'token') {
    const r = this.keyring.rotate(purpose);
    await recordAdminEvent(this.audit, by, 'key.rotated', { purpose, kid: r.active.kid, previous: r.previous?.kid ?? null });
    return r;
  }

  readiness(): { ready: boolean; policy_version: number | null } {
    const v = this.decisions.version;
    return { ready: v !== undefined && this.db.isOpen, policy_version: v?.version ?? null };
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

  async close(): Promise<void> {
    try {
      await this.access.stop();
      await this.credentials.stop();
      await this.audit.close();
    } finally {
      await this.#closeStore().finally(() => closeDatabases(this.db, this.#auditDb));
    }
  }
}
