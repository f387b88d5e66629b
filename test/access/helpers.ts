// A real decision stack for access tests: SQLite, AuditLog, PolicyStore, WasmEngine, DecisionPoint.
// `decide` merges active grants the way the broker will: `context.grants`, temporary role parents,
// `breakGlass` for the resource.
import { ManualClock } from '../../src/common/clock.ts';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';
import { SqlitePolicyStore } from '../../src/store/sqlite/policy.ts';
import type { Db } from '../../src/store/sqlite/db.ts';
import { SqliteAccessStore } from '../../src/store/sqlite/access.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { SqliteAuditStore } from '../../src/store/sqlite/audit/index.ts';
import { PolicyStore } from '../../src/policy/store.ts';
import { WasmEngine } from '../../src/policy/engine/wasm.ts';
import { DecisionPoint } from '../../src/policy/decision-point.ts';
import type { Decision } from '../../src/policy/decision-point.ts';
import { actionEntities, compilePolicySet } from '../../src/policy/policy-set.ts';
import { resourceEntity } from '../../src/policy/entities.ts';
import type { PrincipalFacts, ResourceFacts } from '../../src/policy/entities.ts';
import type { EntityUid } from '../../src/policy/engine/types.ts';
import type { AuthnFacts } from '../../src/identity/types.ts';
import { createAccessService, validateAccessConfig } from '../../src/access/index.ts';
import { accountableHumans } from '../../src/inventory/identities.ts';
import type { AccessDecide, AccessService, Actor, Notifier, RevokeLeases } from '../../src/access/index.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';

// `breakglass.use` is part of the built-in schema now; nothing to extend.
export const SCHEMA_EXTENSION = '';

export const POLICIES = `
@id("users-request")
permit (principal is User, action == Action::"access.request", resource);

@id("dba-approves-prod")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource.environment == "prod" };

@id("leads-approve-roles")
permit (principal in Team::"dba", action == Action::"access.approve", resource == AccessRequest::"role:db-reader");

@id("granted-db-admin")
permit (principal, action == Action::"db.admin", resource == Database::"orders")
when { context.grants.contains("Database::orders:db.admin") };

@id("role-db-reader")
permit (principal in Role::"db-reader", action in Action::"db.read", resource == Database::"orders");

@id("oncall-break-glass")
permit (principal in Team::"oncall", action == Action::"breakglass.use", resource == Database::"orders");

@id("break-glass-admin")
permit (principal, action == Action::"db.admin", resource == Database::"orders")
when { context.breakGlass };

@id("admin-needs-recent-mfa")
@stepUp("mfa")
@maxAuthAge("300")
forbid (principal, action == Action::"db.admin", resource)
unless { context.authn.mfa && context.authn.authAgeSeconds <= 300 };
`;

export const RESOURCES: ResourceFacts[] = [
  { type: 'Database', id: 'orders', boundary: 'application', environment: 'prod', parents: [], attributes: {} },
  { type: 'Database', id: 'scratch', boundary: 'application', environment: 'dev', parents: [], attributes: {} },
];

export function user(name: string, teams: string[] = []): PrincipalFacts {
  return { id: `user:${name}@example.com`, kind: 'user', boundary: 'application', environment: 'prod', owner: null, labels: {}, parents: teams.map((t) => ({ type: 'Team', id: t })) };
}

export interface World {
  db: Db;
  /** The access repositories over `db`, and the unit of work they share. */
  accessStore: SqliteAccessStore;
  unitOfWork: SqliteDb;
  clock: ManualClock;
  audit: AuditLog;
  dp: DecisionPoint;
  service: AccessService;
  users: Map<string, PrincipalFacts>;
  revoked: { grantId: string; by: string; reason: string }[];
  decide: AccessDecide;
  actor(name: string, authn?: Partial<AuthnFacts>): Actor;
  /** A data-plane decision for an actor with their active grants merged in. */
  decideData(actor: Actor, action: string, resource: EntityUid): Promise<Decision>;
  close(): Promise<void>;
}

