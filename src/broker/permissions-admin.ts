// Governance analysis admin API (docs/governance.md): effective permissions, observed use, the
// suggested narrowed policy, what-if replay and decision counts over time — each a read decided with Cedar before it reads
// (`governance.read` on the identity or Identity::"*", `audit.read` on the authz stream, `policy.read`).
import { InvalidInput, NotFound } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import { parseDuration } from '../common/duration.ts';
import type { PortcullisConfig } from '../config/types.ts';
import type { AuditLog } from '../audit/log.ts';
import type { AuditRecord } from '../audit/types.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import { createEngine } from '../policy/engine/select.ts';
import { resourceEntity } from '../policy/entities.ts';
import { PRINCIPAL_TYPE_OF_KIND } from '../policy/schema.ts';
import { actionEntities, actionsApplying, compilePolicySet, type PolicyFile } from '../policy/policy-set.ts';
import { PermissionModel, effectivePermissions, type EffectivePermissions, type ExplainOptions } from '../governance/permissions.ts';
import { ObservedUse, usageReport, identityUsage, type IdentityUsage, type UsageReport } from '../governance/usage.ts';
import { suggestPolicy, type Suggestion } from '../governance/suggest.ts';
import { Replay, type ReplayReport } from '../governance/replay.ts';
import { principalFacts, type Authorization } from './authorization.ts';
import type { Caller } from './types.ts';
import { opaqueId } from './opaque.ts';

export interface PermissionsAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  decisions: DecisionPoint;
  identities: IdentityRegistry;
  audit: AuditLog;
  clock: Clock;
  config: Pick<PortcullisConfig, 'resources' | 'bridges' | 'schema_extension' | 'engine'>;
}

export interface WindowQuery {
  /** A duration back from now (`90d`, `12h`) or an RFC 3339 time. */
  since?: string;
  until?: string;
}

const PAGE = 1000;

/** At most this many decisions are counted by one decisionStats call. */
export const STATS_MAX_RECORDS = 500_000;

export interface DecisionStats {
  since: string;
  until: string;
  bucket: 'day' | 'hour';
  /** True when the window held more than STATS_MAX_RECORDS decisions: the oldest were counted, the rest not. */
  truncated: boolean;
  total: { allow: number; deny: number };
  /** Every bucket of the window, oldest first (empty ones with zeros). */
  buckets: { start: string; allow: number; deny: number }[];
  /** A deny counts once for each determining forbid policy; otherwise its refusal, an evaluation error or no permit. */
  denials_by_reason: { reason: string; count: number }[];
}

/** Why a recorded deny was a deny, as labels: the forbids that determined it, a refusal, an error, or no permit. */
function denialReasons(p: Record<string, unknown>): string[] {
  if (typeof p.refused === 'string') return [`refused: ${p.refused}`];
  const ids = Array.isArray(p.reasons) ? p.reasons.filter((x): x is string => typeof x === 'string') : [];
  if (ids.length > 0) return ids.map((id) => `forbid: ${id}`);
  if (Array.isArray(p.errors) && p.errors.length > 0) return ['evaluation error'];
  return ['no permit'];
}

/** Usage rows summed by the identities' owner (a team, a person, or none). */
function byOwner(rows: readonly IdentityUsage[], ownerOf: (id: string) => string | null) {
  const m = new Map<string, { owner: string | null; identities: number; effective: number; used: number }>();
  for (const r of rows) {
    const owner = ownerOf(r.identity);
    const k = owner ?? '';
    const o = m.get(k) ?? { owner, identities: 0, effective: 0, used: 0 };
    o.identities++;
    o.effective += r.effective;
    o.used += r.used;
    m.set(k, o);
  }
  return [...m.values()]
    .map((o) => ({ ...o, unused: o.effective - o.used, over_privilege: o.effective === 0 ? 0 : Math.round(((o.effective - o.used) / o.effective) * 10_000) / 10_000 }))
    .sort((a, b) => b.over_privilege - a.over_privilege || (a.owner ?? '~').localeCompare(b.owner ?? '~'));
}
const DAY = 86_400_000;
/** Analysis windows reach at most this far from now (far past any audit record, well within what a Date holds). */
const MAX_REACH = 100 * 366 * DAY;

