// The decision point for applications (OpenID AuthZEN Authorization API 1.0, docs/authzen.md): an
// application, authenticated as any Portcullis identity allowed `pdp.query`, asks whether one of
// its subjects may do an action on one of its resources. This is the authorizing layer for it:
// the app's own right (`pdp.query`, decided with each evaluation), its boundary (it may name only
// subjects and resources of its own boundary — anything else answers like an unknown one), the
// rate limit per app, and the mapping of AuthZEN subjects, resources, actions and context to
// Cedar. Every evaluation is recorded once in the authz stream, attributed to the app and the
// subject (DecisionPoint.decideAsked).
import { createHash } from 'node:crypto';
import { InvalidInput, Forbidden, RateLimited, UnknownAction } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { Metrics } from '../common/metrics.ts';
import { FixedWindowLimiter } from '../common/rate-limit.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuthzenConfig, DescribedType } from '../config/authzen.ts';
import { DEFAULT_AUTHZEN } from '../config/authzen.ts';
import type { ResourceConfig } from '../config/types.ts';
import { IDENTITY_KINDS } from '../identity/types.ts';
import type { IdentityKind } from '../identity/types.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import type { CedarValue, Entity, EntityUid } from '../policy/engine/types.ts';
import { parseCallerContext } from '../policy/decision-point.ts';
import type { AskedItem, Decision, DecisionInput, DecisionPoint } from '../policy/decision-point.ts';
import { actionEntities, actionsApplying } from '../policy/policy-set.ts';
import { adminEntity } from '../policy/entities.ts';
import { PRINCIPAL_TYPE_OF_KIND } from '../policy/schema.ts';
import type { GrantsFor } from './authorization.ts';
import { closest } from './authorization.ts';
import type { Caller } from './types.ts';

// ── The AuthZEN information model (what the routes validate and pass) ─────────────────────────
export type Properties = Record<string, unknown>;
export interface AzSubject {
  type: string;
  id: string;
  properties?: Properties;
}
export interface AzResource {
  type: string;
  id: string;
  properties?: Properties;
}
export interface AzAction {
  name: string;
  properties?: Properties;
}
export interface AzEvaluation {
  subject: AzSubject;
  action: AzAction;
  resource: AzResource;
  context?: Properties;
}
export type EvaluationsSemantic = 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit';
export interface AzEvaluationsRequest {
  subject?: AzSubject;
  action?: AzAction;
  resource?: AzResource;
  context?: Properties;
  evaluations?: Partial<AzEvaluation>[];
  options?: { evaluations_semantic?: EvaluationsSemantic } & Properties;
}
export interface AzDecision {
  decision: boolean;
  context?: { reason: string };
}
export interface AzPage {
  token?: string;
  next_token?: string;
  limit?: number;
}
export interface AzSubjectSearch {
  subject: { type: string; id?: string; properties?: Properties };
  action: AzAction;
  resource: AzResource;
  context?: Properties;
  page?: AzPage;
}
export interface AzResourceSearch {
  subject: AzSubject;
  action: AzAction;
  resource: { type: string; id?: string; properties?: Properties };
  context?: Properties;
  page?: AzPage;
}
export interface AzActionSearch {
  subject: AzSubject;
  resource: AzResource;
  context?: Properties;
  page?: AzPage;
}
export interface AzSearchResult<T> {
  results: T[];
  page: { next_token: string; count: number };
}

/** The resource `pdp.query` is decided on. */
export const PDP_RESOURCE: EntityUid = { type: 'ControlPlane', id: 'pdp' };
/** At most this many evaluations in one `evaluations` call. */
export const MAX_EVALUATIONS = 100;
/** A search page looks at no more candidates than this (its next_token continues after them). */
const MAX_SCANNED = 1000;

export interface PdpDeps {
  decisions: DecisionPoint;
  identities: IdentityRegistry;
  metrics: Metrics;
  grantsFor: GrantsFor;
  audit: AuditLog;
  clock: Clock;
  resources: readonly ResourceConfig[];
  /** "Type::id" → boundary of the declared resources. */
  resourceBoundaries: ReadonlyMap<string, string>;
  schemaExtension: string | undefined;
  authzen: AuthzenConfig | undefined;
  /** The broker's URL (`policy_decision_point`). */
  issuer: string;
}