export async function world(opts: { config?: unknown; env?: NodeJS.ProcessEnv; notifier?: Notifier; policies?: string; clockStart?: number; resources?: typeof RESOURCES; revokeLeases?: RevokeLeases; credentialTargets?: Record<string, EntityUid> } = {}): Promise<World> {
  const clock = new ManualClock(opts.clockStart ?? Date.parse('2026-03-02T10:00:00Z'));
  const db = openDatabase(':memory:');
  // One unit of work over the state connection, shared by every repository on it.
  const unitOfWork = new SqliteDb(db);
  // The audit streams have their own store, as in production (audit.db beside portcullis.db).
  const auditDb = new SqliteDb(openDatabase(':memory:'));
  const audit = new AuditLog(new SqliteAuditStore(auditDb), { clock });
  const store = new PolicyStore(new SqlitePolicyStore(unitOfWork).versions);
  const engine = new WasmEngine();
  const resources = [...RESOURCES, ...(opts.resources ?? [])];
  const boundaries = new Map(resources.map((r) => [`${r.type}::${r.id}`, r]));
  const dp = new DecisionPoint({
    engine, store, audit, clock, schemaExtension: SCHEMA_EXTENSION, bridges: [], failClosed: true,
    resourceBoundary: (uid) => boundaries.get(`${uid.type}::${uid.id}`)?.boundary,
  });
  engine.upsertEntities(resources.map(resourceEntity));
  engine.upsertEntities(actionEntities(SCHEMA_EXTENSION));
  compilePolicySet([{ name: 'access.cedar', origin: 'config', text: opts.policies ?? POLICIES }], SCHEMA_EXTENSION);
  await dp.activate([{ name: 'access.cedar', origin: 'config', text: opts.policies ?? POLICIES }], 'test', 'access tests');

  const users = new Map<string, PrincipalFacts>();
  for (const u of [user('alice'), user('bob', ['dba']), user('carol', ['dba']), user('dave'), user('erin', ['oncall']), user('frank', ['sre'])]) users.set(u.id, u);
  const revoked: World['revoked'] = [];

  const principal = async (id: string, resource?: EntityUid, action?: string): Promise<{ facts: PrincipalFacts; grants: string[]; breakGlass: boolean }> => {
    const base = users.get(id);
    if (!base) throw new Error(`unknown test user ${id}`);
    const g = await service.activeGrants(id, undefined, resource, action);
    return { facts: { ...base, parents: [...base.parents, ...g.parents] }, grants: g.grants, breakGlass: g.breakGlass };
  };
  const decide: AccessDecide = async (r) => {
    const p = await principal(r.actor.id);
    const d = await dp.decide({
      principal: p.facts, claims: {}, authn: r.actor.authn, sourceIp: r.actor.sourceIp ?? '127.0.0.1', action: r.action, resource: r.resource,
      purpose: r.purpose ?? {}, grants: p.grants, breakGlass: r.breakGlass ?? false,
      ...(r.actor.sessionId !== undefined && { sessionId: r.actor.sessionId }),
      ...(r.resourceEntity && { resourceEntities: [r.resourceEntity] }),
    });
    return { decision: d.decision, decisionId: d.decision_id };
  };
  const accessStore = new SqliteAccessStore(unitOfWork);
  const service = createAccessService({
    store: accessStore, unitOfWork, clock, audit, decide,
    fetch: outboundFetch({ allowPrivate: LOOPBACK }), // webhook receivers are on loopback
    revokeLeases: async (sel, o) => {
      revoked.push({ grantId: sel.grantId, ...o });
      return opts.revokeLeases ? opts.revokeLeases(sel, o) : { revoked: 0 };
    },
    config: validateAccessConfig(opts.config ?? {}, opts.env ?? {}),
    ...(opts.notifier && { webhooks: opts.notifier }),
    resourceInfo: (uid) => boundaries.get(`${uid.type}::${uid.id}`),
    teamsOf: (id) => (users.get(id)?.parents ?? []).filter((p) => p.type === 'Team').map((p) => p.id),
    resourceChildren: (uid) => resources.filter((r) => r.parents.some((p) => p.type === uid.type && p.id === uid.id)),
    ...(opts.credentialTargets && { credentialResource: (t: string) => opts.credentialTargets![t] }),
    // The inventory's definition, over the test principals (add owned workloads to `users`).
    accountable: (id) => accountableHumans(id, (x) => users.get(x), (team) => [...users.values()].filter((u) => u.parents.some((p) => p.type === 'Team' && p.id === team)).map((u) => u.id)),
  });
  const w: World = {
    db, accessStore, unitOfWork, clock, audit, dp, service, users, revoked, decide,
    actor(name, authn = {}) {
      const id = name.includes(':') ? name : `user:${name}@example.com`;
      return { id, sessionId: `sess-${name}`, authn: { method: 'oidc', trust: 'sso', mfa: true, assurance: 'high', auth_time: Math.floor(clock.now() / 1000), ...authn } };
    },
    async decideData(actor, action, resource) {
      const p = await principal(actor.id, resource, action);
      return dp.decide({ principal: p.facts, claims: {}, authn: actor.authn, sourceIp: '127.0.0.1', action, resource, purpose: {}, grants: p.grants, breakGlass: p.breakGlass });
    },
    async close() {
      await service.stop();
      await audit.close();
      auditDb.close();
      if (db.isOpen) db.close();
    },
  };
  return w;
}

/** Collects notifications in memory (webhook delivery is tested separately over HTTP). */
export class RecordingNotifier implements Notifier {
  readonly events: { type: string; data: Record<string, unknown> }[] = [];
  notify(type: string, data: Record<string, unknown>): void {
    this.events.push({ type, data });
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

export const ORDERS = { type: 'Database', id: 'orders' };
