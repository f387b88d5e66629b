// The composition root: opens the store, keys, audit log, inventory and policy engine for one
// configuration, and runs the core loop — prove, decide, record. server/ and cli/ are thin
// adapters over it; the domains never import them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createHash, createPrivateKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { createLocalJWKSet } from 'jose';
import type { JWK } from 'jose';
import type { PortcullisConfig, SpiffeTrustConfig } from './config/types.ts';
import { PORTCULLIS_BUNDLE } from './config/load.ts';
import type { Clock } from './common/clock.ts';
import { systemClock } from './common/clock.ts';
import { AuthenticationFailed, Forbidden, InvalidInput, NotFound } from './common/errors.ts';
import { parseDuration } from './common/duration.ts';
import { Metrics } from './common/metrics.ts';
import type { Db } from './store/sqlite.ts';
import { migrate, openDatabase } from './store/sqlite.ts';
import { loadMasterKey } from './crypto/masterkey.ts';
import { Keyring } from './crypto/keyring.ts';
import { AuditLog } from './audit/log.ts';
import { AUDIT_DB_FILE } from './audit/verify.ts';
import type { AuditEventInput, AuditVerification } from './audit/types.ts';
import type { AuthnFacts, Proof, TrustVerifier, VerifiedProof } from './identity/types.ts';
import { SessionService } from './identity/sessions.ts';
import { OidcTrust } from './identity/oidc.ts';
import { SpiffeTrust } from './identity/spiffe.ts';
import { ApiKeyService } from './identity/apikeys.ts';
import { Authenticator } from './identity/authenticator.ts';
import { fail as authnFail } from './identity/reasons.ts';
import { HumanOidcTrust } from './identity/oidc-human.ts';
import type { DevicePoll, HumanLogin, StartedDeviceLogin, StartedLogin, StepUpAsk } from './identity/oidc-human.ts';
import type { Identity, IdentityInput, IdentityPatch, IdentityStatus } from './inventory/identities.ts';
import { IdentityRegistry, checkIdentityId } from './inventory/identities.ts';
import type { EntityUid } from './policy/engine/types.ts';
import { createEngine } from './policy/engine/select.ts';
import { DecisionPoint, parseCallerContext } from './policy/decision-point.ts';
import type { Decision, DecisionInput } from './policy/decision-point.ts';
import type { PolicyFile } from './policy/policy-set.ts';
import { actionEntities, compilePolicySet, splitPolicies } from './policy/policy-set.ts';
import { PolicyStore } from './policy/store.ts';
import { adminEntity, resourceEntity } from './policy/entities.ts';
import type { PrincipalFacts } from './policy/entities.ts';
import { createCredentialService, identityForSpiffeId, parseScopes, parseSelector, SpiffeCaStore, sshCaFromKey, TokenExchangeRefused, verifyAccessToken } from './credentials/index.ts';
import type { ApiTarget, CredentialService, Decide, Issued, JwtSigner, Lease, RevocationSelector, SshCa } from './credentials/index.ts';
import { StepUpRequired, createAccessService, stepUpFor, stepUpIndex } from './access/index.ts';
import type { AccessDecide, AccessService, Actor, Grant, StepUpIndex } from './access/index.ts';

/** The caller of an API request, as proved by its session token. */
export interface SessionContext {
  identity: Identity;
  authn: AuthnFacts;
  claims: Record<string, string | number | boolean>;
  jti: string;
  expiresAt: number;
}

export interface LoginResult {
  session_token: string;
  token_type: 'Bearer';
  expires_at: string;
  identity: Identity;
}

export interface BrokerOptions {
  clock?: Clock;
  /** URL the broker is reached at; `iss` of its tokens. */
  issuer?: string;
  /** Where `PORTCULLIS_MASTER_KEY` and targets' `password_env` secrets are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  log?: (msg: string) => void;
}

/** What `open` prepares before the constructor: the store, the keyring, the SPIFFE CAs. */
interface Opened {
  db: Db;
  /** The audit streams live in their own file (see AUDIT_DB_FILE). */
  auditDb: Db;
  keyring: Keyring;
  spiffeCa: SpiffeCaStore;
}

const ADMIN_ROLE = { type: 'Role', id: 'portcullis-admin' };
const BOOTSTRAP_ADMIN = 'user:admin';

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
  readonly humanTrusts = new Map<string, HumanOidcTrust>();
  /** The SSH user CA; hosts trust its public key (sshd TrustedUserCAKeys). */
  readonly sshCa: SshCa;
  /** Portcullis' SPIFFE CAs (one per trust domain of a spiffe-x509 target). */
  readonly spiffeCa: SpiffeCaStore;
  readonly metrics = new Metrics();
  /** The broker's URL: `iss` of its session and access tokens. */
  readonly issuer: string;
  readonly #resources = new Map<string, string>(); // "Type::id" → boundary
  readonly #log: (msg: string) => void;
  readonly #auditDb: Db;
  #stepUp: { version: number; index: StepUpIndex } | undefined;