/**
 * The permission model of the active policy version, rebuilt when another version activates.
 * For broker code that has already decided (access reviews call `explain` for each identity of a
 * campaign); nothing here authorizes.
 */
export class ActivePermissionModel {
  readonly #d: Pick<PermissionsAdminDeps, 'decisions' | 'config'>;
  #model: { version: number; model: PermissionModel } | undefined;
  readonly #applying = new Map<string, readonly string[]>();

  constructor(deps: Pick<PermissionsAdminDeps, 'decisions' | 'config'>) {
    this.#d = deps;
  }

  /** The model and the policy version it was built from (NotFound when no version is active). */
  current(): { version: number; model: PermissionModel } {
    const v = this.#d.decisions.version;
    if (!v) throw new NotFound('active policy version');
    if (this.#model?.version !== v.version) {
      const ext = this.#d.config.schema_extension;
      this.#model = {
        version: v.version,
        model: new PermissionModel({
          policies: this.#d.decisions.policies,
          resources: this.#d.config.resources.map(resourceEntity),
          actionEntities: actionEntities(ext),
          actionsApplying: (p, r) => {
            const k = `${p} ${r}`;
            let a = this.#applying.get(k);
            if (a === undefined) this.#applying.set(k, (a = actionsApplying(p, r, ext)));
            return a;
          },
          bridged: (from, to, action) => this.#d.config.bridges.some((b) => b.from === from && b.to === to && (b.actions.length === 0 || b.actions.includes(action))),
        }),
      };
    }
    return this.#model;
  }

  /** Effective permissions of an identity under the active version (see governance/permissions.ts). */
  explain(identity: Identity, o: ExplainOptions = {}): EffectivePermissions & { identity: string; policy_version: number } {
    const { version, model } = this.current();
    return { identity: identity.id, policy_version: version, ...effectivePermissions(model, principalFacts(identity), o) };
  }
}

export class PermissionsAdmin {
  readonly #d: PermissionsAdminDeps;
  readonly #models: ActivePermissionModel;

  constructor(deps: PermissionsAdminDeps) {
    this.#d = deps;
    this.#models = new ActivePermissionModel(deps);
  }

