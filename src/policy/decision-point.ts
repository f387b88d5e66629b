// The policy decision point: builds the context from verified facts, asks the engine, records the
// decision in the authz stream before returning it (fail closed), and owns policy activation.
import { randomUUIDv7 } from 'node:crypto';
import { isIP } from 'node:net';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzResult, CedarValue, DecisionEngine, Entity, EntityUid, PolicySource } from './engine/types.ts';
import type { AuditSink } from '../audit/types.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { Clock } from '../common/clock.ts';
import { InvalidInput, Unavailable } from '../common/errors.ts';
import type { PolicyFile } from './policy-set.ts';
import { compilePolicySet, schemaText } from './policy-set.ts';
import type { PolicyStore, PolicyVersion } from './store.ts';
import { digestFiles } from './store.ts';
import { SERVER_CONTEXT_KEYS } from './schema.ts';
import type { PrincipalFacts } from './entities.ts';
import { principalEntity } from './entities.ts';
import { cleanPurpose } from './purpose.ts';
import { snapshotOf } from './decision-snapshot.ts';

export interface Bridge {
  from: string;
  to: string;
  actions: string[];
  reason: string;
}

export interface Purpose {
  reason?: string;
  ticket?: string;
}

/** Everything the server knows for one request. Only `action`, `resource`, `purpose`, `extra` come from the caller. */
export interface DecisionInput {
  principal: PrincipalFacts;
  claims: Record<string, string | number | boolean>;
  authn: AuthnFacts;
  /** Session token id, for the audit trail. */
  sessionId?: string;
  sourceIp: string;
  action: string;
  resource: EntityUid;
  purpose: Purpose;
  /** Caller-supplied context beyond `purpose`; must be declared by the schema for the action. */
  extra?: Record<string, unknown>;
  grants?: string[];
  breakGlass?: boolean;
  delegation?: { depth: number; actors: string[] };
  /** Entities known only for this request (e.g. the admin resource being acted on). */
  resourceEntities?: Entity[];
}

/** What an application asks about (decideAsked): a subject and resource it may name, or a refusal recorded as a deny. */
export type AskedItem =
  | { input: DecisionInput }
  | { refused: { subject: string; resource: string; action: string; reason: 'subject_not_found' | 'resource_not_found'; detail: string } };

export interface Decision {
  decision: 'allow' | 'deny';
  reasons: string[];
  errors: { policy_id: string; message: string }[];
  decision_id: string;
  policy_version: number;
  bridge?: { from: string; to: string; reason: string };
}

export interface DecisionPointOptions {
  engine: DecisionEngine;
  store: PolicyStore;
  audit: AuditSink;
  clock: Clock;
  schemaExtension?: string;
  bridges: Bridge[];
  failClosed: boolean;
  /** Boundary of a resource, or undefined when the resource is not declared. */
  resourceBoundary: (uid: EntityUid) => string | undefined;
  /** A declared resource's entity, recorded with each decision for what-if replay (docs/governance.md). */
  resourceEntity?: (uid: EntityUid) => Entity | undefined;
  /** `context.signals` of a principal: the facts Shared Signals set (signals/facts.ts); the unknowns when left out. */
  signals?: (principalId: string) => Readonly<Record<string, string | number | boolean>>;
  onAuditFailure?: (err: unknown) => void;
}

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MAX_REASON = 1024;
const MAX_TICKET = 128;

export class DecisionPoint {
  readonly #o: DecisionPointOptions;
  #version: PolicyVersion | undefined;
  #policies: readonly PolicySource[] = [];
  readonly #askerMemo = new Map<string, AuthzResult>();
  #askerSecond = 0;

