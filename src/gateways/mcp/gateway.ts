// The MCP gateway's HTTP front: RFC 9728 protected-resource metadata, bearer authentication with
// the audience check (401 + WWW-Authenticate resource_metadata), size and shape checks on every
// JSON-RPC message, and routing by Mcp-Session-Id to sessions only their own caller may use.
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { InitializeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { AuthenticationFailed } from '../../common/errors.ts';
import type { Gateway, GatewayDeps } from '../plugin.ts';
import type { GatewayPrincipal } from '../host.ts';
import type { McpGatewayConfig } from './config.ts';
import { McpSession, type McpGatewayContext } from './session.ts';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

export class McpGateway implements Gateway {
  readonly name: string;
  readonly kind = 'mcp';
  readonly #config: McpGatewayConfig;
  readonly #deps: GatewayDeps;
  readonly #sessions = new Map<string, McpSession>();
  readonly #ctx: McpGatewayContext;
  #server: Server | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(config: McpGatewayConfig, deps: GatewayDeps) {
    this.name = config.name;
    this.#config = config;
    this.#deps = deps;
    this.#ctx = {
      config,
      host: deps.host,
      log: deps.log,
      redaction: { keys: new Set(config.redact_keys.map((k) => k.toLowerCase())), patterns: config.redact_patterns.map((p) => new RegExp(p, 'g')) },
      ended: (s) => {
        if (this.#sessions.get(s.id) === s) this.#sessions.delete(s.id);
      },
    };
  }

  /** The protected-resource metadata URL (RFC 9728 §3.1: the well-known segment before the resource's path). */
  get metadataUrl(): string {
    const u = new URL(this.#config.resource);
    return `${u.origin}${WELL_KNOWN}${u.pathname === '/' ? '' : u.pathname}`;
  }

  async start(): Promise<{ host: string; port: number }> {
    const server = createServer({ requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => {
      this.#route(req, res).catch((err: unknown) => {
        this.#deps.log(`mcp gateway ${this.name}: ${(err as Error).message}`);
        if (!res.headersSent) rpcError(res, 500, -32603, 'internal error in the gateway');
        else res.end();
      });
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    // `once` rejects on 'error' (the address is taken…) before 'listening'.
    server.listen(this.#config.listen.port, this.#config.listen.host);
    await once(server, 'listening');
    server.on('error', (err) => this.#deps.log(`mcp gateway ${this.name}: ${err.message}`));
    this.#server = server;
    // The calls counted under ended and expired assignments are forgotten (any replica may do it).
    this.#sweep = setInterval(() => {
      this.#deps.host.calls.pruneCalls().catch((err: unknown) => this.#deps.log(`mcp gateway ${this.name}: pruning call history failed: ${(err as Error).message}`));
    }, 300_000);
    this.#sweep.unref();
    const a = server.address();
    return { host: this.#config.listen.host, port: typeof a === 'object' && a ? a.port : this.#config.listen.port };
  }

  async stop(): Promise<void> {
    if (this.#sweep) clearInterval(this.#sweep);
    const server = this.#server;
    this.#server = undefined;
    await Promise.all([...this.#sessions.values()].map((s) => s.end('the gateway is shutting down')));
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith(WELL_KNOWN)) return this.#metadata(req, res);
    if (path !== this.#config.path) return rpcError(res, 404, -32600, `no MCP endpoint here; it is ${this.#config.path}`);
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      res.setHeader('allow', 'GET, POST, DELETE');
      return rpcError(res, 405, -32600, 'method not allowed');
    }
    // The bearer token first: nothing about sessions or messages is told to an unauthenticated caller.
    const token = bearer(req.headers.authorization);
    if (token === undefined) return this.#unauthorized(res, req.headers.authorization === undefined ? undefined : 'invalid_request');
    let body: unknown;
    if (req.method === 'POST') {
      const raw = await readBody(req, this.#config.max_message_bytes);
      if (raw === 'too-large') return rpcError(res, 413, -32600, `message too large: at most ${this.#config.max_message_bytes} bytes`, true);
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return rpcError(res, 400, -32700, 'parse error: the body is not JSON');
      }
      const shape = checkMessage(body);
      if (shape !== undefined) return rpcError(res, 400, -32600, shape, false, idOf(body));
    }
    const hash = sha256(token);
    const sid = req.headers['mcp-session-id'];
    if (sid === undefined) {
      if (req.method !== 'POST' || (body as { method?: unknown }).method !== 'initialize') return rpcError(res, 400, -32600, 'no Mcp-Session-Id: initialize a session first', false, idOf(body));
      const who = await this.#authenticate(token, req, res);
      if (!who) return;
      // What the transport would refuse, refused before anything is opened upstream.
      const accept = String(req.headers.accept ?? '');
      if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return rpcError(res, 406, -32600, 'Accept must list application/json and text/event-stream', false, idOf(body));
      if (!InitializeRequestSchema.safeParse(body).success) return rpcError(res, 400, -32602, 'invalid initialize: params need protocolVersion, capabilities and clientInfo {name, version}', false, idOf(body));
      if (this.#sessions.size >= this.#config.max_sessions) return rpcError(res, 503, -32603, 'too many sessions on this gateway; try again later', false, idOf(body));
      const s = new McpSession(this.#ctx, who, hash);
      try {
        await s.open();
      } catch (err) {
        this.#deps.log(`mcp gateway ${this.name}: opening a session for ${who.identityId} failed: ${(err as Error).message}`);
        return rpcError(res, 502, -32603, `the session could not be opened: ${safeMessage(err)}`, false, idOf(body));
      }
      this.#sessions.set(s.id, s);
      await s.handle(req, res, body);
      // An initialize the SDK refused leaves no half-open session behind (leases, upstreams).
      if (s.transport.sessionId === undefined) await s.end('the client did not complete initialization');
      return;
    }
    const s = typeof sid === 'string' ? this.#sessions.get(sid) : undefined;
    if (!s || s.ended) return rpcError(res, 404, -32001, 'session not found (it ended or never existed): initialize a new one', false, idOf(body));
    // The session's own token goes on; another token must prove the same caller, or nothing is forwarded.
    if (!equal(hash, s.tokenHash)) {
      const who = await this.#authenticate(token, req, res);
      if (!who) return;
      if (!sameParty(who, s.who)) return rpcError(res, 403, -32001, 'this session belongs to another caller', false, idOf(body));
    }
    return s.handle(req, res, body);
  }

  async #authenticate(token: string, req: IncomingMessage, res: ServerResponse): Promise<GatewayPrincipal | undefined> {
    try {
      return await this.#deps.host.authenticate({ type: 'bearer', token, audience: this.#config.resource }, req.socket.remoteAddress ?? '0.0.0.0');
    } catch (err) {
      if (err instanceof AuthenticationFailed) {
        this.#unauthorized(res, 'invalid_token');
        return undefined;
      }
      throw err;
    }
  }

  /** 401 naming the metadata (MCP authorization, RFC 9728 §5.1), so a standard client finds the authorization server. */
  #unauthorized(res: ServerResponse, error: 'invalid_token' | 'invalid_request' | undefined): void {
    const parts = [`Bearer resource_metadata="${this.metadataUrl}"`];
    if (error !== undefined) parts.push(`error="${error}"`, `error_description="${error === 'invalid_token' ? `the access token is not valid for ${this.#config.resource}` : 'expected Authorization: Bearer <token>'}"`);
    res.setHeader('www-authenticate', parts.join(', '));
    rpcError(res, 401, -32001, 'authentication required: a Portcullis access token for this resource');
  }

  #metadata(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET') return rpcError(res, 405, -32600, 'method not allowed');
    const doc = {
      resource: this.#config.resource,
      authorization_servers: [this.#deps.host.issuer()],
      bearer_methods_supported: ['header'],
      resource_name: `Portcullis MCP gateway ${this.name}`,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(JSON.stringify(doc));
  }
}

function bearer(h: string | undefined): string | undefined {
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(h);
  return m && m[1]!.length <= 8192 ? m[1] : undefined;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function equal(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** Same subject, same actors, same assignment: a renewed token of the one caller. */
function sameParty(a: GatewayPrincipal, b: GatewayPrincipal): boolean {
  return a.identityId === b.identityId && a.assignmentId === b.assignmentId && (a.actors ?? []).join('\n') === (b.actors ?? []).join('\n');
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    return 'too-large';
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > max) {
      req.resume();
      return 'too-large';
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Why a body is not one JSON-RPC 2.0 message (batches are not part of MCP 2025-06-18 and later), or undefined. */
function checkMessage(m: unknown): string | undefined {
  if (Array.isArray(m)) return 'JSON-RPC batches are not supported: send one message per request';
  if (typeof m !== 'object' || m === null) return 'invalid request: expected a JSON-RPC 2.0 object';
  const o = m as Record<string, unknown>;
  if (o.jsonrpc !== '2.0') return 'invalid request: jsonrpc must be "2.0"';
  if ('id' in o && typeof o.id !== 'string' && !(typeof o.id === 'number' && Number.isInteger(o.id))) return 'invalid request: id must be a string or an integer';
  if ('method' in o) {
    if (typeof o.method !== 'string' || o.method.length === 0 || o.method.length > 128) return 'invalid request: method must be a short string';
    if ('params' in o && (typeof o.params !== 'object' || o.params === null || Array.isArray(o.params))) return 'invalid request: params must be an object';
    return undefined;
  }
  if ('result' in o || 'error' in o) return 'id' in o ? undefined : 'invalid response: no id';
  return 'invalid request: no method';
}

function idOf(m: unknown): string | number | null {
  const id = (m as { id?: unknown } | null)?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

function safeMessage(err: unknown): string {
  const m = (err as Error).message ?? '';
  return m.replace(/Bearer\s+\S+/gi, 'Bearer [redacted]').slice(0, 300);
}

function rpcError(res: ServerResponse, status: number, code: number, message: string, close = false, id: string | number | null = null): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json', ...(close && { connection: 'close' }) });
  res.end(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }));
}
