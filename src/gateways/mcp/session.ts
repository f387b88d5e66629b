// One MCP session through the gateway: an SDK Server facing the client (protocol handling,
// progress, cancellation), one SDK Client per upstream holding the gateway's own credential,
// and between them every list filtered, every call decided (maybe held for a human), budgeted,
// recorded in the session stream, and ended when what it hangs on is revoked.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type CallToolResult,
  type ServerCapabilities,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Assignment } from '../../agents/types.ts';
import type { CedarValue, Entity } from '../../policy/engine/types.ts';
import type { GatewayDecision, GatewayHost, GatewayPrincipal } from '../host.ts';
import { SessionRecorder, newSessionId } from '../sessions.ts';
import { argumentTags, redact, UnmappableArgument } from './args.ts';
import type { McpGatewayConfig, McpUpstream } from './config.ts';
import { assignmentLedger, SessionLedger, type CallLedger } from './ledger.ts';

/** What every session of one gateway shares. */
export interface McpGatewayContext {
  config: McpGatewayConfig;
  host: GatewayHost;
  log: (msg: string) => void;
  redaction: { keys: ReadonlySet<string>; patterns: readonly RegExp[] };
  /** Called once when the session has ended, whatever ended it. */
  ended(s: McpSession): void;
}

type Kind = 'tool' | 'resource' | 'prompt';
const ACTION: Record<Kind, string> = { tool: 'mcp.call', resource: 'mcp.read', prompt: 'mcp.prompt' };
const ENTITY: Record<Kind, string> = { tool: 'Tool', resource: 'McpResource', prompt: 'Prompt' };
/** `_meta` keys of the gateway's own results (documented in docs/agents.md). */
export const META = { outcome: 'portcullis.dev/outcome', decision: 'portcullis.dev/decision', request: 'portcullis.dev/access-request' } as const;

interface Upstream {
  spec: McpUpstream;
  client: Client;
  caps: ServerCapabilities;
  leaseId?: string;
}

/** A refusal the client sees: a tool result for tools/call, a JSON-RPC error otherwise. */
interface Verdict {
  allowed: boolean;
  decisions: { decision: 'allow' | 'deny'; decision_id: string; reasons: string[] }[];
  outcome: 'allowed' | 'denied' | 'approval-denied' | 'approval-timeout' | 'refused';
  message?: string;
  approval?: { request: string; approver: string; outcome: string };
  /** The authz records of the decisions: awaited before the client sees anything that depends on them. */
  recorded: Promise<void>[];
}

/** The history a decision sees: labels and tools counted before, and this tool's calls in the last minute. */
interface Seen {
  labels: string[];
  called: string[];
  recent: number;
}

export class McpSession {
  readonly id = newSessionId();
  readonly who: GatewayPrincipal;
  /** sha256 of the bearer token that opened it (the same token skips re-authentication). */
  readonly tokenHash: string;
  readonly transport: StreamableHTTPServerTransport;
  readonly #g: McpGatewayContext;
  readonly #ups = new Map<string, Upstream>();
  readonly #recorder: SessionRecorder;
  /** Exposed tool name → where it lives, from the last tools/list (loaded on demand). */
  #tools = new Map<string, { server: string; tool: Tool }>();
  #resources = new Map<string, string>();
  #ended = false;
  #unregister: (() => void) | undefined;
  readonly #aborts = new Set<AbortController>();
  /** Budgets and taint without an assignment (with one, the store keeps them: #ledger). */
  readonly #local = new SessionLedger();

