// Governance wired to the other domains: what a review decision or a lifecycle action does (suspend
// an identity, end a grant, revoke an API key, rotate a signing key), the items a campaign reviews,
// and the periodic job (reviews' deadlines, reminders and cadence; offboarding; idle identities)
// that runs on the replica leading the cluster jobs.
import type { PortcullisConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Store } from '../store/types.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { SpiffeCaStore } from '../credentials/index.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { AccessService } from '../access/index.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import { ReviewService } from '../governance/reviews/campaigns.ts';
import type { ReviewedIdentity } from '../governance/reviews/campaigns.ts';
import type { ItemDraft, ReviewItem } from '../governance/reviews/types.ts';
import { Lifecycle } from '../governance/lifecycle/lifecycle.ts';
import { setIdentityStatus } from './identities.ts';
import type { IdentityAdminDeps } from './identities.ts';
import type { DecisionPoint } from '../policy/decision-point.ts';
import { resourceEntity } from '../policy/entities.ts';
import { actionEntities, actionsApplying } from '../policy/policy-set.ts';
import { PermissionModel } from '../governance/permissions.ts';
import type { EffectivePermissions } from '../governance/permissions.ts';
import type { Identity } from '../inventory/identities.ts';
import { ObservedUse, identityUsage, pairKey } from '../governance/usage.ts';
import { principalFacts } from './authorization.ts';
import type { IdentityActivity, Finding } from '../inventory/findings.ts';
import { computeFindings } from '../inventory/findings.ts';
import { snapshotPayload, trendFromSnapshots, trendWindow, utcDay } from '../governance/findings-trend.ts';
import type { FindingsTrend } from '../governance/findings-trend.ts';
import type { AuditQuery, AuditRecord } from '../audit/types.ts';
import { setImmediate as nextTurn } from 'node:timers/promises';

export interface GovernanceDeps {
  config: PortcullisConfig;
  clock: Clock;
  audit: AuditLog;
  store: Store;
  identities: IdentityRegistry;
  sessions: SessionService;
  credentials: CredentialService;
  access: AccessService;
  apikeys: ApiKeyService;
  keyring: Keyring;
  decisions: DecisionPoint;
  spiffeCa: SpiffeCaStore;
  sshCas: { name: string; publicKey: string }[];
  log: (msg: string) => void;
  /** What else ends when the lifecycle suspends or offboards someone (the agents domain's hook). */
  onInactive?: IdentityAdminDeps['onInactive'];
  /** Agent profiles: an agent without one (no sponsor) is a finding. */
  agents?: { profiles(): Promise<{ id: string }[]> };
}

/** How far back a review item's usage is counted. */
const USAGE_WINDOW_MS = 90 * 86_400_000;
/** At most this many identities' effective permissions are remembered (then forgotten all at once). */
const MAX_EXPLAINED = 10_000;
/** At most this many permission items per identity in one campaign (the rest are counted on its identity item). */
const MAX_PERMISSION_ITEMS = 200;
/** Identities analysed between two turns of the event loop (postureFacts). */
const USAGE_SLICE = 100;

export class Governance {
  readonly reviews: ReviewService;
  readonly lifecycle: Lifecycle;
  readonly #d: GovernanceDeps;
  #timer: NodeJS.Timeout | undefined;
  #model: { version: number; model: PermissionModel } | undefined;
  #sweeping: Promise<unknown> | undefined;
  /** Effective permissions by principal facts, for the model in `#model`. */
  readonly #explained = new Map<string, EffectivePermissions>();
  /** The UTC day whose findings snapshot is known to be on record. */
  #snapshotDay: string | undefined;

  constructor(d: GovernanceDeps) {
    this.#d = d;
    const notifier = d.access.notifier;
    const retire = (id: string, status: 'suspended' | 'offboarded', by: string, reason: string) => this.#retire(id, status, by, reason);
    this.reviews = new ReviewService({
      repo: d.store.governance.reviews,
      clock: d.clock,
      audit: d.audit,
      notifier,
      config: d.config.reviews,
      identities: () => d.identities.list(),
      accountable: (id) => d.identities.accountableHumans(id),
      items: (identity) => this.#items(identity),
      effects: {
        suspend: (id, by, reason) => retire(id, 'suspended', by, reason),
        revoke: (item, by, reason) => this.#revoke(item, by, reason),
        // The suggested (narrowed) policy is applied once approved through `policies push`; until
        // the analysis proposes one for the item, the decision is recorded as pending.
        narrow: () => Promise.resolve('narrow-pending'),
      },
    });
    this.lifecycle = new Lifecycle({
      flags: d.store.governance.flags,
      clock: d.clock,
      audit: d.audit,
      notifier,
      config: d.config.lifecycle,
      identities: () => d.identities.list(),
      effects: {
        retire,
        reassign: async (id, owner, by, reason) => {
          const before = d.identities.require(id);
          const after = await d.identities.update(id, { owner });
          await d.audit.append({ stream: 'admin', type: 'identity.updated', actor: by, subject: id, boundary: after.boundary, payload: { changed: { owner: { from: before.owner, to: owner } }, reason } });
        },
        rotateKey: async (purpose) => (await d.keyring.rotate(purpose)).active.kid,
      },
      rotationFacts: async () => ({
        apikeys: await d.apikeys.list(),
        signingKeys: await d.keyring.list(),
        spiffe: [...d.spiffeCa.authorities()].map(([td, a], i) => ({ trustDomain: td, generation: i + 1, notBefore: a.root.notBefore.getTime(), notAfter: a.root.notAfter.getTime() })),
        sshCas: d.sshCas,
      }),
    });
  }

