// The agents' admin API (docs/agents.md): agent profiles (the accountable sponsor, model, tools)
// and assignments — made by the delegating user for their own agent use (or by an agent for a
// narrower sub-assignment), read, and ended. Each call decides with Cedar on the agent's Identity;
// ending an assignment revokes every token issued under it, and taking a person or an agent out
// of service ends what hangs on them (an offboarded sponsor's agents are suspended).
import type { AuditLog } from '../audit/log.ts';
import type { Clock } from '../common/clock.ts';
import { parseDuration } from '../common/duration.ts';
import { Conflict, InvalidInput } from '../common/errors.ts';
import type { PortcullisConfig } from '../config/types.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { Identity, IdentityRegistry, IdentityStatus } from '../inventory/identities.ts';
import type { AgentService, ProfileInput } from '../agents/service.ts';
import { toolCovered } from '../agents/service.ts';
import type { AgentProfile, Assignment } from '../agents/types.ts';
import type { CedarValue } from '../policy/engine/types.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import { recordAdminEvent } from './admin-event.ts';
import { opaqueId } from './opaque.ts';
import { SelfEscalation } from './identities.ts';

export interface AgentAdminDeps {
  authz: Pick<Authorization, 'requireAllowed' | 'allows'>;
  clock: Clock;
  config: Pick<PortcullisConfig, 'targets'>;
  identities: IdentityRegistry;
  agents: AgentService;
  credentials: CredentialService;
  sessions: SessionService;
  audit: AuditLog;
  lifecycle: AgentLifecycle;
}

export interface AgentView {
  identity: Identity;
  /** Undefined: no sponsor yet (a posture finding, and no assignment can be made for it). */
  profile?: AgentProfile;
}

export interface AssignRequest {
  intent: string;
  tools: string[];
  audiences: string[];
  /** `30m`, `2h` … (default 1h, at most 24h). */
  ttl?: string;
  /** A sub-assignment: the caller is the agent of this live assignment and hands part of it on. */
  parent?: string;
}

export interface AssignmentQuery {
  /** Only those the caller is a party to (delegator, agent, sponsor): no permission needed. */
  mine?: boolean;
  agent?: string;
  delegator?: string;
  live?: boolean;
}

/** The actor of what the system does on its own (suspending a sponsor's agents, ending assignments). */
const SYSTEM_ACTOR = 'system:agents';
const uid = (id: string) => ({ type: 'Identity', id });

export class AgentAdmin {
  readonly #d: AgentAdminDeps;

  constructor(deps: AgentAdminDeps) {
    this.#d = deps;
  }

  // ── Profiles ─────────────────────────────────────────────────────────────────────────────

  /** Every agent with its profile (`identity.read` on every identity). */
  async list(c: Caller): Promise<AgentView[]> {
    await this.#d.authz.requireAllowed(c, 'identity.read', uid('*'));
    const profiles = new Map((await this.#d.agents.profiles()).map((p) => [p.id, p]));
    return this.#d.identities.list({ kind: 'agent' }).map((identity) => ({ identity, ...(profiles.has(identity.id) && { profile: profiles.get(identity.id)! }) }));
  }

  /** One agent (itself, its sponsor, or `identity.read`). */
  async get(c: Caller, id: string): Promise<AgentView> {
    return opaqueId('agent', id, () => false, async () => {
      const profile = await this.#d.agents.profile(id);
      if (c.identity.id !== id && profile?.sponsor !== c.identity.id) await this.#d.authz.requireAllowed(c, 'identity.read', uid(id));
      return { identity: this.#agent(id), ...(profile && { profile }) };
    });
  }

  /** Sets an agent's sponsor, model, provider and tools (`agent.manage`; never by the agent itself). */
  async setProfile(c: Caller, id: string, input: ProfileInput): Promise<AgentView> {
    return opaqueId('agent', id, () => this.#d.authz.allows(c, 'identity.read', uid(id)), async () => {
      await this.#d.authz.requireAllowed(c, 'agent.manage', uid(id));
      const identity = this.#agent(id);
      if (c.identity.id === id) throw new SelfEscalation('an agent cannot change its own profile (sponsor, tools); ask an administrator');
      const sponsor = typeof input.sponsor === 'string' ? this.#d.identities.get(input.sponsor) : undefined;
      if (!sponsor || sponsor.kind !== 'user') throw new InvalidInput('sponsor: the id of a human in the inventory (an identity of kind user) who answers for the agent', 'sponsor');
      if (sponsor.status !== 'active') throw new InvalidInput(`sponsor: ${sponsor.id} is ${sponsor.status}`, 'sponsor');
      const before = await this.#d.agents.profile(id);
      const profile = await this.#d.agents.setProfile(id, input);
      await recordAdminEvent(this.#d.audit, c, 'agent.profile_set', {
        sponsor: profile.sponsor, model: profile.model, provider: profile.provider, tools: profile.tools, ...(before && before.sponsor !== profile.sponsor && { previous_sponsor: before.sponsor }),
      }, id, identity.boundary);
      return { identity, profile };
    });
  }

  #agent(id: string): Identity {
    const identity = this.#d.identities.require(id);
    if (identity.kind !== 'agent') throw new InvalidInput(`${id} is a ${identity.kind}, not an agent`, 'id');
    return identity;
  }