  constructor(g: McpGatewayContext, who: GatewayPrincipal, tokenHash: string) {
    this.#g = g;
    this.who = who;
    this.tokenHash = tokenHash;
    this.#recorder = new SessionRecorder((e) => g.host.record(e), { session: this.id, actor: who.identityId, boundary: who.boundary });
    this.transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => this.id });
    this.transport.onclose = () => void this.end('the client closed the session');
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Opens the upstreams (each with its own lease), registers the live session, records its start. */
  async open(): Promise<void> {
    const { config, host } = this.#g;
    const hangs = host.hangsOf(this.who);
    this.#unregister = host.sessions.register({
      id: this.id,
      gateway: config.name,
      kind: 'mcp',
      target: config.target,
      sourceIp: this.who.sourceIp,
      hangs,
      terminate: (reason) => this.end(`terminated: ${reason}`),
    });
    try {
      for (const spec of config.upstreams) {
        let headers: Record<string, string> = {};
        let leaseId: string | undefined;
        if (spec.target !== undefined) {
          // The upstream gets the gateway's own token for its audience, never the client's (no passthrough).
          const lease = await host.issueLease(this.who, { target: spec.target, ...(spec.scopes !== undefined && { permission: spec.scopes.join(' ') }), reason: `MCP gateway ${config.name} session ${this.id}` });
          leaseId = lease.id;
          host.sessions.hangOn(this.id, { leaseId: lease.id, ...(lease.grantId !== undefined && { grantId: lease.grantId }) });
          headers = { authorization: `Bearer ${String(lease.credential.access_token)}` };
        }
        const client = new Client({ name: `portcullis-gateway/${config.name}`, version: '1' }, { capabilities: {} });
        await client.connect(new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers } }));
        this.#ups.set(spec.name, { spec, client, caps: client.getServerCapabilities() ?? {}, ...(leaseId !== undefined && { leaseId }) });
      }
      await this.#recorder.record('session.start', {
        gateway: config.name,
        kind: 'mcp',
        target: config.target,
        identity: this.who.identityId,
        actors: this.who.actors ?? [],
        assignment: this.who.assignmentId ?? null,
        source_ip: this.who.sourceIp,
        upstreams: config.upstreams.map((u) => u.name),
        leases: [...this.#ups.values()].flatMap((u) => (u.leaseId !== undefined ? [u.leaseId] : [])),
        // The first upstream lease is what `sessions terminate` revokes on other replicas.
        ...([...this.#ups.values()][0]?.leaseId !== undefined && { lease: [...this.#ups.values()][0]!.leaseId }),
      });
    } catch (err) {
      await this.end(`the session could not be opened: ${(err as Error).message}`);
      throw err;
    }
    await this.#server().connect(this.transport);
  }

  /** The client-facing SDK server: capabilities are what the upstreams offer; only these handlers exist (anything else: -32601). */
  #server(): Server {
    const ups = [...this.#ups.values()];
    const any = (k: 'tools' | 'resources' | 'prompts') => ups.some((u) => u.caps[k] !== undefined);
    const caps: ServerCapabilities = {
      ...(any('tools') && { tools: {} }),
      ...(any('resources') && { resources: {} }),
      ...(any('prompts') && { prompts: {} }),
    };
    const server = new Server({ name: `portcullis-gateway/${this.#g.config.name}`, version: '1' }, { capabilities: caps });
    if (caps.tools) {
      server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await this.#listTools() }));
      server.setRequestHandler(CallToolRequestSchema, async (req, extra) => this.#callTool(req.params.name, req.params.arguments, extra));
    }
    if (caps.resources) {
      server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: await this.#listResources() }));
      server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: [] }));
      server.setRequestHandler(ReadResourceRequestSchema, async (req, extra) => this.#read(req.params.uri, extra));
    }
    if (caps.prompts) {
      server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: await this.#listPrompts() }));
      server.setRequestHandler(GetPromptRequestSchema, async (req, extra) => this.#prompt(req.params.name, req.params.arguments, extra));
    }
    return server;
  }

  handle(req: IncomingMessage, res: ServerResponse, body?: unknown): Promise<void> {
    return this.transport.handleRequest(req, res, body);
  }

  /** Exposed names: as the upstream names them with one upstream, `<server>.<tool>` with several. */
  #exposed(server: string, name: string): string {
    return this.#ups.size === 1 ? name : `${server}.${name}`;
  }

  async #listTools(): Promise<Tool[]> {
    const found = new Map<string, { server: string; tool: Tool }>();
    for (const u of this.#ups.values()) {
      if (!u.caps.tools) continue;
      let cursor: string | undefined;
      for (let page = 0; page < 50; page++) {
        const r = await u.client.listTools(cursor !== undefined ? { cursor } : undefined, { timeout: this.#g.config.upstream_timeout_ms });
        for (const t of r.tools) found.set(this.#exposed(u.spec.name, t.name), { server: u.spec.name, tool: t });
        cursor = r.nextCursor;
        if (cursor === undefined) break;
      }
    }
    this.#tools = found;
    const visible = await this.#visible('tool', [...found.values()].map((f) => ({ server: f.server, name: f.tool.name })), 'tools/list');
    return [...found.entries()].filter((_, i) => visible[i]).map(([exposed, f]) => ({ ...f.tool, name: exposed }));
  }

  async #listResources() {
    const out: { uri: string; name: string }[] = [];
    const where: { server: string; name: string }[] = [];
    for (const u of this.#ups.values()) {
      if (!u.caps.resources) continue;
      const r = await u.client.listResources(undefined, { timeout: this.#g.config.upstream_timeout_ms });
      for (const x of r.resources) {
        this.#resources.set(x.uri, u.spec.name);
        out.push(x);
        where.push({ server: u.spec.name, name: x.uri });
      }
    }
    const visible = await this.#visible('resource', where, 'resources/list');
    return out.filter((_, i) => visible[i]);
  }

  async #listPrompts() {
    const out: { name: string }[] = [];
    const where: { server: string; name: string }[] = [];
    for (const u of this.#ups.values()) {
      if (!u.caps.prompts) continue;
      const r = await u.client.listPrompts(undefined, { timeout: this.#g.config.upstream_timeout_ms });
      for (const p of r.prompts) {
        out.push({ ...p, name: this.#exposed(u.spec.name, p.name) });
        where.push({ server: u.spec.name, name: p.name });
      }
    }
    const visible = await this.#visible('prompt', where, 'prompts/list');
    return out.filter((_, i) => visible[i]);
  }

  /** For a list: may the caller use each item (with some arguments)? Within the assignment, decided, audited. */
  async #visible(kind: Kind, items: { server: string; name: string }[], method: string): Promise<boolean[]> {
    const a = await this.#assignment();
    if (a === null) return items.map(() => false);
    const h = await this.#ledger(a).history();
    const ds = await Promise.all(
      items.map(async (it) => {
        if (kind === 'tool' && a && !inAssignment(a, it.server, it.name)) return false;
        const d = await this.#decide(kind, it.server, it.name, method, a, undefined, false, { labels: h.labels, called: h.called, recent: h.recent[`${it.server}/${it.name}`] ?? 0 });
        await d.recorded;
        return d.decision === 'allow' || d.approval !== undefined;
      }),
    );
    return ds;
  }

  /** The token's assignment: undefined without one, null when it is no longer active (nothing is allowed then). */
  async #assignment(): Promise<Assignment | undefined | null> {
    if (this.who.assignmentId === undefined) return undefined;
    const a = await this.#g.host.assignment(this.who.assignmentId);
    if (!a || a.status !== 'active' || a.expiresAt <= Date.now()) return null;
    return a;
  }

  #entity(kind: Kind, server: string, name: string): Entity[] {
    const { host, config } = this.#g;
    const uid = { type: ENTITY[kind], id: `${server}/${name}` };
    if (host.resource(uid)) return [];
    const api = host.resource({ type: 'Api', id: config.target });
    const boundary = config.boundary ?? api?.boundary;
    const environment = config.environment ?? api?.environment;
    return [{ uid, attrs: { ...(boundary !== undefined && { boundary }), ...(environment !== undefined && { environment }) }, parents: [] }];
  }

  #decide(kind: Kind, server: string, name: string, method: string, a: Assignment | undefined, tags: Record<string, CedarValue> | undefined, approved: boolean, seen: Seen): Promise<GatewayDecision> {
    const { config, host } = this.#g;
    const key = `${server}/${name}`;
    const callId = `${this.id}:${this.#recorder.count}`;
    const entities = this.#entity(kind, server, name);
    if (tags) entities.push({ uid: { type: 'McpCall', id: callId }, attrs: {}, parents: [], tags });
    const agent = this.who.actors?.[0] ?? '';
    return host.decide(this.who, {
      action: ACTION[kind],
      resource: { type: ENTITY[kind], id: key },
      context: {
        gateway: config.name,
        session: this.id,
        mcp: {
          server,
          name,
          method,
          assignment: a?.id ?? '',
          intent: a?.intent ?? '',
          sponsor: a?.sponsorId ?? '',
          delegator: a?.delegatorId ?? (agent !== '' ? this.who.identityId : ''),
          agent,
          sourceBoundary: this.who.actorBoundary ?? this.who.boundary,
          labels: config.tools[key] ?? [],
          history: seen.labels,
          called: seen.called,
          callsLastMinute: seen.recent,
          approved,
        },
        ...(tags && { call: { __entity: { type: 'McpCall', id: callId } } }),
      },
      ...(a !== undefined && { purpose: { reason: a.intent.slice(0, 1024) } }),
      entities,
    });
  }

  /** An assignment's calls are counted in the store (every replica sees them); a session's own, here. */
  #ledger(a: Assignment | undefined): CallLedger {
    return a ? assignmentLedger(this.#g.host.calls, a) : this.#local;
  }

  /**
   * Everything before the upstream sees a call: the assignment, the arguments' mapping, the
   * budget, the decision, and a human's approval when policy asks for one.
   */
  async #authorize(kind: Kind, server: string, name: string, method: string, args: unknown, extra: Extra): Promise<Verdict> {
    const key = `${server}/${name}`;
    const a = await this.#assignment();
    if (a === null) return { allowed: false, decisions: [], outcome: 'refused', message: `assignment ${this.who.assignmentId} is no longer active`, recorded: [] };
    if (kind === 'tool' && a && !inAssignment(a, server, name)) return { allowed: false, decisions: [], outcome: 'refused', message: `${key} is not among the tools of assignment ${a.id}`, recorded: [] };
    const { arguments: lim, calls_per_tool_per_minute: cap } = this.#g.config;
    // Throws UnmappableArgument: the caller turns it into -32602, recorded.
    const tags = argumentTags(args, { maxDepth: lim.max_depth, maxTags: lim.max_values, maxString: lim.max_string });
    const ledger = this.#ledger(a);
    // A tool call is counted (budget, taint) before it is decided, in the same atomic step that
    // reads the history it is decided on; it is uncounted if it is not allowed after all.
    let seen: Seen;
    let counted: string | undefined;
    if (kind === 'tool') {
      const r = await ledger.reserve(key, this.#g.config.tools[key] ?? [], cap);
      if (r.id === undefined) return budgetExhausted(cap, key);
      counted = r.id;
      seen = r;
    } else {
      const h = await ledger.history();
      seen = { labels: h.labels, called: h.called, recent: h.recent[key] ?? 0 };
      if (cap > 0 && seen.recent >= cap) return budgetExhausted(cap, key);
    }
    let v: Verdict | undefined;
    try {
      v = await this.#decided(kind, server, name, method, a, tags, extra, seen);
      return v;
    } finally {
      if (counted !== undefined && v?.allowed !== true) await ledger.release(counted, key);
    }
  }

  async #decided(kind: Kind, server: string, name: string, method: string, a: Assignment | undefined, tags: Record<string, CedarValue> | undefined, extra: Extra, seen: Seen): Promise<Verdict> {
    const key = `${server}/${name}`;
    let d = await this.#decide(kind, server, name, method, a, tags, false, seen);
    const decisions = [pick(d)];
    // The authz record commits while the upstream works; the result waits for it (fail closed).
    // (A rejection before it is awaited is not unhandled: it is awaited with the result.)
    d.recorded.catch(() => {});
    if (d.approval === undefined) return { allowed: d.decision === 'allow', decisions, outcome: d.decision === 'allow' ? 'allowed' : 'denied', recorded: [d.recorded] };
    await d.recorded;
    const approver = approverOf(d.approval, a, this.who);
    if (approver === undefined) return { allowed: false, decisions, outcome: 'denied', message: `policy asks approval by "${d.approval}", which names nobody for this call`, recorded: [] };
    const held = await this.#hold(kind, key, approver, a, extra);
    const approval = { request: held.request, approver, outcome: held.outcome };
    if (held.outcome === 'timeout') return { allowed: false, decisions, outcome: 'approval-timeout', approval, message: `approval by ${approver} did not come within ${Math.round(this.#g.config.approval_timeout_ms / 1000)}s (access request ${held.request}); the call was not made`, recorded: [] };
    if (held.outcome !== 'approved') return { allowed: false, decisions, outcome: 'approval-denied', approval, message: `${approver} did not approve (access request ${held.request}: ${held.outcome}); the call was not made`, recorded: [] };
    if (d.decision === 'deny') {
      // A forbid that asked for approval: decided again, now with context.mcp.approved.
      d = await this.#decide(kind, server, name, method, a, tags, true, seen);
      await d.recorded;
      decisions.push(pick(d));
      if (d.decision !== 'allow') return { allowed: false, decisions, outcome: 'denied', approval, recorded: [] };
    }
    return { allowed: true, decisions, outcome: 'allowed', approval, recorded: [] };
  }

  /** Holds a call until `approver` decides its access request, or the configured maximum passes (then it is withdrawn). */
  async #hold(kind: Kind, key: string, approver: string, a: Assignment | undefined, extra: Extra): Promise<{ request: string; outcome: string }> {
    const { host, config } = this.#g;
    const who = a ? `${a.agentId} acting for ${a.delegatorId} (assignment ${a.id}: ${a.intent.slice(0, 200)})` : this.who.actors?.length ? `${this.who.actors[0]} acting for ${this.who.identityId}` : this.who.identityId;
    // The request is about the declared Tool when there is one, else about the gateway's Api target
    // (access requests need a resource with a boundary); the reason names the tool either way.
    const uid = { type: ENTITY[kind], id: key };
    let id: string;
    try {
      ({ id } = await host.requestApproval(this.who, {
        action: ACTION[kind],
        resource: host.resource(uid) ? uid : { type: 'Api', id: config.target },
        approver,
        reason: `MCP ${ACTION[kind]} of ${key} by ${who}: held for approval by ${approver} (gateway ${config.name}, session ${this.id})`,
      }));
    } catch (err) {
      return { request: '', outcome: `not requested: ${(err as Error).message.slice(0, 200)}` };
    }
    const token = extra._meta?.progressToken;
    const started = Date.now();
    const deadline = started + config.approval_timeout_ms;
    let nextProgress = started;
    let n = 0;
    const abort = new AbortController();
    this.#aborts.add(abort);
    try {
      for (;;) {
        const status = await host.approvalStatus(id, approver);
        if (status !== 'pending') return { request: id, outcome: status };
        const now = Date.now();
        if (now >= deadline || this.#ended || extra.signal.aborted) break;
        if (token !== undefined && now >= nextProgress) {
          nextProgress = now + config.progress_interval_ms;
          await extra
            .sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: ++n, message: `held for approval by ${approver}: access request ${id} (${Math.ceil((deadline - now) / 1000)}s left)` } })
            .catch(() => {});
        }
        await sleep(Math.min(250, deadline - now), abort.signal);
      }
    } finally {
      this.#aborts.delete(abort);
    }
    await host.cancelApproval(this.who, id, this.#ended || extra.signal.aborted ? 'the call was abandoned' : 'the hold timed out').catch(() => {});
    return { request: id, outcome: 'timeout' };
  }

  async #callTool(exposed: string, args: Record<string, unknown> | undefined, extra: Extra): Promise<CallToolResult> {
    if (!this.#tools.has(exposed)) await this.#listTools();
    const f = this.#tools.get(exposed);
    if (!f) throw new McpError(ErrorCode.InvalidParams, `unknown tool: ${exposed.slice(0, 128)}`);
    const started = performance.now();
    const base = { method: 'tools/call', server: f.server, name: f.tool.name, arguments: redact(args ?? {}, this.#g.redaction, this.#g.config.max_recorded_bytes) };
    let v: Verdict;
    try {
      v = await this.#authorize('tool', f.server, f.tool.name, 'tools/call', args, extra);
    } catch (err) {
      if (err instanceof UnmappableArgument) {
        await this.#recorder.record('mcp.call', { ...base, outcome: 'refused', message: err.message }, 'deny');
        throw new McpError(ErrorCode.InvalidParams, err.message);
      }
      throw err;
    }
    if (!v.allowed) {
      await Promise.all([this.#recorder.record('mcp.call', { ...base, ...verdictPayload(v) }, 'deny'), ...v.recorded]);
      return refusal(v, `mcp.call on Tool::"${f.server}/${f.tool.name}"`);
    }
    const u = this.#ups.get(f.server)!;
    let result: CallToolResult;
    try {
      result = (await u.client.callTool({ name: f.tool.name, ...(args !== undefined && { arguments: args }) }, undefined, { timeout: this.#g.config.upstream_timeout_ms, signal: extra.signal })) as CallToolResult;
    } catch (err) {
      await Promise.all([this.#recorder.record('mcp.call', { ...base, ...verdictPayload(v), outcome: 'upstream-error', message: (err as Error).message.slice(0, 500), duration_ms: ms(started) }, 'allow'), ...v.recorded]);
      throw err instanceof McpError ? err : new McpError(ErrorCode.InternalError, `the upstream ${f.server} failed: ${(err as Error).message.slice(0, 200)}`);
    }
    await Promise.all([this.#recorder.record('mcp.call', { ...base, ...verdictPayload(v), is_error: result.isError === true, ...(this.#g.config.record_results && { result: this.#clean(result) }), duration_ms: ms(started) }, 'allow'), ...v.recorded]);
    return result;
  }

  async #read(uri: string, extra: Extra) {
    if (!this.#resources.has(uri) && this.#ups.size > 1) await this.#listResources();
    const server = this.#resources.get(uri) ?? (this.#ups.size === 1 ? [...this.#ups.keys()][0]! : undefined);
    if (server === undefined) throw new McpError(ErrorCode.InvalidParams, `unknown resource: ${uri.slice(0, 200)}`);
    const started = performance.now();
    const base = { method: 'resources/read', server, name: uri.slice(0, 2048) };
    const v = await this.#authorize('resource', server, uri, 'resources/read', undefined, extra);
    if (!v.allowed) {
      await Promise.all([this.#recorder.record('mcp.read', { ...base, ...verdictPayload(v) }, 'deny'), ...v.recorded]);
      throw new McpError(ErrorCode.InvalidRequest, refusalText(v, `mcp.read on McpResource::"${server}/${uri.slice(0, 200)}"`), { [META.outcome]: v.outcome });
    }
    const r = await this.#ups.get(server)!.client.readResource({ uri }, { timeout: this.#g.config.upstream_timeout_ms, signal: extra.signal });
    await Promise.all([this.#recorder.record('mcp.read', { ...base, ...verdictPayload(v), ...(this.#g.config.record_results && { result: this.#clean(r) }), duration_ms: ms(started) }, 'allow'), ...v.recorded]);
    return r;
  }

  async #prompt(exposed: string, args: Record<string, string> | undefined, extra: Extra) {
    const dot = this.#ups.size === 1 ? -1 : exposed.indexOf('.');
    const server = dot === -1 ? [...this.#ups.keys()][0]! : exposed.slice(0, dot);
    const name = dot === -1 ? exposed : exposed.slice(dot + 1);
    if (!this.#ups.has(server)) throw new McpError(ErrorCode.InvalidParams, `unknown prompt: ${exposed.slice(0, 128)}`);
    const started = performance.now();
    const base = { method: 'prompts/get', server, name, arguments: redact(args ?? {}, this.#g.redaction, this.#g.config.max_recorded_bytes) };
    let v: Verdict;
    try {
      v = await this.#authorize('prompt', server, name, 'prompts/get', args, extra);
    } catch (err) {
      if (err instanceof UnmappableArgument) throw new McpError(ErrorCode.InvalidParams, err.message);
      throw err;
    }
    if (!v.allowed) {
      await Promise.all([this.#recorder.record('mcp.prompt', { ...base, ...verdictPayload(v) }, 'deny'), ...v.recorded]);
      throw new McpError(ErrorCode.InvalidRequest, refusalText(v, `mcp.prompt on Prompt::"${server}/${name}"`), { [META.outcome]: v.outcome });
    }
    const r = await this.#ups.get(server)!.client.getPrompt({ name, ...(args !== undefined && { arguments: args }) }, { timeout: this.#g.config.upstream_timeout_ms, signal: extra.signal });
    await Promise.all([this.#recorder.record('mcp.prompt', { ...base, ...verdictPayload(v), ...(this.#g.config.record_results && { result: this.#clean(r) }), duration_ms: ms(started) }, 'allow'), ...v.recorded]);
    return r;
  }

  #clean(v: unknown): unknown {
    return redact(v, this.#g.redaction, this.#g.config.max_recorded_bytes);
  }

  /** Ends the session once: held calls withdrawn, the client's streams closed, upstreams closed and their leases revoked, `session.end` recorded. */
  async end(reason: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    for (const a of this.#aborts) a.abort();
    this.#unregister?.();
    this.#g.ended(this);
    await this.transport.close().catch(() => {});
    await Promise.all(
      [...this.#ups.values()].map(async (u) => {
        await u.client.close().catch(() => {});
        if (u.leaseId !== undefined) await this.#g.host.revokeLease(u.leaseId, `MCP gateway session ${this.id} ended`).catch(() => {});
      }),
    );
    if (this.#recorder.count > 0) await this.#recorder.end({ reason: reason.slice(0, 300) }).catch((err: unknown) => this.#g.log(`mcp gateway ${this.#g.config.name}: recording the end of ${this.id} failed: ${(err as Error).message}`));
  }
}

type Extra = { signal: AbortSignal; _meta?: { progressToken?: string | number } | undefined; sendNotification: (n: { method: 'notifications/progress'; params: { progressToken: string | number; progress: number; message?: string } }) => Promise<void> };

function inAssignment(a: Assignment, server: string, name: string): boolean {
  return a.tools.includes(`${server}/${name}`) || a.tools.includes(`${server}/*`);
}

/** `@approval("sponsor" | "delegator" | "<identity id>")` → who, for this call. */
function approverOf(named: string, a: Assignment | undefined, who: GatewayPrincipal): string | undefined {
  if (named === 'sponsor') return a?.sponsorId;
  if (named === 'delegator' || named === 'user') return a?.delegatorId ?? (who.actors?.length ? who.identityId : undefined);
  return /^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,255}$/.test(named) ? named : undefined;
}

function pick(d: GatewayDecision) {
  return { decision: d.decision, decision_id: d.decision_id, reasons: d.reasons };
}

function verdictPayload(v: Verdict): Record<string, unknown> {
  return { outcome: v.outcome, decisions: v.decisions, ...(v.approval && { approval: v.approval }), ...(v.message !== undefined && { message: v.message }) };
}

/** The exact text of a refusal (docs/agents.md "Results of refused calls"). */
function refusalText(v: Verdict, what: string): string {
  const id = v.decisions.at(-1)?.decision_id;
  switch (v.outcome) {
    case 'approval-denied':
      return `Portcullis: approval denied: ${v.message}`;
    case 'approval-timeout':
      return `Portcullis: approval timed out: ${v.message}`;
    case 'refused':
      return `Portcullis refused this call: ${v.message}`;
    default:
      return `Portcullis denied this call: ${what}${id !== undefined ? ` (decision ${id})` : ''}${v.message !== undefined ? `: ${v.message}` : ''}`;
  }
}

function refusal(v: Verdict, what: string): CallToolResult {
  const id = v.decisions.at(-1)?.decision_id;
  return {
    isError: true,
    content: [{ type: 'text', text: refusalText(v, what) }],
    _meta: { [META.outcome]: v.outcome, ...(id !== undefined && { [META.decision]: id }), ...(v.approval && { [META.request]: v.approval.request }) },
  };
}

function ms(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

function sleep(msec: number, signal: AbortSignal): Promise<void> {
  return new Promise((r) => {
    const t = setTimeout(r, Math.max(0, msec));
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      r();
    }, { once: true });
  });
}

function budgetExhausted(cap: number, key: string): Verdict {
  return { allowed: false, decisions: [], outcome: 'refused', message: `budget exhausted: at most ${cap} calls of ${key} per minute under this assignment`, recorded: [] };
}
