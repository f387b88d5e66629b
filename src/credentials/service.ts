// The facade the server and CLI call: issue / renew / revoke / list / reconcile / reaper.
// Order of an issuance: validate → Cedar decision (before touching the target) → record intent
// (lease `issuing`) → create at the target → record `active` → audit → hand out. If the broker
// dies in between, reconcile() on the next start finds the intent and cleans up. Issuers that only
// sign (tokens, certificates) need no intent: sign → record the lease `active` and audit, together
// → hand out.
import type { AuditEventInput, AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import { parseDuration, formatDuration } from '../common/duration.ts';
import { Forbidden, InvalidInput, NotFound, PortcullisError, Unavailable } from '../common/errors.ts';
import type { TargetConfig } from './config.ts';
import { LeaseNotActive, TargetError } from './errors.ts';
import type { IssuerDeps } from './issuers/registry.ts';
import { createIssuer } from './issuers/registry.ts';
import { newLeaseId } from './leases.ts';
import type { LeaseFilter, LeaseRepository } from './ports.ts';
import { backoffMs, Reaper } from './reaper.ts';
import type { Leadership } from '../store/ports.ts';
import type { ReaperRun } from './reaper.ts';
import { leaseDecisionRequest, matchInFlight, revalidateAll, revokeMatching, selectLeases } from './revocation.ts';
import type {
  BulkRevocationResult, LeaseRevoker, RevalidationResult, RevocationResolvers, RevocationSelector, RevokeOptions, RevokeOutcome,
} from './revocation.ts';
import type { CredentialIssuer, Decide, DelegationFacts, GrantFacts, Lease, LeaseView, RevocationList, SessionFacts } from './types.ts';

export interface CredentialServiceOptions extends Omit<IssuerDeps, 'clock'> {
  /** The lease table (the store's `credentials.leases`). */
  leases: LeaseRepository;
  clock?: Clock;
  audit: AuditSink;
  decide: Decide;
  /** Validated targets (config.validateTargets). */
  targets: TargetConfig[];
  /** Issuers built elsewhere (tests, plugins); they take precedence over `targets` of the same name. */
  issuers?: CredentialIssuer[];
  resolvers?: RevocationResolvers;
  reaperIntervalMs?: number;
  /** How often the leading replica reconciles leases with the targets (default 60 s). */
  reconcileIntervalMs?: number;
  /**
   * Replicas sharing the store: the reaper runs only while `leads()` (one replica at a time);
   * each intent is held (`intents.hold`) by the replica issuing it, so reconcile clears only the
   * intents of replicas that are gone; and a lease younger than `inFlightGraceMs` is never
   * "missing at the target" (another replica may be creating it). Default: one process, which
   * always leads and knows its own intents.
   */
  cluster?: { leads: () => boolean; inFlightGraceMs: number; intents: Pick<Leadership, 'hold' | 'ifAbandoned'> };
  /** Counts for metrics: each issuance attempt's result, each revocation's outcome and duration. */
  observe?: CredentialObserver;
  /** Test hook: called at crash points (`issue.before_record`, `revoke.before_target`). */
  crashHook?: (point: string) => void;
}

export interface CredentialObserver {
  issued(kind: string, target: string, result: 'issued' | 'denied' | 'failed'): void;
  revoked(kind: string, result: 'revoked' | 'expired' | 'revoke_failed', seconds: number): void;
}

export interface IssueInput {
  identityId: string;
  target: string;
  /** Permission set (postgres). Other kinds take their scope from params. */
  permission?: string;
  /** `15m` or milliseconds; default the target's default_ttl, at most its max_ttl. */
  ttl?: string | number;
  purpose: string;
  /** Kind-specific: `publicKey` (ssh), `scopes` (api), `publicKeyPem` (spiffe-x509)… */
  params?: Record<string, unknown>;
  /** The session it is asked in; stored with the lease to re-decide it on renew and after a policy change. */
  session?: SessionFacts;
  /** An RFC 8693 exchange's chain of actors (stored too). */
  delegation?: DelegationFacts;
  /** The requester's grants for this target, when the caller read them already (never stored). */
  grants?: GrantFacts;
  /** Who asks, when not the identity itself (an operator issuing for a workload). */
  actor?: string;
  grantId?: string;
  /** ms since the epoch the lease may never outlive, renewals included (the end of its grant). */
  notAfter?: number;
  sessionId?: string;
  trust?: string;
}

export interface Issued {
  lease: Lease;
  /** Contains secrets (password, token): return to the caller once, never log. */
  credential: Record<string, unknown>;
}

export interface ReconcileReport {
  /** Revocations left half-done (`revoking`) that were completed. */
  completed: RevokeOutcome[];
  /** Target-side credentials without a live lease, removed. */
  dropped: { target: string; handle: string; leaseId: string | null }[];
  /** Active leases whose credential had vanished at the target, now closed. */
  closed: string[];
  /** Leases stuck in `issuing` from a dead broker, marked failed. */
  abandoned: string[];
  errors: string[];
}

const MAX_PURPOSE = 500;

/** A lease being issued by this broker. */
interface InFlight {
  lease: Lease;
  /**
   * Revocations go through the lease table: always for an intent issuance (before its intent is
   * on record nobody can name it, as before), and for an issuer that only signs once its one
   * write is durable. False until then: a revocation is left in `revoke`.
   */
  recorded: boolean;
  /** A revocation that reached it before it was on record, honoured by the issuance once it is. */
  revoke?: RevokeOptions;
}

export class CredentialService implements LeaseRevoker {
  readonly leases: LeaseRepository;
  readonly #issuers = new Map<string, CredentialIssuer>();
  readonly #clock: Clock;
  readonly #audit: AuditSink;
  readonly #decide: Decide;
  readonly #resolvers: RevocationResolvers;
  readonly #targets = new Map<string, TargetConfig>();
  /** Leases this broker is issuing now, by id (see InFlight). */
  readonly #inFlight = new Map<string, InFlight>();
  readonly #revoking = new Map<string, Promise<RevokeOutcome>>();
  readonly #reaper: Reaper;
  readonly #reconcileEveryMs: number;
  #reconcileTimer: NodeJS.Timeout | undefined;
  #reconciling: Promise<ReconcileReport> | undefined;
  #krl: { at: number; bytes: Promise<RevocationList> } | undefined;
  readonly #leads: () => boolean;
  /** Leases younger than this may still be in the making on another replica. */
  readonly #graceMs: number;
  readonly #intents: Pick<Leadership, 'hold' | 'ifAbandoned'>;
  readonly #crash: (point: string) => void;
  readonly #observe: CredentialObserver | undefined;

  constructor(opts: CredentialServiceOptions) {
    this.#clock = opts.clock ?? systemClock;
    this.#audit = opts.audit;
    this.#decide = opts.decide;
    this.#resolvers = opts.resolvers ?? {};
    this.#crash = opts.crashHook ?? (() => {});
    this.#observe = opts.observe;
    this.leases = opts.leases;
    for (const t of opts.targets) this.#targets.set(t.name, t);
    for (const i of opts.issuers ?? []) this.#issuers.set(i.target, i);
    for (const t of opts.targets) {
      if (!this.#issuers.has(t.name)) this.#issuers.set(t.name, createIssuer(t, { ...opts, clock: this.#clock }));
    }
    this.#reaper = new Reaper(this.leases, this, this.#clock, { intervalMs: opts.reaperIntervalMs, ...(opts.cluster && { leads: opts.cluster.leads }) });
    this.#graceMs = opts.cluster?.inFlightGraceMs ?? 0;
    this.#leads = opts.cluster?.leads ?? (() => true);
    this.#reconcileEveryMs = opts.reconcileIntervalMs ?? 60_000;
    // One process: its intents in flight are in #inFlight; any other on record is a dead process's.
    this.#intents = opts.cluster?.intents ?? { hold: async () => async () => {}, ifAbandoned: (_key, fn) => fn() };
  }

  issuer(target: string): CredentialIssuer {
    const i = this.#issuers.get(target);
    if (!i) throw new NotFound(`target ${target}`);
    return i;
  }

  targets(): { name: string; kind: string; resourceType: string }[] {
    return [...this.#issuers.values()].map((i) => ({ name: i.target, kind: i.kind, resourceType: i.resourceType }));
  }

  #ttl(input: IssueInput): number {
    const t = this.#targets.get(input.target);
    const max = t?.max_ttl_ms ?? 3_600_000;
    const def = t?.default_ttl_ms ?? Math.min(max, 900_000);
    if (input.ttl === undefined) return def;
    const ms = typeof input.ttl === 'number' ? input.ttl : parseDuration(input.ttl, 'ttl');
    if (!Number.isFinite(ms) || ms < 1000) throw new InvalidInput('ttl: must be at least 1s', 'ttl');
    if (ms > max) throw new InvalidInput(`ttl: ${formatDuration(ms)} exceeds the target's max_ttl of ${formatDuration(max)}`, 'ttl', { max_ttl: formatDuration(max) });
    return ms;
  }

  /**
   * Asks policy; unless `overlap`, also waits until the decision is on record. With `overlap` the
   * caller must pass `recorded` to `#onRecord` before it hands anything out.
   */
  async #decideOrFail(req: Parameters<Decide>[0], overlap = false): Promise<{ decision: 'allow' | 'deny'; decisionId: string; recorded: Promise<void> }> {
    let d: Awaited<ReturnType<Decide>>;
    try {
      d = await this.#decide(req);
    } catch (e) {
      throw new Unavailable(`policy decision failed: ${(e as Error).message}`);
    }
    const recorded = (d.recorded ?? Promise.resolve()).catch((e: unknown) => {
      throw e instanceof PortcullisError ? e : new Unavailable(`policy decision could not be recorded: ${(e as Error).message}`);
    });
    recorded.catch(() => {}); // handled where it is awaited; an early throw must not leave it unhandled
    if (!overlap) await recorded;
    return { decision: d.decision, decisionId: d.decisionId, recorded };
  }

  async issue(input: IssueInput): Promise<Issued> {
    if (!this.#observe) return this.#issue(input);
    const kind = this.#issuers.get(input.target)?.kind ?? 'unknown';
    try {
      const issued = await this.#issue(input);
      this.#observe.issued(kind, input.target, 'issued');
      return issued;
    } catch (e) {
      this.#observe.issued(kind, input.target, e instanceof Forbidden ? 'denied' : 'failed');
      throw e;
    }
  }

  async #issue(input: IssueInput): Promise<Issued> {
    const issuer = this.issuer(input.target);
    if (typeof input.identityId !== 'string' || input.identityId === '') throw new InvalidInput('identityId: required', 'identityId');
    if (typeof input.purpose !== 'string' || input.purpose.trim() === '') throw new InvalidInput('purpose: a reason is required', 'purpose');
    if (input.purpose.length > MAX_PURPOSE) throw new InvalidInput(`purpose: at most ${MAX_PURPOSE} characters`, 'purpose');
    const ttl = this.#ttl(input);
    const params = input.params ?? {};
    const permission = issuer.check(params, input.permission, input.identityId);
    const session = input.session ?? {};

    // Decide before anything touches the target. Its audit record commits while we issue; the
    // credential is handed out only once both that record and the issuance record are durable.
    const decision = await this.#decideOrFail(
      {
        identityId: input.identityId,
        action: 'credential.issue',
        resource: { type: issuer.resourceType, id: issuer.target },
        session,
        purpose: input.purpose,
        credential: { kind: issuer.kind, target: issuer.target, permission, ttlSeconds: Math.ceil(ttl / 1000), renewal: false, revalidation: false },
        ...(input.delegation && { delegation: input.delegation }),
        ...(input.grants && { grants: input.grants }),
      },
      true,
    );
    const decisionRecorded = decision.recorded;
    if (decision.decision !== 'allow') {
      await decisionRecorded; // a refusal is on record before it is answered
      throw new Forbidden(`credential issuance for ${issuer.target} denied by policy`, { decision_id: decision.decisionId });
    }

    const now = this.#clock.now();
    const t = this.#targets.get(input.target);
    const lease: Lease = {
      id: newLeaseId(),
      identityId: input.identityId,
      target: issuer.target,
      kind: issuer.kind,
      permission,
      handle: null,
      // The facts it was decided on, to re-decide it by (the stored shape predates typed requests).
      params: { context: { ...session, ...(input.delegation && { delegation: input.delegation }) } },
      fingerprint: null,
      status: 'issuing',
      purpose: input.purpose,
      decisionId: decision.decisionId,
      grantId: input.grantId ?? null,
      sessionId: input.sessionId ?? null,
      trust: input.trust ?? null,
      issuedAt: now,
      expiresAt: Math.min(now + ttl, input.notAfter ?? Infinity),
      maxExpiresAt: Math.min(now + (t?.max_ttl_ms ?? ttl), input.notAfter ?? Infinity),
      renewals: 0,
      revokeAttempts: 0,
      nextAttemptAt: null,
      lastError: null,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    };
    if (issuer.createsAtTarget === false) return this.#issueSigned(issuer, lease, params, input, decisionRecorded);
    // In flight from before the intent is on record: a revocation that finds it `issuing` must
    // know this broker is still issuing it (not a dead broker's intent).
    this.#inFlight.set(lease.id, { lease, recorded: true });
    let release: (() => Promise<void>) | undefined;
    try {
      // Held before the intent is on record: no replica's reconcile takes it for a dead one's.
      release = await this.#intents.hold(lease.id);
      await this.leases.insert(lease);
      let result;
      try {
        result = await issuer.issue({ lease, params });
      } catch (e) {
        await this.leases.update(lease.id, { status: 'failed', lastError: (e as Error).message });
        throw e instanceof PortcullisError ? e : new TargetError(issuer.target, (e as Error).message);
      }
      this.#crash('issue.before_record');
      const active = await this.leases.transition(lease.id, ['issuing'], 'active', {
        handle: result.handle,
        fingerprint: result.fingerprint,
        params: { ...lease.params, ...(result.params ?? {}) },
        ...(result.expiresAt !== undefined ? { expiresAt: Math.min(result.expiresAt, lease.expiresAt) } : {}),
      });
      if (!active) {
        // A revocation reached this lease while it was being issued: honour it now.
        const l = await this.leases.update(lease.id, { handle: result.handle, fingerprint: result.fingerprint, status: 'revoking' });
        this.#inFlight.delete(lease.id);
        await this.revokeLease(l.id, { by: l.revokedBy ?? 'system', reason: l.revokeReason ?? 'revoked during issuance' });
        throw new Forbidden('credential was revoked while being issued', { lease: lease.id });
      }
      try {
        await Promise.all([this.#audit.append(this.#issuedEvent(active, input)), decisionRecorded]);
      } catch (e) {
        // Fail closed: a credential nobody can see in the audit must not be handed out.
        this.#inFlight.delete(lease.id);
        await this.revokeLease(lease.id, { by: 'system', reason: 'audit unavailable at issuance' }).catch(() => {});
        throw new Unavailable(`audit unavailable: ${(e as Error).message}`);
      }
      return { lease: active, credential: result.credential };
    } finally {
      this.#inFlight.delete(lease.id);
      await release?.();
    }
  }

  /**
   * Issuance by an issuer that only signs (`createsAtTarget: false`): sign, then one durable
   * write of the lease as issued, committed while its `credential.issued` audit record and the
   * decision's are made durable; the answer waits for all three. No intent is needed: a crash
   * before the write leaves nothing handed out and nothing at a target. A revocation whose
   * selector matches the lease before it is on record is left in `#inFlight` and honoured here.
   */
  async #issueSigned(issuer: CredentialIssuer, lease: Lease, params: Record<string, unknown>, input: IssueInput, decisionRecorded: Promise<void>): Promise<Issued> {
    const flight: InFlight = { lease, recorded: false };
    this.#inFlight.set(lease.id, flight);
    try {
      let result;
      try {
        result = await issuer.issue({ lease, params });
      } catch (e) {
        throw e instanceof PortcullisError ? e : new TargetError(issuer.target, (e as Error).message);
      }
      this.#crash('issue.before_record');
      const active: Lease = {
        ...lease,
        status: 'active',
        handle: result.handle,
        fingerprint: result.fingerprint,
        params: { ...lease.params, ...(result.params ?? {}) },
        ...(result.expiresAt !== undefined ? { expiresAt: Math.min(result.expiresAt, lease.expiresAt) } : {}),
      };
      flight.lease = active;
      // Set in the same turn the write is known durable, so a revocation either finds the lease on
      // record or leaves its request here (revokeLease), never neither.
      const recorded = this.leases.insert(active).then(() => {
        flight.recorded = true;
      });
      const issued = this.#audit.append(this.#issuedEvent(active, input));
      const [lease_, audit, decided] = await Promise.allSettled([recorded, issued, decisionRecorded]);
      if (lease_.status === 'rejected') {
        // Not on record, so not handed out. If its audit record made it, say that it did not stand.
        if (audit.status === 'fulfilled') {
          await this.#audit.append({
            stream: 'admin', type: 'credential.issue_failed', actor: input.actor ?? input.identityId, subject: input.identityId,
            payload: { lease: active.id, target: active.target, error: (lease_.reason as Error).message },
          }).catch(() => {});
        }
        throw lease_.reason;
      }
      if (audit.status === 'rejected' || decided.status === 'rejected') {
        // Fail closed: a credential nobody can see in the audit must not be handed out.
        const e = (audit.status === 'rejected' ? audit.reason : (decided as PromiseRejectedResult).reason) as Error;
        this.#inFlight.delete(lease.id);
        await this.revokeLease(lease.id, { by: 'system', reason: 'audit unavailable at issuance' }).catch(() => {});
        throw new Unavailable(`audit unavailable: ${e.message}`);
      }
      if (flight.revoke) {
        // A revocation reached this lease before it was on record: honour it now.
        const asked = flight.revoke;
        this.#inFlight.delete(lease.id);
        await this.revokeLease(lease.id, asked);
        throw new Forbidden('credential was revoked while being issued', { lease: lease.id });
      }
      return { lease: active, credential: result.credential };
    } finally {
      this.#inFlight.delete(lease.id);
    }
  }

  #issuedEvent(l: Lease, input: IssueInput): AuditEventInput {
    return {
      stream: 'admin',
      type: 'credential.issued',
      actor: input.actor ?? input.identityId,
      subject: input.identityId,
      payload: this.#auditPayload(l, { ttl: formatDuration(l.expiresAt - l.issuedAt) }),
    };
  }

  #auditPayload(l: Lease, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      lease: l.id,
      identity: l.identityId,
      target: l.target,
      kind: l.kind,
      permission: l.permission,
      purpose: l.purpose,
      decision_id: l.decisionId,
      fingerprint: l.fingerprint,
      expires_at: new Date(l.expiresAt).toISOString(),
      ...(l.grantId ? { grant: l.grantId } : {}),
      ...(l.sessionId ? { session: l.sessionId } : {}),
      ...(Array.isArray(l.params.actors) ? { delegation: { actors: l.params.actors, depth: l.params.actors.length } } : {}),
      ...(typeof l.params.parent === 'string' ? { parent: l.params.parent } : {}),
      ...extra,
    };
  }

  /** RFC 7662-style answer for a token's `jti` (or a certificate serial): is it still good? */
  async introspect(kind: Lease['kind'], handle: string): Promise<{ active: boolean; lease?: Lease }> {
    const l = await this.leases.byHandle(kind, handle);
    if (!l) return { active: false };
    return { active: this.#isActive(l), lease: l };
  }

  /** Extends an active lease (re-decided against current policy), never past its max_expires_at. */
  async renew(leaseId: string, opts: { ttl?: string | number; actor?: string } = {}): Promise<Issued> {
    const l = await this.leases.get(leaseId);
    if (!l) throw new NotFound(`lease ${leaseId}`);
    if (l.status !== 'active') throw new LeaseNotActive(leaseId, l.status);
    const issuer = this.issuer(l.target);
    const now = this.#clock.now();
    if (l.expiresAt <= now) throw new LeaseNotActive(leaseId, 'expired');
    const ttl = this.#ttl({ identityId: l.identityId, target: l.target, purpose: l.purpose, ttl: opts.ttl });
    const expiresAt = Math.min(now + ttl, l.maxExpiresAt);
    if (expiresAt <= l.expiresAt) throw new InvalidInput('ttl: the lease is already at its maximum lifetime', 'ttl', { max_expires_at: new Date(l.maxExpiresAt).toISOString() });
    const d = await this.#decideOrFail(leaseDecisionRequest(l, issuer.resourceType, now, { ttlSeconds: Math.ceil((expiresAt - now) / 1000), renewal: true }));
    if (d.decision !== 'allow') throw new Forbidden(`renewal of ${leaseId} denied by policy`, { decision_id: d.decisionId });
    const r = await issuer.renew({ ...l }, expiresAt);
    const renewed = await this.leases.transition(leaseId, ['active'], 'active', {
      expiresAt,
      renewals: l.renewals + 1,
      decisionId: d.decisionId,
      ...(r.handle ? { handle: r.handle } : {}),
      ...(r.fingerprint ? { fingerprint: r.fingerprint } : {}),
      ...(r.params ? { params: { ...l.params, ...r.params } } : {}),
    });
    if (!renewed) throw new LeaseNotActive(leaseId, (await this.leases.get(leaseId))?.status ?? 'unknown');
    try {
      await this.#audit.append({
        stream: 'admin',
        type: 'credential.renewed',
        actor: opts.actor ?? l.identityId,
        subject: l.identityId,
        payload: this.#auditPayload(renewed, { renewals: renewed.renewals }),
      });
    } catch (e) {
      throw new Unavailable(`audit unavailable: ${(e as Error).message}`);
    }
    return { lease: renewed, credential: r.credential ?? {} };
  }

  /** Revokes one lease (idempotent). Concurrent calls for the same lease share one attempt. */
  revokeLease(id: string, opts: RevokeOptions): Promise<RevokeOutcome> {
    const flight = this.#inFlight.get(id);
    if (flight && !flight.recorded) {
      // Being issued and not on record yet: its issuance revokes it as soon as it is.
      flight.revoke ??= opts;
      return Promise.resolve({ leaseId: id, status: 'pending' });
    }
    const running = this.#revoking.get(id);
    if (running) return running;
    const p = this.#revokeLease(id, opts).finally(() => this.#revoking.delete(id));
    this.#revoking.set(id, p);
    return p;
  }

  async #revokeLease(id: string, opts: RevokeOptions): Promise<RevokeOutcome> {
    const started = performance.now();
    const now = this.#clock.now();
    let current = await this.leases.get(id);
    if (!current) throw new NotFound(`lease ${id}`);
    if (current.status === 'issuing') {
      if (this.#inFlight.has(id)) {
        if (await this.leases.transition(id, ['issuing'], 'revoking', { revokedBy: opts.by, revokeReason: opts.reason })) {
          return { leaseId: id, status: 'pending' };
        }
        // It left `issuing` while we looked (the issuance recorded it): revoke it as it is now.
      }
      // Not in flight: its issuance ended (read it again, after that) or a dead broker left it.
      current = (await this.leases.get(id)) ?? current;
      if (current.status === 'issuing' && !this.#inFlight.has(id)) return { leaseId: id, status: 'unchanged' }; // reconcile's job
    }
    const l = await this.leases.transition(id, ['active', 'revoking', 'revoke_failed'], 'revoking', {
      revokedBy: current.revokedBy ?? opts.by,
      revokeReason: current.revokeReason ?? opts.reason,
    });
    if (!l) return { leaseId: id, status: 'unchanged' };
    const final = opts.final ?? (l.revokeReason === 'expired' ? 'expired' : 'revoked');
    const issuer = this.#issuers.get(l.target);
    try {
      if (!issuer) throw new TargetError(l.target, 'no issuer configured for this target any more');
      this.#crash('revoke.before_target');
      await issuer.revoke(l);
    } catch (e) {
      const attempts = l.revokeAttempts + 1;
      const failed = await this.leases.update(id, {
        status: 'revoke_failed',
        revokeAttempts: attempts,
        lastError: (e as Error).message,
        nextAttemptAt: now + backoffMs(attempts),
      });
      await this.#audit.append({
        stream: 'admin',
        type: 'credential.revoke_failed',
        actor: opts.by,
        subject: l.identityId,
        payload: this.#auditPayload(failed, { reason: failed.revokeReason, attempts, error: failed.lastError }),
      });
      this.#observe?.revoked(l.kind, 'revoke_failed', (performance.now() - started) / 1000);
      return { leaseId: id, status: 'revoke_failed', error: failed.lastError ?? '' };
    }
    this.#observe?.revoked(l.kind, final, (performance.now() - started) / 1000);
    const done = await this.leases.update(id, {
      status: final,
      revokedAt: this.#clock.now(),
      revokeAttempts: l.revokeAttempts + 1,
      lastError: null,
      nextAttemptAt: null,
    });
    try {
      await this.#audit.append({
        stream: 'admin',
        type: final === 'expired' ? 'credential.expired' : 'credential.revoked',
        actor: opts.by,
        subject: l.identityId,
        payload: this.#auditPayload(done, { reason: done.revokeReason, revoked_by: done.revokedBy }),
      });
    } catch (e) {
      throw new Unavailable(`lease ${id} revoked but its audit event could not be written: ${(e as Error).message}`);
    }
    // Tokens exchanged from this one lose their footing with it.
    for (const child of await this.leases.children(id)) {
      await this.revokeLease(child.id, { by: opts.by, reason: `parent lease ${id} ${final}` }).catch(() => {});
    }
    return { leaseId: id, status: final };
  }

  /** Revokes everything the selector matches; one admin audit event per revoked lease. */
  async revoke(selector: RevocationSelector, opts: { by: string; reason: string }): Promise<BulkRevocationResult> {
    if (typeof opts.reason !== 'string' || opts.reason.trim() === '') throw new InvalidInput('reason: required', 'reason');
    // Leases being issued and not on record yet (issuers that only sign) are taken before the
    // table is read, so one that goes on record meanwhile is still matched; revokeLease leaves the
    // request with the issuance while it is not on record.
    const inFlight = await matchInFlight([...this.#inFlight.values()].filter((f) => !f.recorded).map((f) => f.lease), selector, this.#resolvers);
    const ids = new Set(inFlight.map((l) => l.id));
    const leases = [...inFlight, ...(await selectLeases(this.leases, selector, this.#resolvers)).filter((l) => !ids.has(l.id))];
    if ('lease' in selector && leases.length === 0 && !(await this.leases.get(selector.lease))) throw new NotFound(`lease ${selector.lease}`);
    return revokeMatching(this, leases, { by: opts.by, reason: opts.reason });
  }

  /** On policy change: revoke active leases the new policy would no longer allow. */
  revalidateAll(decide: Decide = this.#decide): Promise<RevalidationResult> {
    return revalidateAll(this.leases, this, decide, (t) => this.#issuers.get(t)?.resourceType, this.#clock.now());
  }

  list(filter: LeaseFilter = {}, limit = 1000): Promise<Lease[]> {
    return this.leases.list(filter, limit);
  }

  async get(leaseId: string): Promise<Lease> {
    const l = await this.leases.get(leaseId);
    if (!l) throw new NotFound(`lease ${leaseId}`);
    return l;
  }

  /** True while the lease is active and unexpired: introspection for tokens and certificates. */
  async isActive(leaseId: string): Promise<boolean> {
    const l = await this.leases.get(leaseId);
    return !!l && this.#isActive(l);
  }

  #isActive(l: Lease): boolean {
    return l.status === 'active' && l.expiresAt > this.#clock.now();
  }

  /**
   * Brings leases and targets back into agreement: on start, when a replica takes the lead, and
   * every `reconcileIntervalMs` on the leader (a replica that died mid-issuance leaves an intent
   * and perhaps a role). Concurrent calls share the run in progress.
   */
  reconcile(): Promise<ReconcileReport> {
    this.#reconciling ??= this.#reconcile().finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async #reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { completed: [], dropped: [], closed: [], abandoned: [], errors: [] };
    // Leases issued from here on may be missing from the target listings read below (they are
    // being made now, on this replica or another): they are never "missing at the target".
    const startedAt = this.#clock.now() - this.#graceMs;
    for (const l of await this.leases.list({ status: 'revoking' }, 100_000)) {
      if (this.#revoking.has(l.id)) continue;
      report.completed.push(await this.revokeLease(l.id, { by: 'system:reconcile', reason: l.revokeReason ?? 'reconcile' }));
    }
    for (const issuer of this.#issuers.values()) {
      const view: LeaseView = {
        get: (id) => this.leases.get(id),
        keep: (id) => this.#keeps(id),
        active: () => this.leases.list({ target: issuer.target, status: 'active' }, 100_000),
      };
      let r;
      try {
        r = await issuer.reconcile(view);
      } catch (e) {
        report.errors.push(`${issuer.target}: ${(e as Error).message}`);
        continue;
      }
      report.errors.push(...r.errors.map((e) => `${issuer.target}: ${e}`));
      const now = this.#clock.now();
      for (const d of r.dropped) {
        report.dropped.push({ target: issuer.target, ...d });
        const l = d.leaseId ? await this.leases.get(d.leaseId) : undefined;
        if (l?.status === 'issuing' || (l?.status === 'failed' && l.handle === null)) {
          await this.leases.update(l.id, { status: 'failed', handle: d.handle, lastError: 'broker stopped during issuance; target credential removed by reconcile' });
        } else if (l && (l.status === 'revoking' || l.status === 'revoke_failed')) {
          await this.leases.update(l.id, { status: l.revokeReason === 'expired' ? 'expired' : 'revoked', revokedAt: now, lastError: null, nextAttemptAt: null });
        }
        await this.#audit.append({
          stream: 'admin',
          type: 'credential.reconcile_dropped',
          actor: 'system:reconcile',
          ...(l ? { subject: l.identityId } : {}),
          payload: { target: issuer.target, handle: d.handle, lease: d.leaseId, lease_status: l?.status ?? 'unknown' },
        });
      }
      for (const id of r.missing) {
        const current = await this.leases.get(id);
        if (!current || current.issuedAt >= startedAt) continue;
        const l = await this.leases.transition(id, ['active'], 'revoked', {
          revokedAt: now,
          revokedBy: 'system:reconcile',
          revokeReason: 'credential no longer exists at the target',
        });
        if (!l) continue;
        report.closed.push(id);
        await this.#audit.append({
          stream: 'admin',
          type: 'credential.reconcile_closed',
          actor: 'system:reconcile',
          subject: l.identityId,
          payload: this.#auditPayload(l, { reason: l.revokeReason }),
        });
      }
    }
    // Intent rows of a dead broker that had no target-side credential: nothing was handed out.
    for (const l of await this.leases.list({ status: 'issuing' }, 100_000)) {
      if (this.#inFlight.has(l.id)) continue;
      if (await this.#claimAbandoned(l.id)) report.abandoned.push(l.id);
    }
    return report;
  }

  /**
   * Reconcile's question about a credential found at a target: does its lease still want it?
   * Yes if active, or an intent a live replica (this one included) is still issuing. A gone
   * replica's intent is marked failed on the way (`#claimAbandoned`), so that replica, were it
   * only cut off, revokes what it made instead of handing it out.
   */
  async #keeps(id: string): Promise<boolean> {
    if (this.#inFlight.has(id)) return true;
    const l = await this.leases.get(id);
    if (l?.status === 'active') return true;
    if (l?.status !== 'issuing') return false;
    return !(await this.#claimAbandoned(id));
  }

  /** Marks an intent failed if no live replica holds it and it is still an intent; true if it did. */
  async #claimAbandoned(id: string): Promise<boolean> {
    const failed = await this.#intents.ifAbandoned(id, () => this.leases.transition(id, ['issuing'], 'failed', { lastError: 'broker stopped during issuance' }));
    return Boolean(failed);
  }

  reap(): Promise<ReaperRun> {
    return this.#reaper.runOnce();
  }

  /**
   * The OpenSSH KRL of every SSH certificate revoked or superseded and not yet expired, compiled
   * from the lease table (so each replica of a shared store serves the same); undefined without
   * SSH targets. Compiled at most once a second, concurrent callers sharing it.
   */
  sshKrl(): Promise<RevocationList> | undefined {
    const issuer = [...this.#issuers.values()].find((i) => i.kind === 'ssh' && i.revocationList);
    if (!issuer) return undefined;
    // Real time, not the domain clock: this bounds work, it decides nothing.
    const now = performance.now();
    if (!this.#krl || this.#krl.at < now - 1000) {
      const bytes = issuer.revocationList!();
      this.#krl = { at: now, bytes };
      bytes.catch(() => (this.#krl = undefined));
    }
    return this.#krl.bytes;
  }

  /** Starts the reaper and the periodic reconcile (each runs only while this replica leads). */
  startReaper(): void {
    this.#reaper.start();
    this.#reconcileTimer ??= setInterval(() => {
      if (this.#leads()) this.reconcile().catch(() => {}); // errors per target are in the report; the next run retries
    }, this.#reconcileEveryMs);
    this.#reconcileTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#reconcileTimer);
    this.#reconcileTimer = undefined;
    await this.#reaper.stop();
    await this.#reconciling?.catch(() => {});
    await Promise.allSettled([...this.#revoking.values()]);
    await Promise.allSettled([...this.#issuers.values()].map((i) => i.close()));
  }
}

export function createCredentialService(opts: CredentialServiceOptions): CredentialService {
  return new CredentialService(opts);
}