  constructor(options: DecisionPointOptions) {
    this.#o = options;
    options.store.onActivated(() => this.#takeNewer());
  }

  /** Another replica activated a version: load it if it is newer than ours. */
  async #takeNewer(): Promise<void> {
    const v = await this.#o.store.active();
    if (!v || (this.#version && v.version <= this.#version.version)) return;
    const policies = compilePolicySet(v.files, this.#o.schemaExtension);
    this.#o.engine.loadPolicies(policies);
    this.#version = v;
    this.#policies = policies;
  }

  get version(): PolicyVersion | undefined {
    return this.#version;
  }

  get engine(): DecisionEngine {
    return this.#o.engine;
  }

  /** The active policies, as validated at activation (system policies first). */
  get policies(): readonly PolicySource[] {
    return this.#policies;
  }

  /** Loads the stored active version into the engine (at start). */
  async loadActive(): Promise<PolicyVersion | undefined> {
    const v = await this.#o.store.active();
    if (v) {
      const policies = compilePolicySet(v.files, this.#o.schemaExtension);
      this.#o.engine.loadPolicies(policies);
      this.#version = v;
      this.#policies = policies;
    }
    return v;
  }

  /**
   * Validates and activates a new version. A rejected set throws PolicyRejected and leaves the
   * active set as it was. Returns the unchanged version when the files are identical.
   */
  async activate(files: readonly PolicyFile[], actor: string, reason: string): Promise<{ version: PolicyVersion; changed: boolean }> {
    const digest = digestFiles(files);
    if (this.#version && this.#version.digest === digest) return { version: this.#version, changed: false };
    const policies = compilePolicySet(files, this.#o.schemaExtension);
    await this.#o.audit.append({
      stream: 'admin',
      type: 'policy.activating',
      actor,
      payload: { previous_version: this.#version?.version ?? null, digest, files: files.map((f) => f.name), reason },
    });
    const version = await this.#o.store.append(files, actor, reason, new Date(this.#o.clock.now()));
    this.#o.engine.loadPolicies(policies);
    this.#version = version;
    this.#policies = policies;
    await this.#o.audit.append({
      stream: 'admin',
      type: 'policy.activated',
      actor,
      payload: { version: version.version, digest: version.digest, policies: policies.length, reason },
    });
    return { version, changed: true };
  }

  /** Decides and records one request. Throws Unavailable (→ deny) when audit is fail-closed and cannot record. */
  async decide(input: DecisionInput): Promise<Decision> {
    const { decision, recorded } = this.decideDeferred(input);
    await recorded;
    return decision;
  }

  /**
   * Decides now and starts recording; `recorded` settles when the authz event is durable (or
   * rejects with Unavailable when audit is fail-closed). A caller may do work meanwhile, but
   * must not release anything that depends on the decision before `recorded` resolves.
   */
  decideDeferred(input: DecisionInput): { decision: Decision; recorded: Promise<void> } {
    const { decision, record } = this.#evaluate(input);
    const recorded = this.#o.audit.append(record()).then(
      () => undefined,
      (err: unknown) => {
        if (this.#o.failClosed) throw Object.assign(new Unavailable('the decision could not be recorded in the audit log; denied'), { cause: err });
        this.#o.onAuditFailure?.(err);
      },
    );
    return { decision, recorded };
  }

  /**
   * Decides now; the authz event is appended when `append` is called (once; later calls return the
   * same promise), so a caller can put it in one group commit with its own record (the PostgreSQL
   * gateway: a statement's decisions and its session record). The caller must call `append` for
   * every decision and release nothing that depends on it before that resolves.
   */
  decideLater(input: DecisionInput): { decision: Decision; append: () => Promise<void> } {
    const { decision, record } = this.#evaluate(input);
    let appended: Promise<void> | undefined;
    return { decision, append: () => (appended ??= this.#record(record())) };
  }

  /**
   * The decision `decide` would make, WITHOUT an authz record. Only to filter the rows of a read
   * whose caller has just got one recorded decision for that read (docs/access.md "Who reads
   * what": which requests an approver may see); never to allow an action, issue anything or
   * answer a caller's own question — those are decided with `decide`.
   */
  wouldDecide(input: DecisionInput): Pick<Decision, 'decision' | 'policy_version'> {
    const { decision } = this.#evaluate(input);
    return { decision: decision.decision, policy_version: decision.policy_version };
  }

  /** Decides many requests for one principal; each is audited. */
  async decideBatch(inputs: DecisionInput[]): Promise<Decision[]> {
    return Promise.all(inputs.map((i) => this.decide(i)));
  }

  /**
   * An application asks about one of its subjects (AuthZEN, docs/authzen.md). The app's own
   * decision (`asker`: `pdp.query` on the decision point) and the subject's are made together and
   * recorded ONCE, attributed to both: `actor` the app, `subject` the subject, the app's decision
   * under `payload.asked_by`. A refused app gets its own deny recorded and no subject decision; a
   * subject or resource the app may not name (unknown, or outside its boundary) is a recorded
   * deny that never reaches the engine. `recorded` settles like decideDeferred's.
   */
  decideAsked(asker: DecisionInput, item: AskedItem, requestId?: string): { asker: Decision; decision: Decision; recorded: Promise<void> } {
    // The app's own pdp.query repeats identically within a second (same session, address, facts):
    // decided by the engine once per second and set of inputs, still recorded with every evaluation.
    const second = Math.floor(this.#o.clock.now() / 1000);
    if (second !== this.#askerSecond) {
      this.#askerMemo.clear();
      this.#askerSecond = second;
    }
    const a = this.#evaluate(asker, this.#askerMemo);
    // The app's own decision, inside the record (its allow is recorded nowhere else): the policies
    // that let it ask and the session (or API key) it asked with; who it is, is the record's actor.
    const askedBy = { reasons: a.decision.reasons, ...(asker.sessionId && { session: asker.sessionId }) };
    const api = { api: 'authzen', ...(requestId !== undefined && { request_id: requestId }) };
    let decision: Decision;
    let record: Parameters<AuditSink['append']>[0];
    if (a.decision.decision !== 'allow') {
      decision = a.decision;
      const own = a.record();
      record = { ...own, subject: 'refused' in item ? item.refused.subject : item.input.principal.id, payload: { ...own.payload, ...api, asked_by: askedBy } };
    } else if ('refused' in item) {
      const r = item.refused;
      const version = this.#version!;
      decision = { decision: 'deny', reasons: [], errors: [], decision_id: randomUUIDv7(), policy_version: version.version };
      record = {
        stream: 'authz',
        type: 'authz.decision',
        actor: asker.principal.id,
        subject: r.subject,
        boundary: asker.principal.boundary,
        decision: 'deny',
        payload: {
          decision_id: decision.decision_id,
          action: r.action,
          resource: r.resource,
          reasons: [],
          errors: [],
          policy_version: version.version,
          refused: r.reason,
          detail: r.detail,
          source_ip: asker.sourceIp,
          ...api,
          asked_by: askedBy,
        },
      };
    } else {
      const s = this.#evaluate(item.input);
      decision = s.decision;
      const own = s.record();
      record = { ...own, actor: asker.principal.id, subject: item.input.principal.id, payload: { ...own.payload, ...api, asked_by: askedBy } };
    }
    return { asker: a.decision, decision, recorded: this.#record(record) };
  }

  #record(record: Parameters<AuditSink['append']>[0]): Promise<void> {
    return this.#o.audit.append(record).then(
      () => undefined,
      (err: unknown) => {
        if (this.#o.failClosed) throw Object.assign(new Unavailable('the decision could not be recorded in the audit log; denied'), { cause: err });
        this.#o.onAuditFailure?.(err);
      },
    );
  }

  /** The decision, and its authz record built when asked for (an app's allowed pdp.query is never recorded on its own). */
  #evaluate(raw: DecisionInput, memo?: Map<string, AuthzResult>): { decision: Decision; record: () => Parameters<AuditSink['append']>[0] } {
    // A blank reason or ticket is no purpose: dropped here, for every path that decides (docs/policy.md).
    const input: DecisionInput = { ...raw, purpose: cleanPurpose(raw.purpose) };
    const version = this.#version;
    if (!version) throw new Unavailable('no policy version is active');
    const now = this.#o.clock.now();
    const resourceBoundary = this.#o.resourceBoundary(input.resource);
    const bridge =
      resourceBoundary !== undefined && resourceBoundary !== input.principal.boundary
        ? this.#o.bridges.find(
            (b) =>
              b.from === input.principal.boundary &&
              b.to === resourceBoundary &&
              (b.actions.length === 0 || b.actions.includes(input.action)),
          )
        : undefined;
    const context = this.#context(input, now, bridge !== undefined);
    const request = {
      principal: principalEntity(input.principal).uid,
      action: { type: 'Action', id: input.action },
      resource: input.resource,
      context,
    };
    const principal: Entity = principalEntity(input.principal, input.claims);
    const entities = [principal, ...(input.resourceEntities ?? [])];
    // A memo (decideAsked's, for the asking app) holds answers to requests identical in every
    // input — same policy version, request (its context carries the time to the second) and
    // entities: Cedar answers those the same, so the engine is not asked twice.
    const key = memo && memoKey(version.version, request, entities);
    let result = key === undefined ? undefined : memo!.get(key);
    if (!result) {
      try {
        result = this.#o.engine.authorize(request, entities);
      } catch (err) {
        // An engine failure is a deny, never an allow.
        result = { decision: 'deny', reasons: [], errors: [{ policyId: '(engine)', message: (err as Error).message }] };
      }
      if (key !== undefined && result.errors.length === 0) {
        if (memo!.size >= 10_000) memo!.clear();
        memo!.set(key, result);
      }
    }
    const decision: Decision = {
      decision: result.decision,
      reasons: result.reasons,
      errors: result.errors.map((e) => ({ policy_id: e.policyId, message: e.message })),
      // Time-ordered (UUIDv7): the leases' decision index grows at its end, not on random pages.
      decision_id: randomUUIDv7(),
      policy_version: version.version,
      ...(bridge && { bridge: { from: bridge.from, to: bridge.to, reason: bridge.reason } }),
    };
    return {
      decision,
      record: () => ({
        stream: 'authz',
        type: 'authz.decision',
        actor: input.principal.id,
        boundary: resourceBoundary ?? input.principal.boundary,
        decision: result.decision,
        payload: {
          decision_id: decision.decision_id,
          action: input.action,
          resource: `${input.resource.type}::${input.resource.id}`,
          reasons: decision.reasons,
          errors: decision.errors,
          policy_version: version.version,
          authn: { method: input.authn.method, trust: input.authn.trust },
          purpose: input.purpose,
          source_ip: input.sourceIp,
          ...(input.sessionId && { session: input.sessionId }),
          ...(bridge && { bridge: `${bridge.from}->${bridge.to}` }),
          ...(input.breakGlass && { breakGlass: true }),
          ...(input.delegation && input.delegation.depth > 0 && { delegation: input.delegation }),
          replay: snapshotOf({
            at: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
            principal: input.principal,
            claims: input.claims,
            mfa: input.authn.mfa,
            assurance: input.authn.assurance,
            age: Math.max(0, Math.floor(now / 1000) - input.authn.auth_time),
            grants: input.grants,
            extra: input.extra,
            resourceUid: input.resource,
            resource: input.resourceEntities?.find((e) => e.uid.type === input.resource.type && e.uid.id === input.resource.id) ?? this.#o.resourceEntity?.(input.resource),
          }),
        },
      }),
    };
  }

  #context(input: DecisionInput, now: number, bridged: boolean): Record<string, CedarValue> {
    const t = new Date(now);
    const iso = t.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const purpose: Record<string, CedarValue> = {};
    if (input.purpose.reason !== undefined) purpose.reason = input.purpose.reason;
    if (input.purpose.ticket !== undefined) purpose.ticket = input.purpose.ticket;
    // Server-owned keys come from verified facts only. The HTTP edge refuses them already; the
    // decision point refuses them too, so no internal caller can pass them through `extra`.
    const extra = input.extra as Record<string, CedarValue> | undefined;
    if (extra !== undefined) {
      for (const k of [...SERVER_CONTEXT_KEYS, 'purpose']) {
        if (Object.hasOwn(extra, k)) throw new InvalidInput(`context.${k} is set by the server from verified facts and cannot be supplied`, `context.${k}`);
      }
    }
    const context: Record<string, CedarValue> = {
      ...extra,
      authn: {
        method: input.authn.method,
        trust: input.authn.trust,
        mfa: input.authn.mfa,
        assurance: input.authn.assurance,
        authAgeSeconds: Math.max(0, Math.floor(now / 1000) - input.authn.auth_time),
      },
      request: {
        time: { __extn: { fn: 'datetime', arg: iso } },
        hour: t.getUTCHours(),
        weekday: WEEKDAYS[t.getUTCDay()]!,
        sourceIp: { __extn: { fn: 'ip', arg: normaliseIp(input.sourceIp) } },
      },
      purpose,
      grants: input.grants ?? [],
      breakGlass: input.breakGlass ?? false,
      delegation: { depth: input.delegation?.depth ?? 0, actors: input.delegation?.actors ?? [] },
      bridge: bridged,
      signals: { ...(this.#o.signals?.(input.principal.id) ?? UNKNOWN_SIGNALS) },
    };
    return context;
  }
}

/** The memo key of a request: every input of the decision, or undefined when one cannot be written as JSON. */
function memoKey(version: number, request: unknown, entities: readonly Entity[]): string | undefined {
  try {
    return `${version}\u0000${JSON.stringify(request)}\u0000${JSON.stringify(entities)}`;
  } catch {
    return undefined; // e.g. a bigint: decided without the memo
  }
}

/** The address as the context's `ip(…)` takes it (IPv4-mapped IPv6 unwrapped; junk → 0.0.0.0). */
export function normaliseIp(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (v4) return v4[1]!;
  return isIP(ip) ? ip : '0.0.0.0';
}

/** Validates the caller's context at the edge: `purpose` shape and schema-declared extras only. */
export function parseCallerContext(
  raw: unknown,
  action: string,
  schemaExtension: string | undefined,
): { purpose: Purpose; extra?: Record<string, unknown> } {
  if (raw === undefined || raw === null) return { purpose: {} };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidInput('context must be an object', 'context');
  const { purpose: p, ...extra } = raw as Record<string, unknown>;
  const purpose: Purpose = {};
  if (p !== undefined) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new InvalidInput('context.purpose must be an object', 'context.purpose');
    for (const [k, v] of Object.entries(p)) {
      if (k !== 'reason' && k !== 'ticket') throw new InvalidInput(`context.purpose.${k} is not a known field (reason, ticket)`, `context.purpose.${k}`);
      if (typeof v !== 'string') throw new InvalidInput(`context.purpose.${k} must be a string`, `context.purpose.${k}`);
      if (v.length > (k === 'reason' ? MAX_REASON : MAX_TICKET)) throw new InvalidInput(`context.purpose.${k} is too long`, `context.purpose.${k}`);
      purpose[k] = v;
    }
  }
  const keys = Object.keys(extra);
  if (keys.length === 0) return { purpose };
  for (const k of keys) {
    if ((SERVER_CONTEXT_KEYS as readonly string[]).includes(k)) {
      throw new InvalidInput(`context.${k} is set by the server from verified facts and cannot be supplied`, `context.${k}`);
    }
  }
  // Extra context must type-check against the action's declared context (with the server's keys present).
  const probe = cedar.checkParseContext({
    context: { ...(extra as Record<string, cedar.CedarValueJson>), ...SAMPLE_SERVER_CONTEXT, purpose: purpose as cedar.CedarValueJson },
    schema: schemaText(schemaExtension),
    action: { type: 'Action', id: action },
  });
  if (probe.type !== 'success') {
    throw new InvalidInput(`context does not match the schema for action "${action}": ${probe.errors.map((e) => e.message).join('; ')}`, 'context');
  }
  return { purpose, extra };
}

/** `context.signals` when nothing was received (= signals/facts.ts UNKNOWN_SIGNALS; docs/signals.md). */
const UNKNOWN_SIGNALS = { assurance_level: 'unknown', assurance_level_at: 0, device_compliance: 'unknown', device_compliant: false, device_compliance_at: 0 } as const;

const SAMPLE_SERVER_CONTEXT: Record<string, cedar.CedarValueJson> = {
  authn: { method: 'oidc', trust: 't', mfa: false, assurance: 'high', authAgeSeconds: 0 },
  request: {
    time: { __extn: { fn: 'datetime', arg: '2026-01-01T00:00:00Z' } },
    hour: 0,
    weekday: 'mon',
    sourceIp: { __extn: { fn: 'ip', arg: '127.0.0.1' } },
  },
  grants: [],
  breakGlass: false,
  delegation: { depth: 0, actors: [] },
  bridge: false,
  signals: { ...UNKNOWN_SIGNALS },
};