  // ── Assignments ──────────────────────────────────────────────────────────────────────────

  /**
   * A new assignment of `agentId`. The delegator is always the caller's human: the caller itself,
   * or, for a sub-assignment, the delegator of the parent (whose agent the caller must be). Decided
   * as `assignment.create` on the agent with `context.assignment` (what is asked).
   */
  async assign(c: Caller, agentId: string, req: AssignRequest): Promise<Assignment> {
    const tools = strings(req.tools, 'tools');
    const audiences = strings(req.audiences, 'audiences');
    const ttlMs = req.ttl === undefined ? undefined : parseDuration(req.ttl, 'ttl');
    // Once policy allowed the caller to assign the agent, its state is no secret to them.
    let allowed = false;
    return opaqueId('agent', agentId, () => allowed || this.#d.authz.allows(c, 'identity.read', uid(agentId)), async () => {
      const profile = await this.#d.agents.profile(agentId);
      let parent: Assignment | undefined;
      let delegator = c.identity.id;
      if (req.parent !== undefined) {
        parent = await this.#d.agents.get(req.parent);
        if (!parent || parent.agentId !== c.identity.id) throw new InvalidInput(`parent: ${String(req.parent).slice(0, 40)} is not an assignment of yours (the caller's)`, 'parent');
        if (agentId === c.identity.id) throw new InvalidInput('a sub-assignment goes to another agent', 'id');
        delegator = parent.delegatorId;
      }
      const context: Record<string, CedarValue> = {
        assignment: {
          intent: typeof req.intent === 'string' ? req.intent : '',
          tools,
          audiences,
          ttlSeconds: Math.floor((ttlMs ?? 3_600_000) / 1000),
          depth: parent ? (parent.depth ?? 1) + 1 : 1,
          delegator,
          sponsor: profile?.sponsor ?? '',
        },
      };
      // Decided before anything about the agent is told (an unknown agent answers like a forbidden one).
      await this.#d.authz.requireAllowed(c, 'assignment.create', uid(agentId), context);
      allowed = true;
      if (parent === undefined && c.identity.kind !== 'user') throw new InvalidInput('an assignment is made by the human it acts for; an agent hands on part of its own with "parent"', 'parent');
      const agent = this.#agent(agentId);
      if (agent.status !== 'active') throw new Conflict(`agent ${agentId} is ${agent.status}`);
      if (!profile) throw new Conflict(`agent ${agentId} has no sponsor: an administrator sets one first (portcullis agents set ${agentId} --sponsor user:…)`);
      const sponsor = this.#d.identities.get(profile.sponsor);
      if (!sponsor || sponsor.status !== 'active') throw new Conflict(`agent ${agentId}'s sponsor ${profile.sponsor} is not active`);
      if (profile.tools.length > 0) {
        const beyond = tools.filter((t) => !toolCovered(t, profile.tools));
        if (beyond.length) throw new InvalidInput(`tools: ${agentId} may not reach ${beyond.join(', ')} (its profile lists ${profile.tools.join(', ')})`, 'tools');
      }
      const known = new Set(this.#d.config.targets.filter((t) => t.kind === 'api').map((t) => (t as { audience: string }).audience));
      audiences.forEach((a, i) => {
        if (!known.has(a)) throw new InvalidInput(`audiences[${i}]: not the audience of an api target of this server (tokens are issued for those only)`, `audiences[${i}]`);
      });
      const a = await this.#d.agents.create({ agentId, delegatorId: delegator, sponsorId: profile.sponsor, intent: req.intent, tools, audiences, ...(ttlMs !== undefined && { ttlMs }), ...(parent && { parent }) });
      await recordAdminEvent(this.#d.audit, c, 'assignment.created', {
        assignment: a.id, agent: a.agentId, delegator: a.delegatorId, sponsor: a.sponsorId, intent: a.intent, tools: a.tools, audiences: a.audiences,
        expires_at: new Date(a.expiresAt).toISOString(), depth: a.depth, ...(a.parentId !== undefined && { parent: a.parentId }),
      }, a.agentId, agent.boundary);
      return a;
    });
  }

  /**
   * The assignment, once the caller may act on it: a party to it, or allowed `action` on its
   * agent. An unknown id is decided on every agent first, so it answers like a forbidden one.
   */
  async #decided(c: Caller, id: string, action: string): Promise<Assignment> {
    const a = await this.#d.agents.get(id);
    if (!a) {
      await this.#d.authz.requireAllowed(c, action, uid('*'));
      return this.#d.agents.require(id);
    }
    if (!this.#party(c, a)) await this.#d.authz.requireAllowed(c, action, uid(a.agentId));
    return a;
  }

  /** Whether the caller is a party to it: its delegator, its agent, or the agent's sponsor. */
  #party(c: Caller, a: Assignment): boolean {
    const me = c.identity.id;
    return a.delegatorId === me || a.agentId === me || a.sponsorId === me;
  }

  /**
   * Assignments, newest first: with `mine`, those the caller is a party to (no permission
   * needed); otherwise `assignment.read` on the agent (or on every agent).
   */
  async assignments(c: Caller, q: AssignmentQuery = {}): Promise<Assignment[]> {
    const filter = { ...(q.agent !== undefined && { agentId: q.agent }), ...(q.delegator !== undefined && { delegatorId: q.delegator }), ...(q.live && { live: true }) };
    if (q.mine !== true) {
      await this.#d.authz.requireAllowed(c, 'assignment.read', uid(q.agent ?? '*'));
      return this.#d.agents.list(filter, 1000);
    }
    const me = c.identity.id;
    const byId = new Map<string, Assignment>();
    for (const party of [{ delegatorId: me }, { agentId: me }, { sponsorId: me }]) {
      for (const a of await this.#d.agents.list({ ...filter, ...party }, 1000)) byId.set(a.id, a);
    }
    return [...byId.values()].sort((x, y) => y.createdAt - x.createdAt || (x.id < y.id ? 1 : -1)).slice(0, 1000);
  }

  async assignment(c: Caller, id: string): Promise<Assignment> {
    return opaqueId('assignment', id, () => false, async () => {
      const a = await this.#decided(c, id, 'assignment.read');
      return a;
    });
  }

  /**
   * Ends an assignment (and its sub-assignments) now and revokes every token issued under them.
   * Its delegator, its agent and the agent's sponsor may always; anyone else needs `assignment.end`.
   */
  async end(c: Caller, id: string, reason: string): Promise<Assignment> {
    return opaqueId('assignment', id, async () => {
      const a = await this.#d.agents.get(id);
      return a !== undefined && (this.#party(c, a) || this.#d.authz.allows(c, 'assignment.read', uid(a.agentId)));
    }, async () => {
      const a = await this.#decided(c, id, 'assignment.end');
      await this.#d.lifecycle.endAll([a.id], c.identity.id, reason, (ended) => recordAdminEvent(this.#d.audit, c, 'assignment.ended', endedPayload(ended, reason), ended.agentId, this.#boundaryOf(ended.agentId)));
      return (await this.#d.agents.get(id)) ?? a;
    });
  }

  #boundaryOf(id: string): string | undefined {
    return this.#d.identities.get(id)?.boundary;
  }
}

/**
 * What ends on its own when people and agents leave (no caller decides it: it follows from a
 * suspension or offboarding someone was allowed to make, or from an assignment's end): assignments
 * and the tokens under them, and a sponsor's agents.
 */
export class AgentLifecycle {
  readonly #d: Pick<AgentAdminDeps, 'agents' | 'credentials' | 'identities' | 'sessions' | 'audit'>;

  constructor(deps: Pick<AgentAdminDeps, 'agents' | 'credentials' | 'identities' | 'sessions' | 'audit'>) {
    this.#d = deps;
  }

  /**
   * A person or an agent was suspended or offboarded (by `by`): the assignments they are the
   * agent or the delegator of end, and a person's sponsored agents are suspended with them (each
   * change audited, by the system, naming why).
   */
  async identityInactive(by: string, id: string, status: Exclude<IdentityStatus, 'active'>, reason: string): Promise<void> {
    const why = `${id} ${status}: ${reason}`.slice(0, 500);
    const live = [...(await this.#d.agents.list({ agentId: id, live: true })), ...(await this.#d.agents.list({ delegatorId: id, live: true }))];
    await this.endAll(live.map((a) => a.id), by, why, (ended) => this.#systemEvent('assignment.ended', endedPayload(ended, why), ended.agentId));
    for (const p of await this.#d.agents.sponsoredBy(id)) {
      const agent = this.#d.identities.get(p.id);
      if (!agent || agent.status !== 'active') continue;
      const agentWhy = `its sponsor ${id} is ${status}`;
      await this.#d.identities.setStatus(p.id, 'suspended');
      await this.#d.sessions.revokeIdentity(p.id);
      await this.#d.credentials.revoke({ identity: p.id }, { by: SYSTEM_ACTOR, reason: `identity suspended: ${agentWhy}` });
      await this.#systemEvent('identity.suspended', { reason: agentWhy, sponsor: id, by }, p.id);
      await this.identityInactive(SYSTEM_ACTOR, p.id, 'suspended', agentWhy);
    }
  }

  /** Ends the assignments (and everything under them), revokes their tokens, records each ended one. */
  async endAll(ids: string[], by: string, reason: string, record: (a: Assignment) => Promise<void>): Promise<void> {
    const all = new Set<string>();
    for (const id of ids) for (const x of await this.#d.agents.withDescendants(id)) all.add(x);
    const ended: Assignment[] = [];
    for (const id of ids) ended.push(...(await this.#d.agents.end(id, reason)));
    // Tokens issued under any of them: `sub` is the delegator, the lease carries the assignment id.
    const delegators = [...new Set(ended.map((a) => a.delegatorId))];
    if (delegators.length > 0) {
      for (const l of await this.#d.credentials.list({ identityId: delegators, kind: 'api', status: 'active' }, 100_000)) {
        if (typeof l.params.asg === 'string' && all.has(l.params.asg)) await this.#d.credentials.revokeLease(l.id, { by, reason: `assignment ${l.params.asg} ended: ${reason}`.slice(0, 1000) });
      }
    }
    for (const a of ended) await record(a);
  }

  #boundaryOf(id: string): string | undefined {
    return this.#d.identities.get(id)?.boundary;
  }

  async #systemEvent(type: string, payload: Record<string, unknown>, subject: string): Promise<void> {
    const boundary = this.#boundaryOf(subject);
    await this.#d.audit.append({ stream: 'admin', type, actor: SYSTEM_ACTOR, subject, ...(boundary !== undefined && { boundary }), payload });
  }
}

/** A list of strings from the caller (the route checked its shape; a direct call may not have). */
function strings(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidInput(`${field}: a list of strings`, field);
  return v as string[];
}

function endedPayload(a: Assignment, reason: string): Record<string, unknown> {
  return { assignment: a.id, agent: a.agentId, delegator: a.delegatorId, reason, ...(a.parentId !== undefined && { parent: a.parentId }) };
}