/** One evaluation ready to decide: the AuthZEN request with its Cedar action, purpose and extra context checked. */
interface Prepared {
  e: AzEvaluation;
  purpose: DecisionInput['purpose'];
  extra?: Record<string, unknown>;
}

export class Pdp {
  readonly #d: PdpDeps;
  readonly #cfg: AuthzenConfig;
  readonly #limiter: FixedWindowLimiter;
  readonly #described: Map<string, DescribedType>;
  #actions: Set<string> | undefined;

  constructor(deps: PdpDeps) {
    this.#d = deps;
    this.#cfg = deps.authzen ?? DEFAULT_AUTHZEN;
    this.#limiter = new FixedWindowLimiter(this.#cfg.rate_limit, 100_000, () => deps.clock.now());
    this.#described = new Map(this.#cfg.described_types.map((t) => [t.type, t]));
  }

  /** `/.well-known/authzen-configuration` (AuthZEN 1.0 §9). */
  configuration(): Record<string, string> {
    const base = this.#d.issuer;
    return {
      policy_decision_point: base,
      access_evaluation_endpoint: `${base}/access/v1/evaluation`,
      access_evaluations_endpoint: `${base}/access/v1/evaluations`,
      search_subject_endpoint: `${base}/access/v1/search/subject`,
      search_resource_endpoint: `${base}/access/v1/search/resource`,
      search_action_endpoint: `${base}/access/v1/search/action`,
    };
  }

  /**
   * The active policy version, read before deciding: a PEP that caches answers keys them by it
   * (an answer racing an activation is labelled with the older version, so it is dropped early).
   */
  policyVersion(): number | undefined {
    return this.#d.decisions.version?.version;
  }

  /** `POST /access/v1/evaluation`. */
  async evaluate(c: Caller, e: AzEvaluation, requestId?: string): Promise<AzDecision> {
    const [p] = this.#checked([e], (_i, f) => f);
    this.#limit(c, 1);
    const [d] = await this.#decideAll(c, [p!], 'execute_all', requestId);
    return d!;
  }

  /**
   * `POST /access/v1/evaluations`: the top-level subject, action, resource and context are the
   * defaults of every item (an item's own key replaces the default); one decision per item in
   * order, or fewer under `deny_on_first_deny` / `permit_on_first_permit` (the list ends with the
   * decision that stopped it). Without items it is one evaluation of the top level.
   */
  async evaluations(c: Caller, req: AzEvaluationsRequest, requestId?: string): Promise<{ evaluations: AzDecision[] } | AzDecision> {
    const items = req.evaluations ?? [];
    if (items.length === 0) {
      const single = merged(req, {}, (f) => f);
      return this.evaluate(c, single, requestId);
    }
    if (items.length > MAX_EVALUATIONS) throw new InvalidInput(`at most ${MAX_EVALUATIONS} evaluations per call`, 'evaluations');
    const prepared = this.#checked(
      items.map((item, i) => merged(req, item, (f) => `evaluations[${i}].${f}`)),
      (i, f) => `evaluations[${i}].${f}`,
    );
    this.#limit(c, prepared.length);
    return { evaluations: await this.#decideAll(c, prepared, req.options?.evaluations_semantic ?? 'execute_all', requestId) };
  }

  /** `POST /access/v1/search/subject`: the declared identities of the subject type, in the app's boundary, that are allowed. */
  async searchSubjects(c: Caller, req: AzSubjectSearch, requestId?: string): Promise<AzSearchResult<{ type: string; id: string }>> {
    const kind = req.subject.type;
    const candidates = (IDENTITY_KINDS as readonly string[]).includes(kind)
      ? this.#d.identities
          .list()
          .filter((i) => i.kind === kind && i.boundary === c.identity.boundary && i.status === 'active' && i.id.startsWith(`${kind}:`))
          .map((i) => i.id.slice(kind.length + 1))
          .sort()
      : [];
    return this.#search(c, 'subject', req, candidates, (id) => ({ subject: { type: kind, id }, action: req.action, resource: req.resource, ...(req.context && { context: req.context }) }), (id) => ({ type: kind, id }), requestId);
  }