  private constructor(config: PortcullisConfig, options: BrokerOptions, opened: Opened) {
    this.config = config;
    this.clock = options.clock ?? systemClock;
    this.#log = options.log ?? (() => {});
    this.db = opened.db;
    this.keyring = opened.keyring;
    this.spiffeCa = opened.spiffeCa;
    this.#auditDb = opened.auditDb;
    this.audit = new AuditLog(opened.auditDb, {
      clock: this.clock,
      signer: () => this.keyring.checkpointSigner(),
      checkpointEvery: config.audit.checkpoint_every,
      checkpointIntervalMs: config.audit.checkpoint_interval_ms,
    });
    this.identities = new IdentityRegistry(this.db, this.clock, config.boundaries);
    this.policyStore = new PolicyStore(this.db);
    const engine = createEngine(config.engine);
    this.decisions = new DecisionPoint({
      engine,
      store: this.policyStore,
      audit: this.audit,
      clock: this.clock,
      ...(config.schema_extension !== undefined && { schemaExtension: config.schema_extension }),
      bridges: config.bridges,
      failClosed: config.audit.fail_closed,
      resourceBoundary: (uid) => this.#resources.get(`${uid.type}::${uid.id}`),
      onAuditFailure: (err) => this.#log(`audit write failed (fail_closed is off): ${(err as Error).message}`),
    });
    const issuer = options.issuer ?? `http://${config.listen.host}:${config.listen.port}`;
    this.issuer = issuer;
    this.sessions = SessionService.open({ db: this.db, keyring: this.keyring, issuer, ttlMs: config.session.ttl_ms, clock: this.clock });
    this.apikeys = ApiKeyService.open({
      db: this.db,
      keyring: this.keyring,
      clock: this.clock,
      maxTtlMs: config.apikeys.max_ttl_ms,
      defaultRotationMs: config.apikeys.rotation_ms,
    });
    const verifiers: TrustVerifier[] = [];
    for (const t of config.trusts) {
      if (t.kind === 'oidc') verifiers.push(new OidcTrust(t, { clock: this.clock }));
      else if (t.kind === 'spiffe') verifiers.push(this.#spiffeTrust(t));
      else this.humanTrusts.set(t.name, new HumanOidcTrust(t, { clock: this.clock }));
    }
    verifiers.push(this.apikeys.verifier());
    this.authenticator = new Authenticator(verifiers, { sessionIssuer: issuer });
    this.sshCa = sshCaFromKey(ed25519FromSeed(this.keyring.secret('ssh-user-ca')));
    this.credentials = createCredentialService({
      db: this.db,
      clock: this.clock,
      audit: this.audit,
      decide: this.#decideForCredentials,
      targets: config.targets,
      env: (options.env ?? process.env) as Record<string, string | undefined>,
      signer: this.#tokenSigner(),
      issuerUrl: issuer,
      // RevokedKeys for sshd: revoking an SSH lease refuses new logins with its certificate at once.
      ssh: { ca: this.sshCa, krlPath: this.sshKrlPath },
      spiffe: Object.fromEntries([...this.spiffeCa.authorities()].map(([td, a]) => [td, { root: a.root, intermediate: a.intermediate }])),
      resolvers: {
        identitiesOfOwner: (owner) => this.identities.list({ owner }).map((i) => i.id),
        identitiesOfTrust: (trust) => this.identities.list().filter((i) => i.trust === trust).map((i) => i.id),
      },
    });
    this.access = createAccessService({
      db: this.db,
      clock: this.clock,
      audit: this.audit,
      decide: this.#decideForAccess,
      // Ending a grant (time, revocation, logout) ends the credentials issued under it.
      revokeLeases: ({ grantId }, o) => this.credentials.revoke({ grant: grantId }, o),
      config: config.access,
      resourceInfo: (uid) => config.resources.find((r) => r.type === uid.type && r.id === uid.id),
      teamsOf: (id) => (this.identities.get(id)?.parents ?? []).filter((p) => p.type === 'Team').map((p) => p.id),
      onError: (err) => this.#log(`access: ${(err as Error).message}`),
    });
    migrate(this.db, 'broker', [
      { version: 1, up: 'CREATE TABLE broker_bootstrap (id INTEGER PRIMARY KEY CHECK (id = 1), hash TEXT NOT NULL, created_at TEXT NOT NULL, used_at TEXT)' },
    ]);
  }

  /** Opens a broker for a validated configuration and loads declared state (audited). */
  static async open(config: PortcullisConfig, options: BrokerOptions = {}): Promise<Broker> {
    const clock = options.clock ?? systemClock;
    const db = openDatabase(join(config.data_dir, 'portcullis.db'));
    const auditDb = openDatabase(join(config.data_dir, AUDIT_DB_FILE));
    let broker: Broker;
    try {
      const master = loadMasterKey(config.data_dir, options.env ?? process.env);
      const keyring = Keyring.open(db, { masterKey: master.key, clock });
      // SPIFFE CAs are made before the issuers that use them (creating one is async).
      const spiffeCa = SpiffeCaStore.open(db, master.key, clock);
      for (const td of new Set(config.targets.flatMap((t) => (t.kind === 'spiffe-x509' ? [t.trust_domain] : [])))) await spiffeCa.ensure(td);
      broker = new Broker(config, options, { db, auditDb, keyring, spiffeCa });
      // sshd refuses every key while its RevokedKeys file is missing: start with an empty KRL.
      if (config.targets.some((t) => t.kind === 'ssh') && !existsSync(broker.sshKrlPath)) writeFileSync(broker.sshKrlPath, '', { mode: 0o644 });
    } catch (err) {
      if (db.isOpen) db.close();
      if (auditDb.isOpen) auditDb.close();
      throw err;
    }
    try {
      await broker.#loadDeclared();
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

  async #loadDeclared(): Promise<void> {
    const engine = this.decisions.engine;
    for (const r of this.config.resources) this.#resources.set(`${r.type}::${r.id}`, r.boundary);
    for (const t of this.credentials.targets()) {
      if (!this.#resources.has(`${t.resourceType}::${t.name}`)) {
        throw new InvalidInput(`targets: ${t.kind} target "${t.name}" needs a resource ${t.resourceType}::"${t.name}" under resources: (its boundary and environment)`, 'targets');
      }
    }
    engine.upsertEntities(this.config.resources.map(resourceEntity));
    engine.upsertEntities(actionEntities(this.config.schema_extension));
    for (const decl of this.config.identities) {
      const before = this.identities.get(decl.id);
      const after = this.identities.declare(decl, 'config');
      if (before !== after) {
        await this.audit.append({ stream: 'admin', type: before ? 'identity.updated' : 'identity.declared', actor: 'config', subject: decl.id, boundary: decl.boundary, payload: { source: 'config', owner: decl.owner ?? null, kind: decl.kind } });
      }
    }
    this.decisions.loadActive();
    const files = this.#configPolicyFiles();
    const apiFiles = this.decisions.version?.files.filter((f) => f.origin === 'api') ?? [];
    const { version, changed } = await this.decisions.activate([...files, ...apiFiles], 'config', 'policies loaded from configuration');
    if (changed) this.#log(`policy version ${version.version} activated from configuration (${files.length} file(s))`);
  }

  #configPolicyFiles(): PolicyFile[] {
    return this.config.policies.map((path) => {
      try {
        return { name: basename(path), origin: 'config' as const, text: readFileSync(path, 'utf8') };
      } catch {
        throw new InvalidInput(`policies: cannot read ${path}`, 'policies');
      }
    });
  }

  // ── Authentication ────────────────────────────────────────────────────────────────────────

  /** Verifies a proof, checks the identity may authenticate, issues a session token; audits either way. */
  login(proof: Proof, sourceIp: string): Promise<LoginResult> {
    return this.#establish(proof.type, async () => ({ proof: await this.authenticator.authenticate(proof) }), sourceIp);
  }

  /** The one login path: verify, admit (register on first login), issue, audit success or failure. */
  async #establish(proofType: string, verify: () => Promise<{ proof: VerifiedProof; parents?: EntityUid[] }>, sourceIp: string): Promise<LoginResult> {
    let verified: VerifiedProof | undefined;
    try {
      const { proof: v, parents } = await verify();
      verified = v;
      let identity = await this.#admit(v);
      if (parents) identity = await this.#syncGroups(identity, parents, v.facts.trust);
      const session = await this.sessions.issue({ identityId: identity.id, facts: v.facts, attributes: v.attributes });
      this.identities.touchAuthenticated(identity.id);
      await this.audit.append({
        stream: 'authn',
        type: 'authn.success',
        actor: identity.id,
        boundary: identity.boundary,
        payload: { method: v.facts.method, trust: v.facts.trust, jti: session.jti, expires_at: new Date(session.expiresAt).toISOString(), source_ip: sourceIp, ...v.evidence },
      });
      this.metrics.authn.inc({ result: 'success', reason: 'ok', trust: v.facts.trust });
      return { session_token: session.token, token_type: 'Bearer', expires_at: new Date(session.expiresAt).toISOString(), identity: this.identities.require(identity.id) };
    } catch (err) {
      if (!(err instanceof AuthenticationFailed)) throw err;
      await this.audit.append({
        stream: 'authn',
        type: 'authn.failure',
        actor: verified?.identityId ?? 'anonymous',
        payload: { reason: err.reason, detail: err.detail, proof: proofType, source_ip: sourceIp, ...(verified && { trust: verified.facts.trust, ...verified.evidence }) },
      });
      this.metrics.authn.inc({ result: 'failure', reason: err.reason, trust: verified?.facts.trust ?? 'unknown' });
      throw err;
    }
  }

