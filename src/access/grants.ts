// Grants: time-bound access produced by an approved request or a break-glass. Active grants feed
// the decision context (`context.grants`) and add temporary role parents to the principal. Ending
// a grant (time, revocation, logout when session-bound) revokes the leases issued under it.
import type { StatementSync } from 'node:sqlite';
import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { NotFound } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { Db } from '../store/sqlite/db.ts';
import { KeyedLock } from './lock.ts';
import { grantFromRow } from './store.ts';
import type { AccessTarget, Grant, GrantContext, GrantKind, Notifier, RevokeLeases } from './types.ts';

/**
 * The strings a target contributes to `context.grants`:
 * - role `db-admin` → `role:db-admin` (and parent `Role::"db-admin"`)
 * - resource + actions → `Database::orders:db.admin` per action
 * - credential → `credential:<target>` and `credential:<target>:<permission>`
 * - break-glass on a resource → `breakglass:Database::orders`
 */
export function grantStrings(target: AccessTarget, kind: GrantKind = 'request'): string[] {
  if (kind === 'break-glass') {
    const r = target.kind === 'resource' ? target.resource : target.kind === 'credential' ? target.resource : undefined;
    if (target.kind === 'credential') return [`breakglass:credential:${target.target}`, ...(r ? [`breakglass:${r.type}::${r.id}`] : [])];
    if (target.kind === 'role') return [`breakglass:role:${target.role}`];
    return [`breakglass:${r!.type}::${r!.id}`];
  }
  switch (target.kind) {
    case 'role':
      return [`role:${target.role}`];
    case 'resource':
      return target.actions.map((a) => `${target.resource.type}::${target.resource.id}:${a}`);
    case 'credential':
      return [`credential:${target.target}`, ...(target.permission ? [`credential:${target.target}:${target.permission}`] : [])];
  }
}

export function grantRoles(target: AccessTarget): EntityUid[] {
  return target.kind === 'role' ? [{ type: 'Role', id: target.role }] : [];
}

export interface GrantInput {
  kind: GrantKind;
  identityId: string;
  requestId: string | null;
  target: AccessTarget;
  what: string;
  startAt: number;
  endAt: number;
  sessionBound: boolean;
  reason: string;
  revokers?: string[];
}

export interface GrantsDeps {
  db: Db;
  clock: Clock;
  audit: AuditSink;
  revokeLeases: RevokeLeases;
  notifier: Notifier;
  onError?: (err: unknown) => void;
}

export class Grants {
  readonly #d: GrantsDeps;
  readonly #lock = new KeyedLock();
  /** `list` runs on every decision (active grants), so its few statement shapes are prepared once. */
  readonly #listStatements = new Map<string, StatementSync>();
  /**
   * Identities holding at least one grant not yet ended. Most principals hold none, so their
   * decisions skip the grants query entirely; a stale member only costs one query.
   */
  readonly #holders = new Set<string>();

  /** Needs the access tables migrated. */
  constructor(deps: GrantsDeps) {
    this.#d = deps;
    for (const r of deps.db.prepare("SELECT DISTINCT identity_id FROM access_grants WHERE status = 'active'").all()) {
      this.#holders.add(String(r.identity_id));
    }
  }

  /** Inserts a grant row; the caller audits the event that produced it. */
  insert(input: GrantInput): Grant {
    const id = `grt_${randomUUID()}`;
    this.#d.db
      .prepare(
        `INSERT INTO access_grants (id, kind, identity_id, request_id, target, what, grants, roles, start_at, end_at,
           status, session_bound, reason, revokers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)`,
      )
      .run(
        id, input.kind, input.identityId, input.requestId, JSON.stringify(input.target), input.what,
        JSON.stringify(grantStrings(input.target, input.kind)), JSON.stringify(grantRoles(input.target)),
        input.startAt, input.endAt, input.sessionBound ? 1 : 0, input.reason, JSON.stringify(input.revokers ?? []),
      );
    this.#holders.add(input.identityId);
    return this.get(id);
  }

  /** Distinct approvals the request behind a grant received (0 for a break-glass). */
  approvals(g: Grant): number {
    if (g.request_id === null) return 0;
    const row = this.#d.db.prepare("SELECT COUNT(*) AS n FROM access_reviews_cast WHERE request_id = ? AND verdict = 'approve'").get(g.request_id) as { n: number };
    return Number(row.n);
  }

  get(id: string): Grant {
    const row = this.#d.db.prepare('SELECT * FROM access_grants WHERE id = ?').get(id);
    if (!row) throw new NotFound(`grant ${id}`);
    return grantFromRow(row);
  }

  list(f: { identityId?: string; kind?: GrantKind; activeAt?: number } = {}, limit = 500): Grant[] {
    const where: string[] = [];
    const vals: (string | number)[] = [];
    if (f.identityId !== undefined) (where.push('identity_id = ?'), vals.push(f.identityId));
    if (f.kind !== undefined) (where.push('kind = ?'), vals.push(f.kind));
    if (f.activeAt !== undefined) (where.push("status = 'active' AND start_at <= ? AND end_at > ?"), vals.push(f.activeAt, f.activeAt));
    const sql = `SELECT * FROM access_grants ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY start_at DESC LIMIT ?`;
    let stmt = this.#listStatements.get(sql);
    if (!stmt) this.#listStatements.set(sql, (stmt = this.#d.db.prepare(sql)));
    return stmt.all(...vals, limit).map(grantFromRow);
  }

