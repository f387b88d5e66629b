// `portcullis keys …` and `portcullis sessions revoke`: signing keys and sessions.
import type { Command } from 'commander';
import { call } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

/** A key as /v1/keys answers it (times in ms since the epoch). */
interface KeyInfo {
  kid: string;
  purpose: string;
  status: string;
  createdAt?: number;
  retireAt?: number;
}

/** A time from the API (ms since the epoch) as ISO 8601; '-' when absent or not a time. */
export function when(ms: unknown): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : '-';
}

export function register(program: Command): void {
  const keys = program.command('keys').description("the broker's signing keys");
  keys.command('list').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await call<{ keys: KeyInfo[] }>('GET', '/v1/keys');
    out(!!o.json, r, () => table(r.keys.map((k) => ({ ...k, created: when(k.createdAt), retires: when(k.retireAt) })), ['kid', 'purpose', 'status', 'created', 'retires']));
  });
  keys
    .command('rotate')
    .argument('<purpose>', 'session | audit | token')
    .addOption(json())
    .action(async (purpose: string, o: { json?: boolean }) => {
      const r = await call<{ active: KeyInfo; previous?: KeyInfo }>('POST', '/v1/keys/rotate', { body: { purpose } });
      out(!!o.json, r, () => `new ${purpose} key ${r.active.kid}${r.previous ? `; ${r.previous.kid} ${r.previous.retireAt === undefined ? 'keeps verifying' : `keeps verifying until ${when(r.previous.retireAt)}`}` : ''}`);
    });

  program
    .command('sessions')
    .description('revoke sessions')
    .command('revoke')
    .option('--jti <jti>')
    .option('--identity <id>')
    .option('--reason <text>')
    .addOption(json())
    .action(async (o: { jti?: string; identity?: string; reason?: string; json?: boolean }) => {
      const r = await call<{ revoked: string }>('POST', '/v1/sessions/revoke', { body: { ...(o.jti && { jti: o.jti }), ...(o.identity && { identity: o.identity }), ...(o.reason && { reason: o.reason }) } });
      out(!!o.json, r, () => `revoked ${r.revoked}`);
    });
}