  /** Registers an unknown identity on first federated login; refuses suspended and offboarded ones. */
  async #admit(v: VerifiedProof): Promise<Identity> {
    let identity = this.identities.get(v.identityId);
    if (!identity) {
      const boundary = v.defaults.boundary ?? this.config.boundaries[0]!;
      identity = this.identities.register(
        {
          id: v.identityId,
          kind: v.kind,
          boundary,
          environment: v.defaults.environment ?? 'default',
          ...(v.defaults.owner !== undefined && { owner: v.defaults.owner }),
        },
        v.facts.trust,
      );
      await this.audit.append({ stream: 'admin', type: 'identity.registered', actor: 'system', subject: identity.id, boundary, payload: { trust: v.facts.trust, owner: identity.owner } });
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
    await this.audit.append({ stream: 'admin', type: 'identity.updated', actor: `trust:${trust}`, subject: identity.id, boundary: identity.boundary, payload: { changed: { parents: { from: identity.parents, to: parents } }, source: 'identity provider groups' } });
    return this.identities.update(identity.id, { parents });
  }

  // ── Human sign-in (oidc-human trusts) ────────────────────────────────────────────────────

  #humanTrust(name: string | undefined): HumanOidcTrust {
    if (name === undefined) {
      if (this.humanTrusts.size === 1) return [...this.humanTrusts.values()][0]!;
      if (this.humanTrusts.size === 0) throw new NotFound('human sign-in (no oidc-human trust is configured)');
      throw new InvalidInput(`several oidc-human trusts are configured; name one (${[...this.humanTrusts.keys()].join(', ')})`, 'trust');
    }
    const t = this.humanTrusts.get(name);
    if (!t) throw new NotFound(`oidc-human trust ${name}`);
    return t;
  }

  /** Starts a code + PKCE login; the caller opens `url` and brings back `state` and `code`. */
  async startHumanLogin(o: { trust?: string; redirectUri: string; stepUp?: StepUpAsk; loginHint?: string }): Promise<StartedLogin & { trust: string }> {
    const t = this.#humanTrust(o.trust);
    const started = await t.startLogin({ redirectUri: o.redirectUri, ...(o.stepUp && { stepUp: o.stepUp }), ...(o.loginHint !== undefined && { loginHint: o.loginHint }) });
    return { ...started, trust: t.name };
  }

  completeHumanLogin(o: { trust?: string; state: string; code?: string; iss?: string; error?: string }, sourceIp: string): Promise<LoginResult> {
    const t = this.#humanTrust(o.trust);
    const { trust: _t, ...params } = o;
    return this.#establish(`oidc-human:${t.name}`, async () => human(await t.completeLogin(params)), sourceIp);
  }

  async startDeviceLogin(o: { trust?: string; stepUp?: StepUpAsk }): Promise<StartedDeviceLogin & { trust: string }> {
    const t = this.#humanTrust(o.trust);
    return { ...(await t.startDeviceLogin(o.stepUp ? { stepUp: o.stepUp } : {})), trust: t.name };
  }

  /** One poll; `pending` until the user has approved on the provider's page. */
  async pollDeviceLogin(o: { trust?: string; handle: string }, sourceIp: string): Promise<{ status: 'pending'; interval: number } | ({ status: 'complete' } & LoginResult)> {
    const t = this.#humanTrust(o.trust);
    let poll: DevicePoll | undefined;
    const result = await this.#establish(`oidc-human:${t.name}`, async () => {
      poll = await t.pollDeviceLogin(o.handle);
      // Pending is not a login attempt: nothing to admit or audit yet.
      if (poll.status === 'pending') throw PENDING;
      return human(poll.login);
    }, sourceIp).catch((err) => {
      if (err === PENDING) return undefined;
      throw err;
    });
    if (!result) return { status: 'pending', interval: poll!.status === 'pending' ? poll!.interval : 5 };
    return { status: 'complete', ...result };
  }

  /** Resolves a bearer session token to the caller; refuses revoked tokens and inactive identities. */
  async sessionFromToken(token: string, sourceIp: string): Promise<SessionContext> {
    try {
      const s = await this.sessions.verify(token);
      const identity = this.identities.get(s.identityId);
      if (!identity) throw new AuthenticationFailed('unknown_identity', `identity ${s.identityId} no longer exists`);
      if (identity.status !== 'active') throw new AuthenticationFailed(`identity_${identity.status}`, `identity ${identity.id} is ${identity.status}`);
      return { identity, authn: s.facts, claims: s.claims.attrs ?? {}, jti: s.jti, expiresAt: s.claims.exp * 1000 };
    } catch (err) {
      if (err instanceof AuthenticationFailed) {
        await this.audit.append({ stream: 'authn', type: 'session.rejected', actor: 'anonymous', payload: { reason: err.reason, detail: err.detail, source_ip: sourceIp } });
        this.metrics.authn.inc({ result: 'failure', reason: err.reason, trust: 'session' });
      }
      throw err;
    }
  }

  async revokeSessions(by: SessionContext, what: { jti?: string; identity?: string; reason?: string }, _ip: string): Promise<{ revoked: string }> {
    if (what.jti !== undefined) {
      this.sessions.revokeJti(what.jti, { identityId: by.identity.id });
      // Logging out ends the caller's session-bound grants (and the leases under them).
      if (what.jti === by.jti) await this.access.onLogout(by.identity.id);
    } else {
      checkIdentityId(what.identity, 'identity');
      this.sessions.revokeIdentity(what.identity!);
    }
    const revoked = what.jti !== undefined ? `session ${what.jti}` : `every session of ${what.identity}`;
    await this.#adminEvent(by, 'session.revoked', { ...(what.jti !== undefined ? { jti: what.jti } : { identity: what.identity }), reason: what.reason ?? '' }, what.identity);
    return { revoked };
  }

  /** OpenSSH KRL of revoked SSH certificates, in the data dir; point sshd's RevokedKeys at it. */
  get sshKrlPath(): string {
    return join(this.config.data_dir, 'ssh-revoked.krl');
  }

  /**
   * A spiffe trust reads its bundle file, or with `bundle: portcullis` uses Portcullis' own CA:
   * an SVID it issued logs in as the identity it was issued for, while its lease is active.
   */
  #spiffeTrust(t: SpiffeTrustConfig): SpiffeTrust {
    if (t.bundle !== PORTCULLIS_BUNDLE) return SpiffeTrust.fromConfig(t, { clock: this.clock });
    const bundle = this.spiffeCa.bundle(t.trust_domain);
    if (!bundle) throw new InvalidInput(`trust ${t.name}: no spiffe-x509 target for trust domain ${t.trust_domain}`, 'trusts');
    return new SpiffeTrust(t, bundle, {
      clock: this.clock,
      issuedBy: (id, serial) => {
        const identityId = identityForSpiffeId(t.trust_domain, id.id);
        if (identityId === undefined) throw authnFail('bad_spiffe_id', 'SPIFFE ID was not issued for a Portcullis identity');
        const lease = this.#svidLease(serial);
        if (!lease || lease.identityId !== identityId) throw authnFail('untrusted_chain', 'no lease for this SVID');
        if (!this.credentials.isActive(lease.id)) throw authnFail('revoked', `SVID lease ${lease.id} is ${lease.status}`);
        return identityId;
      },
    });
  }

  /** The lease of an SVID by certificate serial (node prints it upper-case, the issuer stores lower-case hex). */
  #svidLease(serial: string): Lease | undefined {
    const hex = serial.toLowerCase().replace(/^0+/, '');
    for (const h of [hex, `0${hex}`, `00${hex}`]) {
      const r = this.credentials.introspect('spiffe-x509', h);
      if (r.lease) return r.lease;
    }
    return undefined;
  }

  publicJwks(): { keys: unknown[] } {
    return this.keyring.publicJwks(['session', 'token']);
  }

  // ── Authorization ────────────────────────────────────────────────────────────────────────

  /**
   * The one place active grants enter a decision: `context.grants`, temporary role parents, and
   * `breakGlass` when a break-glass covers this resource (the authz event is then tagged).
   */
  #withGrants(identity: Identity, resource: EntityUid): Pick<DecisionInput, 'principal' | 'grants' | 'breakGlass'> {
    const p = principalFacts(identity);
    const g = this.access.activeGrants(identity.id, this.clock.now(), resource);
    return {
      principal: g.parents.length > 0 ? { ...p, parents: [...p.parents, ...g.parents] } : p,
      grants: g.grants,
      breakGlass: g.breakGlass,
    };
  }

  #decisionInput(s: SessionContext, action: string, resource: EntityUid, sourceIp: string, purpose = {}, extra?: Record<string, unknown>): DecisionInput {
    return {
      ...this.#withGrants(s.identity, resource),
      claims: s.claims,
      authn: s.authn,
      sessionId: s.jti,
      sourceIp,
      action,
      resource,
      purpose,
      ...(extra !== undefined && { extra }),
    };
  }

  async authorize(s: SessionContext, body: { action: string; resource: EntityUid; context?: Record<string, unknown> }, sourceIp: string): Promise<Decision> {
    const { purpose, extra } = parseCallerContext(body.context, body.action, this.config.schema_extension);
    const started = performance.now();
    const d = await this.decisions.decide(this.#decisionInput(s, body.action, body.resource, sourceIp, purpose, extra));
    this.metrics.decisionSeconds.observe((performance.now() - started) / 1000);
    this.metrics.decisions.inc({ decision: d.decision });
    this.#requireNoStepUp(s, d);
    return d;
  }

  /** What a fresh login would fix for this decision, if anything (policy `@stepUp`/`@maxAuthAge`). */
  stepUpFor(d: Decision) {
    const v = this.decisions.version;
    if (!v || d.decision !== 'deny') return undefined;
    // Rebuilt once per activated version, whichever path activated it.
    if (this.#stepUp?.version !== v.version) this.#stepUp = { version: v.version, index: stepUpIndex(compilePolicySet(v.files, this.config.schema_extension)) };
    return stepUpFor(d, this.#stepUp.index);
  }

  /** A deny that a fresh (MFA) login would turn into an allow is a 401 step_up_required instead of a plain deny. */
  #requireNoStepUp(s: SessionContext, d: Decision): void {
    // Only a human sign-in can bring back MFA or a fresh login; anyone else gets the plain deny.
    const trust = this.humanTrusts.get(s.authn.trust);
    if (!trust) return;
    const need = this.stepUpFor(d);
    if (!need) return;
    const acr = trust.config.step_up_acr;
    throw new StepUpRequired(need, { decision_id: d.decision_id, trust: s.authn.trust, ...(need.mfa && acr !== undefined && { acr_values: acr }) });
  }

  async authorizeBatch(s: SessionContext, bodies: { action: string; resource: EntityUid; context?: Record<string, unknown> }[], sourceIp: string): Promise<Decision[]> {
    // Validate every request before deciding any, so a bad item leaves no half-recorded batch.
    const inputs = bodies.map((b, i) => {
      try {
        const { purpose, extra } = parseCallerContext(b.context, b.action, this.config.schema_extension);
        return this.#decisionInput(s, b.action, b.resource, sourceIp, purpose, extra);
      } catch (err) {
        if (err instanceof InvalidInput) throw new InvalidInput(`requests[${i}]: ${err.message}`, `requests[${i}].${String(err.extra.field ?? '')}`);
        throw err;
      }
    });
    const out = await this.decisions.decideBatch(inputs);
    for (const d of out) this.metrics.decisions.inc({ decision: d.decision });
    return out;
  }

  /** Admin calls are Cedar decisions too; a deny is a 403 carrying the decision id. */
  async requireAllowed(s: SessionContext, action: string, resource: EntityUid, sourceIp: string): Promise<Decision> {
    const entity = this.#adminResource(resource);
    const input = this.#decisionInput(s, action, resource, sourceIp);
    const d = await this.decisions.decide({ ...input, resourceEntities: [entity] });
    this.metrics.decisions.inc({ decision: d.decision });
    this.#requireNoStepUp(s, d);
    if (d.decision !== 'allow') throw new Forbidden(`not allowed: ${action} on ${resource.type}::"${resource.id}"`, { decision_id: d.decision_id });
    return d;
  }

  #adminResource(uid: EntityUid) {
    if (uid.type === 'Identity') {
      const target = this.identities.get(uid.id);
      return adminEntity('Identity', uid.id, target ? { boundary: target.boundary, environment: target.environment, kind: target.kind, ...(target.owner !== null && { owner: target.owner }) } : { kind: 'unknown' });
    }
    return adminEntity(uid.type, uid.id, {});
  }

  // ── Inventory ────────────────────────────────────────────────────────────────────────────

  async declareIdentity(by: SessionContext, input: IdentityInput): Promise<Identity> {
    checkIdentityId(input.id);
    const identity = this.identities.declare(input, 'api');
    await this.#adminEvent(by, 'identity.declared', { owner: identity.owner, kind: identity.kind, environment: identity.environment }, identity.id, identity.boundary);
    return identity;
  }

  async updateIdentity(by: SessionContext, id: string, patch: IdentityPatch): Promise<Identity> {
    const before = this.identities.require(id);
    const after = this.identities.update(id, patch);
    const changed = Object.fromEntries(Object.keys(patch).map((k) => [k, { from: before[k as keyof Identity], to: after[k as keyof Identity] }]));
    await this.#adminEvent(by, 'identity.updated', { changed }, id, after.boundary);
    return after;
  }

  /** Suspending or offboarding ends every live session of the identity at once. */
  async setIdentityStatus(by: SessionContext, id: string, status: IdentityStatus, reason: string): Promise<Identity> {
    const identity = this.identities.setStatus(id, status);
    if (status !== 'active') {
      this.sessions.revokeIdentity(id);
      await this.credentials.revoke({ identity: id }, { by: by.identity.id, reason: `identity ${status}: ${reason}` });
    }
    if (status === 'offboarded') this.apikeys.revokeAllFor(id, 'identity offboarded');
    await this.#adminEvent(by, `identity.${status}`, { reason }, id, identity.boundary);
    return identity;
  }

  // ── API keys ─────────────────────────────────────────────────────────────────────────────

  async mintApiKey(by: SessionContext, body: { identity: string; ttl: string; rotate_after?: string; description?: string }) {
    const identity = this.identities.require(body.identity);
    if (identity.status !== 'active') throw new InvalidInput(`identity ${identity.id} is ${identity.status}`, 'identity');
    const minted = this.apikeys.mint({
      identityId: identity.id,
      identityKind: identity.kind,
      ttlMs: parseDuration(body.ttl, 'ttl'),
      ...(body.rotate_after !== undefined && { rotationMs: parseDuration(body.rotate_after, 'rotate_after') }),
      ...(body.description !== undefined && { description: body.description }),
    });
    await this.#adminEvent(by, 'apikey.minted', { key_id: minted.record.id, expires_at: minted.record.expires_at, rotate_by: minted.record.rotate_by }, identity.id, identity.boundary);
    return { api_key: minted.key, ...minted.record, warning: 'store this key now: it is shown once. API keys are a legacy exception; prefer workload identity federation.' };
  }

  listApiKeys(identity?: string) {
    return this.apikeys.list(identity);
  }

  apiKeyOwner(id: string): string {
    const k = this.apikeys.get(id);
    if (!k) throw new NotFound(`api key ${id}`);
    return k.identity_id;
  }

  async rotateApiKey(by: SessionContext, id: string) {
    const rotated = this.apikeys.rotate(id);
    await this.#adminEvent(by, 'apikey.rotated', { key_id: id, new_key_id: rotated.record.id }, rotated.record.identity_id);
    return { api_key: rotated.key, ...rotated.record };
  }

  async revokeApiKey(by: SessionContext, id: string, reason: string) {
    const record = this.apikeys.revoke(id);
    await this.#adminEvent(by, 'apikey.revoked', { key_id: id, reason }, record.identity_id);
    return record;
  }

  // ── Policies ─────────────────────────────────────────────────────────────────────────────

  activePolicies() {
    const v = this.decisions.version;
    if (!v) throw new NotFound('active policy version');
    return {
      version: v.version,
      created_at: v.created_at,
      actor: v.actor,
      reason: v.reason,
      digest: v.digest,
      files: v.files,
      policies: compilePolicySet(v.files, this.config.schema_extension).map((p) => p.id),
    };
  }

  /** Replaces the API-managed files (config files stay); validated, versioned, audited. */
  async writePolicies(by: SessionContext, body: { files: { name: string; text: string }[]; reason: string; dry_run?: boolean }) {
    const names = new Set<string>();
    for (const f of body.files) {
      if (names.has(f.name)) throw new InvalidInput(`duplicate file name ${f.name}`, 'files');
      names.add(f.name);
    }
    const configFiles = this.decisions.version?.files.filter((f) => f.origin === 'config') ?? [];
    for (const f of configFiles) if (names.has(f.name)) throw new InvalidInput(`${f.name} is managed by the configuration file; choose another name`, 'files');
    const files: PolicyFile[] = [...configFiles, ...body.files.map((f) => ({ name: f.name, text: f.text, origin: 'api' as const }))];
    if (body.dry_run) {
      const policies = compilePolicySet(files, this.config.schema_extension);
      return { valid: true, policies: policies.map((p) => p.id) };
    }
    splitPolicies(files);
    const { version, changed } = await this.decisions.activate(files, by.identity.id, body.reason);
    // Policy changes cannot leave stale privilege behind: leases the new policy refuses are revoked.
    const revalidated = changed ? await this.credentials.revalidateAll() : undefined;
    return { version: version.version, changed, digest: version.digest, ...(revalidated && { leases_revoked: revalidated }) };
  }

  // ── Credentials and leases ───────────────────────────────────────────────────────────────

  /** Decisions asked by the credential service: the identity's current inventory row, the facts of the session that asked. */
  readonly #decideForCredentials: Decide = async (req) => {
    const identity = this.identities.get(req.identityId);
    const c = req.context as Record<string, unknown> & { authn?: AuthnFacts; claims?: Record<string, string>; sourceIp?: string; sessionId?: string; delegation?: { actors: string[]; depth: number } };
    if (!identity || identity.status !== 'active') {
      const d = await this.decisions.decide({
        principal: principalFacts(identity ?? { id: req.identityId, kind: 'workload', boundary: 'none', environment: 'none', owner: null, labels: {}, parents: [] } as unknown as Identity),
        claims: {}, authn: c.authn ?? NO_SESSION, sourceIp: c.sourceIp ?? '0.0.0.0', action: req.action, resource: req.resource, purpose: {},
        resourceEntities: [], extra: { credential: credentialContext(c) },
      });
      return { decision: 'deny', decisionId: d.decision_id };
    }
    const { decision: d, recorded } = this.decisions.decideDeferred({
      ...this.#withGrants(identity, req.resource),
      claims: c.claims ?? {},
      authn: c.authn ?? NO_SESSION,
      ...(c.sessionId !== undefined && { sessionId: c.sessionId }),
      sourceIp: c.sourceIp ?? '0.0.0.0',
      action: req.action,
      resource: req.resource,
      purpose: typeof c.purpose === 'string' ? { reason: c.purpose } : {},
      ...(c.delegation && { delegation: c.delegation }),
      extra: { credential: credentialContext(c) },
    });
    this.metrics.decisions.inc({ decision: d.decision });
    return { decision: d.decision, decisionId: d.decision_id, recorded };
  };

  /** Decisions asked by the access service (access.request, access.approve, break-glass eligibility), live, with the actor's grants. */
  readonly #decideForAccess: AccessDecide = async (r) => {
    const identity = this.identities.get(r.actor.id);
    if (!identity || identity.status !== 'active') throw new Forbidden(`identity ${r.actor.id} is not active`);
    const withGrants = this.#withGrants(identity, r.resource);
    const d = await this.decisions.decide({
      ...withGrants,
      claims: {},
      authn: r.actor.authn,
      ...(r.actor.sessionId !== undefined && { sessionId: r.actor.sessionId }),
      sourceIp: r.actor.sourceIp ?? '0.0.0.0',
      action: r.action,
      resource: r.resource,
      purpose: r.purpose ?? {},
      breakGlass: r.breakGlass ?? withGrants.breakGlass,
      ...(r.resourceEntity && { resourceEntities: [r.resourceEntity] }),
    });
    this.metrics.decisions.inc({ decision: d.decision });
    return { decision: d.decision, decisionId: d.decision_id };
  };

  /** The access-domain actor for an API caller. */
  actor(s: SessionContext, sourceIp: string): Actor {
    return { id: s.identity.id, authn: s.authn, sessionId: s.jti, sourceIp };
  }

  /**
   * The grant a credential is issued under: the one named (must be the caller's and active now),
   * else the caller's active grant for this target, so ending it always reaches the lease.
   */
  #grantForCredential(s: SessionContext, target: string, grantId: string | undefined): Grant | undefined {
    const now = this.clock.now();
    const active = (g: Grant) => g.status === 'active' && Date.parse(g.start_at) <= now && now < Date.parse(g.end_at);
    if (grantId !== undefined) {
      const g = this.access.grants.get(grantId);
      if (g.identity_id !== s.identity.id) throw new Forbidden(`grant ${grantId} is not yours`);
      if (!active(g)) throw new InvalidInput(`grant ${grantId} is not active`, 'grant_id');
      return g;
    }
    const t = this.credentials.targets().find((x) => x.name === target);
    const covers = (g: Grant) =>
      g.target.kind === 'credential' ? g.target.target === target
      : g.target.kind === 'resource' ? t !== undefined && g.target.resource.type === t.resourceType && g.target.resource.id === target
      : false;
    return this.access.listGrants({ identityId: s.identity.id, activeAt: now }).map((x) => x.grant).find((g) => active(g) && covers(g));
  }

  #tokenSigner(): JwtSigner {
    const ring = this.keyring;
    return {
      get kid() {
        return ring.activeKey('token').kid;
      },
      alg: 'EdDSA',
      sign: (claims, header) => ring.signJwt('token', claims, typeof header.typ === 'string' ? { typ: header.typ } : {}),
    };
  }

  /** Issues a credential for the caller after a request-time decision; the lease records who, what, why. */
  async issueCredential(s: SessionContext, body: { target: string; permission?: string; ttl?: string; reason: string; public_key?: string; csr?: string; scopes?: string[]; grant_id?: string }, sourceIp: string): Promise<Issued> {
    const grant = this.#grantForCredential(s, body.target, body.grant_id);
    const params: Record<string, unknown> = {};
    // The holder's key pair stays with the holder: SVIDs are issued for its PEM public key or CSR.
    const svid = this.credentials.targets().find((t) => t.name === body.target)?.kind === 'spiffe-x509';
    if (body.public_key !== undefined) params[svid ? 'publicKeyPem' : 'publicKey'] = body.public_key;
    if (body.csr !== undefined) {
      if (!svid) throw new InvalidInput('csr: only spiffe-x509 targets take a CSR', 'csr');
      params.csr = body.csr;
    }
    if (body.scopes !== undefined) params.scopes = body.scopes;
    return this.credentials.issue({
      identityId: s.identity.id,
      target: body.target,
      ...(body.permission !== undefined && { permission: body.permission }),
      ...(body.ttl !== undefined && { ttl: body.ttl }),
      purpose: body.reason,
      params,
      context: { authn: s.authn, claims: s.claims, sourceIp, sessionId: s.jti },
      sessionId: s.jti,
      trust: s.authn.trust,
      ...(grant && { grantId: grant.id }),
    });
  }

  /**
   * RFC 8693 delegation: the actor presents the subject's Portcullis access token and its own
   * access token for the same API; what the actor may do is its own token's scope (decided by
   * policy when it was issued). The new token's scope is at most the intersection, its `act`
   * records the chain, and Cedar decides it with `context.delegation`. Errors are RFC 6749 codes.
   */
  async exchangeDelegated(req: { subjectToken: string; actorToken: string; audience?: string; resource?: string; scope?: string }, sourceIp: string): Promise<Issued> {
    const target = this.#apiTargetFor(req.audience, req.resource);
    const keys = createLocalJWKSet(this.publicJwks() as { keys: JWK[] });
    const verify = async (token: string, which: string) => {
      try {
        const v = await verifyAccessToken(token, keys, { issuer: this.issuer, audience: target.audience, currentDate: new Date(this.clock.now()) });
        const lease = this.credentials.introspect('api', v.jti);
        if (!lease.active || !lease.lease) throw new TokenExchangeRefused('invalid_grant', `${which} has been revoked or has expired`);
        const identity = this.identities.get(v.sub);
        if (!identity || identity.status !== 'active') throw new TokenExchangeRefused('invalid_grant', `${which}: its identity is not active`);
        return { v, lease: lease.lease };
      } catch (err) {
        if (err instanceof AuthenticationFailed) throw new TokenExchangeRefused('invalid_grant', `${which} is not a valid access token for ${target.name}`);
        throw err;
      }
    };
    const subject = await verify(req.subjectToken, 'subject_token');
    const actor = await verify(req.actorToken, 'actor_token');
    if (actor.v.act) throw new TokenExchangeRefused('invalid_grant', "actor_token must be the actor's own token, not a delegated one");
    let scopes: string[] | undefined;
    if (req.scope !== undefined) {
      try {
        scopes = parseScopes(req.scope, 'scope');
      } catch {
        throw new TokenExchangeRefused('invalid_scope', 'scope: expected space-separated scope tokens');
      }
    }
    // The subject's original session facts are what policy sees; the chain goes in context.delegation.
    const ctx = (subject.lease.params.context ?? {}) as Record<string, unknown>;
    try {
      return await this.credentials.exchange({
        target: target.name,
        subject: { identityId: subject.v.sub, scopes: subject.v.scopes, jti: subject.v.jti, ...(subject.v.act && { act: subject.v.act }) },
        actor: { identityId: actor.v.sub, scopes: actor.v.scopes },
        ...(scopes && { scopes }),
        purpose: `token exchange: ${actor.v.sub} acting for ${subject.v.sub}`,
        context: { ...ctx, sourceIp },
        ...(subject.lease.sessionId !== null && { sessionId: subject.lease.sessionId }),
        ...(subject.lease.trust !== null && { trust: subject.lease.trust }),
      });
    } catch (err) {
      if (err instanceof Forbidden) {
        if (Array.isArray(err.extra.scopes)) throw new TokenExchangeRefused('invalid_scope', err.message);
        throw new TokenExchangeRefused('invalid_grant', err.message, err.extra.decision_id !== undefined ? { decision_id: err.extra.decision_id } : {});
      }
      if (err instanceof InvalidInput) throw new TokenExchangeRefused('invalid_request', err.message);
      throw err;
    }
  }

  /** `audience` (target name or its audience) and/or `resource` (its audience URI) name one api target. */
  #apiTargetFor(audience: string | undefined, resource: string | undefined): ApiTarget {
    if (audience === undefined && resource === undefined) throw new TokenExchangeRefused('invalid_request', 'audience or resource is required: it names the API the token is for');
    const apis = this.config.targets.filter((t): t is ApiTarget => t.kind === 'api');
    const byAudience = audience === undefined ? undefined : apis.find((t) => t.name === audience || t.audience === audience);
    const byResource = resource === undefined ? undefined : apis.find((t) => t.audience === resource);
    const t = byAudience ?? byResource;
    if (!t || (audience !== undefined && resource !== undefined && byAudience !== byResource)) {
      throw new TokenExchangeRefused('invalid_target', 'audience/resource does not name one API target of this server');
    }
    return t;
  }

  leaseOwner(id: string): string {
    return this.credentials.get(id).identityId;
  }

  /**
   * Revokes everything a selector matches: leases (their live database sessions end), and the
   * session tokens of the identities it names. One admin event per revoked item.
   */
  async revoke(by: SessionContext | 'system', raw: unknown, reason: string): Promise<{ selector: RevocationSelector; leases: { matched: number; revoked: number; failed: { lease: string; error: string }[] }; sessions: string[] }> {
    const selector = parseSelector(raw);
    const actor = by === 'system' ? 'system' : by.identity.id;
    const sessions: string[] = [];
    const identities =
      'identity' in selector ? [selector.identity]
      : 'owner' in selector ? this.identities.list({ owner: selector.owner }).map((i) => i.id)
      : 'trust' in selector ? this.identities.list().filter((i) => i.trust === selector.trust).map((i) => i.id)
      : [];
    for (const id of identities) {
      this.sessions.revokeIdentity(id);
      sessions.push(`every session of ${id}`);
      await this.audit.append({ stream: 'admin', type: 'session.revoked', actor, subject: id, payload: { selector, reason } });
    }
    if ('session' in selector) {
      this.sessions.revokeJti(selector.session);
      sessions.push(`session ${selector.session}`);
      await this.audit.append({ stream: 'admin', type: 'session.revoked', actor, payload: { jti: selector.session, reason } });
    }
    const r = await this.credentials.revoke(selector, { by: actor, reason });
    return { selector, leases: { matched: r.matched, revoked: r.revoked.length, failed: r.failed.map((f) => ({ lease: f.leaseId, error: f.error ?? 'unknown' })) }, sessions };
  }

  listLeases(filter: { identity?: string; target?: string; status?: string }): Lease[] {
    return this.credentials.list({
      ...(filter.identity !== undefined && { identityId: filter.identity }),
      ...(filter.target !== undefined && { target: filter.target }),
      ...(filter.status !== undefined && { status: filter.status as Lease['status'] }),
    });
  }

  // ── Audit, keys, health ──────────────────────────────────────────────────────────────────

  verifyAudit(): AuditVerification {
    return this.audit.verify(this.keyring.publicKeyResolver);
  }

  async rotateKeys(by: SessionContext, purpose: 'session' | 'audit' | 'token') {
    const r = this.keyring.rotate(purpose);
    await this.#adminEvent(by, 'key.rotated', { purpose, kid: r.active.kid, previous: r.previous?.kid ?? null });
    return r;
  }

  readiness(): { ready: boolean; policy_version: number | null } {
    const v = this.decisions.version;
    return { ready: v !== undefined && this.db.isOpen, policy_version: v?.version ?? null };
  }

  /**
   * The first start of a real server creates `user:admin` (Role portcullis-admin) and a one-time
   * bootstrap secret. Returns the secret the first time only.
   */
  async bootstrap(): Promise<string | undefined> {
    const row = this.db.prepare('SELECT id FROM broker_bootstrap').get();
    if (row) return undefined;
    const secret = `pcx_bootstrap_${randomBytes(24).toString('base64url')}`;
    this.identities.declare({ id: BOOTSTRAP_ADMIN, kind: 'user', boundary: this.config.boundaries.includes('platform') ? 'platform' : this.config.boundaries[0]!, environment: 'control-plane', owner: BOOTSTRAP_ADMIN, purpose: 'first administrator (bootstrap)', parents: [ADMIN_ROLE] }, 'api');
    this.db.prepare('INSERT INTO broker_bootstrap (id, hash, created_at) VALUES (1, ?, ?)').run(sha256(secret), new Date(this.clock.now()).toISOString());
    await this.audit.append({ stream: 'admin', type: 'bootstrap.created', actor: 'system', subject: BOOTSTRAP_ADMIN, payload: { note: 'one-time bootstrap credential issued on first start' } });
    return secret;
  }

  /** Exchanges the one-time bootstrap secret for an admin session; it cannot be used twice. */
  async loginBootstrap(secret: string, sourceIp: string): Promise<LoginResult> {
    const row = this.db.prepare('SELECT hash, used_at FROM broker_bootstrap WHERE id = 1').get() as { hash: string; used_at: string | null } | undefined;
    const ok = row !== undefined && row.used_at === null && timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(sha256(secret), 'hex'));
    if (!ok) {
      const reason = row?.used_at ? 'bootstrap_used' : 'bad_bootstrap';
      await this.audit.append({ stream: 'authn', type: 'authn.failure', actor: 'anonymous', payload: { reason, proof: 'bootstrap', source_ip: sourceIp } });
      throw new AuthenticationFailed(reason, 'bootstrap credential rejected');
    }
    this.db.prepare('UPDATE broker_bootstrap SET used_at = ? WHERE id = 1').run(new Date(this.clock.now()).toISOString());
    const identity = this.identities.require(BOOTSTRAP_ADMIN);
    const facts: AuthnFacts = { method: 'bootstrap', trust: 'bootstrap', mfa: false, assurance: 'low', auth_time: Math.floor(this.clock.now() / 1000) };
    const session = await this.sessions.issue({ identityId: identity.id, facts });
    await this.audit.append({ stream: 'authn', type: 'authn.success', actor: identity.id, boundary: identity.boundary, payload: { method: 'bootstrap', jti: session.jti, source_ip: sourceIp, note: 'bootstrap credential used; it is now spent' } });
    return { session_token: session.token, token_type: 'Bearer', expires_at: new Date(session.expiresAt).toISOString(), identity };
  }

  async #adminEvent(by: SessionContext, type: string, payload: Record<string, unknown>, subject?: string, boundary?: string): Promise<void> {
    const event: AuditEventInput = { stream: 'admin', type, actor: by.identity.id, payload: { ...payload, authn: by.authn.method, session: by.jti } };
    if (subject !== undefined) event.subject = subject;
    if (boundary !== undefined) event.boundary = boundary;
    await this.audit.append(event);
  }

  async close(): Promise<void> {
    try {
      await this.access.stop();
      await this.credentials.stop();
      await this.audit.close();
    } finally {
      if (this.db.isOpen) this.db.close();
      if (this.#auditDb.isOpen) this.#auditDb.close();
    }
  }
}

