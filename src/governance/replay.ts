// What-if replay: re-decides recorded authz decisions with a candidate policy set, using the
// principal, resource and context recorded with each decision (policy/decision-snapshot.ts), and
// reports every flip (allow→deny, deny→allow) by identity and action, and what it could not rebuild.
import type { AuditRecord } from '../audit/types.ts';
import { REDACTED } from '../audit/scrub.ts';
import type { AuthzRequest, CedarValue, DecisionEngine, Entity, EntityUid } from '../policy/engine/types.ts';
import { principalEntity } from '../policy/entities.ts';
import { normaliseIp } from '../policy/decision-point.ts';
import { parseUidText, snapshotPrincipal, snapshotResource, type DecisionSnapshot } from '../policy/decision-snapshot.ts';

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** Why a recorded decision could not be re-decided. */
export type Unreconstructable =
  | 'no_snapshot' // recorded before decisions carried their facts, or a refusal that never reached the engine
  | 'redacted' // a recorded value was redacted by the audit scrubber
  | 'malformed'; // the record does not have the shape of an authz decision

/** The inputs of one recorded decision, rebuilt. */
export interface RebuiltDecision {
  identity: string;
  request: AuthzRequest;
  entities: Entity[];
  recorded: 'allow' | 'deny';
}

interface DecisionPayload {
  decision_id?: string;
  action?: string;
  resource?: string;
  purpose?: { reason?: string; ticket?: string };
  authn?: { method?: string; trust?: string };
  source_ip?: string;
  bridge?: string;
  breakGlass?: boolean;
  delegation?: { depth: number; actors: string[] };
  replay?: DecisionSnapshot;
}

/** The identity a decision was about: the subject when an application asked (AuthZEN), else the actor. */
export const decisionIdentity = (r: AuditRecord): string => r.subject ?? r.actor;

/** Rebuilds a recorded decision's request and entities, or says why it cannot. */
export function rebuild(r: AuditRecord): RebuiltDecision | Unreconstructable {
  const p = r.payload as DecisionPayload;
  if (r.type !== 'authz.decision' || typeof p.action !== 'string' || typeof p.resource !== 'string' || (r.decision !== 'allow' && r.decision !== 'deny')) return 'malformed';
  const s = p.replay;
  if (s === undefined || s.v !== 1) return 'no_snapshot';
  if ((s.claims !== undefined && hasRedacted(s.claims)) || (s.extra !== undefined && hasRedacted(s.extra)) || (p.purpose !== undefined && hasRedacted(p.purpose))) return 'redacted';
  const resource = s.rt !== undefined ? { type: s.rt, id: p.resource.slice(s.rt.length + 2) } : parseUidText(p.resource);
  if (resource === undefined) return 'malformed';
  const identity = decisionIdentity(r);
  const principal = principalEntity(snapshotPrincipal(identity, s), s.claims ?? {});
  const t = new Date(s.at);
  if (Number.isNaN(t.getTime())) return 'malformed';
  const purpose: Record<string, CedarValue> = {};
  if (p.purpose?.reason !== undefined) purpose.reason = p.purpose.reason;
  if (p.purpose?.ticket !== undefined) purpose.ticket = p.purpose.ticket;
  const context: Record<string, CedarValue> = {
    ...(s.extra as Record<string, CedarValue> | undefined),
    authn: { method: p.authn?.method ?? '', trust: p.authn?.trust ?? '', mfa: s.mfa, assurance: s.assurance, authAgeSeconds: s.age },
    request: {
      time: { __extn: { fn: 'datetime', arg: s.at } },
      hour: t.getUTCHours(),
      weekday: WEEKDAYS[t.getUTCDay()]!,
      sourceIp: { __extn: { fn: 'ip', arg: normaliseIp(p.source_ip ?? '') } },
    },
    purpose,
    grants: s.grants ?? [],
    breakGlass: p.breakGlass ?? false,
    delegation: { depth: p.delegation?.depth ?? 0, actors: p.delegation?.actors ?? [] },
    bridge: p.bridge !== undefined,
  };
  const entities = [principal];
  const res = snapshotResource(resource, s);
  if (res !== undefined) entities.push(res);
  return { identity, request: { principal: principal.uid, action: { type: 'Action', id: p.action }, resource, context }, entities, recorded: r.decision };
}

function hasRedacted(v: unknown): boolean {
  if (v === REDACTED) return true;
  if (typeof v !== 'object' || v === null) return false;
  return Object.values(v).some(hasRedacted);
}

export interface Flip {
  decision_id: string;
  time: string;
  identity: string;
  action: string;
  resource: string;
  recorded: 'allow' | 'deny';
  candidate: 'allow' | 'deny';
  /** The candidate's determining policies. */
  reasons: string[];
}

