// Authorization for API callers: caller-asked decisions (single and batch), admin calls as Cedar
// decisions, and the step-up answer when a fresh login would turn a deny into an allow.
import { Forbidden, InvalidInput, PortcullisError, UnknownAction } from '../common/errors.ts';
import { actionEntities } from '../policy/policy-set.ts';
import type { Metrics } from '../common/metrics.ts';
import type { HumanOidcTrust } from '../identity/trusts/oidc-human/oidc-human.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import type { CedarValue, EntityUid } from '../policy/engine/types.ts';
import { parseCallerContext } from '../policy/decision-point.ts';
import type { Decision, DecisionInput, DecisionPoint } from '../policy/decision-point.ts';
import { adminEntity } from '../policy/entities.ts';
import type { PrincipalFacts } from '../policy/entities.ts';
import { StepUpRequired, stepUpFor, stepUpIndex } from '../policy/step-up.ts';
import type { StepUpIndex } from '../policy/step-up.ts';
import type { AccessService } from '../access/index.ts';
import type { Caller, SessionContext } from './types.ts';

export interface AuthorizeRequest {
  action: string;
  resource: EntityUid;
  context?: Record<string, unknown>;
}

/** What an identity's active grants add to a decision about one resource. */
export type GrantsFor = (identity: Identity, resource: EntityUid, action?: string) => Promise<Pick<DecisionInput, 'principal' | 'grants' | 'breakGlass'>>;

export function principalFacts(i: Identity): PrincipalFacts {
  return { id: i.id, kind: i.kind, boundary: i.boundary, environment: i.environment, owner: i.owner, labels: i.labels, parents: i.parents };
}

/**
 * The one place active grants enter a decision: `context.grants`, temporary role parents, and
 * `breakGlass` when a break-glass covers this resource (the authz event is then tagged).
 */
export async function withGrants(access: AccessService, now: number, identity: Identity, resource: EntityUid, action?: string): ReturnType<GrantsFor> {
  return withGrantFacts(identity, await access.activeGrants(identity.id, now, resource, action));
}

/** The same from grants already read for this request. */
export function withGrantFacts(identity: Identity, g: { grants: string[]; parents: EntityUid[]; breakGlass: boolean }): Awaited<ReturnType<GrantsFor>> {
  const p = principalFacts(identity);
  return {
    principal: g.parents.length > 0 ? { ...p, parents: [...p.parents, ...g.parents] } : p,
    grants: g.grants,
    breakGlass: g.breakGlass,
  };
}

export interface AuthorizationDeps {
  decisions: DecisionPoint;
  identities: IdentityRegistry;
  metrics: Metrics;
  humanTrusts: ReadonlyMap<string, HumanOidcTrust>;
  schemaExtension: string | undefined;
  grantsFor: GrantsFor;
}

export class Authorization {
  readonly #d: AuthorizationDeps;
  #stepUp: { version: number; index: StepUpIndex } | undefined;

  constructor(deps: AuthorizationDeps) {
    this.#d = deps;
  }

