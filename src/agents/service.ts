// The agents domain: agent profiles (the accountable sponsor, model/provider, the tools an agent
// may ever reach) and assignments — one unit of work an agent does for a human, with its intent,
// tool set, audiences and end. Validates and stores; who may do what is decided in the broker.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';
import type { UnitOfWork } from '../store/ports.ts';
import type { AgentStore, AssignmentFilter } from './ports.ts';
import type { AgentProfile, Assignment, AssignmentCalls, AssignmentReader, CallHistory, CallReservation, CallToCount } from './types.ts';
import { ASSIGNMENT_ID_RE, CALL_WINDOW_MS } from './types.ts';

/** Longest an assignment may run, and its default. */
export const MAX_ASSIGNMENT_TTL_MS = 24 * 3_600_000;
export const DEFAULT_ASSIGNMENT_TTL_MS = 3_600_000;
/** At most this many tools / audiences per assignment or profile. */
const MAX_TOOLS = 64;
const MAX_AUDIENCES = 8;
/** `server/tool` or `server/*`: a server name, a slash, a tool name (MCP tool names are short identifiers). */
export const TOOL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\/(\*|[A-Za-z0-9_][A-Za-z0-9._/-]{0,127})$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/;
// No control characters (they would forge lines in logs and terminals).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function newAssignmentId(): string {
  return `asg_${randomBytes(15).toString('base64url')}`;
}

export interface ProfileInput {
  sponsor: string;
  model?: string | null;
  provider?: string | null;
  tools?: string[];
}

export type AssignmentInput = Pick<Assignment, 'agentId' | 'delegatorId' | 'sponsorId' | 'intent' | 'tools' | 'audiences'> & {
  ttlMs?: number;
  /** The assignment this one narrows (a sub-agent's), already checked active by the caller. */
  parent?: Assignment;
};

/** Whether `tool` (`server/tool`) is covered by a list of `server/tool` and `server/*` entries. */
export function toolCovered(tool: string, by: readonly string[]): boolean {
  const server = tool.slice(0, tool.indexOf('/'));
  return by.includes(tool) || by.includes(`${server}/*`);
}

export interface AgentServiceOptions {
  store: { readonly agents: AgentStore } & UnitOfWork;
  clock: Clock;
}

export class AgentService implements AssignmentReader, AssignmentCalls {
  readonly #s: AgentServiceOptions['store'];
  readonly #clock: Clock;

  constructor(o: AgentServiceOptions) {
    this.#s = o.store;
    this.#clock = o.clock;
  }

  // ── Profiles ─────────────────────────────────────────────────────────────────────────────

  profile(id: string): Promise<AgentProfile | undefined> {
    return this.#s.agents.profiles.get(id);
  }

  profiles(): Promise<AgentProfile[]> {
    return this.#s.agents.profiles.list();
  }

  /** Agents whose sponsor is `userId`. */
  async sponsoredBy(userId: string): Promise<AgentProfile[]> {
    return (await this.profiles()).filter((p) => p.sponsor === userId);
  }