  /** Suspends or offboards on behalf of a review or the lifecycle (audited as `identity.<status>`). */
  async #retire(id: string, status: 'suspended' | 'offboarded', by: string, reason: string): Promise<void> {
    const current = this.#d.identities.get(id);
    if (!current || current.status === 'offboarded' || current.status === status) return;
    await setIdentityStatus(this.#d, id, status, by, reason, (identity) =>
      this.#d.audit.append({ stream: 'admin', type: `identity.${status}`, actor: by, subject: id, boundary: identity.boundary, payload: { reason } }).then(() => undefined),
    );
  }

  async #revoke(item: ReviewItem, by: string, reason: string): Promise<string> {
    const d = this.#d;
    if (item.kind === 'grant') {
      const g = await d.access.grants.get(item.ref);
      if (g.status === 'active') await d.access.grants.end(item.ref, { by, reason, type: 'grant.revoked' });
      return 'revoked';
    }
    if (item.kind === 'apikey') {
      const k = await d.apikeys.get(item.ref);
      if (k?.status === 'active') {
        await d.apikeys.revoke(item.ref, reason);
        await d.audit.append({ stream: 'admin', type: 'apikey.revoked', actor: by, subject: item.identity_id, payload: { key: item.ref, reason } });
      }
      return 'revoked';
    }
    if (item.kind === 'permission') return 'revoke-pending'; // a policy change: `policies suggest` / `push`
    await this.#retire(item.identity_id, 'suspended', by, reason);
    return 'suspended';
  }

  /**
   * An identity's effective permissions under the model, remembered per policy version and
   * principal facts (the analysis is costly and the daily snapshot asks again for every identity).
   */
  #explain(model: PermissionModel, i: Identity): EffectivePermissions {
    const key = JSON.stringify(principalFacts(i));
    let e = this.#explained.get(key);
    if (!e) {
      if (this.#explained.size >= MAX_EXPLAINED) this.#explained.clear();
      e = model.explain(principalFacts(i));
      this.#explained.set(key, e);
    }
    return e;
  }

  /** The effective-permissions model of the active policy version (rebuilt when it changes). */
  #permissionModel(): PermissionModel | undefined {
    const d = this.#d;
    const v = d.decisions.version;
    if (!v) return undefined;
    if (this.#model?.version !== v.version) {
      const ext = d.config.schema_extension;
      const bridges = d.config.bridges;
      const model = new PermissionModel({
        policies: d.decisions.policies,
        resources: d.config.resources.map(resourceEntity),
        actionEntities: actionEntities(ext),
        actionsApplying: (p, r) => actionsApplying(p, r, ext),
        bridged: (from, to, action) => bridges.some((b) => b.from === from && b.to === to && (b.actions.length === 0 || b.actions.includes(action))),
      });
      this.#model = { version: v.version, model };
      this.#explained.clear();
    }
    return this.#model.model;
  }

  /**
   * What a campaign reviews for one identity: its standing access (with its use over the last 90
   * days from the authz stream), one item per effective permission (action on resource, from the
   * analysis) with its observed use, each active grant and each active API key (with its last use).
   */
  async #items(identity: ReviewedIdentity): Promise<ItemDraft[]> {
    const d = this.#d;
    const now = d.clock.now();
    const i = d.identities.get(identity.id);
    const observed = new ObservedUse();
    let after = 0;
    for (;;) {
      const page = await d.audit.query({ stream: 'authz', identity: identity.id, decision: 'allow', since: now - USAGE_WINDOW_MS, afterSeq: after, limit: 1000 });
      for (const r of page) observed.add(r);
      if (page.length < 1000) break;
      after = page[page.length - 1]!.seq;
    }
    const mine = observed.of(identity.id);
    const model = i && this.#permissionModel();
    const perms = model ? this.#explain(model, i) : undefined;
    const usage = perms ? identityUsage(perms, mine, 0) : undefined;
    let lastAllowed: string | null = null;
    for (const o of mine.values()) if (lastAllowed === null || o.last > lastAllowed) lastAllowed = o.last;
    const out: ItemDraft[] = [
      {
        identity_id: identity.id,
        kind: 'identity',
        ref: identity.id,
        summary: `${identity.kind} ${identity.id} (${identity.environment}, owner ${identity.owner ?? 'none'}): its standing access${i && i.parents.length > 0 ? ` as ${i.parents.map((p) => `${p.type}::"${p.id}"`).join(', ')}` : ''}`,
        usage: {
          last_authenticated_at: i?.last_authenticated_at ?? null,
          allowed_decisions_90d: observed.decisions,
          last_allowed_at: lastAllowed,
          ...(usage && { effective_permissions: usage.effective, used_permissions: usage.used, over_privilege: usage.over_privilege }),
        },
      },
    ];
    for (const p of (perms?.permissions ?? []).slice(0, MAX_PERMISSION_ITEMS)) {
      const seen = mine.get(pairKey(p.action, p.resource));
      const resource = `${p.resource.type}::"${p.resource.id}"`;
      out.push({
        identity_id: identity.id,
        kind: 'permission',
        ref: `${p.action} on ${resource}`,
        summary: `${p.action} on ${resource} (${p.status}${p.permits.length ? `; by ${p.permits.map((x) => x.policy).join(', ')}` : ''})`,
        usage: { allows_90d: seen?.allows ?? 0, last_allowed_at: seen?.last ?? null, conditions: p.permits.flatMap((x) => x.requires) },
      });
    }
    for (const { grant } of await d.access.listGrants({ identityId: identity.id, activeAt: now })) {
      out.push({ identity_id: identity.id, kind: 'grant', ref: grant.id, summary: `${grant.kind} grant: ${grant.what} until ${grant.end_at}`, usage: { start_at: grant.start_at, end_at: grant.end_at, reason: grant.reason } });
    }
    for (const k of await d.apikeys.list(identity.id)) {
      if (k.status !== 'active') continue;
      out.push({ identity_id: identity.id, kind: 'apikey', ref: k.id, summary: `API key ${k.id}${k.description ? ` (${k.description})` : ''}, expires ${k.expires_at}`, usage: { last_used_at: k.last_used_at ?? null, created_at: k.created_at, rotate_by: k.rotate_by } });
    }
    return out;
  }

  /** Every record of a query, page by page (the audit query answers at most 1,000 at a time). */
  async *#all(q: AuditQuery & { stream: NonNullable<AuditQuery['stream']> }): AsyncGenerator<AuditRecord> {
    let after = 0;
    for (;;) {
      const page = await this.#d.audit.query({ ...q, afterSeq: after, limit: 1000 });
      yield* page;
      if (page.length < 1000) return;
      after = page[page.length - 1]!.seq;
    }
  }

  /**
   * The recorded facts behind the activity findings, over `windowMs` back from now: per identity
   * the addresses it authenticated from, human sign-ins (a human trust, the bootstrap secret, MFA),
   * allowed decisions on resources of another environment and its last allow; and its observed
   * use against its effective permissions (over-privilege).
   */
  async postureFacts(windowMs: number): Promise<{ activity: IdentityActivity[]; usage: { identity: string; effective: number; used: number; over_privilege: number }[]; windowMs: number }> {
    const d = this.#d;
    const since = d.clock.now() - windowMs;
    const humanTrusts = new Set(d.config.trusts.filter((t) => t.kind === 'oidc-human').map((t) => t.name));
    const envOf = new Map(d.config.resources.map((r) => [`${r.type}::${r.id}`, r.environment]));
    const acc = new Map<string, { sources: Set<string>; human: number; crossings: Map<string, { environment: string; allows: number }>; last: string | null }>();
    const of = (id: string) => {
      let a = acc.get(id);
      if (!a) acc.set(id, (a = { sources: new Set(), human: 0, crossings: new Map(), last: null }));
      return a;
    };
    for await (const r of this.#all({ stream: 'authn', type: 'authn.success', since })) {
      const p = r.payload as { source_ip?: unknown; method?: unknown; trust?: unknown; mfa?: unknown; amr?: unknown };
      const a = of(r.actor);
      if (typeof p.source_ip === 'string') a.sources.add(p.source_ip);
      if (p.method === 'bootstrap' || humanTrusts.has(String(p.trust)) || p.mfa === true || (Array.isArray(p.amr) && p.amr.some((x) => ['mfa', 'otp', 'pwd', 'hwk', 'swk'].includes(String(x))))) a.human++;
    }
    const observed = new ObservedUse();
    for await (const r of this.#all({ stream: 'authz', type: 'authz.decision', decision: 'allow', since })) {
      observed.add(r);
      const a = of(r.actor);
      if (a.last === null || r.time > a.last) a.last = r.time;
      const resource = String((r.payload as { resource?: unknown }).resource ?? '');
      const env = envOf.get(resource);
      const mine = d.identities.get(r.actor)?.environment;
      if (env !== undefined && mine !== undefined && env !== mine) {
        const c = a.crossings.get(resource) ?? { environment: env, allows: 0 };
        c.allows++;
        a.crossings.set(resource, c);
      }
    }
    const activity = [...acc].map(([identity_id, a]) => ({ identity_id, sources: [...a.sources].sort(), human_logins: a.human, crossings: [...a.crossings].map(([resource, c]) => ({ resource, ...c })), last_allowed_at: a.last }));
    const model = this.#permissionModel();
    const usage: { identity: string; effective: number; used: number; over_privilege: number }[] = [];
    if (model) {
      let n = 0;
      for (const i of d.identities.list({ status: 'active' })) {
        if (i.kind === 'user') continue;
        const u = identityUsage(this.#explain(model, i), observed.of(i.id), 0);
        usage.push({ identity: i.id, effective: u.effective, used: u.used, over_privilege: u.over_privilege });
        // Each identity's permissions are an analysis of its own: over a large estate the event loop
        // answers other requests between slices instead of waiting for all of them.
        if (++n % USAGE_SLICE === 0) await nextTurn();
      }
    }
    return { activity, usage, windowMs };
  }

  /** Posture findings now (docs/governance-reviews.md): the inventory, API keys, leases and the recorded activity over the unused window. */
  async findings(o: { staleAfterMs?: number; unusedAfterMs?: number } = {}): Promise<Finding[]> {
    const d = this.#d;
    const posture = await this.postureFacts(o.unusedAfterMs ?? 90 * 86_400_000);
    return computeFindings({
      ...posture,
      unusedAfterMs: posture.windowMs,
      now: d.clock.now(),
      identities: await d.identities.list(),
      apikeys: await d.apikeys.list(),
      leases: await d.credentials.list({ status: 'revoke_failed' }, 10_000),
      ...(d.agents && { sponsoredAgents: new Set((await d.agents.profiles()).map((p) => p.id)) }),
      ...(o.staleAfterMs !== undefined && { staleAfterMs: o.staleAfterMs }),
    });
  }

  /**
   * Once per UTC day, the counts of the findings (default windows) as a `findings.snapshot` admin
   * event — what the findings trend is read from. Skipped when today's snapshot is on record.
   */
  async snapshotFindings(now = this.#d.clock.now()): Promise<boolean> {
    const day = utcDay(now);
    if (this.#snapshotDay === day) return false;
    const today = Date.parse(`${day}T00:00:00Z`);
    const recorded = await this.#d.audit.query({ stream: 'admin', type: 'findings.snapshot', since: today, limit: 1 });
    if (recorded.length === 0) {
      await this.#d.audit.append({ stream: 'admin', type: 'findings.snapshot', actor: 'system', payload: { day, ...snapshotPayload(await this.findings()) } });
    }
    this.#snapshotDay = day;
    return recorded.length === 0;
  }

  /** The findings per UTC day over the last `days` days (today included), from the snapshots. */
  async findingsTrend(days: number, now = this.#d.clock.now()): Promise<FindingsTrend> {
    const { from, to } = trendWindow(days, now);
    const records: AuditRecord[] = [];
    for await (const r of this.#all({ stream: 'admin', type: 'findings.snapshot', since: from, until: to })) records.push(r);
    return trendFromSnapshots(records, from, to);
  }

  /** One pass of the periodic job (tests call it after moving the clock). */
  async sweep(now = this.#d.clock.now()) {
    const reviews = await this.reviews.sweep(now);
    const lifecycle = await this.lifecycle.sweep(now);
    const snapshot = await this.snapshotFindings(now);
    return { reviews, lifecycle, snapshot };
  }

  /** Runs the job every `reviews.sweep_interval` while this replica leads the cluster jobs. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#sweeping || !this.#d.store.leader.leading) return;
      this.#sweeping = this.sweep()
        .catch((err: unknown) => this.#d.log(`governance: ${(err as Error).message}`))
        .finally(() => (this.#sweeping = undefined));
    }, this.#d.config.reviews.sweep_interval_ms);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
  }
}