  async #decisionInput(s: SessionContext, action: string, resource: EntityUid, sourceIp: string, purpose = {}, extra?: Record<string, unknown>): Promise<DecisionInput> {
    return {
      ...(await this.#d.grantsFor(s.identity, resource, action)),
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

  #actions: Set<string> | undefined;

  /** A caller-asked action must be one the schema declares; a typo is a 400 naming it, not a deny. */
  #requireKnownAction(action: string, field: string): void {
    this.#actions ??= new Set(actionEntities(this.#d.schemaExtension).filter((e) => e.uid.type === 'Action').map((e) => e.uid.id));
    if (!this.#actions.has(action)) throw new UnknownAction(action, field, closest(action, this.#actions));
  }

  async authorize(s: SessionContext, body: AuthorizeRequest, sourceIp: string): Promise<Decision> {
    this.#requireKnownAction(body.action, 'action');
    const { purpose, extra } = parseCallerContext(body.context, body.action, this.#d.schemaExtension);
    const started = performance.now();
    const d = await this.#d.decisions.decide(await this.#decisionInput(s, body.action, body.resource, sourceIp, purpose, extra));
    this.#d.metrics.decided(d.decision, (performance.now() - started) / 1000);
    this.#requireNoStepUp(s, d);
    return d;
  }

  /** What a fresh login would fix for this decision, if anything (policy `@stepUp`/`@maxAuthAge`). */
  stepUpFor(d: Decision) {
    const v = this.#d.decisions.version;
    if (!v || d.decision !== 'deny') return undefined;
    // Rebuilt once per activated version, whichever path activated it.
    if (this.#stepUp?.version !== v.version) this.#stepUp = { version: v.version, index: stepUpIndex(this.#d.decisions.policies) };
    return stepUpFor(d, this.#stepUp.index);
  }

  /** A deny that a fresh (MFA) login would turn into an allow is a 401 step_up_required instead of a plain deny. */
  #requireNoStepUp(s: SessionContext, d: Decision): void {
    // Only a human sign-in can bring back MFA or a fresh login; anyone else gets the plain deny.
    const trust = this.#d.humanTrusts.get(s.authn.trust);
    if (!trust) return;
    const need = this.stepUpFor(d);
    if (!need) return;
    const acr = trust.config.step_up_acr;
    throw new StepUpRequired(need, { decision_id: d.decision_id, trust: s.authn.trust, ...(need.mfa && acr !== undefined && { acr_values: acr }) });
  }

  async authorizeBatch(s: SessionContext, bodies: AuthorizeRequest[], sourceIp: string): Promise<Decision[]> {
    // Validate every request before deciding any, so a bad item leaves no half-recorded batch.
    const parsed = bodies.map((b, i) => {
      try {
        this.#requireKnownAction(b.action, 'action');
        return { b, ...parseCallerContext(b.context, b.action, this.#d.schemaExtension) };
      } catch (err) {
        if (err instanceof InvalidInput) throw new InvalidInput(`requests[${i}]: ${err.message}`, `requests[${i}].${String(err.extra.field ?? '')}`);
        if (err instanceof UnknownAction) throw new UnknownAction(b.action, `requests[${i}].action`, err.extra.suggestions as string[]);
        throw err;
      }
    });
    const inputs = await Promise.all(parsed.map(({ b, purpose, extra }) => this.#decisionInput(s, b.action, b.resource, sourceIp, purpose, extra)));
    const out = await this.#d.decisions.decideBatch(inputs);
    for (const d of out) this.#d.metrics.decided(d.decision);
    return out;
  }

  /** Admin calls are Cedar decisions too; a deny is a 403 carrying the decision id. `extra`: context keys the action declares (e.g. `assignment`). */
  async requireAllowed(c: Caller, action: string, resource: EntityUid, extra?: Record<string, CedarValue>): Promise<Decision> {
    const entity = this.#adminResource(resource);
    const input = await this.#decisionInput(c, action, resource, c.sourceIp, {}, extra);
    const d = await this.#d.decisions.decide({ ...input, resourceEntities: [entity] });
    this.#d.metrics.decided(d.decision);
    this.#requireNoStepUp(c, d);
    if (d.decision !== 'allow') throw new Forbidden(`not allowed: ${action} on ${resource.type}::"${resource.id}"`, { decision_id: d.decision_id });
    return d;
  }

  /** Whether the caller is allowed `action` on `resource` (a deny is audited like any other; a step-up or an outage is thrown). */
  async allows(c: Caller, action: string, resource: EntityUid): Promise<boolean> {
    try {
      await this.requireAllowed(c, action, resource);
      return true;
    } catch (err) {
      if (err instanceof PortcullisError && err.status === 403) return false;
      throw err;
    }
  }

  #adminResource(uid: EntityUid) {
    if (uid.type === 'Identity') {
      const target = this.#d.identities.get(uid.id);
      return adminEntity('Identity', uid.id, target ? { boundary: target.boundary, environment: target.environment, kind: target.kind, ...(target.owner !== null && { owner: target.owner }) } : { kind: 'unknown' });
    }
    return adminEntity(uid.type, uid.id, {});
  }
}

/** Up to three known actions closest to a mistyped one (edit distance ≤ 3, or sharing its group prefix). */
export function closest(action: string, known: Iterable<string>): string[] {
  const a = action.toLowerCase().slice(0, 64);
  const scored: { name: string; d: number }[] = [];
  for (const name of known) {
    const d = editDistance(a, name.toLowerCase());
    if (d <= Math.max(2, Math.min(3, Math.floor(name.length / 3)))) scored.push({ name, d });
  }
  return scored.sort((x, y) => x.d - y.d || x.name.localeCompare(y.name)).slice(0, 3).map((s) => s.name);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