  /** Sets an agent's profile (the caller checked the identity is an agent and the sponsor a user). */
  async setProfile(id: string, input: ProfileInput): Promise<AgentProfile> {
    if (typeof input.sponsor !== 'string' || !input.sponsor.startsWith('user:')) throw new InvalidInput('sponsor: required, the id of a human (user:…) accountable for the agent', 'sponsor');
    const model = optionalName(input.model, 'model');
    const provider = optionalName(input.provider, 'provider');
    const tools = checkTools(input.tools ?? [], 'tools');
    const now = this.#clock.now();
    return this.#s.transaction(async () => {
      await this.#s.lock(`agent:${id}`);
      const before = await this.#s.agents.profiles.get(id);
      const p: AgentProfile = { id, sponsor: input.sponsor, model, provider, tools, createdAt: before?.createdAt ?? now, updatedAt: now };
      await this.#s.agents.profiles.put(p);
      return p;
    });
  }

  // ── Assignments ──────────────────────────────────────────────────────────────────────────

  /** An assignment with its status as of now (`expired` once past its end), or undefined. */
  async get(id: string): Promise<Assignment | undefined> {
    if (typeof id !== 'string' || !ASSIGNMENT_ID_RE.test(id)) return undefined;
    const a = await this.#s.agents.assignments.get(id);
    return a && this.#asOfNow(a);
  }

  async require(id: string): Promise<Assignment> {
    const a = await this.get(id);
    if (!a) throw new NotFound(`assignment ${String(id).slice(0, 64)}`);
    return a;
  }

  async list(filter: AssignmentFilter & { live?: boolean } = {}, limit = 1000): Promise<Assignment[]> {
    const { live, ...f } = filter;
    const rows = (await this.#s.agents.assignments.list(live ? { ...f, status: 'active' } : f, limit)).map((a) => this.#asOfNow(a));
    return live ? rows.filter((a) => a.status === 'active') : rows;
  }

  /**
   * Validates and records a new assignment. A sub-assignment narrows its parent: same delegator,
   * its tools and audiences a subset, ending no later, one agent deeper.
   */
  async create(input: AssignmentInput): Promise<Assignment> {
    const intent = checkIntent(input.intent);
    const tools = checkTools(input.tools, 'tools');
    if (tools.length === 0) throw new InvalidInput('tools: name at least one tool (server/tool or server/*)', 'tools');
    const audiences = checkAudiences(input.audiences);
    const ttl = input.ttlMs ?? DEFAULT_ASSIGNMENT_TTL_MS;
    if (!Number.isInteger(ttl) || ttl < 1000 || ttl > MAX_ASSIGNMENT_TTL_MS) throw new InvalidInput(`ttl: between 1s and ${MAX_ASSIGNMENT_TTL_MS / 3_600_000}h`, 'ttl');
    const now = this.#clock.now();
    let expiresAt = now + ttl;
    const p = input.parent;
    if (p) {
      if (p.status !== 'active') throw new Conflict(`assignment ${p.id} is ${p.status}: a sub-assignment needs a live one`);
      const wider = tools.filter((t) => !toolCovered(t, p.tools));
      if (wider.length) throw new InvalidInput(`tools: not in assignment ${p.id}: ${wider.join(', ')} (a sub-assignment only narrows)`, 'tools');
      const other = audiences.filter((a) => !p.audiences.includes(a));
      if (other.length) throw new InvalidInput(`audiences: not in assignment ${p.id}: ${other.join(', ')}`, 'audiences');
      expiresAt = Math.min(expiresAt, p.expiresAt);
      if (input.delegatorId !== p.delegatorId) throw new InvalidInput(`a sub-assignment acts for ${p.delegatorId}, as its parent does`, 'parent');
    }
    const a: Assignment = {
      id: newAssignmentId(),
      agentId: input.agentId,
      delegatorId: input.delegatorId,
      sponsorId: input.sponsorId,
      intent,
      tools,
      audiences,
      createdAt: now,
      expiresAt,
      status: 'active',
      ...(p && { parentId: p.id }),
      depth: p ? (p.depth ?? 1) + 1 : 1,
    };
    await this.#s.agents.assignments.insert(a);
    return a;
  }

  /**
   * Ends an assignment and every sub-assignment under it; returns those this call ended (the
   * first is `id`'s, unless it had already ended).
   */
  async end(id: string, reason: string): Promise<Assignment[]> {
    const r = typeof reason === 'string' ? reason.trim() : '';
    if (r === '' || r.length > 500 || CONTROL.test(r)) throw new InvalidInput('reason: required, one line of at most 500 characters', 'reason');
    const out: Assignment[] = [];
    const walk = async (at: string, seen: Set<string>) => {
      if (seen.has(at)) return;
      seen.add(at);
      const ended = await this.#s.agents.assignments.end(at, this.#clock.now(), r);
      if (ended) out.push(ended);
      for (const child of await this.#s.agents.assignments.list({ parentId: at }, 10_000)) await walk(child.id, seen);
    };
    await walk(id, new Set());
    return out;
  }

  /** Ids of an assignment and everything under it (for revoking what was issued under them). */
  async withDescendants(id: string): Promise<string[]> {
    const ids: string[] = [];
    const walk = async (at: string) => {
      if (ids.includes(at)) return;
      ids.push(at);
      for (const child of await this.#s.agents.assignments.list({ parentId: at }, 10_000)) await walk(child.id);
    };
    await walk(id);
    return ids;
  }

  // ── Calls counted per assignment (MCP gateway budgets and taint, shared by replicas) ────────

  /** Reads the history and counts the call in one atomic step (unless `cap` is reached: then no `id`). */
  reserveCall(c: CallToCount): Promise<CallReservation> {
    const at = this.#clock.now();
    return this.#s.agents.calls.reserve({ id: `call_${randomBytes(12).toString('base64url')}`, assignmentId: c.assignmentId, tool: c.tool, labels: c.labels, at, expiresAt: c.expiresAt }, at - CALL_WINDOW_MS, c.cap);
  }

  releaseCall(id: string): Promise<void> {
    return this.#s.agents.calls.release(id);
  }

  callHistory(assignmentId: string): Promise<CallHistory> {
    return this.#s.agents.calls.history(assignmentId, this.#clock.now() - CALL_WINDOW_MS);
  }

  pruneCalls(): Promise<number> {
    return this.#s.agents.calls.prune(this.#clock.now());
  }

  #asOfNow(a: Assignment): Assignment {
    return a.status === 'active' && a.expiresAt <= this.#clock.now() ? { ...a, status: 'expired' } : a;
  }
}

function optionalName(v: unknown, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || !NAME_RE.test(v)) throw new InvalidInput(`${field}: a short name such as "claude-sonnet-4" or "anthropic"`, field);
  return v;
}

export function checkTools(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_TOOLS) throw new InvalidInput(`${field}: a list of at most ${MAX_TOOLS} tools`, field);
  v.forEach((t, i) => {
    if (typeof t !== 'string' || !TOOL_RE.test(t) || t.includes('..')) throw new InvalidInput(`${field}[${i}]: "server/tool" or "server/*"`, `${field}[${i}]`);
  });
  return [...new Set(v as string[])].sort();
}

function checkAudiences(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_AUDIENCES) throw new InvalidInput(`audiences: 1 to ${MAX_AUDIENCES} resource indicators (the URI of an MCP server or API)`, 'audiences');
  v.forEach((a, i) => {
    let ok = typeof a === 'string' && a.length <= 512 && !CONTROL.test(a);
    if (ok) {
      try {
        const u = new URL(a as string);
        // RFC 8707: an absolute URI without a fragment.
        ok = u.hash === '' && (u.protocol === 'https:' || u.protocol === 'http:');
      } catch {
        ok = false;
      }
    }
    if (!ok) throw new InvalidInput(`audiences[${i}]: an absolute http(s) URI without a fragment (RFC 8707)`, `audiences[${i}]`);
  });
  return [...new Set(v as string[])];
}

function checkIntent(v: unknown): string {
  const s = typeof v === 'string' ? v.trim() : '';
  if (s === '' || s.length > 500 || CONTROL.test(s)) throw new InvalidInput('intent: required, what the agent is to do, one line of at most 500 characters', 'intent');
  return s;
}