  #modelNow(): { version: number; model: PermissionModel } {
    return this.#models.current();
  }

  #identity(id: string): Identity {
    const i = this.#d.identities.get(id);
    if (!i) throw new NotFound(`identity ${id}`);
    return i;
  }

  #read(c: Caller, id: string) {
    return this.#d.authz.requireAllowed(c, 'governance.read', { type: 'Identity', id });
  }

  /** What `id` may do now over the declared resources (`governance.read` on it). */
  async explain(c: Caller, id: string, o: { resources?: EntityUid[]; actions?: string[] } = {}): Promise<EffectivePermissions & { identity: string; policy_version: number }> {
    return opaqueId('identity', id, () => false, async () => {
      await this.#read(c, id);
      return this.#models.explain(this.#identity(id), o);
    });
  }

  /**
   * A team's or role's effective permissions: each pair any standing member may be allowed, with
   * the members holding it (`governance.read` on Identity::"*": it spans identities).
   */
  async explainGroup(c: Caller, q: { team?: string; role?: string } & ExplainOptions): Promise<{ subject: EntityUid; policy_version: number; members: string[]; permissions: { action: string; resource: EntityUid; members: string[] }[] }> {
    if ((q.team === undefined) === (q.role === undefined)) throw new InvalidInput('name exactly one of team or role', 'team');
    await this.#read(c, '*');
    const subject = q.team !== undefined ? { type: 'Team', id: q.team } : { type: 'Role', id: q.role! };
    const members = this.#d.identities.members(subject.type, subject.id).sort();
    const pairs = new Map<string, { action: string; resource: EntityUid; members: string[] }>();
    let version = this.#modelNow().version;
    for (const id of members) {
      const r = this.#models.explain(this.#identity(id), q);
      version = r.policy_version;
      for (const p of r.permissions) {
        const k = `${p.action} ${p.resource.type}::${p.resource.id}`;
        let e = pairs.get(k);
        if (e === undefined) pairs.set(k, (e = { action: p.action, resource: p.resource, members: [] }));
        e.members.push(id);
      }
    }
    return { subject, policy_version: version, members, permissions: [...pairs.values()] };
  }

  /** Observed use against effective permissions over a window (default 90 days), for one identity or the estate. */
  async usage(c: Caller, q: WindowQuery & { identity?: string; limit?: number; top?: number }): Promise<UsageReport & { policy_version: number; by_owner: ReturnType<typeof byOwner> }> {
    await this.#read(c, q.identity ?? '*');
    await this.#d.authz.requireAllowed(c, 'audit.read', { type: 'AuditStream', id: 'authz' });
    const w = this.#window(q, 90);
    const identities = q.identity !== undefined ? [this.#identity(q.identity)] : this.#d.identities.list();
    const observed = new ObservedUse();
    for await (const r of this.#records(w, 'allow', q.identity)) observed.add(r);
    const { version, model } = this.#modelNow();
    const report = usageReport({ model, identities: identities.map(principalFacts), observed, since: w.since, until: w.until, ...(q.limit !== undefined && { limit: q.limit }) });
    const by_owner = byOwner(report.identities, (id) => this.#d.identities.get(id)?.owner ?? null);
    // `top`: list only the most over-privileged identities (the estate and by_owner still count all).
    return { policy_version: version, ...report, ...(q.top !== undefined && { identities: report.identities.slice(0, q.top) }), by_owner };
  }

  /**
   * Authorization decisions over a window (default 30 days) counted per day (or hour), and the
   * denials by reason — aggregates over every identity's decisions, so `governance.read` on
   * Identity::"*" AND `audit.read` on the authz stream.
   */
  async decisionStats(c: Caller, q: WindowQuery & { bucket?: 'day' | 'hour' }): Promise<DecisionStats> {
    await this.#read(c, '*');
    await this.#d.authz.requireAllowed(c, 'audit.read', { type: 'AuditStream', id: 'authz' });
    const w = this.#window(q, 30);
    const bucket = q.bucket ?? 'day';
    const size = bucket === 'hour' ? 3_600_000 : DAY;
    const first = Math.floor(Date.parse(w.since) / size) * size;
    const last = Math.floor((Date.parse(w.until) - 1) / size) * size;
    if ((last - first) / size >= 2000) throw new InvalidInput(`the window holds more than 2000 ${bucket}s; choose a shorter one or bucket=day`, 'since');
    const counts = new Map<number, { allow: number; deny: number }>();
    for (let t = first; t <= last; t += size) counts.set(t, { allow: 0, deny: 0 });
    const reasons = new Map<string, number>();
    let scanned = 0;
    let truncated = false;
    for await (const r of this.#records(w)) {
      // A bound on the work one call does (the records are read page by page from the audit store).
      if (++scanned > STATS_MAX_RECORDS) {
        truncated = true;
        break;
      }
      const b = counts.get(Math.floor(Date.parse(r.time) / size) * size);
      if (!b) continue;
      if (r.decision === 'allow') b.allow++;
      else {
        b.deny++;
        for (const why of denialReasons(r.payload)) reasons.set(why, (reasons.get(why) ?? 0) + 1);
      }
    }
    const buckets = [...counts].map(([t, n]) => ({ start: new Date(t).toISOString(), ...n }));
    return {
      since: w.since,
      until: w.until,
      bucket,
      truncated,
      total: { allow: buckets.reduce((n, b) => n + b.allow, 0), deny: buckets.reduce((n, b) => n + b.deny, 0) },
      buckets,
      denials_by_reason: [...reasons].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1)),
    };
  }

  /** A narrowed policy set for an identity or a team/role keeping every allow observed in the window (default 90 days). */
  async suggest(c: Caller, q: WindowQuery & { identity?: string; team?: string; role?: string }): Promise<Suggestion & { subject: EntityUid; since: string; until: string; usage: IdentityUsage[]; policy_version: number }> {
    const groups = [q.identity, q.team, q.role].filter((x) => x !== undefined).length;
    if (groups !== 1) throw new InvalidInput('name exactly one of identity, team or role', 'identity');
    await this.#d.authz.requireAllowed(c, 'policy.read', { type: 'Policy', id: 'active' });
    await this.#d.authz.requireAllowed(c, 'audit.read', { type: 'AuditStream', id: 'authz' });
    let subject: EntityUid;
    let members: Identity[];
    if (q.identity !== undefined) {
      await this.#read(c, q.identity);
      const i = this.#identity(q.identity);
      subject = { type: PRINCIPAL_TYPE_OF_KIND[i.kind] ?? 'Workload', id: i.id };
      members = [i];
    } else {
      await this.#read(c, '*');
      subject = q.team !== undefined ? { type: 'Team', id: q.team } : { type: 'Role', id: q.role! };
      members = this.#d.identities.members(subject.type, subject.id).map((id) => this.#identity(id));
      if (members.length === 0) throw new NotFound(`${subject.type}::"${subject.id}" (no identity is a member)`);
    }
    const w = this.#window(q, 90);
    const observed = new ObservedUse();
    const ids = new Set(members.map((m) => m.id));
    for await (const r of this.#records(w, 'allow', q.identity)) if (ids.has(r.subject ?? r.actor)) observed.add(r);
    const { version, model } = this.#modelNow();
    const v = this.#d.decisions.version!;
    const perMember = members.map((m) => ({ permissions: model.explain(principalFacts(m)), observed: observed.of(m.id) }));
    const s = suggestPolicy({ files: v.files, subject: { uid: subject, group: q.identity === undefined }, members: perMember, ...(this.#d.config.schema_extension !== undefined && { schemaExtension: this.#d.config.schema_extension }) });
    return { subject, since: w.since, until: w.until, policy_version: version, usage: perMember.map((m) => identityUsage(m.permissions, m.observed, 0)), ...s };
  }

  /** Re-decides the recorded decisions of a window (default 30 days) with candidate files; reports every flip. */
  async replay(c: Caller, body: WindowQuery & { files: { name: string; text: string }[]; limit?: number }): Promise<ReplayReport & { since: string; until: string; policy_version: number | null; candidate_policies: number }> {
    await this.#d.authz.requireAllowed(c, 'policy.read', { type: 'Policy', id: 'active' });
    await this.#d.authz.requireAllowed(c, 'audit.read', { type: 'AuditStream', id: 'authz' });
    const files: PolicyFile[] = body.files.map((f) => ({ name: f.name, text: f.text, origin: 'api' }));
    const ext = this.#d.config.schema_extension;
    const policies = compilePolicySet(files, ext);
    const engine = createEngine(this.#d.config.engine);
    engine.loadPolicies(policies);
    engine.upsertEntities(actionEntities(ext));
    engine.upsertEntities(this.#d.config.resources.map(resourceEntity));
    const w = this.#window(body, 30);
    const replay = new Replay(engine, body.limit ?? 1000);
    for await (const r of this.#records(w)) replay.add(r);
    return { since: w.since, until: w.until, policy_version: this.#d.decisions.version?.version ?? null, candidate_policies: policies.length, ...replay.report() };
  }

  #window(q: WindowQuery, days: number): { since: string; until: string } {
    const now = this.#d.clock.now();
    const at = (v: string | undefined, field: string, dflt: number): number => {
      if (v === undefined) return dflt;
      if (/^\d+[smhdw]$/.test(v)) return now - parseDuration(v, field);
      const t = Date.parse(v);
      if (!Number.isFinite(t)) throw new InvalidInput(`${field} must be a duration back from now (e.g. 90d) or an RFC 3339 time`, field);
      return t;
    };
    const since = at(q.since, 'since', now - days * DAY);
    const until = q.until === undefined ? now + 1 : at(q.until, 'until', now);
    // A time a Date cannot hold (`99999999999999d`) is the caller's error, not a 500.
    if (!(since >= now - MAX_REACH && since <= now + MAX_REACH)) throw new InvalidInput('since must be within 100 years of now', 'since');
    if (!(until >= now - MAX_REACH && until <= now + MAX_REACH)) throw new InvalidInput('until must be within 100 years of now', 'until');
    if (since >= until) throw new InvalidInput('since must be before until', 'since');
    return { since: new Date(since).toISOString(), until: new Date(until).toISOString() };
  }

  /** The window's authz decisions, oldest first, page by page. */
  async *#records(w: { since: string; until: string }, decision?: 'allow' | 'deny', identity?: string): AsyncGenerator<AuditRecord> {
    await this.#d.audit.flush();
    let after = 0;
    for (;;) {
      const page = await this.#d.audit.query({ stream: 'authz', type: 'authz.decision', since: w.since, until: w.until, afterSeq: after, limit: PAGE, ...(decision && { decision }), ...(identity !== undefined && { identity }) });
      yield* page;
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.seq;
    }
  }
}