export interface FlipCount {
  allow_to_deny: number;
  deny_to_allow: number;
}

/** The replay report. */
export interface ReplayReport {
  /** Recorded decisions read. */
  decisions: number;
  /** Re-decided with the candidate. */
  replayed: number;
  unchanged: number;
  flips: FlipCount;
  by_identity: ({ identity: string } & FlipCount)[];
  by_action: ({ action: string } & FlipCount)[];
  /** Every flip (up to `limit`, oldest first). */
  flipped: Flip[];
  flipped_truncated: boolean;
  /** Decisions that could not be rebuilt, by reason, and the first `limit` of them. */
  unreconstructable: { count: number; by_reason: Partial<Record<Unreconstructable, number>>; decisions: { decision_id: string; time: string; identity: string; reason: Unreconstructable }[] };
}

/** Accumulates a replay; `add` one recorded decision at a time, then `report()`. */
export class Replay {
  readonly #engine: DecisionEngine;
  readonly #limit: number;
  #decisions = 0;
  #replayed = 0;
  #unchanged = 0;
  readonly #flips: FlipCount = { allow_to_deny: 0, deny_to_allow: 0 };
  readonly #byIdentity = new Map<string, FlipCount>();
  readonly #byAction = new Map<string, FlipCount>();
  readonly #flipped: Flip[] = [];
  #truncated = false;
  readonly #lost: ReplayReport['unreconstructable'] = { count: 0, by_reason: {}, decisions: [] };

  /** `engine` holds the candidate policies, the action entities and the declared resources. */
  constructor(engine: DecisionEngine, limit = 1000) {
    this.#engine = engine;
    this.#limit = limit;
  }

  add(r: AuditRecord): void {
    this.#decisions++;
    const p = r.payload as DecisionPayload;
    const rebuilt = rebuild(r);
    if (typeof rebuilt === 'string') {
      this.#lost.count++;
      this.#lost.by_reason[rebuilt] = (this.#lost.by_reason[rebuilt] ?? 0) + 1;
      if (this.#lost.decisions.length < this.#limit) this.#lost.decisions.push({ decision_id: String(p.decision_id ?? ''), time: r.time, identity: decisionIdentity(r), reason: rebuilt });
      return;
    }
    this.#replayed++;
    let decision: 'allow' | 'deny';
    let reasons: string[];
    try {
      ({ decision, reasons } = this.#engine.authorize(rebuilt.request, rebuilt.entities));
    } catch {
      decision = 'deny'; // as the decision point: an engine failure is a deny
      reasons = [];
    }
    if (decision === rebuilt.recorded) {
      this.#unchanged++;
      return;
    }
    const key = decision === 'deny' ? 'allow_to_deny' : 'deny_to_allow';
    this.#flips[key]++;
    bump(this.#byIdentity, rebuilt.identity, key);
    bump(this.#byAction, rebuilt.request.action.id, key);
    if (this.#flipped.length < this.#limit) {
      this.#flipped.push({ decision_id: String(p.decision_id ?? ''), time: r.time, identity: rebuilt.identity, action: rebuilt.request.action.id, resource: p.resource!, recorded: rebuilt.recorded, candidate: decision, reasons });
    } else this.#truncated = true;
  }

  report(): ReplayReport {
    const rows = <K extends string>(m: Map<string, FlipCount>, k: K) =>
      [...m].map(([name, c]) => ({ [k]: name, ...c }) as { [P in K]: string } & FlipCount).sort((a, b) => b.allow_to_deny + b.deny_to_allow - (a.allow_to_deny + a.deny_to_allow) || (a[k] < b[k] ? -1 : 1));
    return {
      decisions: this.#decisions,
      replayed: this.#replayed,
      unchanged: this.#unchanged,
      flips: { ...this.#flips },
      by_identity: rows(this.#byIdentity, 'identity'),
      by_action: rows(this.#byAction, 'action'),
      flipped: this.#flipped,
      flipped_truncated: this.#truncated,
      unreconstructable: this.#lost,
    };
  }
}

function bump(m: Map<string, FlipCount>, k: string, which: keyof FlipCount): void {
  let c = m.get(k);
  if (c === undefined) m.set(k, (c = { allow_to_deny: 0, deny_to_allow: 0 }));
  c[which]++;
}

/** The resource of a record as an entity uid (for callers grouping by resource). */
export function recordResource(r: AuditRecord): EntityUid | undefined {
  const p = r.payload as DecisionPayload;
  if (typeof p.resource !== 'string') return undefined;
  const rt = p.replay?.rt;
  return rt !== undefined ? { type: rt, id: p.resource.slice(rt.length + 2) } : parseUidText(p.resource);
}