  /**
   * The decision context for one identity now. Time is checked here, not by the sweeper, so a
   * grant stops counting at its end even if the sweeper has not run yet. `breakGlass` is true
   * only when an active break-glass covers `resource` (or any, when no resource is given).
   */
  contextFor(identityId: string, opts: { now?: number; resource?: EntityUid; qualifies?: (g: Grant) => boolean } = {}): GrantContext {
    if (!this.#holders.has(identityId)) return { grants: [], parents: [], breakGlass: false, grantIds: [] };
    const now = opts.now ?? this.#d.clock.now();
    return grantContext(this.list({ identityId, activeAt: now }), opts);
  }

  /** Ends a grant (idempotent) and revokes its leases. */
  end(id: string, opts: { by: string; reason: string; type?: string }): Promise<Grant> {
    return this.#lock.run(id, async () => {
      const g = this.get(id);
      if (g.status === 'ended') return g;
      const now = this.#d.clock.now();
      await this.#d.audit.append({
        stream: 'admin',
        type: opts.type ?? (g.kind === 'break-glass' ? 'breakglass.ended' : 'grant.ended'),
        actor: opts.by,
        subject: g.identity_id,
        payload: { grant_id: g.id, request_id: g.request_id, what: g.what, kind: g.kind, reason: opts.reason, end_at: g.end_at },
      });
      this.#d.db
        .prepare("UPDATE access_grants SET status = 'ended', ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND status = 'active'")
        .run(now, opts.by, opts.reason, id);
      const ended = this.get(id);
      this.#d.notifier.notify(g.kind === 'break-glass' ? 'breakglass.ended' : 'grant.ended', {
        grant: summary(ended),
        ended_by: opts.by,
        reason: opts.reason,
      });
      await this.#revokeLeases(ended);
      return ended;
    });
  }

  async #revokeLeases(g: Grant): Promise<void> {
    try {
      await this.#d.revokeLeases({ grantId: g.id }, { by: g.ended_by ?? 'system:access', reason: `grant ${g.id} ended: ${g.end_reason ?? ''}` });
      this.#d.db.prepare('UPDATE access_grants SET leases_revoked = 1 WHERE id = ?').run(g.id);
    } catch (err) {
      // Left at leases_revoked = 0: the sweeper retries.
      this.#d.onError?.(err);
    }
  }

  /** Ends every session-bound grant of an identity (called on logout). */
  async endSessionBound(identityId: string, by: string): Promise<Grant[]> {
    const rows = this.#d.db
      .prepare("SELECT id FROM access_grants WHERE identity_id = ? AND status = 'active' AND session_bound = 1")
      .all(identityId) as { id: string }[];
    const out: Grant[] = [];
    for (const r of rows) out.push(await this.end(r.id, { by, reason: 'requester logged out (session-bound grant)' }));
    return out;
  }

  /** Ends grants past their end time; retries lease revocation that failed earlier. */
  async sweep(now = this.#d.clock.now()): Promise<{ ended: string[]; retried: string[] }> {
    const due = this.#d.db.prepare("SELECT id FROM access_grants WHERE status = 'active' AND end_at <= ?").all(now) as { id: string }[];
    const ended: string[] = [];
    for (const r of due) {
      await this.end(r.id, { by: 'system:expiry', reason: 'grant reached its end time' });
      ended.push(r.id);
    }
    const retry = this.#d.db.prepare("SELECT id FROM access_grants WHERE status = 'ended' AND leases_revoked = 0").all() as { id: string }[];
    for (const r of retry) if (!ended.includes(r.id)) await this.#revokeLeases(this.get(r.id));
    return { ended, retried: retry.map((r) => r.id).filter((id) => !ended.includes(id)) };
  }
}

/**
 * The decision context of grants already read (active now, one identity's): `context.grants`,
 * temporary role parents, and `breakGlass` when an active break-glass covers `resource` (or any,
 * when no resource is given). Only grants `qualifies` accepts count.
 */
export function grantContext(active: readonly Grant[], opts: { resource?: EntityUid; qualifies?: (g: Grant) => boolean } = {}): GrantContext {
  const counted = active.filter((g) => opts.qualifies?.(g) ?? true);
  const grants = new Set<string>();
  const parents = new Map<string, EntityUid>();
  let breakGlass = false;
  for (const g of counted) {
    for (const s of g.grants) grants.add(s);
    for (const p of g.roles) parents.set(`${p.type}::${p.id}`, p);
    if (g.kind === 'break-glass' && (opts.resource === undefined || coversResource(g.target, opts.resource))) breakGlass = true;
  }
  return { grants: [...grants].sort(), parents: [...parents.values()], breakGlass, grantIds: counted.map((g) => g.id) };
}

export function coversResource(target: AccessTarget, r: EntityUid): boolean {
  const t = target.kind === 'resource' ? target.resource : target.kind === 'credential' ? target.resource : undefined;
  return t !== undefined && t.type === r.type && t.id === r.id;
}

/** The non-secret view of a grant sent in notifications. */
export function summary(g: Grant): Record<string, unknown> {
  return { id: g.id, kind: g.kind, identity: g.identity_id, what: g.what, start_at: g.start_at, end_at: g.end_at, status: g.status, request_id: g.request_id };
}