  /** `POST /access/v1/search/resource`: the declared resources of the type, in the app's boundary, that are allowed (described types are not enumerable). */
  async searchResources(c: Caller, req: AzResourceSearch, requestId?: string): Promise<AzSearchResult<{ type: string; id: string }>> {
    const type = req.resource.type;
    const candidates = this.#d.resources.filter((r) => r.type === type && r.boundary === c.identity.boundary).map((r) => r.id).sort();
    return this.#search(c, 'resource', req, candidates, (id) => ({ subject: req.subject, action: req.action, resource: { type, id }, ...(req.context && { context: req.context }) }), (id) => ({ type, id }), requestId);
  }

  /** `POST /access/v1/search/action`: the schema's actions for this subject and resource type that are allowed. */
  async searchActions(c: Caller, req: AzActionSearch, requestId?: string): Promise<AzSearchResult<{ name: string }>> {
    const principalType = PRINCIPAL_TYPE_OF_KIND[req.subject.type];
    const candidates = principalType === undefined ? [] : actionsApplying(principalType, req.resource.type, this.#d.schemaExtension).filter((a) => a !== 'pdp.query');
    return this.#search(c, 'action', req, candidates, (name) => ({ subject: req.subject, action: { name }, resource: req.resource, ...(req.context && { context: req.context }) }), (name) => ({ name }), requestId);
  }

  async #search<T>(
    c: Caller,
    kind: 'subject' | 'resource' | 'action',
    req: { page?: AzPage | undefined },
    candidates: string[],
    evaluation: (candidate: string) => AzEvaluation,
    result: (candidate: string) => T,
    requestId: string | undefined,
  ): Promise<AzSearchResult<T>> {
    const { page, ...query } = req;
    const digest = createHash('sha256').update(`${kind}\u0000${c.identity.id}\u0000${stableJson(query)}`).digest('base64url').slice(0, 16);
    const token = page?.token ?? page?.next_token;
    let offset = 0;
    if (token !== undefined && token !== '') {
      const m = /^(\d{1,9})\.([A-Za-z0-9_-]{16})$/.exec(Buffer.from(token, 'base64url').toString());
      if (!m || m[2] !== digest) throw new InvalidInput('page.token does not belong to this search (send the same search with the next_token it returned)', 'page.token');
      offset = Number(m[1]);
    }
    const limit = page?.limit ?? this.#cfg.page_size;
    // Action search asks actions whose context may not match the caller's: those are left out, not an error.
    const prepared: Prepared[] = [];
    const at: number[] = []; // prepared[i] is candidates[at[i]]
    let end = offset;
    for (; end < candidates.length && end - offset < MAX_SCANNED; end++) {
      try {
        prepared.push(...this.#checked([evaluation(candidates[end]!)], (_i, f) => f));
        at.push(end);
      } catch (err) {
        if (kind === 'action' && err instanceof InvalidInput) continue;
        throw err;
      }
    }
    this.#limit(c, Math.max(1, prepared.length));
    const results: T[] = [];
    let next = end;
    // Decided in order until the page is full; the next page starts after the last candidate decided.
    await this.#decideAll(c, prepared, 'execute_all', requestId, (d, i) => {
      if (d.decision) results.push(result(candidates[at[i]!]!));
      if (results.length < limit) return false;
      next = at[i]! + 1;
      return true;
    });
    const more = next < candidates.length;
    return { results, page: { next_token: more ? Buffer.from(`${next}.${digest}`).toString('base64url') : '', count: results.length } };
  }

  /** Checks every evaluation's action and context before any is decided (a bad item is a 400 naming it, and nothing is recorded). */
  #checked(items: AzEvaluation[], field: (i: number, f: string) => string): Prepared[] {
    this.#actions ??= new Set(actionEntities(this.#d.schemaExtension).filter((e) => e.uid.type === 'Action').map((e) => e.uid.id));
    return items.map((e, i) => {
      const name = e.action.name;
      if (!this.#actions!.has(name) || name === 'pdp.query') throw new UnknownAction(name, field(i, 'action.name'), closest(name, this.#actions!));
      try {
        return { e, ...parseCallerContext(e.context, name, this.#d.schemaExtension) };
      } catch (err) {
        if (err instanceof InvalidInput) throw new InvalidInput(`${field(i, String(err.extra.field ?? 'context'))}: ${err.message}`, field(i, String(err.extra.field ?? 'context')));
        throw err;
      }
    });
  }

  /** `pdp.query` is limited per application: a batch of n counts n; the first refusal in a window is recorded. */
  #limit(c: Caller, n: number): void {
    const v = this.#limiter.hit(c.identity.id, n);
    if (v.allowed) return;
    this.#d.metrics.rateLimited.inc({ endpoint: 'pdp.query', scope: 'key' });
    if (v.firstRefusal) {
      void this.#d.audit
        .append({
          stream: 'authz',
          type: 'pdp.rate_limited',
          actor: c.identity.id,
          boundary: c.identity.boundary,
          payload: { limit: this.#limiter.limit.requests, window_seconds: Math.round(this.#limiter.limit.window_ms / 1000), source_ip: c.sourceIp },
        })
        .catch(() => {});
    }
    throw new RateLimited(`too many evaluations from ${c.identity.id}: at most ${this.#limiter.limit.requests} per ${Math.round(this.#limiter.limit.window_ms / 1000)} s (authzen.rate_limit); retry after ${v.retryAfterS} s`, v.retryAfterS);
  }

  /**
   * Decides in order under the semantic; `stop` (searches) may end early too. The app's own
   * `pdp.query` is decided with each evaluation: refused, it is a 403 carrying that decision's id.
   */
  async #decideAll(c: Caller, items: Prepared[], semantic: EvaluationsSemantic, requestId: string | undefined, stop?: (d: AzDecision, i: number) => boolean): Promise<AzDecision[]> {
    if (items.length === 0) return [];
    const asker: DecisionInput = {
      ...(await this.#d.grantsFor(c.identity, PDP_RESOURCE, 'pdp.query')),
      claims: c.claims,
      authn: c.authn,
      sessionId: c.jti,
      sourceIp: c.sourceIp,
      action: 'pdp.query',
      resource: PDP_RESOURCE,
      purpose: {},
      resourceEntities: [adminEntity(PDP_RESOURCE.type, PDP_RESOURCE.id, {})],
    };
    const out: AzDecision[] = [];
    const recorded: Promise<void>[] = [];
    const decideOne = (item: AskedItem): AzDecision => {
      const r = this.#d.decisions.decideAsked(asker, item, requestId);
      recorded.push(r.recorded);
      if (r.asker.decision !== 'allow') throw Object.assign(new Forbidden(`not allowed: pdp.query on ControlPlane::"pdp" (${c.identity.id} may not ask the decision point)`, { decision_id: r.asker.decision_id }), { recorded: r.recorded });
      this.#d.metrics.decisions.inc({ decision: r.decision.decision });
      return toAz(r.decision, 'refused' in item ? item.refused.reason : undefined);
    };
    try {
      if (semantic === 'execute_all' && stop === undefined) {
        // All at once: the subjects' grants are read concurrently, the decisions made in order.
        const asked = await Promise.all(items.map((p) => this.#asked(c, p)));
        for (const a of asked) out.push(decideOne(a));
      } else {
        for (let i = 0; i < items.length; i++) {
          const d = decideOne(await this.#asked(c, items[i]!));
          out.push(d);
          if (stop?.(d, i)) break;
          if (semantic === 'deny_on_first_deny' && !d.decision) break;
          if (semantic === 'permit_on_first_permit' && d.decision) break;
        }
      }
    } catch (err) {
      // A refused app: its deny is recorded before the 403 leaves.
      const rec = (err as { recorded?: Promise<void> }).recorded;
      if (rec) await rec;
      await Promise.allSettled(recorded);
      throw err;
    }
    await Promise.all(recorded);
    return out;
  }

  /** The subject and resource resolved within the app's boundary, or the refusal that answers false. */
  async #asked(c: Caller, p: Prepared): Promise<AskedItem> {
    const { subject, resource, action } = p.e;
    const subjectRef = `${subject.type}:${subject.id}`;
    const resourceRef = `${resource.type}::${resource.id}`;
    const refuse = (reason: 'subject_not_found' | 'resource_not_found', detail: string): AskedItem => ({ refused: { subject: subjectRef, resource: resourceRef, action: action.name, reason, detail } });
    const identity = this.#subject(subject);
    if (!identity) return refuse('subject_not_found', 'no such identity');
    if (identity.status !== 'active') return refuse('subject_not_found', `the identity is ${identity.status}`);
    if (identity.boundary !== c.identity.boundary) return refuse('subject_not_found', `the identity is in boundary ${identity.boundary}, not the asking app's ${c.identity.boundary}`);
    const uid: EntityUid = { type: resource.type, id: resource.id };
    const declared = this.#d.resourceBoundaries.get(resourceRef);
    let entity: Entity | undefined;
    if (declared !== undefined) {
      if (declared !== c.identity.boundary) return refuse('resource_not_found', `the resource is in boundary ${declared}, not the asking app's ${c.identity.boundary}`);
    } else {
      const described = this.#described.get(resource.type);
      if (!described) return refuse('resource_not_found', 'neither declared nor of a described type (authzen.described_types)');
      if (described.boundary !== c.identity.boundary) return refuse('resource_not_found', `described type ${resource.type} is in boundary ${described.boundary}, not the asking app's ${c.identity.boundary}`);
      entity = { uid, attrs: { boundary: described.boundary, environment: described.environment }, parents: [], tags: tagsOf(resource.properties) };
    }
    const input: DecisionInput = {
      ...(await this.#d.grantsFor(identity, uid, action.name)),
      // The subject did not log in: its tags are its declared labels, its authn says an app asked.
      claims: { ...identity.labels },
      authn: { method: 'authzen', trust: c.identity.id, mfa: false, assurance: 'low', auth_time: Math.floor(this.#d.clock.now() / 1000) },
      sourceIp: c.sourceIp,
      action: action.name,
      resource: uid,
      purpose: p.purpose,
      ...(p.extra !== undefined && { extra: p.extra }),
      ...(entity && { resourceEntities: [entity] }),
    };
    return { input };
  }

  /** AuthZEN subject `{type, id}` → the identity `<type>:<id>` (type is an identity kind). */
  #subject(s: AzSubject): Identity | undefined {
    if (!(IDENTITY_KINDS as readonly string[]).includes(s.type)) return undefined;
    return this.#d.identities.get(`${s.type as IdentityKind}:${s.id}`);
  }
}

/** An `evaluations` item with the top-level defaults under it; a missing member names its field. */
function merged(req: AzEvaluationsRequest, item: Partial<AzEvaluation>, field: (f: string) => string): AzEvaluation {
  const subject = item.subject ?? req.subject;
  const action = item.action ?? req.action;
  const resource = item.resource ?? req.resource;
  const context = item.context ?? req.context;
  if (!subject) throw new InvalidInput(`${field('subject')} is required (in the item or at the top level)`, field('subject'));
  if (!action) throw new InvalidInput(`${field('action')} is required (in the item or at the top level)`, field('action'));
  if (!resource) throw new InvalidInput(`${field('resource')} is required (in the item or at the top level)`, field('resource'));
  return { subject, action, resource, ...(context !== undefined && { context }) };
}

function toAz(d: Decision, refused: string | undefined): AzDecision {
  return refused !== undefined ? { decision: false, context: { reason: refused } } : { decision: d.decision === 'allow' };
}

/** A described resource's properties become its String tags (`resource.getTag("ownerID")`); objects and arrays as JSON. */
function tagsOf(props: Properties | undefined): Record<string, CedarValue> {
  const tags: Record<string, CedarValue> = {};
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === null || v === undefined) continue;
    tags[k] = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return tags;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
