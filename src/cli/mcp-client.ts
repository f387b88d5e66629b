// The agent's side of an MCP gateway for the CLI (`portcullis mcp …`, `portcullis agents token`):
// a gateway named by its URL or by name (its resource identifier, from /v1/gateways), the
// assignment token read from a file, and an official-SDK client that presents it as its bearer.
import { readFileSync } from 'node:fs';
import { CliError, EXIT, api } from './client.ts';
import { fileError } from './errors.ts';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

/** `http(s)://…` as given, or a configured MCP gateway's resource identifier (its URL), by name. */
export async function gatewayResource(gateway: string): Promise<string> {
  if (/^https?:\/\//i.test(gateway)) {
    try {
      return new URL(gateway).href;
    } catch {
      throw new CliError(`"${gateway}" is not a URL: name an MCP gateway (portcullis sessions gateways) or give its URL`, EXIT.usage);
    }
  }
  const { gateways } = await api((c) => c.GET('/v1/gateways'));
  const g = gateways.find((x) => x.name === gateway);
  if (!g) throw new CliError(`no gateway named "${gateway}" (known: ${gateways.map((x) => x.name).join(', ') || 'none'})`, EXIT.usage);
  if (g.kind !== 'mcp' || g.resource === undefined) throw new CliError(`${gateway} is a ${g.kind} gateway, not an MCP gateway`, EXIT.usage);
  return g.resource;
}

/** A token from a file (one line: the access token), never from the command line. */
export function tokenFromFile(file: string, what = '--token-file'): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fileError(err, what, file) ?? err;
  }
  const token = text.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new CliError(`${what} ${file}: expected one access token (a JWT), as written by \`portcullis agents token … --out FILE\``, EXIT.usage);
  return token;
}

/**
 * Connects an SDK client to `url` with `token` as its bearer. A 401 (the token expired, was revoked
 * or its assignment ended) is exit 4; nothing listening is exit 5.
 */
export async function connectMcp(url: string, token: string): Promise<{ client: Client; close(): Promise<void> }> {
  const [{ Client }, { StreamableHTTPClientTransport }] = await Promise.all([import('@modelcontextprotocol/sdk/client/index.js'), import('@modelcontextprotocol/sdk/client/streamableHttp.js')]);
  const client = new Client({ name: 'portcullis-cli', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  try {
    await client.connect(transport);
  } catch (err) {
    throw mcpError(err, url);
  }
  return {
    client,
    // DELETE ends the gateway session now (recorded as closed by the client), not when its token does.
    async close() {
      await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    },
  };
}

/** An SDK or HTTP failure as a CLI error with an exit code and what to do next. */
export function mcpError(err: unknown, url: string): CliError {
  if (err instanceof CliError) return err;
  const e = err as { code?: unknown; message?: string; cause?: { code?: unknown } };
  const message = String(e?.message ?? err);
  if (e?.code === 401 || (err as object)?.constructor?.name === 'UnauthorizedError' || /\b401\b/.test(message)) {
    return new CliError(`${url} refused the token (401 invalid_token): it expired, was revoked, or its assignment ended — get a new one with \`portcullis agents token\``, EXIT.unauthenticated);
  }
  if (e?.code === 403 || /\b403\b/.test(message)) return new CliError(`${url}: 403 ${message}`, EXIT.denied);
  if (e?.cause?.code === 'ECONNREFUSED' || /fetch failed|ECONNREFUSED/.test(message)) return new CliError(`cannot reach the MCP gateway at ${url}: is the server running?`, EXIT.unavailable);
  return new CliError(`${url}: ${message}`, EXIT.failure);
}
