// A `kind: mcp` gateway in portcullis.yaml: the `api` target whose audience is its resource
// identifier, the upstream MCP servers it fronts, tool labels (taint), budgets, the human hold,
// the limits on what it accepts and how recordings are redacted (docs/agents.md "MCP gateway").
import { duration, flag, integer, mapping, text, texts, z } from '../../common/validation.ts';
import { gatewayFields } from '../plugin.ts';

export const UPSTREAM_NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
const LABEL_RE = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const TOOL_KEY_RE = /^[a-z0-9][a-z0-9-]{0,31}\/[A-Za-z0-9._-]{1,128}$/;

export interface McpUpstream {
  /** The server's name in Cedar ids (`Tool::"<name>/<tool>"`). */
  name: string;
  /** Its Streamable HTTP endpoint. */
  url: string;
  /** An `api` target: the gateway's own access token for this upstream (a lease per session, in the caller's name). None: no Authorization header. */
  target?: string;
  /** Scopes of that token (with `target` only, and then required: the narrowest the upstream needs). */
  scopes?: string[];
}

export interface McpGatewayConfig {
  name: string;
  kind: 'mcp';
  listen: { host: string; port: number };
  /** An `api` target: its audience is the resource identifier tokens must carry (`aud`). */
  target: string;
  /** The resource identifier (RFC 8707/9728): filled from the target's audience. */
  resource: string;
  /** Path of the MCP endpoint (default `/mcp`). */
  path: string;
  upstreams: McpUpstream[];
  /** Labels of tools, by `server/tool`: taint rules read them (`context.mcp.labels`, `.history`). */
  tools: Record<string, string[]>;
  /** Facts of Tool/McpResource/Prompt entities not declared under `resources:` (else the boundary guard denies). */
  boundary?: string;
  environment?: string;
  /** The longest a call is held for a human approval before it is denied (default 2m). */
  approval_timeout_ms: number;
  /** How often a held call sends a progress notification (default 5s). */
  progress_interval_ms: number;
  /** Calls of one tool per assignment per minute beyond which calls are denied without asking policy (0: no cap). */
  calls_per_tool_per_minute: number;
  /** Argument/result keys recorded as `[redacted]` (case-insensitive, any depth). */
  redact_keys: string[];
  /** Regular expressions whose matches in recorded strings are replaced by `[redacted]`. */
  redact_patterns: string[];
  /** Record tool results (redacted, cut to `max_recorded_bytes`); default true. */
  record_results: boolean;
  max_recorded_bytes: number;
  /** Largest HTTP body accepted (default 1 MiB). */
  max_message_bytes: number;
  arguments: { max_depth: number; max_values: number; max_string: number };
  /** Upstream request timeout (default 60s; a held call's hold is not counted). */
  upstream_timeout_ms: number;
  max_sessions: number;
}

const DEFAULT_REDACT = ['password', 'passwd', 'secret', 'token', 'access_token', 'refresh_token', 'api_key', 'apikey', 'authorization', 'cookie', 'private_key'];

const upstream = mapping({
  name: text({ pattern: UPSTREAM_NAME_RE, hint: 'expected 1-32 lowercase letters, digits, -' }),
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  target: text({ max: 128 }).optional(),
  scopes: texts({ nonEmpty: true, max: 256 }).optional(),
}).refine((u) => (u.target === undefined) === (u.scopes === undefined), { path: ['scopes'], error: 'target and scopes go together: the api target of the upstream token and the scopes it needs' });

export const mcpGatewayConfig = mapping({
  ...gatewayFields('mcp'),
  path: text({ max: 200, pattern: /^\/[A-Za-z0-9._~/-]*$/, hint: 'expected a path like /mcp' }).optional(),
  upstreams: z.array(upstream).min(1).max(32),
  tools: z.record(text({ pattern: TOOL_KEY_RE, hint: 'expected server/tool' }), texts({ pattern: LABEL_RE, hint: 'expected a label like untrusted-input' })).optional(),
  boundary: text({ max: 128 }).optional(),
  environment: text({ max: 128 }).optional(),
  approval_timeout: duration({ min: 1000, max: 600_000, range: 'must be between 1s and 10m' }).optional(),
  progress_interval: duration({ min: 100, max: 60_000, range: 'must be between 100ms and 1m' }).optional(),
  calls_per_tool_per_minute: integer(0, 1_000_000).optional(),
  redact_keys: texts({ max: 128 }).optional(),
  redact_patterns: texts({ max: 512 }).optional(),
  record_results: flag().optional(),
  max_recorded_bytes: integer(256, 1 << 24).optional(),
  max_message_bytes: integer(1024, 64 << 20).optional(),
  arguments: mapping({ max_depth: integer(1, 32).optional(), max_values: integer(1, 10_000).optional(), max_string: integer(1, 1 << 20).optional() }).optional(),
  upstream_timeout: duration({ min: 1000, max: 600_000, range: 'must be between 1s and 10m' }).optional(),
  max_sessions: integer(1, 100_000).optional(),
})
  .superRefine((o, ctx) => {
    const names = o.upstreams.map((u) => u.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `duplicate upstream name "${n}"` });
    });
    for (const k of Object.keys(o.tools ?? {})) {
      if (!names.includes(k.split('/')[0]!)) ctx.addIssue({ code: 'custom', path: ['tools', k], message: `no upstream named "${k.split('/')[0]}" (known: ${names.join(', ')})` });
    }
    (o.redact_patterns ?? []).forEach((p, i) => {
      try {
        new RegExp(p, 'g');
      } catch {
        ctx.addIssue({ code: 'custom', path: ['redact_patterns', i], message: 'not a valid regular expression' });
      }
    });
  })
  .transform(
    (o): McpGatewayConfig => ({
      name: o.name,
      kind: 'mcp',
      listen: o.listen,
      target: o.target,
      resource: '',
      path: o.path ?? '/mcp',
      upstreams: o.upstreams.map((u) => ({ name: u.name, url: u.url, ...(u.target !== undefined && { target: u.target }), ...(u.scopes !== undefined && { scopes: u.scopes }) })),
      tools: o.tools ?? {},
      ...(o.boundary !== undefined && { boundary: o.boundary }),
      ...(o.environment !== undefined && { environment: o.environment }),
      approval_timeout_ms: o.approval_timeout ?? 120_000,
      progress_interval_ms: o.progress_interval ?? 5000,
      calls_per_tool_per_minute: o.calls_per_tool_per_minute ?? 0,
      redact_keys: o.redact_keys ?? DEFAULT_REDACT,
      redact_patterns: o.redact_patterns ?? [],
      record_results: o.record_results ?? true,
      max_recorded_bytes: o.max_recorded_bytes ?? 16_384,
      max_message_bytes: o.max_message_bytes ?? 1 << 20,
      arguments: { max_depth: o.arguments?.max_depth ?? 8, max_values: o.arguments?.max_values ?? 256, max_string: o.arguments?.max_string ?? 65_536 },
      upstream_timeout_ms: o.upstream_timeout ?? 60_000,
      max_sessions: o.max_sessions ?? 1024,
    }),
  ) as unknown as z.ZodType<McpGatewayConfig>;