export function principalFacts(i: Identity): PrincipalFacts {
  return { id: i.id, kind: i.kind, boundary: i.boundary, environment: i.environment, owner: i.owner, labels: i.labels, parents: i.parents };
}

/** Thrown inside a device poll that is still pending: not a login attempt, so not audited. */
const PENDING = Symbol('pending');

function human(l: HumanLogin): { proof: VerifiedProof; parents: EntityUid[] } {
  return { proof: l.proof, parents: l.parents };
}

const NO_SESSION: AuthnFacts = { method: 'bootstrap', trust: 'none', mfa: false, assurance: 'low', auth_time: 0 };

function credentialContext(c: Record<string, unknown>) {
  return {
    kind: String(c.kind ?? ''),
    target: String(c.target ?? ''),
    permission: String(c.permission ?? ''),
    ttlSeconds: typeof c.ttl === 'number' ? c.ttl : 0,
    renewal: c.renewal === true,
    revalidation: c.revalidation === true,
  };
}

/** The SSH user CA is derived from a sealed 32-byte keyring secret, so it survives restarts. */
function ed25519FromSeed(seed: Uint8Array) {
  const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
  return createPrivateKey({ key: Buffer.concat([pkcs8Prefix, Buffer.from(seed)]), format: 'der', type: 'pkcs8' });
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

